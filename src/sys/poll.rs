//! The poll(2) backend: an array of `struct pollfd` built from the fd table at every wait.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, poll};

use super::{Event, Interest, SysError, failed, timeout_millis};

/// poll(2) keeps nothing between calls: the kernel is told the whole set each time.
#[derive(Debug, Default)]
pub struct PollBackend {
    /// How many descriptors the last wait passed, to size the next array at once.
    last_len: usize,
}

impl PollBackend {
    /// One poll(2) call over every watched descriptor.
    pub fn wait<'fd>(
        &mut self,
        watched: impl Iterator<Item = (BorrowedFd<'fd>, Interest)>,
        timeout: Option<Duration>,
        events: &mut Vec<Event>,
    ) -> Result<(), SysError> {
        // A `PollFd` borrows its descriptor, so the array cannot outlive this
        // call; building it is O(n), as is the kernel's scan of it.
        let mut fds: Vec<PollFd<'fd>> = Vec::with_capacity(self.last_len);
        fds.extend(watched.map(|(fd, interest)| PollFd::new(fd, flags(interest))));
        self.last_len = fds.len();
        let ready = poll(&mut fds, timeout_millis(timeout)).map_err(failed("poll"))?;
        // The kernel wrote `revents` into each entry; only `ready` of them are non-zero.
        for pollfd in fds.iter().filter(|p| p.any() == Some(true)).take(ready as usize) {
            let revents = pollfd.revents().unwrap_or(PollFlags::POLLNVAL);
            events.push(Event {
                fd: pollfd.as_fd().as_raw_fd(),
                readable: revents.contains(PollFlags::POLLIN),
                writable: revents.contains(PollFlags::POLLOUT),
                closed: revents
                    .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL),
            });
        }
        Ok(())
    }
}

/// The `events` field for an interest. POLLHUP and POLLERR are always reported.
fn flags(interest: Interest) -> PollFlags {
    let mut flags = PollFlags::empty();
    flags.set(PollFlags::POLLIN, interest.readable);
    flags.set(PollFlags::POLLOUT, interest.writable);
    flags
}
