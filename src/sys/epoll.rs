//! The epoll(7) backend: the interest set lives in the kernel; a wait returns only ready descriptors.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::{Backend, Event, Interest, SysError, failed, timeout_millis};

/// Ready events one epoll_wait can return at first; the buffer doubles when a wait fills it.
const FIRST_CAPACITY: usize = 256;
/// The buffer never grows past this: more ready descriptors wait for the next call.
const MAX_CAPACITY: usize = 16_384;

/// An epoll instance and the buffer its waits fill.
#[derive(Debug)]
pub struct EpollBackend {
    /// The epoll descriptor (from epoll_create1).
    epoll: Epoll,
    /// Where epoll_wait writes `struct epoll_event`s (12 bytes each on x86-64).
    buffer: Vec<EpollEvent>,
}

impl EpollBackend {
    /// epoll_create1(EPOLL_CLOEXEC).
    pub fn new() -> Result<Self, SysError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(failed("epoll_create1"))?;
        Ok(EpollBackend { epoll, buffer: vec![EpollEvent::empty(); FIRST_CAPACITY] })
    }
}

impl Backend for EpollBackend {
    /// epoll_ctl(EPOLL_CTL_ADD); the descriptor number rides in the event's data.
    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        self.epoll.add(fd, event(fd, interest)).map_err(failed("epoll_ctl"))
    }

    /// epoll_ctl(EPOLL_CTL_MOD).
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        self.epoll.modify(fd, &mut event(fd, interest)).map_err(failed("epoll_ctl"))
    }

    /// epoll_ctl(EPOLL_CTL_DEL).
    fn unregister(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        self.epoll.delete(fd).map_err(failed("epoll_ctl"))
    }

    /// One epoll_wait call.
    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> Result<(), SysError> {
        let ready = self
            .epoll
            .wait(&mut self.buffer, timeout_millis(timeout))
            .map_err(failed("epoll_wait"))?;
        for e in &self.buffer[..ready] {
            let flags = e.events();
            let broken = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
            events.push(Event {
                fd: e.data() as i32,
                readable: broken || flags.contains(EpollFlags::EPOLLIN),
                writable: broken || flags.contains(EpollFlags::EPOLLOUT),
            });
        }
        if ready == self.buffer.len() && ready < MAX_CAPACITY {
            self.buffer.resize(ready * 2, EpollEvent::empty());
        }
        Ok(())
    }
}

/// A `struct epoll_event` for an interest, level-triggered. EPOLLHUP and
/// EPOLLERR are always reported.
fn event(fd: BorrowedFd<'_>, interest: Interest) -> EpollEvent {
    let mut flags = EpollFlags::empty();
    flags.set(EpollFlags::EPOLLIN, interest.readable);
    flags.set(EpollFlags::EPOLLOUT, interest.writable);
    EpollEvent::new(flags, fd.as_raw_fd() as u64)
}
