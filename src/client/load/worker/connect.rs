//! Opening a thread's connections: the active ones before the run, the idle
//! ones after them, and in churn a fresh one for each message.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::time::Instant;

use super::{Slot, Worker};
use crate::client::load::conn::Conn;
use crate::client::{connect_nonblocking, connect_started};
use crate::sys::{Interest, SysError};

/// Churn over IPv4 loopback: source addresses 127.0.0.1 to 127.0.0.N in turn,
/// so that the closed connections' TIME_WAIT entries (about 28,000 ports per
/// source address, reusable after a second) never run the client out of ports.
const CHURN_SOURCES: u8 = 16;

impl Worker<'_> {
    /// Opens the active connections `ids`.
    pub(super) fn connect(&mut self, ids: &[usize]) {
        let options = self.shared.options;
        let addr = self.shared.addr;
        for &id in ids {
            let opened = connect_nonblocking(addr, options.timeout).map_err(|e| e.to_string());
            let added = opened.and_then(|stream| {
                let conn = Conn::new(id, stream, false, options.size);
                self.insert(Slot::Active(Box::new(conn))).map_err(|e| e.to_string())
            });
            if let Err(e) = added {
                self.shared.error(format!("connection {id}: connect {addr}: {e}"));
            }
        }
    }

    /// Opens `idle` silent connections. They come after the active ones so
    /// that, under select(2), the active ones get the server's low
    /// descriptors, below FD_SETSIZE.
    pub(super) fn connect_idle(&mut self, idle: usize) {
        let addr = self.shared.addr;
        for n in 0..idle {
            let opened = connect_nonblocking(addr, self.shared.options.timeout);
            let added = opened
                .map_err(|e| e.to_string())
                .and_then(|stream| self.insert(Slot::Idle(stream)).map_err(|e| e.to_string()));
            if let Err(e) = added {
                self.shared.error(format!("idle connection {n}: connect {addr}: {e}"));
            }
        }
    }

    /// Churn: starts a connection for connection number `id`'s message number
    /// `done`, whose latency starts now, with the connect.
    pub(super) fn open_churn(&mut self, id: usize, done: u64) {
        let options = self.shared.options;
        let addr = self.shared.addr;
        let source = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let last = 1 + (self.opened % u64::from(CHURN_SOURCES)) as u8;
                Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            }
            _ => None,
        };
        self.opened += 1;
        let started = Instant::now();
        let added = connect_started(addr, source).map_err(|e| e.to_string()).and_then(|stream| {
            let mut conn = Conn::new(id, stream, true, options.size);
            (conn.queued, conn.done) = (done, done);
            self.insert(Slot::Active(Box::new(conn))).map_err(|e| e.to_string())
        });
        match added {
            Ok(fd) => {
                self.queue(fd, started);
                self.rewatch(fd);
            }
            Err(e) => self.shared.error(format!("connection {id}: connect {addr}: {e}")),
        }
    }

    /// Registers a new connection, watched for input.
    pub(super) fn insert(&mut self, slot: Slot) -> Result<RawFd, SysError> {
        let id = match &slot {
            Slot::Active(conn) => Some(conn.id),
            Slot::Idle(_) | Slot::Timer(_) => None,
        };
        let fd = self.slots.insert(slot, Interest::READ).map_err(|(_, e)| e)?;
        if let Some(id) = id {
            self.active += 1;
            self.by_id[id] = Some(fd);
        }
        Ok(fd)
    }
}
