//! The server's fd table: what each descriptor is, with its state, in one [`FdMap`](crate::fd_map::FdMap).
//!
//! It is the three dicts of the course's multiplexing server (`sockets`,
//! `received`, `to_send`, all keyed by fd) made one: an entry holds the socket,
//! its service state (with any partial input), its output queue, and the map
//! holds its interest.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::connection::Connection;
use crate::fd_map::FdMap;
use crate::service::{DatagramService, StreamKind};
use crate::sys::Interest;
use crate::sys::signal::Signals;

/// What a descriptor is, and the state that goes with it.
#[derive(Debug)]
pub enum Entry {
    /// A listening TCP socket of a service.
    Listener {
        /// The listening socket.
        fd: OwnedFd,
        /// The service its connections get.
        service: StreamKind,
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

/// Connections still owed bytes, and how many bytes, over the whole table.
pub fn owed(table: &Table) -> (usize, usize) {
    table
        .iter()
        .filter_map(|(_, entry)| match entry {
            Entry::Connection(conn) if conn.owed() > 0 => Some(conn.owed()),
            _ => None,
        })
        .fold((0, 0), |(count, bytes), owed| (count + 1, bytes + owed))
}

/// The table as SIGUSR1 prints it: a header, then one aligned line per
/// descriptor: fd, kind, service, peer, phase, bytes in and out, unsent, what
/// it is waited for, seconds idle.
pub fn render(table: &Table, now: Instant) -> String {
    let header = [
        "fd",
        "kind",
        "service",
        "peer",
        "phase",
        "bytes-in",
        "bytes-out",
        "unsent",
        "wait",
        "idle-s",
    ];
    let mut lines = vec![line(header.map(String::from))];
    for (fd, entry) in table.iter() {
        let wait = match table.interest(fd).unwrap_or_default() {
            Interest { readable: true, writable: true } => "IN|OUT",
            Interest { readable: true, writable: false } => "IN",
            Interest { readable: false, writable: true } => "OUT",
            Interest { readable: false, writable: false } => "-",
        };
        let dash = || "-".to_string();
        let [fd, wait] = [fd.to_string(), wait.to_string()];
        let row = match entry {
            Entry::Connection(conn) => {
                let r = conn.row(now);
                [
                    fd,
                    "connection".into(),
                    r.service.into(),
                    r.peer.to_string(),
                    r.phase.into(),
                    r.bytes_in.to_string(),
                    r.bytes_out.to_string(),
                    r.unsent.to_string(),
                    wait,
                    format!("{:.1}", r.idle.as_secs_f64()),
                ]
            }
            other => {
                let (kind, service) = match other {
                    Entry::Listener { service, .. } => ("listener", service.name()),
                    Entry::Datagram { service, .. } => ("udp", service.name()),
                    _ => ("signalfd", "-"),
                };
                [
                    fd,
                    kind.into(),
                    service.into(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    wait,
                    dash(),
                ]
            }
        };
        lines.push(line(row));
    }
    lines.join("\n")
}

/// One line of the table, in aligned columns.
fn line(cells: [String; 10]) -> String {
    let [fd, kind, service, peer, phase, bytes_in, bytes_out, unsent, wait, idle] = cells;
    format!(
        "{fd:>5} {kind:<10} {service:<9} {peer:<22} {phase:<10} {bytes_in:>10} {bytes_out:>10} {unsent:>9} {wait:<6} {idle:>7}"
    )
}
