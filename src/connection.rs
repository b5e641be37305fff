//! One TCP connection: read -> service -> write, its phases and its deadlines.
//!
//! A turn reads once (level-triggered: if more is waiting, the next wait says
//! so), hands the bytes to the service, writes the replies at once, and says
//! what to watch next. Only the recv, send and shutdown calls of `sys::net` are
//! made here; the event loop owns the wait and the table.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use log::{debug, info};
use nix::errno::Errno;

use crate::config::Config;
use crate::output::Output;
use crate::service::{StreamKind, StreamService, Violation};
use crate::stats::Stats;
use crate::sys::{Event, Interest, net};
use crate::timers::TimerKey;

/// Slices gathered into one vectored send.
const MAX_IOV: usize = 64;

/// What a connection's turn needs from the server, lent for the turn.
#[derive(Debug)]
pub struct Context {
    /// The limits.
    pub config: Config,
    /// The one read buffer: every read is consumed by its service before the next.
    pub buf: Vec<u8>,
    /// Syscall and traffic counts.
    pub stats: Stats,
    /// Heap bytes all connections hold together (input and output), for `--max-buffered`.
    pub buffered: usize,
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

/// One connection as the SIGUSR1 table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The service's name.
    pub service: &'static str,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Its phase: serving, paused (backpressure), discarding or flushing.
    pub phase: &'static str,
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
    /// Bytes owed and not yet handed to the kernel.
    pub unsent: usize,
    /// Time since bytes last moved.
    pub idle: std::time::Duration,
}

/// What to do with a connection after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep it, watched for this.
    Watch(Interest),
    /// Close it, for this reason (logged at debug level).
    Close(&'static str),
}

