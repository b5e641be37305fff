//! fd -> value, each descriptor's interest cached and kept in step with the [`Poller`](crate::sys::Poller).
//!
//! The one fd-indexed table: the server's, the load client's and the soak
//! test's. It owns the poller so that nothing can be registered without being
//! in the table, or dropped (closed) while still registered: `remove`
//! unregisters first, then hands the value back to be dropped.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use crate::sys::{BackendKind, Event, Interest, Poller, SysError};

/// One occupied slot.
#[derive(Debug)]
struct Slot<T> {
    /// The value, which owns the descriptor.
    value: T,
    /// What the poller watches the descriptor for.
    interest: Interest,
}

/// A table indexed by descriptor number. The kernel hands out the lowest free
/// number first, so a Vec stays dense.
#[derive(Debug)]
pub struct FdMap<T> {
    /// The wait syscall, told about every change of interest.
    poller: Poller,
    /// `slots[fd]`: descriptor `fd`'s value, if it is in the table.
    slots: Vec<Option<Slot<T>>>,
    /// How many slots are occupied.
    len: usize,
}

impl<T: AsFd> FdMap<T> {
    /// An empty table over a new `kind` backend.
    pub fn new(kind: BackendKind) -> Result<Self, SysError> {
        Ok(FdMap { poller: Poller::new(kind)?, slots: Vec::new(), len: 0 })
    }

    /// Which backend waits.
    pub fn backend(&self) -> BackendKind {
        self.poller.kind()
    }

    /// Registers `value`'s descriptor for `interest` and stores it under that
    /// number. On failure the value is handed back (dropping it closes it).
    pub fn insert(&mut self, value: T, interest: Interest) -> Result<RawFd, (T, SysError)> {
        let fd = value.as_fd().as_raw_fd();
        if let Err(e) = self.poller.register(value.as_fd(), interest) {
            return Err((value, e));
        }
        let at = crate::sys::index(fd);
        if at >= self.slots.len() {
            self.slots.resize_with(at + 1, || None);
        }
        let old = self.slots[at].replace(Slot { value, interest });
        debug_assert!(old.is_none(), "descriptor {fd} was already in the table");
        self.len += 1;
        Ok(fd)
    }

    /// The value of `fd`, if it is in the table.
    pub fn get(&self, fd: RawFd) -> Option<&T> {
        self.slot(fd).map(|slot| &slot.value)
    }

    /// The value of `fd`, if it is in the table, to change.
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut T> {
        let at = usize::try_from(fd).ok()?;
        self.slots.get_mut(at)?.as_mut().map(|slot| &mut slot.value)
    }

    /// What `fd` is watched for, if it is in the table.
    pub fn interest(&self, fd: RawFd) -> Option<Interest> {
        self.slot(fd).map(|slot| slot.interest)
    }

    /// Watches `fd` for `interest`, telling the poller only if it changed.
    pub fn set_interest(&mut self, fd: RawFd, interest: Interest) -> Result<(), SysError> {
        let Some(slot) = usize::try_from(fd).ok().and_then(|at| self.slots.get_mut(at)?.as_mut())
        else {
            return Ok(());
        };
        if slot.interest != interest {
            self.poller.modify(slot.value.as_fd(), interest)?;
            slot.interest = interest;
        }
        Ok(())
    }

    /// Unregisters `fd` and takes its value out; dropping the value closes it.
    pub fn remove(&mut self, fd: RawFd) -> Option<T> {
        let slot = self.slots.get_mut(usize::try_from(fd).ok()?)?.take()?;
        // It is about to be closed, which ends any epoll registration anyway.
        let _ = self.poller.unregister(slot.value.as_fd());
        self.len -= 1;
        Some(slot.value)
    }

    /// One wait call over every registered descriptor; see [`Poller::wait`].
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Vec<Event>,
    ) -> Result<(), SysError> {
        self.poller.wait(timeout, events)
    }

    /// How many descriptors are in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every descriptor in the table, lowest first.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.iter().map(|(fd, _)| fd)
    }

    /// Every descriptor with its value, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (RawFd, &T)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(fd, slot)| Some((fd as RawFd, &slot.as_ref()?.value)))
    }

    /// The slot of `fd`.
    fn slot(&self, fd: RawFd) -> Option<&Slot<T>> {
        self.slots.get(usize::try_from(fd).ok()?)?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Every backend, with a socket pair registered: the protocol is the same for each.
    #[test]
    fn one_protocol_for_every_backend() {
        for kind in [BackendKind::Poll, BackendKind::Select, BackendKind::Epoll] {
            let mut map = FdMap::new(kind).unwrap();
            let (a, mut b) = UnixStream::pair().unwrap();
            let (c, _d) = UnixStream::pair().unwrap();
            let fd_a = map.insert(a, Interest::READ).unwrap();
            let fd_c = map.insert(c, Interest::READ).unwrap();
            let mut events = Vec::new();
            map.wait(Some(Duration::ZERO), &mut events).unwrap();
            assert!(events.is_empty(), "{kind:?}: nothing is ready yet: {events:?}");

            b.write_all(b"x").unwrap();
            map.wait(Some(Duration::from_secs(5)), &mut events).unwrap();
            assert_eq!(events, [Event { fd: fd_a, readable: true, writable: false }], "{kind:?}");

            map.set_interest(fd_c, Interest::READ_WRITE).unwrap();
            map.wait(Some(Duration::from_secs(5)), &mut events).unwrap();
            events.sort_by_key(|e| e.fd);
            assert_eq!(events.len(), 2, "{kind:?}: {events:?}");
            assert!(events.iter().any(|e| e.fd == fd_c && e.writable && !e.readable));

            // Removing the first moves the last one in poll's array: it must still be watched.
            drop(map.remove(fd_a));
            map.wait(Some(Duration::from_secs(5)), &mut events).unwrap();
            assert_eq!(events, [Event { fd: fd_c, readable: false, writable: true }], "{kind:?}");
            assert_eq!(map.len(), 1);
            assert_eq!(map.fds().collect::<Vec<_>>(), [fd_c]);
        }
    }

    /// A hang-up is reported as readable and writable, by every backend.
    #[test]
    fn a_hang_up_is_readable() {
        for kind in [BackendKind::Poll, BackendKind::Select, BackendKind::Epoll] {
            let mut map = FdMap::new(kind).unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            let fd = map.insert(a, Interest::READ).unwrap();
            drop(b);
            let mut events = Vec::new();
            map.wait(Some(Duration::from_secs(5)), &mut events).unwrap();
            assert_eq!(events.len(), 1, "{kind:?}");
            assert!(events[0].fd == fd && events[0].readable, "{kind:?}: {events:?}");
        }
    }
}
