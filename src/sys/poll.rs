//! The poll(2) backend: one array of `struct pollfd`, kept across calls and patched.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, poll};

use super::{Backend, Event, Interest, SysError, failed, index, kept, timeout_millis};

/// The array the kernel is handed at every wait, as libuv's `posix-poll.c` keeps it:
/// registering appends, modifying patches `events` in place, unregistering
/// moves the last entry into the hole.
#[derive(Debug, Default)]
pub struct PollBackend {
    /// The `struct pollfd`s, in no particular order.
    fds: Vec<PollFd<'static>>,
    /// `slot[fd]`: where descriptor `fd` sits in `fds`.
    slot: Vec<usize>,
}

impl PollBackend {
    /// Where `fd` sits in the array.
    fn position(&self, fd: RawFd) -> Option<usize> {
        self.slot.get(index(fd)).copied().filter(|&at| at < self.fds.len())
    }
}

impl Backend for PollBackend {
    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        let at = index(fd.as_raw_fd());
        if at >= self.slot.len() {
            self.slot.resize(at + 1, usize::MAX);
        }
        self.slot[at] = self.fds.len();
        self.fds.push(PollFd::new(kept(fd), flags(interest)));
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        let at = self
            .position(fd.as_raw_fd())
            .ok_or_else(|| failed("poll")(nix::errno::Errno::ENOENT))?;
        self.fds[at].set_events(flags(interest));
        Ok(())
    }

    fn unregister(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        let raw = fd.as_raw_fd();
        let at = self.position(raw).ok_or_else(|| failed("poll")(nix::errno::Errno::ENOENT))?;
        self.fds.swap_remove(at);
        self.slot[index(raw)] = usize::MAX;
        if let Some(moved) = self.fds.get(at) {
            self.slot[index(moved.as_fd().as_raw_fd())] = at;
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> Result<(), SysError> {
        let ready = poll(&mut self.fds, timeout_millis(timeout)).map_err(failed("poll"))?;
        // The kernel wrote `revents` into each entry; `ready` of them are non-zero.
        for pollfd in self.fds.iter().filter(|p| p.any() != Some(false)).take(ready as usize) {
            let revents = pollfd.revents().unwrap_or(PollFlags::POLLNVAL);
            let broken =
                revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL);
            events.push(Event {
                fd: pollfd.as_fd().as_raw_fd(),
                readable: broken || revents.contains(PollFlags::POLLIN),
                writable: broken || revents.contains(PollFlags::POLLOUT),
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
