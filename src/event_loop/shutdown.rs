//! The server's side of signals: SIGUSR1 prints the fd table; a first SIGINT
//! or SIGTERM starts the drain (no new work, each connection finishes what it
//! is owed, within `--drain-timeout`); a second one ends the loop at once.

use std::os::fd::RawFd;
use std::time::Instant;

use log::{info, warn};
use nix::sys::signal::Signal;

use super::{LOG, Server, Timer};
use crate::table::{self, Entry};

impl Server {
    /// Reads every pending signal from the signalfd `fd`: SIGUSR1 prints the
    /// table, a first stop signal starts draining, a second forces exit.
    pub(super) fn on_signals(&mut self, fd: RawFd) {
        loop {
            let Some(Entry::Signals(signals)) = self.table.get(fd) else { return };
            match signals.read() {
                // SIGUSR1: show the table, and go on
                Ok(Some(Signal::SIGUSR1)) => {
                    let (owed, unsent) = table::owed(&self.table);
                    let connections = self.life.connections;
                    // One write(2), not one per piece, and no panic if stderr is gone.
                    let text = format!(
                        "fd table ({} backend): {} descriptors\n{}\nsummary: {connections} connections, {owed} owed {unsent} bytes; {}\n",
                        self.table.backend().name(),
                        self.table.len(),
                        table::render(&self.table, Instant::now()),
                        self.cx.stats
                    );
                    let _ =
                        std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
                }
                Ok(Some(signal)) if self.life.draining => {
                    warn!(
                        target: LOG,
                        "{signal} again: exiting now, cutting {} connections",
                        self.life.connections
                    );
                    self.life.forced = Some(signal);
                    return;
                }
                Ok(Some(signal)) => self.begin_drain(signal),
                Ok(None) => return,
                Err(e) => {
                    warn!(target: LOG, "{e}");
                    return;
                }
            }
        }
    }

    /// Stops accepting and receiving, and lets each connection finish what it is owed.
    fn begin_drain(&mut self, signal: Signal) {
        let timeout = self.cx.config.drain_timeout;
        info!(
            target: LOG,
            "{signal}: no longer accepting; finishing what {} connections are owed (at most {timeout:?})",
            self.life.connections
        );
        self.life.draining = true;
        self.timers.schedule(Instant::now() + timeout, Timer::DrainTimeout);
        self.listeners.clear();
        let fds: Vec<RawFd> = self.table.fds().collect();
        for fd in fds {
            match self.table.get_mut(fd) {
                Some(Entry::Listener { .. } | Entry::Datagram { .. }) => self.close(fd, "shutdown"),
                Some(Entry::Connection(conn)) => {
                    let next = conn.begin_drain(&mut self.cx);
                    self.apply(fd, next);
                }
                Some(Entry::Signals(_)) | None => {}
            }
        }
    }

    /// At the drain deadline, says which connections are cut: those still owed
    /// bytes (a warning) and those only waiting for the peer's FIN (info).
    pub(super) fn log_cut_connections(&self) {
        let (owed, unsent) = table::owed(&self.table);
        let waiting = self.life.connections - owed;
        if owed > 0 {
            warn!(
                target: LOG,
                "drain timeout: cutting {owed} connections still owed {unsent} bytes"
            );
        }
        if waiting > 0 {
            info!(
                target: LOG,
                "drain timeout: closing {waiting} connections that were sent everything but never closed"
            );
        }
    }
}
