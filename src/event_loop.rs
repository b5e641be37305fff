//! The event loop: wait -> dispatch -> accept / read / write / close, on one thread.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use nix::errno::Errno;

use crate::config::Config;
use crate::error::Error;
use crate::output::Output;
use crate::service::{self, DatagramService, ServiceKind, StreamService};
use crate::stats::Stats;
use crate::sys::signal::Signals;
use crate::sys::{Event, Interest, Poller, SysError, net};
use crate::table::{Connection, Entry, Phase, Socket, Table};

/// Connections accepted per listener wake-up, so a flood cannot starve the rest.
const ACCEPT_BUDGET: usize = 64;
/// Datagrams answered per UDP wake-up, for the same reason.
const DATAGRAM_BUDGET: usize = 64;
/// The one read buffer: 64 KiB holds any UDP datagram (65,507 bytes over IPv4).
const READ_BUFFER: usize = 64 * 1024;
/// Slices gathered into one vectored send.
const MAX_IOV: usize = 64;
/// How often `--stats` prints.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Idle connections are looked for at most this often: a sweep is O(connections).
const IDLE_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A repeated warning (connection limit, descriptor exhaustion) is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// A signal asked it to stop and every connection got what it was owed.
    Drained,
    /// `--drain-timeout` passed with connections still owed something; they were cut.
    TimedOut,
    /// A second signal arrived while draining: exit at once (status 128 + its number).
    Forced(nix::sys::signal::Signal),
}

/// The server: one poller, one fd table, the services' shared data.
#[derive(Debug)]
pub struct Server {
    /// The wait syscall.
    poller: Poller,
    /// fd -> socket, service state, output, interest.
    table: Table,
    /// The configuration it was built from.
    config: Config,
    /// tcp-array's values in wire form (little-endian float64): replies borrow from it.
    array: Vec<u8>,
    /// Each enabled service and the address it is bound to.
    listening: Vec<(ServiceKind, SocketAddr)>,
    /// The listening TCP sockets, to pause and resume accepting.
    listeners: Vec<RawFd>,
    /// The signalfd.
    signal_fd: RawFd,
    /// The one read buffer: every read is consumed by its service before the next.
    buf: Vec<u8>,
    /// Where a datagram's reply is built.
    reply: Vec<u8>,
    /// The ready descriptors of the last wait.
    events: Vec<Event>,
    /// Listeners are out of the wait set because accept4 ran out of descriptors.
    accept_paused: bool,
    /// A descriptor too large for select(2) has been refused and warned about.
    warned_fd_setsize: bool,
    /// Set by the first SIGINT or SIGTERM: when to stop waiting on what is owed.
    drain_deadline: Option<Instant>,
    /// Set by a second signal.
    forced: Option<nix::sys::signal::Signal>,
    /// When to look for connections silent past `--idle-timeout`.
    idle_sweep: Option<Instant>,
    /// When `--stats` next prints.
    stats_due: Option<Instant>,
    /// Rate limit of the "connection refused" warnings.
    refused_warning: Throttle,
    /// Syscall and traffic counts.
    stats: Stats,
}

/// What to do with a connection after it was served.
enum Next {
    /// Keep it, watched for this.
    Watch(Interest),
    /// Close it, for this reason (logged at debug level).
    Close(&'static str),
}

impl Server {
    /// Blocks SIGINT/SIGTERM into a signalfd, builds the array, binds every
    /// enabled service, and registers it all with the backend.
    pub fn bind(config: Config) -> Result<Server, Error> {
        let mut server = Server {
            poller: Poller::new(config.backend)?,
            table: Table::default(),
            array: Vec::new(),
            listening: Vec::new(),
            listeners: Vec::new(),
            signal_fd: -1,
            buf: vec![0; READ_BUFFER],
            reply: Vec::new(),
            events: Vec::new(),
            accept_paused: false,
            warned_fd_setsize: false,
            drain_deadline: None,
            forced: None,
            idle_sweep: None,
            stats_due: None,
            refused_warning: Throttle::default(),
            stats: Stats::default(),
            config,
        };
        server.signal_fd = server.register(Socket::Signals(Signals::new()?))?;
        if server.config.stats {
            server.stats_due = Some(Instant::now() + STATS_EVERY);
        }
        let host = &server.config.host;
        let ip = net::first_addr((host.as_str(), 0))
            .map_err(|source| Error::Resolve { host: host.clone(), source })?
            .ip();
        let enabled: Vec<(ServiceKind, u16)> =
            server.config.ports.iter().filter_map(|&(k, p)| Some((k, p?))).collect();
        if enabled.iter().any(|&(k, _)| k == ServiceKind::TcpArray) {
            let len = server.config.array_len;
            server.array = service::array::build(len).map_err(|_| Error::ArrayTooLarge(len))?;
        }
        for (kind, port) in enabled {
            let addr = SocketAddr::new(ip, port);
            let bind_error = |source| Error::Bind { service: kind.name(), addr, source };
            let backlog = server.config.backlog;
            let fd =
                if kind.is_udp() { net::bind_udp(addr) } else { net::listen_tcp(addr, backlog) }
                    .map_err(bind_error)?;
            let bound = net::local_addr(fd.as_fd()).map_err(bind_error)?;
            let socket = match DatagramService::new(kind) {
                Some(service) => Socket::Datagram { fd, service },
                None => Socket::Listener { fd, service: kind },
            };
            let fd = server.register(socket)?;
            if !kind.is_udp() {
                server.listeners.push(fd);
            }
            server.listening.push((kind, bound));
        }
        Ok(server)
    }

