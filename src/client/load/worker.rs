//! One thread of `pollmux load`: its connections (active and idle) and, in
//! open loop, its timer, in one [`FdMap`](crate::fd_map::FdMap) over epoll,
//! and the wait loop that drives them until every active connection has
//! finished or failed.

/// Opening the thread's connections: active, idle, and churn's one per message.
mod connect;

use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use log::warn;
use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::conn::{Conn, Turn, send_more, turn};
use super::{EARLY, LOG, Pace, Schedule, Shared, Tally};
use crate::fd_map::FdMap;
use crate::sys::{Event, Interest, net};

/// What a descriptor of a thread is.
enum Slot {
    /// An active connection.
    Active(Box<Conn>),
    /// An idle connection: only its closing is expected.
    Idle(TcpStream),
    /// Open loop: the timer that wakes the thread just before the next message is due.
    Timer(TimerFd),
}

impl AsFd for Slot {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Slot::Active(conn) => conn.stream.as_fd(),
            Slot::Idle(stream) => stream.as_fd(),
            Slot::Timer(timer) => timer.as_fd(),
        }
    }
}

/// One thread: its connections, indexed by descriptor, and its poller.
pub(super) struct Worker<'a> {
    /// What all threads share.
    shared: &'a Shared<'a>,
    /// fd -> connection, waiting through epoll (the crate's wait interface).
    slots: FdMap<Slot>,
    /// The descriptor of each of this thread's connections, by connection number
    /// (None before it is open and after it closed).
    by_id: Vec<Option<RawFd>>,
    /// Active connections not yet finished.
    active: usize,
    /// Messages queued and not yet answered, over all connections.
    in_flight: u64,
    /// Churn: connections opened so far (to pick each one's source address).
    opened: u64,
    /// Open loop: the timer's descriptor, once it is in `slots`.
    timer: Option<RawFd>,
    /// The read buffer.
    buf: Vec<u8>,
    /// Where each message is built before it is queued.
    scratch: Vec<u8>,
    /// What it measured.
    tally: Tally,
}

impl<'a> Worker<'a> {
    /// Connects the thread's share of connections (but for churn, whose
    /// connections are the load), waits for the other threads, then runs until
    /// every connection has finished or failed.
    pub(super) fn run(shared: &'a Shared<'a>, ids: Vec<usize>, idle: usize) -> Tally {
        let options = shared.options;
        let slots = match FdMap::new(shared.options.backend) {
            Ok(slots) => slots,
            Err(e) => {
                ids.iter().for_each(|id| shared.error(format!("connection {id}: {e}")));
                shared.barrier.wait();
                return Tally::new();
            }
        };
        let mut worker = Worker {
            shared,
            slots,
            by_id: vec![None; options.conns],
            active: 0,
            in_flight: 0,
            opened: 0,
            timer: None,
            buf: vec![0; net::READ_BUFFER],
            scratch: Vec::with_capacity(options.size),
            tally: Tally::new(),
        };
        if options.pace != Pace::Churn {
            worker.connect(&ids);
        }
        worker.connect_idle(idle);
        shared.barrier.wait();
        let start = *shared.start.get_or_init(Instant::now);
        match options.pace {
            Pace::Closed => {
                let fds: Vec<RawFd> = worker.by_id.iter().flatten().copied().collect();
                for fd in fds {
                    worker.queue(fd, Instant::now());
                    worker.flush(fd);
                }
                worker.serve_all(None);
            }
            Pace::Churn => {
                for &id in &ids {
                    worker.open_churn(id, 0);
                }
                worker.serve_all(None);
            }
            Pace::Open { rate } => {
                worker.start_timer();
                let schedule = Schedule { rate, conns: options.conns, per_conn: shared.per_conn() };
                let mut due = schedule.of(&ids).map(|k| (k, start + schedule.due(k))).peekable();
                worker.serve_all(Some((&schedule, &mut due)));
            }
        }
        worker.tally
    }

    /// Open loop: the timer the thread sleeps on between messages. Without it
    /// (it cannot fail but for lack of descriptors), the thread polls throughout.
    fn start_timer(&mut self) {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        match TimerFd::new(ClockId::CLOCK_MONOTONIC, flags) {
            Ok(timer) => match self.slots.insert(Slot::Timer(timer), Interest::READ) {
                Ok(fd) => self.timer = Some(fd),
                Err((_, e)) => warn!(target: LOG, "timerfd: {e}; polling between messages instead"),
            },
            Err(e) => warn!(target: LOG, "timerfd_create: {e}; polling between messages instead"),
        }
    }