/// The state of one TCP connection.
#[derive(Debug)]
pub struct Connection {
    /// The connected socket.
    fd: OwnedFd,
    /// Unique over the server's life, unlike the descriptor's number: a due
    /// timer names the connection it was set for.
    pub id: u64,
    /// The peer's address, as accept4 gave it.
    peer: SocketAddr,
    /// The service it was accepted for.
    kind: StreamKind,
    /// The service's state machine, holding any partial input (a split frame or character).
    service: StreamService,
    /// Bytes owed to the peer.
    output: Output,
    /// Where the connection is in its life.
    phase: Phase,
    /// Reading is paused because the output passed `--max-pending` (backpressure).
    paused: bool,
    /// shutdown(SHUT_WR) has been called.
    write_shut: bool,
    /// When bytes last moved either way, for `--idle-timeout`.
    last_active: Instant,
    /// When it began discarding after a violation, for `--linger-timeout`.
    discarding_since: Option<Instant>,
    /// Bytes received from the peer.
    bytes_in: u64,
    /// Bytes sent to the peer.
    bytes_out: u64,
    /// The timer this connection has scheduled, if any.
    pub timer: Option<TimerKey>,
    /// Its share of `Context::buffered`, as last counted.
    accounted: usize,
    /// Replies held back by `--reply-delay`, each with when it is due, oldest first.
    delayed: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes in `delayed`.
    delayed_bytes: usize,
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Connection {
    /// A new connection in the `Serving` phase, accepted at `now`.
    pub fn new(
        fd: OwnedFd,
        id: u64,
        peer: SocketAddr,
        kind: StreamKind,
        service: StreamService,
        now: Instant,
    ) -> Self {
        Connection {
            fd,
            id,
            peer,
            kind,
            service,
            output: Output::default(),
            phase: Phase::Serving,
            paused: false,
            write_shut: false,
            last_active: now,
            discarding_since: None,
            bytes_in: 0,
            bytes_out: 0,
            timer: None,
            accounted: 0,
            delayed: VecDeque::new(),
            delayed_bytes: 0,
        }
    }

    /// Lets the service speak first (tcp-array push queues the array); true
    /// when it did, or is already done, so the loop should send at once.
    pub fn greet(&mut self) -> bool {
        self.service.on_connect(&mut self.output);
        !self.output.is_empty() || self.service.finished()
    }

    /// Bytes still owed to the peer: unsent output and delayed replies.
    pub fn owed(&self) -> usize {
        self.output.pending() + self.delayed_bytes
    }

    /// One turn for a ready connection: read once, serve, write, settle.
    pub fn on_ready(&mut self, event: Event, cx: &mut Context) -> Next {
        self.last_active = Instant::now(); // the vDSO's clock_gettime: no syscall
        // Output already waiting means the send buffer was full: only POLLOUT says it has room.
        let was_blocked = !self.output.is_empty();
        if event.readable
            && self.reads()
            && let Err(why) = self.read(cx)
        {
            return Next::Close(why);
        }
        if event.writable || !was_blocked {
            if let Err(errno) = self.flush(cx) {
                debug!("send: {errno}");
                return Next::Close("send failed");
            }
        } else {
            self.produce(cx);
        }
        self.settle(cx)
    }

    /// Shutdown has begun: serve nothing more, send what is owed, then close.
    pub fn begin_drain(&mut self, cx: &mut Context) -> Next {
        if self.phase == Phase::Serving {
            let _ = self.serve(None, cx);
            self.phase = Phase::Discarding;
        }
        self.settle(cx)
    }

    /// When this connection next needs the loop without any I/O: the nearest
    /// of its idle timeout, its linger timeout once it is discarding, and its
    /// first delayed reply.
    pub fn deadline(&self, config: &Config) -> Option<Instant> {
        let idle = config.idle_timeout.map(|timeout| self.last_active + timeout);
        let linger = self.discarding_since.map(|since| since + config.linger_timeout);
        let reply = self.delayed.front().map(|&(due, _)| due);
        idle.into_iter().chain(linger).chain(reply).min()
    }

    /// A deadline of this connection came due at `now`.
    pub fn on_deadline(&mut self, now: Instant, cx: &mut Context) -> Next {
        let (linger, idle) = (cx.config.linger_timeout, cx.config.idle_timeout);
        if self.discarding_since.is_some_and(|since| now >= since + linger) {
            info!("closing {}: still sending after {linger:?} of --linger-timeout", self.peer);
            return Next::Close("linger timeout");
        }
        if idle.is_some_and(|timeout| now >= self.last_active + timeout) {
            return Next::Close("idle timeout");
        }
        // Delayed replies now due join the output, and are sent at once.
        while let Some((_, reply)) = self.delayed.pop_front_if(|(due, _)| *due <= now) {
            self.delayed_bytes -= reply.len();
            self.output.push_bytes(&reply);
        }
        if !self.output.is_empty()
            && let Err(errno) = self.flush(cx)
        {
            debug!("send: {errno}");
            return Next::Close("send failed");
        }
        self.settle(cx)
    }

    /// Lets the service write what it still owes (a large reply, in pieces)
    /// while the output weighs no more than `--max-pending`.
    fn produce(&mut self, cx: &mut Context) {
        while self.service.has_more() && self.output.weight() <= cx.config.max_pending {
            if let Err(violation) = self.service.resume(&mut self.output) {
                self.violated(violation);
            }
        }
    }

    /// A protocol violation: serve nothing more, send what is owed, then close.
    fn violated(&mut self, violation: Violation) {
        info!("closing a connection after the replies it is owed: {violation}");
        if self.phase == Phase::Serving {
            self.phase = Phase::Discarding;
            self.discarding_since = Some(Instant::now());
        }
    }

    /// Sends what is owed until it is all sent or the kernel's buffer is full,
    /// letting the service write more as the output drains.
    fn flush(&mut self, cx: &mut Context) -> Result<(), Errno> {
        loop {
            self.produce(cx);
            if self.output.is_empty() {
                return Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = self.output.io_slices(&mut slices);
            let offered: usize = slices[..count].iter().map(|s| s.len()).sum();
            cx.stats.sends += 1;
            let sent = match net::send(self.fd.as_fd(), &slices[..count]) {
                Ok(sent) => sent,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(errno) => return Err(errno),
            };
            cx.stats.bytes_out += sent as u64;
            self.bytes_out += sent as u64;
            self.output.consume(sent);
            // A short send means the buffer is full: trying again would only
            // get EAGAIN. The output is topped up for the next POLLOUT.
            if sent < offered {
                self.produce(cx);
                return Ok(());
            }
        }
    }

    /// What the SIGUSR1 table shows of this connection.
    pub fn row(&self, now: Instant) -> Row {
        Row {
            service: self.kind.name(),
            peer: self.peer,
            phase: match (self.phase, self.paused) {
                (Phase::Serving, true) => "paused",
                (Phase::Serving, false) => "serving",
                (Phase::Discarding, _) => "discarding",
                (Phase::Flushing, _) => "flushing",
            },
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            unsent: self.owed(),
            idle: now.saturating_duration_since(self.last_active),
        }
    }

    /// True while input is wanted: serving (unless paused) or discarding.
    /// A hang-up is reported as readable whatever the interest, so this is
    /// asked again before reading.
    fn reads(&self) -> bool {
        match self.phase {
            // While a reply is built in pieces, the input behind it waits: read no more.
            Phase::Serving => !self.paused && !self.service.has_more(),
            Phase::Discarding => true,
            Phase::Flushing => false,
        }
    }

    /// One recv(2): bytes go to the service (or are thrown away), EOF starts
    /// the flush. `Err` names why the connection must close.
    fn read(&mut self, cx: &mut Context) -> Result<(), &'static str> {
        cx.stats.recvs += 1;
        match net::recv(self.fd.as_fd(), &mut cx.buf) {
            // the peer sent FIN: what it is owed is still sent (half-close)
            Ok(0) => {
                if self.phase == Phase::Serving {
                    let _ = self.serve(None, cx);
                }
                self.phase = Phase::Flushing;
            }
            // bytes: the service turns them into replies (or they are discarded)
            Ok(len) => {
                cx.stats.bytes_in += len as u64;
                self.bytes_in += len as u64;
                if self.phase == Phase::Serving
                    && let Err(violation) = self.serve(Some(len), cx)
                {
                    self.violated(violation);
                }
            }
            // a spurious wake-up
            Err(Errno::EAGAIN) => {}
            // ECONNRESET and the like: the peer is gone
            Err(_) => return Err("recv failed"),
        }
        Ok(())
    }

    /// Hands the service the first `len` bytes of the read buffer (`None`: the
    /// peer's EOF). Its replies go to the output, or, under `--reply-delay`
    /// (tcp-echo and tcp-upper), wait in `delayed` until their time.
    fn serve(&mut self, len: Option<usize>, cx: &mut Context) -> Result<(), Violation> {
        let delay = cx.config.reply_delay;
        let delayed = !delay.is_zero() && matches!(self.kind, StreamKind::Echo | StreamKind::Upper);
        let mut held = Output::default();
        let out = if delayed { &mut held } else { &mut self.output };
        let result = match len {
            Some(len) => self.service.on_data(&cx.buf[..len], out),
            None => {
                self.service.on_eof(out);
                Ok(())
            }
        };
        if !held.is_empty() {
            // Echo and upper reply with bytes only, never with ranges of the array.
            let reply = held.to_vec();
            self.delayed_bytes += reply.len();
            self.delayed.push_back((Instant::now() + delay, reply));
        }
        result
    }

    /// Nothing is owed: no output, no delayed reply, no reply still to be built.
    fn owes_nothing(&self) -> bool {
        self.output.is_empty() && self.delayed.is_empty() && !self.service.has_more()
    }

    /// The connection is closing: its memory leaves the server's total.
    pub fn release(&mut self, cx: &mut Context) {
        cx.buffered -= std::mem::take(&mut self.accounted);
    }

    /// Counts what this connection holds into the server's total; false when
    /// it grew and the total is now past `--max-buffered`.
    fn account(&mut self, cx: &mut Context) -> bool {
        let now = self.service.buffered() + self.output.memory() + self.delayed_bytes;
        let grew = now > self.accounted;
        cx.buffered = cx.buffered - self.accounted + now;
        self.accounted = now;
        !grew || cx.buffered <= cx.config.max_buffered
    }

    /// After a turn: close a connection that is done, or that needs more
    /// memory than `--max-buffered` has left; shut the write side of one that
    /// is discarding; and otherwise say what to watch next.
    fn settle(&mut self, cx: &mut Context) -> Next {
        if !self.account(cx) {
            info!(
                "closing {}: it holds {} bytes, and all connections together {} of --max-buffered {}",
                self.peer, self.accounted, cx.buffered, cx.config.max_buffered
            );
            return Next::Close("--max-buffered");
        }
        let max_pending = cx.config.max_pending;
        // A service done serving (push sent, fixed answered) is left like a
        // violation: what is owed is sent, then FIN, then the peer's FIN awaited.
        if self.phase == Phase::Serving && self.service.finished() {
            self.phase = Phase::Discarding;
        }
        if self.owes_nothing() {
            match self.phase {
                Phase::Flushing => return Next::Close("done"),
                Phase::Discarding if !self.write_shut => {
                    self.write_shut = true;
                    if net::shutdown_write(self.fd.as_fd()).is_err() {
                        return Next::Close("shutdown failed");
                    }
                }
                _ => {}
            }
        }
        // Reading pauses when more than `max_pending` bytes are owed (or their
        // queue holds more memory than that) and resumes below half of it, so
        // a peer that does not read costs bounded memory.
        let pending = self.output.weight() + self.delayed_bytes;
        if pending > max_pending {
            self.paused = true;
        } else if pending <= max_pending / 2 {
            self.paused = false;
        }
        Next::Watch(Interest { readable: self.reads(), writable: !self.output.is_empty() })
    }
}