    /// Each enabled service and the address it is bound to, in flag order.
    pub fn listening(&self) -> &[(ServiceKind, SocketAddr)] {
        &self.listening
    }

    /// The counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Serves until a signal stops it.
    pub fn run(&mut self) -> Result<Shutdown, Error> {
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.drain_deadline {
                if self.table.connections() == 0 {
                    return Ok(Shutdown::Drained);
                }
                if now >= deadline {
                    self.log_cut_connections();
                    return Ok(Shutdown::TimedOut);
                }
            }
            if self.idle_sweep.is_some_and(|due| now >= due) {
                self.close_idle(now);
            }
            if self.stats_due.is_some_and(|due| now >= due) {
                info!("stats: {}", self.stats);
                self.stats_due = Some(now + STATS_EVERY);
            }
            // The wait sleeps until the nearest deadline, or forever when there is none:
            // an idle server makes one blocked call and nothing else.
            let nearest =
                [self.drain_deadline, self.idle_sweep, self.stats_due].into_iter().flatten().min();
            let timeout = nearest.map(|due| due.saturating_duration_since(now));
            self.poller.wait(self.table.watched(), timeout, &mut self.events)?;
            self.stats.waits += 1;
            self.stats.ready += self.events.len() as u64;
            // Listeners go last: a descriptor closed earlier in this batch may be
            // handed out again by accept4, and must not get its predecessor's event.
            let events = std::mem::take(&mut self.events);
            for listeners_pass in [false, true] {
                for &event in &events {
                    if self.listeners.contains(&event.fd) == listeners_pass {
                        self.dispatch(event);
                    }
                    if let Some(signal) = self.forced {
                        return Ok(Shutdown::Forced(signal));
                    }
                }
            }
            self.events = events;
        }
    }

    /// Hands one ready descriptor to the code for its kind of socket.
    fn dispatch(&mut self, event: Event) {
        let Some(entry) = self.table.get(event.fd) else {
            return; // closed earlier in this batch
        };
        match &entry.socket {
            // a listener is readable: connections are waiting to be accepted
            Socket::Listener { service, .. } => self.accept_connections(event.fd, *service),
            // a UDP socket is readable: datagrams are waiting
            Socket::Datagram { service, .. } => self.answer_datagrams(event.fd, *service),
            // SIGINT or SIGTERM arrived
            Socket::Signals(_) => self.on_signals(),
            // a connection is readable, writable, or hung up
            Socket::Stream { .. } => self.serve_connection(event),
        }
    }

