//! The select(2) backend: two 1024-bit bitmaps, rebuilt at every wait because the kernel overwrites them.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::select::{FD_SETSIZE, FdSet, select};
use nix::sys::time::TimeVal;

use super::{Event, Interest, SysError, failed};

/// select(2) keeps nothing between calls: `fd_set`s are in-out arguments.
#[derive(Debug, Default)]
pub struct SelectBackend {
    /// How many descriptors the last wait watched, to size the next list at once.
    last_len: usize,
}

/// Refuses a descriptor that an `fd_set` cannot hold (nix's `FdSet::insert`
/// would panic on it): the caller closes that connection and serves the rest.
pub fn check_fd(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    if usize::try_from(raw).is_ok_and(|n| n < FD_SETSIZE) {
        Ok(())
    } else {
        Err(SysError::FdTooLarge { fd: raw, limit: FD_SETSIZE })
    }
}

impl SelectBackend {
    /// One select(2) call over every watched descriptor.
    pub fn wait<'fd>(
        &mut self,
        watched: impl Iterator<Item = (BorrowedFd<'fd>, Interest)>,
        timeout: Option<Duration>,
        events: &mut Vec<Event>,
    ) -> Result<(), SysError> {
        let mut list: Vec<(BorrowedFd<'fd>, Interest)> = Vec::with_capacity(self.last_len);
        // Descriptors past FD_SETSIZE were refused by `check_fd` when added.
        list.extend(watched.filter(|(fd, _)| check_fd(*fd).is_ok()));
        self.last_len = list.len();
        let mut readable = FdSet::new();
        let mut writable = FdSet::new();
        for (fd, interest) in &list {
            if interest.readable {
                readable.insert(*fd);
            }
            if interest.writable {
                writable.insert(*fd);
            }
        }
        // nfds is the highest descriptor plus one: the kernel scans bits 0..nfds.
        let nfds = list.iter().map(|(fd, _)| fd.as_raw_fd()).max().unwrap_or(-1) + 1;
        let mut timeval = timeout.map(to_timeval);
        select(nfds, &mut readable, &mut writable, None, timeval.as_mut())
            .map_err(failed("select"))?;
        // The sets now hold only the ready descriptors. select has no separate
        // hang-up bit: EOF and errors show as readable and are seen by recv.
        for (fd, _) in &list {
            let (r, w) = (readable.contains(*fd), writable.contains(*fd));
            if r || w {
                events.push(Event { fd: fd.as_raw_fd(), readable: r, writable: w, closed: false });
            }
        }
        Ok(())
    }
}

/// A `struct timeval`, rounded up to the microsecond so a deadline is never woken early.
fn to_timeval(timeout: Duration) -> TimeVal {
    let micros = timeout.as_nanos().div_ceil(1_000);
    let secs = i64::try_from(micros / 1_000_000).unwrap_or(i64::MAX / 2);
    TimeVal::new(secs, (micros % 1_000_000) as _)
}
