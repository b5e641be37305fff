//! The event loop: wait -> dispatch -> accept / answer / serve / close, and the deadlines, on one thread.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::bind;
use crate::config::Config;
use crate::connection::{Connection, Context, Next};
use crate::datagram::Datagrams;
use crate::error::Error;
use crate::service::{ServiceKind, StreamKind, StreamService};
use crate::stats::Stats;
use crate::sys::signal::Signals;
use crate::sys::{Event, Interest, SysError, net};
use crate::table::{Entry, Table};
use crate::timers::{TimerKey, Timers};
use crate::udp_guard::UdpGuard;

/// Signals and the drain: SIGUSR1's table, SIGINT/SIGTERM's drain, a second signal's exit.
mod shutdown;

/// The target of the loop's log lines, shutdown.rs's too: `pollmux::event_loop`, as
/// `RUST_LOG` filters and the captured traces in ffi-notes/ name it.
const LOG: &str = module_path!();
/// Connections accepted per listener wake-up, so a flood cannot starve the rest.
const ACCEPT_BUDGET: usize = 64;
/// How often `--stats` prints.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// A repeated warning (connection limit, descriptor exhaustion) is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(1);
/// How long listeners stay out of the wait set after accept4 ran out of
/// descriptors or memory (unless a connection closes first), as nginx does.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The first and the longest pause after a failed wait call before the next.
const WAIT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// A signal asked it to stop and every connection got what it was owed.
    Drained,
    /// `--drain-timeout` passed with connections still owed something; they were cut.
    TimedOut,
    /// A second signal arrived while draining: exit at once (status 128 + its number).
    Forced(Signal),
}

/// What a deadline in the timer heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// `--stats` prints.
    Stats,
    /// `--drain-timeout` has passed: cut what is left.
    DrainTimeout,
    /// Try accepting again after accept4 failed for want of descriptors or memory.
    ResumeAccept,
    /// A connection's own deadline (idle timeout); stale if the id differs.
    Connection {
        /// Its descriptor.
        fd: RawFd,
        /// Its id, which a later connection on the same descriptor does not share.
        id: u64,
    },
}

/// Where the server is in its life.
#[derive(Debug, Default)]
struct Lifecycle {
    /// A first SIGINT or SIGTERM arrived: nothing new is served.
    draining: bool,
    /// A second one arrived: exit at once.
    forced: Option<Signal>,
    /// Listeners are out of the wait set because accept4 ran out of descriptors.
    accept_paused: bool,
    /// The timer that ends the accept back-off, while one is scheduled.
    accept_timer: Option<TimerKey>,
    /// How long to pause after the next failed wait call.
    wait_backoff: Duration,
    /// How many entries are TCP connections.
    connections: usize,
    /// The id the next connection gets.
    next_id: u64,
}

/// The server: the fd table and its poller, the timer heap, what every turn shares.
#[derive(Debug)]
pub struct Server {
    /// fd -> socket and its state; waits through the poller.
    table: Table,
    /// Every deadline; the nearest is the wait's timeout.
    timers: Timers<Timer>,
    /// What a connection's turn needs: limits, the array, the read buffer, the counts.
    cx: Context,
    /// Each enabled service and the address it is bound to.
    listening: Vec<(ServiceKind, SocketAddr)>,
    /// The listening TCP sockets, to pause and resume accepting.
    listeners: Vec<RawFd>,
    /// Draining, forced, accepting; connection count and ids.
    life: Lifecycle,
    /// Rate-limited and once-only warnings.
    warnings: Warnings,
    /// The ready descriptors of the last wait.
    events: Vec<Event>,
    /// The UDP side: the loop guard, `--udp-rate`, the reply buffer.
    datagrams: Datagrams,
    /// tcp-array's values, which its replies borrow.
    array: &'static [u8],
}

impl Server {
    /// Blocks the signals into a signalfd, builds the array, binds every
    /// enabled service, and registers it all with the backend.
    pub fn bind(mut config: Config) -> Result<Server, Error> {
        let mut table = Table::new(config.backend)?;
        table.insert(Entry::Signals(Signals::new()?), Interest::READ).map_err(|(_, e)| e)?;
        let opened = bind::open_services(&config, &mut table)?;
        config.max_conns = bind::reconcile_max_conns(config.max_conns, &table);
        let guard = UdpGuard::new(bind::loop_ports(&config, &opened.listening), config.udp_rate);
        let mut timers = Timers::default();
        if config.stats {
            timers.schedule(Instant::now() + STATS_EVERY, Timer::Stats);
        }
        Ok(Server {
            table,
            timers,
            listening: opened.listening,
            listeners: opened.listeners,
            life: Lifecycle::default(),
            warnings: Warnings::default(),
            events: Vec::new(),
            datagrams: Datagrams::new(guard),
            array: opened.array,
            cx: Context {
                config,
                buf: vec![0; net::READ_BUFFER],
                stats: Stats::default(),
                buffered: 0,
            },
        })
    }

    /// Each enabled service and the address it is bound to, in flag order.
    pub fn listening(&self) -> &[(ServiceKind, SocketAddr)] {
        &self.listening
    }