    /// accept4 until EAGAIN or the budget runs out.
    fn accept_connections(&mut self, listener: RawFd, service: ServiceKind) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(entry) = self.table.get(listener) else { return };
            match net::accept(entry.fd()) {
                // a new connection: watch it for input
                Ok(Some(fd)) => self.add_connection(fd, service),
                // the accept queue is empty
                Ok(None) => return,
                // out of descriptors: stop watching listeners until one closes
                Err(errno @ (Errno::EMFILE | Errno::ENFILE)) => {
                    warn!("accept4: {errno}; not accepting until a connection closes");
                    self.set_accepting(false);
                    return;
                }
                // the connection died while queued: take the next one
                Err(Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM) => {}
                // anything else: leave the rest for the next wake-up
                Err(errno) => {
                    warn!("accept4 on {}: {errno}", service.name());
                    return;
                }
            }
        }
    }

    /// Puts an accepted connection in the table, unless `--max-conns` or the backend refuses it.
    fn add_connection(&mut self, fd: OwnedFd, service: ServiceKind) {
        let now = Instant::now();
        if self.table.connections() >= self.config.max_conns {
            self.stats.refused += 1;
            if let Some(more) = self.refused_warning.allow(now) {
                warn!(
                    "--max-conns {} reached: closing new connections at once ({more} more since the last warning)",
                    self.config.max_conns
                );
            }
            return; // dropping `fd` closes it
        }
        let state = StreamService::new(service, &self.config)
            .expect("listeners only serve stream services");
        let mut conn = Box::new(Connection::new(state, now));
        // A service that speaks first (tcp-array push) queues it now, and is sent below.
        conn.service.on_connect(&mut conn.output);
        let speaks_first = !conn.output.is_empty() || conn.service.finished();
        match self.register(Socket::Stream { fd, conn }) {
            Ok(fd) => {
                self.stats.accepted += 1;
                if let Some(timeout) = self.config.idle_timeout {
                    self.idle_sweep.get_or_insert(now + timeout);
                }
                if speaks_first {
                    // Send at once, as if writable; settle watches for POLLOUT while some is owed.
                    let event = Event { fd, readable: false, writable: true, closed: false };
                    self.serve_connection(event);
                }
            }
            Err(Error::Sys(SysError::FdTooLarge { fd, limit })) => {
                self.stats.refused += 1;
                if !std::mem::replace(&mut self.warned_fd_setsize, true) {
                    warn!(
                        "select: descriptor {fd} >= FD_SETSIZE ({limit}); closing such \
                         connections on arrival (warned once; --backend poll or epoll has no such limit)"
                    );
                }
            }
            Err(e) => warn!("cannot watch a new {} connection: {e}", service.name()),
        }
    }

    /// recvfrom and answer with sendto until EAGAIN or the budget runs out.
    /// A reply that cannot be sent at once is dropped and counted: UDP may
    /// drop, and the loop must never block.
    fn answer_datagrams(&mut self, fd: RawFd, service: DatagramService) {
        let Server { table, buf, reply, stats, .. } = self;
        let Some(entry) = table.get(fd) else { return };
        let socket = entry.fd();
        for _ in 0..DATAGRAM_BUDGET {
            stats.recvs += 1;
            let (len, from) = match net::recv_from(socket, buf) {
                Ok((len, Some(from))) => (len, from),
                Ok((_, None)) => continue,
                Err(Errno::EAGAIN) => return,
                Err(errno) => {
                    debug!("recvfrom: {errno}");
                    return;
                }
            };
            stats.datagrams_in += 1;
            stats.bytes_in += len as u64;
            service.answer(&buf[..len], reply);
            stats.sends += 1;
            match net::send_to(socket, reply, &from) {
                Ok(sent) => {
                    stats.datagrams_out += 1;
                    stats.bytes_out += sent as u64;
                }
                // the send buffer is full, or the reply grew past the largest datagram
                Err(errno) => {
                    stats.datagrams_dropped += 1;
                    debug!("sendto {from}: {errno}; reply of {} bytes dropped", reply.len());
                }
            }
        }
    }

    /// Reads, answers and writes for one ready connection, then re-arms or closes it.
    fn serve_connection(&mut self, event: Event) {
        let Server { table, buf, array, stats, config, .. } = self;
        let Some(Entry { socket: Socket::Stream { fd, conn }, .. }) = table.get_mut(event.fd)
        else {
            return;
        };
        match serve(fd.as_fd(), conn, event, buf, array, stats, config.max_pending) {
            Next::Watch(interest) => self.watch(event.fd, interest),
            Next::Close(why) => self.close(event.fd, why),
        }
    }

    /// Reads every pending signal: the first starts draining, a second forces exit.
    fn on_signals(&mut self) {
        loop {
            let Some(Entry { socket: Socket::Signals(signals), .. }) =
                self.table.get(self.signal_fd)
            else {
                return;
            };
            match signals.read() {
                Ok(Some(signal)) if self.drain_deadline.is_some() => {
                    warn!(
                        "{signal} again: exiting now, cutting {} connections",
                        self.table.connections()
                    );
                    self.forced = Some(signal);
                    return;
                }
                Ok(Some(signal)) => self.begin_drain(signal),
                Ok(None) => return,
                Err(e) => {
                    warn!("{e}");
                    return;
                }
            }
        }
    }

    /// Stops accepting and receiving, and lets each connection finish what it is owed.
    fn begin_drain(&mut self, signal: nix::sys::signal::Signal) {
        let timeout = self.config.drain_timeout;
        info!(
            "{signal}: no longer accepting; finishing what {} connections are owed (at most {timeout:?})",
            self.table.connections()
        );
        self.drain_deadline = Some(Instant::now() + timeout);
        self.listeners.clear();
        let fds: Vec<RawFd> = self.table.fds().collect();
        for fd in fds {
            let Some(entry) = self.table.get_mut(fd) else { continue };
            match &mut entry.socket {
                Socket::Listener { .. } | Socket::Datagram { .. } => self.close(fd, "shutdown"),
                Socket::Signals(_) => {}
                Socket::Stream { fd: socket, conn } => {
                    if conn.phase == Phase::Serving {
                        conn.service.on_eof(&mut conn.output);
                        conn.phase = Phase::Discarding;
                    }
                    let next = settle(socket.as_fd(), conn, self.config.max_pending);
                    match next {
                        Next::Watch(interest) => self.watch(fd, interest),
                        Next::Close(why) => self.close(fd, why),
                    }
                }
            }
        }
    }

    /// At the drain deadline, says which connections are cut: those still owed
    /// bytes (a warning) and those only waiting for the peer's FIN (info).
    fn log_cut_connections(&self) {
        let (mut owed, mut unsent) = (0, 0);
        for fd in self.table.fds() {
            if let Some(Entry { socket: Socket::Stream { conn, .. }, .. }) = self.table.get(fd)
                && !conn.output.is_empty()
            {
                owed += 1;
                unsent += conn.output.pending();
            }
        }
        let waiting = self.table.connections() - owed;
        if owed > 0 {
            warn!("drain timeout: cutting {owed} connections still owed {unsent} bytes");
        }
        if waiting > 0 {
            info!(
                "drain timeout: closing {waiting} connections that were sent everything but never closed"
            );
        }
    }

    /// Adds a socket to the backend and the table, watched for input.
    fn register(&mut self, socket: Socket) -> Result<RawFd, Error> {
        let entry = Entry { socket, interest: Interest::READ };
        self.poller.add(entry.fd(), entry.interest)?;
        Ok(self.table.insert(entry))
    }

    /// Changes what `fd` is watched for, telling the backend only if it changed.
    fn watch(&mut self, fd: RawFd, interest: Interest) {
        let Some(entry) = self.table.get_mut(fd) else { return };
        if entry.interest != interest {
            entry.interest = interest;
            if let Err(e) = self.poller.modify(entry.fd(), interest) {
                warn!("fd {fd}: {e}");
            }
        }
    }

    /// Forgets `fd` in the backend and the table; dropping the entry closes it.
    fn close(&mut self, fd: RawFd, why: &'static str) {
        let Some(entry) = self.table.remove(fd) else { return };
        if let Err(e) = self.poller.remove(entry.fd()) {
            debug!("fd {fd}: {e}");
        }
        if matches!(entry.socket, Socket::Stream { .. }) {
            self.stats.closed += 1;
            debug!("fd {fd}: closed ({why})");
            if self.accept_paused {
                self.set_accepting(true);
            }
        }
        drop(entry);
    }

    /// Closes connections silent for `--idle-timeout`, and schedules the next
    /// sweep for when the oldest survivor would expire.
    fn close_idle(&mut self, now: Instant) {
        let Some(timeout) = self.config.idle_timeout else { return };
        let mut idle = Vec::new();
        let mut oldest: Option<Instant> = None;
        for fd in self.table.fds() {
            if let Some(Entry { socket: Socket::Stream { conn, .. }, .. }) = self.table.get(fd) {
                if now.duration_since(conn.last_active) >= timeout {
                    idle.push(fd);
                } else {
                    oldest = Some(oldest.map_or(conn.last_active, |o| o.min(conn.last_active)));
                }
            }
        }
        for fd in idle {
            self.close(fd, "idle timeout");
        }
        self.idle_sweep = oldest.map(|t| (t + timeout).max(now + IDLE_SWEEP_EVERY));
    }

    /// Puts the listeners in or out of the wait set.
    fn set_accepting(&mut self, on: bool) {
        self.accept_paused = !on;
        let interest = if on { Interest::READ } else { Interest::NONE };
        for fd in self.listeners.clone() {
            self.watch(fd, interest);
        }
    }
}

