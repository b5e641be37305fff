//! The syscall layer: the wait interface over poll(2), select(2) and epoll(7), and the socket calls.
//!
//! poll and select are stateless: the kernel is handed the whole set of
//! descriptors at every call, so they read it from the fd table each time and
//! their add/modify/remove do nothing. epoll keeps the set inside the kernel,
//! so it alone needs add/modify/remove, and its wait does not look at the table.

pub mod epoll;
pub mod limits;
pub mod net;
pub mod poll;
pub mod select;
pub mod signal;

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;

/// What the event loop wants to hear about a descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    /// Wake when a read would not block (data, a connection to accept, EOF).
    pub readable: bool,
    /// Wake when a write would not block (room in the send buffer).
    pub writable: bool,
}

impl Interest {
    /// Readable only: the resting state of every socket.
    pub const READ: Interest = Interest { readable: true, writable: false };
    /// Readable and writable: output is pending.
    pub const READ_WRITE: Interest = Interest { readable: true, writable: true };
    /// Writable only: reading is paused (backpressure) or over (peer sent FIN).
    pub const WRITE: Interest = Interest { readable: false, writable: true };
    /// Nothing: the descriptor is left out of the wait.
    pub const NONE: Interest = Interest { readable: false, writable: false };

    /// True when the descriptor is watched at all.
    pub fn any(self) -> bool {
        self.readable || self.writable
    }
}

/// One ready descriptor, as a wait call reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// A read would not block.
    pub readable: bool,
    /// A write would not block.
    pub writable: bool,
    /// Hang-up or error (POLLHUP, POLLERR, POLLNVAL and their epoll twins): close it.
    pub closed: bool,
}

/// The backends, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// poll(2): an array of `struct pollfd`, any descriptor number.
    Poll,
    /// select(2): two 1024-bit bitmaps; descriptors >= FD_SETSIZE are refused.
    Select,
    /// epoll(7): the interest set lives in the kernel; wait returns only ready descriptors.
    Epoll,
}

impl BackendKind {
    /// The name used by `--backend` and in the first log line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Poll => "poll",
            BackendKind::Select => "select",
            BackendKind::Epoll => "epoll",
        }
    }
}

/// Errors of the syscall layer.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// select(2) cannot watch a descriptor at or above FD_SETSIZE.
    #[error("descriptor {fd} is at or above FD_SETSIZE ({limit}); select(2) cannot watch it")]
    FdTooLarge {
        /// The refused descriptor.
        fd: RawFd,
        /// FD_SETSIZE.
        limit: usize,
    },
    /// A syscall failed.
    #[error("{call}: {errno}")]
    Call {
        /// The syscall's name.
        call: &'static str,
        /// What it returned.
        errno: Errno,
    },
}

/// Wraps a nix error with the name of the syscall that failed.
pub(crate) fn failed(call: &'static str) -> impl FnOnce(Errno) -> SysError {
    move |errno| SysError::Call { call, errno }
}

/// The wait interface: one backend, chosen at start.
#[derive(Debug)]
pub enum Poller {
    /// poll(2).
    Poll(poll::PollBackend),
    /// select(2).
    Select(select::SelectBackend),
    /// epoll(7).
    Epoll(epoll::EpollBackend),
}

impl Poller {
    /// Creates the backend of `kind` (for epoll, this is epoll_create1).
    pub fn new(kind: BackendKind) -> Result<Poller, SysError> {
        Ok(match kind {
            BackendKind::Poll => Poller::Poll(poll::PollBackend::default()),
            BackendKind::Select => Poller::Select(select::SelectBackend::default()),
            BackendKind::Epoll => Poller::Epoll(epoll::EpollBackend::new()?),
        })
    }

    /// Starts watching `fd`. select refuses descriptors it cannot hold.
    pub fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        match self {
            Poller::Poll(_) => Ok(()),
            Poller::Select(_) => select::check_fd(fd),
            Poller::Epoll(b) => b.add(fd, interest),
        }
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        match self {
            Poller::Poll(_) | Poller::Select(_) => Ok(()),
            Poller::Epoll(b) => b.modify(fd, interest),
        }
    }

    /// Stops watching `fd`; call before closing it.
    pub fn remove(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        match self {
            Poller::Poll(_) | Poller::Select(_) => Ok(()),
            Poller::Epoll(b) => b.remove(fd),
        }
    }

    /// Blocks until a watched descriptor is ready or `timeout` passes (`None`:
    /// forever), then fills `events`. `watched` lists every descriptor with its
    /// interest; poll and select hand it to the kernel, epoll ignores it.
    ///
    /// This is the one place EINTR is handled: an interrupted wait returns with
    /// no events and the loop simply waits again.
    pub fn wait<'fd>(
        &mut self,
        watched: impl Iterator<Item = (BorrowedFd<'fd>, Interest)>,
        timeout: Option<Duration>,
        events: &mut Vec<Event>,
    ) -> Result<(), SysError> {
        events.clear();
        let result = match self {
            Poller::Poll(b) => b.wait(watched, timeout, events),
            Poller::Select(b) => b.wait(watched, timeout, events),
            Poller::Epoll(b) => b.wait(timeout, events),
        };
        match result {
            Err(SysError::Call { errno: Errno::EINTR, .. }) => {
                events.clear();
                Ok(())
            }
            other => other,
        }
    }
}

/// The timeout of poll and epoll_wait: milliseconds, -1 for none, rounded up
/// so that a deadline is never woken before it is due.
pub(crate) fn timeout_millis(timeout: Option<Duration>) -> nix::poll::PollTimeout {
    use nix::poll::PollTimeout;
    match timeout {
        None => PollTimeout::NONE,
        Some(t) => {
            PollTimeout::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
        }
    }
}