    /// The counts so far.
    pub fn stats(&self) -> &Stats {
        &self.cx.stats
    }

    /// Serves until a signal stops it.
    pub fn run(&mut self) -> Result<Shutdown, Error> {
        loop {
            let now = match self.fire_due_timers() {
                Ok(now) => now,
                Err(end) => return Ok(end),
            };
            if self.life.draining && self.life.connections == 0 {
                return Ok(Shutdown::Drained);
            }
            // The wait sleeps until the nearest deadline, or forever when there is none:
            // an idle server makes one blocked call and nothing else.
            // (Every timer due at `now` has fired, so the timeout is never zero.)
            let timeout = self.timers.timeout(now);
            if let Err(e) = self.table.wait(timeout, &mut self.events) {
                self.wait_failed(e);
                continue;
            }
            self.life.wait_backoff = WAIT_BACKOFF.0;
            self.cx.stats.waits += 1;
            self.cx.stats.ready += self.events.len() as u64;
            // Listeners go last: a descriptor closed earlier in this batch may be
            // handed out again by accept4, and must not get its predecessor's event.
            let events = std::mem::take(&mut self.events);
            for listeners_pass in [false, true] {
                for &event in &events {
                    if self.listeners.contains(&event.fd) == listeners_pass {
                        self.dispatch(event);
                    }
                    if let Some(signal) = self.life.forced {
                        return Ok(Shutdown::Forced(signal));
                    }
                }
            }
            self.events = events;
        }
    }

    /// Handles every timer due now, and returns when "now" was; `Err` when
    /// the loop must end.
    fn fire_due_timers(&mut self) -> Result<Instant, Shutdown> {
        let now = Instant::now();
        while let Some((key, timer)) = self.timers.pop_due(now) {
            match timer {
                // print the counts and come back in a second
                Timer::Stats => {
                    info!("stats: {}", self.cx.stats);
                    self.timers.schedule(now + STATS_EVERY, Timer::Stats);
                }
                // shutdown took too long: say who is cut, and end
                Timer::DrainTimeout => {
                    self.log_cut_connections();
                    return Err(Shutdown::TimedOut);
                }
                // the accept back-off is over
                Timer::ResumeAccept => {
                    self.life.accept_timer = None;
                    self.set_accepting(true);
                }
                // a connection's deadline: an idle or linger timeout, a delayed reply
                Timer::Connection { fd, id } => {
                    let Some(Entry::Connection(conn)) = self.table.get_mut(fd) else { continue };
                    if conn.id != id || conn.timer != Some(key) {
                        continue; // not this connection's current timer (cannot happen: cancelled)
                    }
                    conn.timer = None;
                    let next = conn.on_deadline(now, &mut self.cx);
                    self.apply(fd, next);
                }
            }
        }
        Ok(now)
    }

    /// Hands one ready descriptor to the code for its kind of socket.
    fn dispatch(&mut self, event: Event) {
        let Some(entry) = self.table.get_mut(event.fd) else {
            return; // closed earlier in this batch
        };
        match entry {
            // a listener is readable: connections are waiting to be accepted
            Entry::Listener { service, .. } => {
                let service = *service;
                self.accept_connections(event.fd, service)
            }
            // a UDP socket is readable: datagrams are waiting
            Entry::Datagram { fd, service } => {
                self.datagrams.answer(fd.as_fd(), *service, &mut self.cx.buf, &mut self.cx.stats)
            }
            // SIGINT or SIGTERM arrived
            Entry::Signals(_) => self.on_signals(event.fd),
            // a connection is readable, writable, or hung up (both)
            Entry::Connection(conn) => {
                let next = conn.on_ready(event, &mut self.cx);
                self.apply(event.fd, next);
            }
        }
    }