/// One turn for a ready connection: read once (level-triggered: if more is
/// waiting, the next wait says so), hand the bytes to the service, write the
/// replies at once, and say what to watch next.
fn serve(
    fd: BorrowedFd<'_>,
    conn: &mut Connection,
    event: Event,
    buf: &mut [u8],
    array: &[u8],
    stats: &mut Stats,
    max_pending: usize,
) -> Next {
    if event.closed {
        return Next::Close("hang-up or error");
    }
    conn.last_active = Instant::now(); // the vDSO's clock_gettime: no syscall
    // Output already waiting means the send buffer was full: only POLLOUT says it has room.
    let was_blocked = !conn.output.is_empty();
    if event.readable {
        stats.recvs += 1;
        match net::recv(fd, buf) {
            // the peer sent FIN: what it is owed is still sent (half-close)
            Ok(0) => {
                if conn.phase == Phase::Serving {
                    conn.service.on_eof(&mut conn.output);
                }
                conn.phase = Phase::Flushing;
            }
            // bytes: the service turns them into replies (or they are discarded)
            Ok(len) => {
                stats.bytes_in += len as u64;
                if conn.phase == Phase::Serving
                    && let Err(violation) = conn.service.on_data(&buf[..len], &mut conn.output)
                {
                    info!("closing a connection after the replies it is owed: {violation}");
                    conn.phase = Phase::Discarding;
                }
            }
            // a spurious wake-up
            Err(Errno::EAGAIN) => {}
            // ECONNRESET and the like: the peer is gone
            Err(_) => return Next::Close("recv failed"),
        }
    }
    if !conn.output.is_empty()
        && (event.writable || !was_blocked)
        && let Err(errno) = flush(fd, &mut conn.output, array, stats)
    {
        debug!("send: {errno}");
        return Next::Close("send failed");
    }
    settle(fd, conn, max_pending)
}

