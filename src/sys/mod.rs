//! The syscall layer: one wait protocol over poll(2), select(2) and epoll(7), and the socket calls.
//!
//! Every backend implements [`Backend`](crate::sys::Backend) the same way, as Redis' `ae_*.c` files
//! implement `aeApi*`: `register`, `modify` and `unregister` keep the backend's
//! own copy of the watched set up to date, and `wait` hands that set to the
//! kernel. poll keeps one `struct pollfd` array across calls and patches it;
//! select keeps master read/write `fd_set`s and copies them per call (the
//! kernel overwrites its arguments); epoll keeps the set inside the kernel.
//! A caller learns the protocol once and it works with any backend.

pub mod epoll;
pub mod limits;
pub mod net;
pub mod poll;
pub mod select;
pub mod signal;

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;

/// What the caller wants to hear about a descriptor.
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
    /// Nothing: the descriptor stays registered but the caller asks for no
    /// readiness (poll and epoll still report a hang-up or an error).
    pub const NONE: Interest = Interest { readable: false, writable: false };
}

/// One ready descriptor, as a wait call reported it.
///
/// There is no separate hang-up kind: a hang-up or an error (POLLHUP,
/// POLLERR, POLLNVAL, and their epoll twins) is reported as readable *and*
/// writable, as mio, smol-rs/polling and Redis' ae do, so the caller reads
/// (to EOF, or to the error recv returns) before it closes. Closing a socket
/// with unread input would make the kernel send RST and drop replies still
/// queued for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// A read would not block (data, EOF, a hang-up or an error).
    pub readable: bool,
    /// A write would not block (room, or a hang-up or an error).
    pub writable: bool,
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

/// The one interface every backend implements.
///
/// The caller registers a descriptor before its first wait and unregisters it
/// before closing it: poll and select keep the raw number between calls.
pub trait Backend: std::fmt::Debug {
    /// Starts watching `fd` for `interest`.
    fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError>;
    /// Changes what a registered `fd` is watched for.
    fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError>;
    /// Stops watching `fd`; call before closing it.
    fn unregister(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError>;
    /// One wait syscall: blocks until a registered descriptor is ready or
    /// `timeout` passes (`None`: forever), and appends what is ready to `events`.
    fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> Result<(), SysError>;
}

/// The wait interface: one backend, chosen at start.
#[derive(Debug)]
pub struct Poller {
    /// Which backend this is.
    kind: BackendKind,
    /// The backend and its copy of the watched set.
    backend: Box<dyn Backend>,
}

impl Poller {
    /// Creates the backend of `kind` (for epoll, this is epoll_create1).
    pub fn new(kind: BackendKind) -> Result<Poller, SysError> {
        let backend: Box<dyn Backend> = match kind {
            BackendKind::Poll => Box::<poll::PollBackend>::default(),
            BackendKind::Select => Box::<select::SelectBackend>::default(),
            BackendKind::Epoll => Box::new(epoll::EpollBackend::new()?),
        };
        Ok(Poller { kind, backend })
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Starts watching `fd`. select refuses descriptors it cannot hold.
    pub fn register(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        self.backend.register(fd, interest)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<(), SysError> {
        self.backend.modify(fd, interest)
    }

    /// Stops watching `fd`; call before closing it.
    pub fn unregister(&mut self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        self.backend.unregister(fd)
    }

    /// Blocks until a registered descriptor is ready or `timeout` passes
    /// (`None`: forever), then fills `events` (cleared first).
    ///
    /// This is the one place EINTR is handled: an interrupted wait returns with
    /// no events and the caller simply waits again.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Vec<Event>,
    ) -> Result<(), SysError> {
        events.clear();
        match self.backend.wait(timeout, events) {
            Err(SysError::Call { errno: Errno::EINTR, .. }) => {
                events.clear();
                Ok(())
            }
            other => other,
        }
    }
}

/// A registered descriptor, borrowed for as long as the backend keeps it.
///
/// poll and select must keep a descriptor's number between calls, which a
/// `BorrowedFd<'_>` cannot express: the owner (the caller's table) outlives
/// no single call. This is the crate's one `unsafe`.
#[allow(unsafe_code)]
pub(crate) fn kept(fd: BorrowedFd<'_>) -> BorrowedFd<'static> {
    // SAFETY: `Backend`'s contract: a descriptor is unregistered before it
    // is closed (`FdMap::remove` unregisters, then hands the owner back to be
    // dropped), so the number stays open for as long as the backend holds it.
    unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }
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

/// A descriptor's number as an index into a table.
pub(crate) fn index(fd: RawFd) -> usize {
    usize::try_from(fd).expect("open descriptors are non-negative")
}