    /// accept4 until EAGAIN or the budget runs out.
    fn accept_connections(&mut self, listener: RawFd, service: StreamKind) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(entry) = self.table.get(listener) else { return };
            match net::accept(entry.as_fd()) {
                // a new connection: watch it for input
                Ok(Some((fd, peer))) => self.add_connection(fd, peer, service),
                // the accept queue is empty
                Ok(None) => return,
                // out of descriptors or memory: stop watching listeners until
                // a connection closes or the back-off is over (no busy loop)
                Err(errno @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                    if let Some(more) = self.warnings.accept.allow(Instant::now()) {
                        warn!(
                            "accept4: {errno}; not accepting for {ACCEPT_BACKOFF:?} or until a connection closes ({more} more since the last warning)"
                        );
                    }
                    self.set_accepting(false);
                    let resume =
                        self.timers.schedule(Instant::now() + ACCEPT_BACKOFF, Timer::ResumeAccept);
                    if let Some(old) = self.life.accept_timer.replace(resume) {
                        self.timers.cancel(old);
                    }
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
    fn add_connection(&mut self, fd: OwnedFd, peer: SocketAddr, service: StreamKind) {
        let now = Instant::now();
        let config = &self.cx.config;
        if self.life.connections >= config.max_conns {
            self.cx.stats.refused += 1;
            if let Some(more) = self.warnings.refused.allow(now) {
                warn!(
                    "--max-conns {} reached: closing new connections at once ({more} more since the last warning)",
                    config.max_conns
                );
            }
            return; // dropping `fd` closes it
        }
        net::tune(fd.as_fd(), config.keepalive);
        let state = StreamService::new(service, &config.services, self.array);
        self.life.next_id += 1;
        let mut conn = Connection::new(fd, self.life.next_id, peer, service, state, now);
        // A service that speaks first (tcp-array push) queues it now.
        let speaks_first = conn.greet();
        match self.register(Entry::Connection(Box::new(conn))) {
            Ok(fd) => {
                self.cx.stats.accepted += 1;
                if speaks_first {
                    // Send at once, as if writable; settle asks for POLLOUT while some is owed.
                    self.dispatch(Event { fd, readable: false, writable: true });
                } else {
                    self.schedule_deadline(fd);
                }
            }
            Err(Error::Sys(SysError::FdTooLarge { fd, limit })) => {
                self.cx.stats.refused += 1;
                if !std::mem::replace(&mut self.warnings.fd_setsize, true) {
                    warn!(
                        "select: descriptor {fd} >= FD_SETSIZE ({limit}); closing such \
                         connections on arrival (warned once; --backend poll or epoll has no such limit)"
                    );
                }
            }
            Err(e) => warn!("cannot watch a new {} connection: {e}", service.name()),
        }
    }

    /// Carries out what a connection's turn decided.
    fn apply(&mut self, fd: RawFd, next: Next) {
        match next {
            Next::Watch(interest) => {
                if let Err(e) = self.table.set_interest(fd, interest) {
                    warn!("fd {fd}: {e}; closing it");
                    self.close(fd, "the backend refused its new interest");
                    return;
                }
                self.schedule_deadline(fd);
            }
            Next::Close(why) => self.close(fd, why),
        }
    }

    /// Gives a connection a timer for its next deadline, unless the one it
    /// has is due no later (a deadline that moved later is found out when the
    /// earlier timer fires: one timer per connection, not one per byte).
    fn schedule_deadline(&mut self, fd: RawFd) {
        let Some(Entry::Connection(conn)) = self.table.get_mut(fd) else { return };
        let Some(due) = conn.deadline(&self.cx.config) else { return };
        if conn.timer.is_none_or(|scheduled| due < scheduled.due) {
            if let Some(old) = conn.timer.take() {
                self.timers.cancel(old);
            }
            conn.timer = Some(self.timers.schedule(due, Timer::Connection { fd, id: conn.id }));
        }
    }

    /// Adds a socket to the table (and so to the backend), watched for input.
    fn register(&mut self, entry: Entry) -> Result<RawFd, Error> {
        let is_connection = matches!(entry, Entry::Connection(_));
        let fd = self.table.insert(entry, Interest::READ).map_err(|(_, e)| e)?;
        self.life.connections += usize::from(is_connection);
        Ok(fd)
    }

    /// Forgets `fd` in the table and the backend; dropping the entry closes it.
    fn close(&mut self, fd: RawFd, why: &'static str) {
        let Some(mut entry) = self.table.remove(fd) else { return };
        let Entry::Connection(conn) = &mut entry else { return };
        conn.release(&mut self.cx);
        if let Some(timer) = conn.timer.take() {
            self.timers.cancel(timer);
        }
        self.life.connections -= 1;
        self.cx.stats.closed += 1;
        debug!("fd {fd}: closed ({why})");
        drop(entry);
        // A descriptor is free again: if accept4 had run out, try it now.
        if self.life.accept_paused {
            if let Some(timer) = self.life.accept_timer.take() {
                self.timers.cancel(timer);
            }
            self.set_accepting(true);
        }
    }

    /// A wait call failed (not EINTR, which the poller absorbs): log it and
    /// pause before the next, longer each time, so a persistent failure
    /// neither spins nor ends the server; timers (the drain's too) still fire.
    fn wait_failed(&mut self, error: SysError) {
        let pause = self.life.wait_backoff.max(WAIT_BACKOFF.0);
        warn!("{error}; waiting again in {pause:?}");
        std::thread::sleep(pause);
        self.life.wait_backoff = (pause * 2).min(WAIT_BACKOFF.1);
    }

    /// Puts the listeners in or out of the wait set.
    fn set_accepting(&mut self, on: bool) {
        self.life.accept_paused = !on;
        let interest = if on { Interest::READ } else { Interest::NONE };
        for &fd in &self.listeners {
            if let Err(e) = self.table.set_interest(fd, interest) {
                warn!("listener fd {fd}: {e}");
            }
        }
    }
}

/// Warnings that must not flood the log.
#[derive(Debug, Default)]
struct Warnings {
    /// "connection refused" (past `--max-conns`), at most once per `WARN_EVERY`.
    refused: Throttle,
    /// accept4 ran out of descriptors or memory, at most once per `WARN_EVERY`.
    accept: Throttle,
    /// A descriptor too large for select(2) has been refused and warned about.
    fd_setsize: bool,
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
