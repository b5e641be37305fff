//! The server's fd table: what each descriptor is, with its state, in one [`FdMap`](crate::fd_map::FdMap).
//!
//! It is the three dicts of the course's multiplexing server (`sockets`,
//! `received`, `to_send`, all keyed by fd) made one: an entry holds the socket,
//! its service state (with any partial input), its output queue, and the map
//! holds its interest.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::connection::Connection;
use crate::fd_map::FdMap;
use crate::service::{DatagramService, ServiceKind};
use crate::sys::signal::Signals;

/// What a descriptor is, and the state that goes with it.
#[derive(Debug)]
pub enum Entry {
    /// A listening TCP socket of a service.
    Listener {
        /// The listening socket.
        fd: OwnedFd,
        /// The service its connections get.
        service: ServiceKind,
    },
    /// An accepted TCP connection, its socket inside.
    Connection(Box<Connection>),
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

impl AsFd for Entry {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Entry::Listener { fd, .. } | Entry::Datagram { fd, .. } => fd.as_fd(),
            Entry::Connection(conn) => conn.as_fd(),
            Entry::Signals(signals) => signals.fd(),
        }
    }
}

/// fd -> entry, and the poller that watches them.
pub type Table = FdMap<Entry>;