    /// How long the next wait may block when the next message is due in `left`:
    /// not at all when it is due within `EARLY` (or there is no timer), else
    /// until the timer, armed `EARLY` before it, fires (or `guard` passes).
    fn sleep_until_due(&mut self, left: Duration, guard: Duration) -> Duration {
        let Some(Slot::Timer(timer)) = self.timer.and_then(|fd| self.slots.get(fd)) else {
            return Duration::ZERO;
        };
        if left <= EARLY {
            return Duration::ZERO;
        }
        let expiration = Expiration::OneShot(TimeSpec::from_duration(left - EARLY));
        match timer.set(expiration, TimerSetTimeFlags::empty()) {
            Ok(()) => guard,
            Err(_) => Duration::ZERO,
        }
    }

    /// Queues the next message of the connection on `fd`, its latency timed from `due`.
    fn queue(&mut self, fd: RawFd, due: Instant) {
        let options = self.shared.options;
        let Some(Slot::Active(conn)) = self.slots.get_mut(fd) else { return };
        if conn.queued == options.warmup && self.tally.first_start.is_none_or(|first| due < first) {
            self.tally.first_start = Some(due);
        }
        if let Pace::Open { .. } = options.pace
            && conn.queued >= options.warmup
        {
            let late = Instant::now().saturating_duration_since(due);
            self.tally.lag.saturating_record(late.as_nanos() as u64);
        }
        conn.enqueue(options.size, due, &mut self.scratch);
        self.in_flight += 1;
    }

    /// Sends what the connection on `fd` can take now and watches it for the rest.
    fn flush(&mut self, fd: RawFd) {
        let Some(Slot::Active(conn)) = self.slots.get_mut(fd) else { return };
        if conn.connecting {
            return self.rewatch(fd);
        }
        match send_more(conn) {
            Ok(()) => self.rewatch(fd),
            Err(why) => {
                let why = format!("connection {}: {why}", conn.id);
                self.fail(fd, why);
            }
        }
    }

    /// Waits and serves until every active connection has finished or failed;
    /// in open loop, also queues each message of `schedule` once it is due.
    fn serve_all(
        &mut self,
        mut schedule: Option<(&Schedule, &mut dyn Iterator<Item = (u64, Instant)>)>,
    ) {
        let timeout = self.shared.options.timeout;
        let mut events = Vec::new();
        let mut touched: Vec<RawFd> = Vec::new();
        let mut next: Option<(u64, Instant)> = None;
        let mut last_heard = Instant::now();
        loop {
            let now = Instant::now();
            if let Some((plan, due)) = schedule.as_mut() {
                // Every message due by now, on its connection (skipped if that one failed).
                while let Some((k, at)) = next.take().or_else(|| due.next()) {
                    if at > now {
                        next = Some((k, at));
                        break;
                    }
                    if let Some(fd) = self.by_id[plan.conn(k)] {
                        self.queue(fd, at);
                        touched.push(fd);
                    }
                }
                touched.dedup();
                for fd in touched.drain(..) {
                    self.flush(fd);
                }
            }
            if self.active == 0 {
                return;
            }
            if self.in_flight == 0 {
                last_heard = now;
            } else if now.saturating_duration_since(last_heard) >= timeout {
                self.fail_all(&format!("no reply within {timeout:?}"));
                continue;
            }
            let wait = match next {
                Some((_, at)) => self.sleep_until_due(at.saturating_duration_since(now), timeout),
                None => timeout,
            };
            if let Err(e) = self.slots.wait(Some(wait), &mut events) {
                self.fail_all(&format!("epoll_wait: {e}"));
                return;
            }
            let mut replies = 0;
            for &event in &events {
                let (heard, done) = self.on_event(event);
                if heard {
                    last_heard = Instant::now();
                }
                replies += done;
            }
            if let Some(bar) = &self.shared.bar {
                bar.inc(replies);
            }
        }
    }