/// Sends what is owed until it is all sent or the kernel's buffer is full.
fn flush(
    fd: BorrowedFd<'_>,
    output: &mut Output,
    array: &[u8],
    stats: &mut Stats,
) -> Result<(), Errno> {
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let count = output.io_slices(array, &mut slices);
        let offered: usize = slices[..count].iter().map(|s| s.len()).sum();
        stats.sends += 1;
        let sent = match net::send(fd, &slices[..count]) {
            Ok(sent) => sent,
            Err(Errno::EAGAIN) => return Ok(()),
            Err(errno) => return Err(errno),
        };
        stats.bytes_out += sent as u64;
        output.consume(sent);
        // A short send means the buffer is full: trying again would only get EAGAIN.
        if sent < offered || output.is_empty() {
            return Ok(());
        }
    }
}

/// After a turn: close a connection that is done, shut the write side of one
/// that is discarding, and otherwise say what to watch next.
fn settle(fd: BorrowedFd<'_>, conn: &mut Connection, max_pending: usize) -> Next {
    // A service with nothing more to serve ends like one that saw a violation.
    if conn.phase == Phase::Serving && conn.service.finished() {
        conn.phase = Phase::Discarding;
    }
    if conn.output.is_empty() {
        match conn.phase {
            Phase::Flushing => return Next::Close("done"),
            Phase::Discarding if !conn.write_shut => {
                conn.write_shut = true;
                if net::shutdown_write(fd).is_err() {
                    return Next::Close("shutdown failed");
                }
            }
            _ => {}
        }
    }
    Next::Watch(conn.interest(max_pending))
}

/// Lets a repeated warning through at most once per `WARN_EVERY`, counting the rest.
#[derive(Debug, Default)]
struct Throttle {
    /// When the last warning went out.
    last: Option<Instant>,
    /// Occurrences since then.
    suppressed: u64,
}

impl Throttle {
    /// `Some(occurrences suppressed since the last warning)` when one may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.duration_since(last) < WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
