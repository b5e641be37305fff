//! The fd table: one entry per open descriptor, in a Vec indexed by the descriptor's number.
//!
//! It is the three dicts of the course's multiplexing server (`sockets`,
//! `received`, `to_send`, all keyed by fd) made one: an entry holds the socket,
//! its service state (with any partial input), its output queue and its interest.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::output::Output;
use crate::service::{DatagramService, ServiceKind, StreamService};
use crate::sys::Interest;
use crate::sys::signal::Signals;

/// What a descriptor is, and the state that goes with it.
#[derive(Debug)]
pub enum Socket {
    /// A listening TCP socket of a service.
    Listener {
        /// The listening socket.
        fd: OwnedFd,
        /// The service its connections get.
        service: ServiceKind,
    },
    /// An accepted TCP connection.
    Stream {
        /// The connected socket.
        fd: OwnedFd,
        /// Its protocol state and output.
        conn: Box<Connection>,
    },
    /// A bound UDP socket.
    Datagram {
        /// The socket.
        fd: OwnedFd,
        /// How it answers.
        service: DatagramService,
    },
    /// The signalfd through which SIGINT and SIGTERM arrive.
    Signals(Signals),
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading requests and queueing replies.
    Serving,
    /// No more requests are served (a protocol violation, or shutdown), but
    /// input is still read and thrown away: closing a socket with unread input
    /// makes the kernel send RST and drop replies not yet delivered. Once the
    /// output drains, the write side is shut (FIN) and the peer's FIN awaited.
    Discarding,
    /// The peer sent FIN: send what is owed, then close.
    Flushing,
}

/// The state of one TCP connection.
#[derive(Debug)]
pub struct Connection {
    /// The service's state machine, holding any partial input (a split frame or character).
    pub service: StreamService,
    /// Bytes owed to the peer.
    pub output: Output,
    /// Where the connection is in its life.
    pub phase: Phase,
    /// Reading is paused because the output passed `--max-pending` (backpressure).
    pub paused: bool,
    /// shutdown(SHUT_WR) has been called.
    pub write_shut: bool,
    /// When bytes last moved either way, for `--idle-timeout`.
    pub last_active: Instant,
}

impl Connection {
    /// A new connection in the `Serving` phase, accepted at `now`.
    pub fn new(service: StreamService, now: Instant) -> Self {
        Connection {
            service,
            output: Output::default(),
            phase: Phase::Serving,
            paused: false,
            write_shut: false,
            last_active: now,
        }
    }

    /// What to wait for, given the output queue and the backpressure bound.
    /// Reading pauses when more than `max_pending` bytes are owed and resumes
    /// below half of it, so a peer that does not read costs bounded memory.
    pub fn interest(&mut self, max_pending: usize) -> Interest {
        let pending = self.output.pending();
        if pending > max_pending {
            self.paused = true;
        } else if pending <= max_pending / 2 {
            self.paused = false;
        }
        let readable = match self.phase {
            Phase::Serving => !self.paused,
            Phase::Discarding => true,
            Phase::Flushing => false,
        };
        Interest { readable, writable: !self.output.is_empty() }
    }
}

/// One open descriptor.
#[derive(Debug)]
pub struct Entry {
    /// The socket and its state.
    pub socket: Socket,
    /// What the backend currently watches it for.
    pub interest: Interest,
}

impl Entry {
    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Listener { fd, .. }
            | Socket::Stream { fd, .. }
            | Socket::Datagram { fd, .. } => fd.as_fd(),
            Socket::Signals(signals) => signals.fd(),
        }
    }
}

/// fd -> entry. Descriptors are small integers the kernel hands out lowest
/// first, so a Vec indexed by fd stays dense.
#[derive(Debug, Default)]
pub struct Table {
    /// `entries[fd]` is the entry of descriptor `fd`, if it is open.
    entries: Vec<Option<Entry>>,
    /// How many entries are TCP connections.
    connections: usize,
}

impl Table {
    /// Adds an entry under its own descriptor number and returns that number.
    pub fn insert(&mut self, entry: Entry) -> RawFd {
        let fd = entry.fd().as_raw_fd();
        let index = usize::try_from(fd).expect("open descriptors are non-negative");
        if index >= self.entries.len() {
            self.entries.resize_with(index + 1, || None);
        }
        if matches!(entry.socket, Socket::Stream { .. }) {
            self.connections += 1;
        }
        let old = self.entries[index].replace(entry);
        debug_assert!(old.is_none(), "descriptor {fd} was already in the table");
        fd
    }

    /// The entry of `fd`, if open.
    pub fn get(&self, fd: RawFd) -> Option<&Entry> {
        self.entries.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    /// The entry of `fd`, if open, to change.
    pub fn get_mut(&mut self, fd: RawFd) -> Option<&mut Entry> {
        self.entries.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    /// Takes the entry of `fd` out; dropping it closes the descriptor.
    pub fn remove(&mut self, fd: RawFd) -> Option<Entry> {
        let entry = self.entries.get_mut(usize::try_from(fd).ok()?)?.take()?;
        if matches!(entry.socket, Socket::Stream { .. }) {
            self.connections -= 1;
        }
        Some(entry)
    }

    /// How many TCP connections are open.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Every open descriptor.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.entries.iter().flatten().map(|e| e.fd().as_raw_fd())
    }

    /// Every descriptor with something to wait for: what poll and select hand the kernel.
    pub fn watched(&self) -> impl Iterator<Item = (BorrowedFd<'_>, Interest)> {
        self.entries.iter().flatten().filter(|e| e.interest.any()).map(|e| (e.fd(), e.interest))
    }
}