    /// Serves one ready descriptor; returns whether it was an active
    /// connection's, and how many replies completed.
    fn on_event(&mut self, event: Event) -> (bool, u64) {
        let fd = event.fd;
        let options = self.shared.options;
        let turn = match self.slots.get_mut(fd) {
            Some(Slot::Active(conn)) => turn(conn, event, &mut self.buf, options.expect),
            Some(Slot::Idle(stream)) => {
                // Anything on an idle connection is its end, or bytes nobody asked for.
                match net::recv(stream.as_fd(), &mut self.buf) {
                    Err(Errno::EAGAIN) => return (false, 0),
                    Ok(0) | Err(_) => self.tally.idle_closed += 1,
                    Ok(n) => self.shared.error(format!("idle connection: {n} unexpected bytes")),
                }
                self.close(fd);
                return (false, 0);
            }
            Some(Slot::Timer(timer)) => {
                // Read its expiry count so it stops being readable; it is re-armed before each wait.
                let _ = timer.wait();
                return (false, 0);
            }
            None => return (false, 0),
        };
        match turn {
            Turn::Waiting => {
                self.rewatch(fd);
                (true, 0)
            }
            Turn::Replied(n, now) => {
                self.complete(fd, n, now);
                (true, n as u64)
            }
            Turn::Failed(why) => {
                let id = match self.slots.get(fd) {
                    Some(Slot::Active(conn)) => conn.id,
                    _ => 0,
                };
                self.fail(fd, format!("connection {id}: {why}"));
                (true, 0)
            }
        }
    }

    /// The `n` oldest messages of the connection on `fd` were answered at `now`:
    /// times the measured ones, then sends the next (closed loop), opens the
    /// next connection (churn), or closes a connection that is done.
    fn complete(&mut self, fd: RawFd, n: usize, now: Instant) {
        let options = self.shared.options;
        let per_conn = self.shared.per_conn();
        let Some(Slot::Active(conn)) = self.slots.get_mut(fd) else { return };
        let mut consumed = 0;
        for message in conn.queue.drain(..n) {
            consumed += message.len;
            if message.index >= options.warmup {
                let latency = now.saturating_duration_since(message.due);
                self.tally.histogram.saturating_record(latency.as_nanos() as u64);
                self.tally.messages += 1;
                self.tally.last_end = Some(now);
            }
        }
        conn.out.drain(..consumed);
        conn.sent -= consumed;
        conn.received -= consumed;
        conn.done += n as u64;
        self.in_flight -= n as u64;
        let (id, done) = (conn.id, conn.done);
        match options.pace {
            _ if done >= per_conn => self.close(fd),
            Pace::Closed => {
                self.queue(fd, now);
                self.flush(fd);
            }
            Pace::Churn => {
                self.close(fd);
                self.open_churn(id, done);
            }
            Pace::Open { .. } => self.rewatch(fd),
        }
    }

    /// Fails every active connection still running.
    fn fail_all(&mut self, why: &str) {
        let failed: Vec<(RawFd, String)> = self
            .slots
            .iter()
            .filter_map(|(fd, slot)| match slot {
                Slot::Active(conn) => Some((
                    fd,
                    format!(
                        "connection {}: {why} ({} messages answered, {} outstanding, {} of {} bytes back)",
                        conn.id,
                        conn.done,
                        conn.queue.len(),
                        conn.received,
                        conn.out.len()
                    ),
                )),
                Slot::Idle(_) | Slot::Timer(_) => None,
            })
            .collect();
        for (fd, detail) in failed {
            self.fail(fd, detail);
        }
    }

    /// Counts an error against the connection on `fd` and closes it.
    fn fail(&mut self, fd: RawFd, why: String) {
        self.shared.error(why);
        self.close(fd);
    }

    /// Watches an active connection for what it now wants (the map tells
    /// the poller only if that changed).
    fn rewatch(&mut self, fd: RawFd) {
        let Some(Slot::Active(conn)) = self.slots.get(fd) else { return };
        let (interest, id) = (conn.wants(), conn.id);
        if let Err(e) = self.slots.set_interest(fd, interest) {
            let why = format!("connection {id}: {e}");
            self.fail(fd, why);
        }
    }

    /// Stops watching `fd` and closes it; its unanswered messages are no longer in flight.
    fn close(&mut self, fd: RawFd) {
        if let Some(Slot::Active(conn)) = self.slots.remove(fd) {
            self.active -= 1;
            self.in_flight -= conn.queue.len() as u64;
            self.by_id[conn.id] = None;
        }
    }
}
