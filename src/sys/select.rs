//! The select(2) backend: master read and write `fd_set`s, copied for every call.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::sys::select::{FD_SETSIZE, FdSet, select};
use nix::sys::time::TimeVal;

use super::{Backend, Event, Interest, SysError, failed, kept};

/// The watched set, as Redis' `ae_select.c` keeps it: two master bitmaps that
/// `register`/`modify`/`unregister` patch. select(2) overwrites its arguments
/// with the ready bits, so each wait hands the kernel copies.
#[derive(Debug, Default)]
pub struct SelectBackend {
    /// Descriptors watched for reading.
    read: FdSet<'static>,
    /// Descriptors watched for writing.
    write: FdSet<'static>,
    /// The highest descriptor in either set (0 or -1 when there is none): select's nfds is this plus one.
    max_fd: RawFd,
}

impl SelectBackend {
    /// Sets `fd`'s bits to `interest`, and keeps `max_fd` up to date.
    fn set(&mut self, fd: BorrowedFd<'static>, interest: Interest) {
        for (set, wanted) in
            [(&mut self.read, interest.readable), (&mut self.write, interest.writable)]
        {
            if wanted {
                set.insert(fd);
            } else {
                set.remove(fd);
            }
        }
        let raw = fd.as_raw_fd();
        if interest.readable || interest.writable {
            self.max_fd = self.max_fd.max(raw);
        } else if raw == self.max_fd {
            let highest = |set: &FdSet<'_>| set.highest().map_or(-1, |fd| fd.as_raw_fd());
            self.max_fd = highest(&self.read).max(highest(&self.write));
        }
    }
}

/// Refuses a descriptor that an `fd_set` cannot hold (nix's `FdSet::insert`
/// would panic on it): the caller closes that connection and serves the rest.
fn check_fd(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    if usize::try_from(raw).is_ok_and(|n| n < FD_SETSIZE) {
        Ok(())
    } else {
        Err(SysError::FdTooLarge { fd: raw, limit: FD_SETSIZE })
    }
}

impl Backend for SelectBackend {
    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        check_fd(fd)?;
        self.set(kept(fd), interest);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        check_fd(fd)?;
        self.set(kept(fd), interest);
        Ok(())
    }

    fn unregister(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        check_fd(fd)?;
        self.set(kept(fd), Interest::NONE);
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> Result<(), SysError> {
        let (mut readable, mut writable) = (self.read, self.write);
        let mut timeval = timeout.map(to_timeval);
        // nfds is the highest descriptor plus one: the kernel scans bits 0..nfds.
        select(self.max_fd + 1, &mut readable, &mut writable, None, timeval.as_mut())
            .map_err(failed("select"))?;
        // The copies now hold only the ready descriptors. select has no
        // hang-up bit: EOF shows as readable, an error as readable and writable.
        let (readable, writable): (&FdSet<'_>, &FdSet<'_>) = (&readable, &writable);
        for fd in readable.fds(Some(self.max_fd)) {
            events.push(Event {
                fd: fd.as_raw_fd(),
                readable: true,
                writable: writable.contains(fd),
            });
        }
        for fd in writable.fds(Some(self.max_fd)).filter(|&fd| !readable.contains(fd)) {
            events.push(Event { fd: fd.as_raw_fd(), readable: false, writable: true });
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
