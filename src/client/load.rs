//! `pollmux load`: TCP load, every reply byte checked, latencies in an HDR histogram.
//!
//! Three ways to pace the messages:
//!
//! - **Closed loop** (the default): each of N connections keeps exactly one
//!   message outstanding; the next leaves when the last byte of the previous
//!   reply has arrived, and its latency is timed from that send. It measures
//!   the most a server can do, but a stalled server also stalls the client, so
//!   the messages it would have sent meanwhile are never timed (coordinated
//!   omission): a one-second stall shows up as one slow message.
//! - **Open loop** (`--rate R --duration S`): message k is due at
//!   `start + k / R`, on connection `k mod N`, whether or not earlier replies
//!   came back; a connection may have many messages outstanding (pipelined;
//!   replies are matched in order). Each latency runs from when its message
//!   was *due*, not when it was sent, so a stall shows up as every message it
//!   delayed. Between messages the thread sleeps in its wait call until a
//!   reply arrives or a timerfd (nanosecond resolution; the wait's own timeout
//!   counts milliseconds) fires [`EARLY`] before the next message is due, then
//!   polls without blocking until it is: its own wake-up stays out of the figures,
//!   and it leaves the CPU to others (a busy loop would be preempted for whole
//!   time slices on a shared machine, and count them as latency).
//! - **Churn** (`--churn`): closed loop over fresh connections: each message
//!   opens a connection, sends, reads the whole reply and closes; latencies run
//!   from the connect.
//!
//! The connections are spread over a few threads, each running its own epoll
//! loop (the crate's [`FdMap`]), so a thousand connections cost a few threads
//! rather than a thousand. All threads connect, meet at a barrier, then run:
//! warm-up messages first (checked, not timed), then the measured ones.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use log::{error, warn};
use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::{connect_nonblocking, connect_started, format_us, resolve};
use crate::fd_map::FdMap;
use crate::sys::{BackendKind, Event, Interest, SysError, limits, net};

/// Errors logged one by one; past this many they are only counted.
const MAX_LOGGED_ERRORS: u64 = 10;
/// The largest latency the histogram holds: an hour, in nanoseconds.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;
/// Open loop: the thread's timer fires this long before the next message is
/// due, and it polls without blocking from then on (a sleeping CPU takes tens
/// of microseconds to wake, more on a VM).
pub const EARLY: Duration = Duration::from_micros(30);
/// Churn over IPv4 loopback: source addresses 127.0.0.1 to 127.0.0.N in turn,
/// so that the closed connections' TIME_WAIT entries (about 28,000 ports per
/// source address, reusable after a second) never run the client out of ports.
const CHURN_SOURCES: u8 = 16;
/// The latency above which `over_1ms` counts a message.
const OVER_NS: u64 = 1_000_000;
/// The percentiles reported: label, RESULT key, quantile.
const PERCENTILES: [(&str, &str, f64); 4] = [
    ("p50", "p50_us", 0.50),
    ("p90", "p90_us", 0.90),
    ("p99", "p99_us", 0.99),
    ("p99.9", "p999_us", 0.999),
];
/// What the server is expected to send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    /// Every byte verbatim (tcp-echo).
    Echo,
    /// Every byte ASCII-uppercased (tcp-upper; the messages are lowercase ASCII).
    Upper,
}

impl Expect {
    /// The name used by `--expect`.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Echo => "echo",
            Expect::Upper => "upper",
        }
    }

    /// What a sent byte must come back as.
    pub fn reply_byte(self, sent: u8) -> u8 {
        match self {
            Expect::Echo => sent,
            Expect::Upper => sent.to_ascii_uppercase(),
        }
    }
}

/// How messages are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends its next message once the previous reply is complete.
    Closed,
    /// Messages are due `1 / rate` seconds apart, spread over the connections in turn.
    Open {
        /// Messages per second, all connections together.
        rate: f64,
    },
    /// Closed loop, each message on a connection of its own.
    Churn,
}

impl Pace {
    /// `closed`, `open` or `churn`, as in the RESULT line.
    pub fn name(self) -> &'static str {
        match self {
            Pace::Closed => "closed",
            Pace::Open { .. } => "open",
            Pace::Churn => "churn",
        }
    }
}

/// What `pollmux load` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` of an echo-like TCP server.
    pub target: String,
    /// Connections (at least 1); with churn, connections open at once.
    pub conns: usize,
    /// Measured messages per connection (at least 1).
    pub msgs: u64,
    /// Bytes per message (at least 1).
    pub size: usize,
    /// How replies are checked.
    pub expect: Expect,
    /// How messages are paced.
    pub pace: Pace,
    /// Messages per connection exchanged and checked before measuring
    /// (open loop: the first ones of the schedule).
    pub warmup: u64,
    /// Client threads; 0 picks one per CPU but one, never more than connections.
    pub threads: usize,
    /// Extra connections opened after the active ones and left silent for the run.
    pub idle: usize,
    /// A thread with messages outstanding that hears nothing for this long
    /// fails them (a hang guard).
    pub timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Open loop: measured messages per connection for `rate` messages/s over
/// `duration` seconds on `conns` connections, at least 1. Every connection
/// gets as many, so the rate is spread evenly.
pub fn open_loop_msgs(rate: f64, duration: Duration, conns: usize) -> u64 {
    let total = rate * duration.as_secs_f64();
    ((total / conns.max(1) as f64).round() as u64).max(1)
}

/// The open-loop schedule: message `k` (0, 1, 2, ... over all connections,
/// warm-up first) is due `k / rate` seconds after the start, on connection
/// `k mod conns`; each connection gets `per_conn` messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second, all connections together.
    pub rate: f64,
    /// Connections the messages are spread over.
    pub conns: usize,
    /// Messages per connection, warm-up included.
    pub per_conn: u64,
}

impl Schedule {
    /// Every message of the run.
    pub fn total(&self) -> u64 {
        self.per_conn * self.conns as u64
    }

    /// When message `k` is due, after the start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// The connection message `k` goes on.
    pub fn conn(&self, k: u64) -> usize {
        (k % self.conns as u64) as usize
    }

    /// Message `k`'s number on its connection (0 for its first).
    pub fn index_on_conn(&self, k: u64) -> u64 {
        k / self.conns as u64
    }

    /// The messages of connections `ids` (ascending), in the order they are due.
    pub fn of(&self, ids: &[usize]) -> impl Iterator<Item = u64> + use<> {
        let (ids, conns) = (ids.to_vec(), self.conns as u64);
        (0..self.per_conn).flat_map(move |round| {
            let ids = ids.clone();
            ids.into_iter().map(move |id| round * conns + id as u64)
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Connections asked for (churn: connections open at once).
    pub conns: usize,
    /// Measured messages per connection asked for.
    pub msgs: u64,
    /// Bytes per message.
    pub size: usize,
    /// How the messages were paced.
    pub pace: Pace,
    /// Client threads used.
    pub threads: usize,
    /// Idle connections asked for.
    pub idle: usize,
    /// Measured messages answered.
    pub messages: u64,
    /// From the first measured message's start (closed loop: its send; open
    /// loop: when it was due) to the last measured reply.
    pub elapsed: Duration,
    /// Failed connects, mismatches, closed connections, timeouts.
    pub errors: u64,
    /// Idle connections the server closed (select's FD_SETSIZE, `--max-conns`).
    pub idle_closed: u64,
    /// Latencies of the measured messages, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Open loop: how late the client queued each measured message after it
    /// was due, in nanoseconds (its own share of the latencies; empty otherwise).
    pub lag: Histogram<u64>,
}

impl Report {
    /// Measured messages answered per second.
    pub fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.messages as f64 / secs } else { 0.0 }
    }

    /// (label, RESULT key, nanoseconds) for p50, p90, p99, p99.9 and max.
    pub fn percentiles(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out: Vec<_> = PERCENTILES
            .iter()
            .map(|&(label, key, q)| (label, key, self.histogram.value_at_quantile(q)))
            .collect();
        out.push(("max", "max_us", self.histogram.max()));
        out
    }

    /// Measured messages whose latency was over 1 ms.
    pub fn over_1ms(&self) -> u64 {
        self.histogram.count_between(OVER_NS + 1, HISTOGRAM_MAX_NS)
    }

    /// The human-readable summary.
    pub fn lines(&self) -> Vec<String> {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.msgs_per_sec();
        let times: Vec<String> = self
            .percentiles()
            .into_iter()
            .map(|(label, _, ns)| format!("{label} {}", format_us(ns)))
            .collect();
        let mut errors = format!("errors: {}", self.errors);
        if self.idle > 0 {
            errors += &format!(", idle connections closed by the server: {}", self.idle_closed);
        }
        let (done, what) = match self.pace {
            Pace::Closed => (
                format!("{} round trips in {secs:.3} s: {rate:.0} messages/s", self.messages),
                "round trip (us)",
            ),
            Pace::Open { rate: offered } => (
                format!(
                    "{} replies in {secs:.3} s: {rate:.0} messages/s achieved, {offered:.0} offered",
                    self.messages
                ),
                "latency (us), from when each message was due",
            ),
            Pace::Churn => (
                format!("{} connections in {secs:.3} s: {rate:.0} connections/s", self.messages),
                "connect to reply (us)",
            ),
        };
        let mut lines = vec![
            done,
            format!("{what}: {}", times.join("  ")),
            format!("over 1 ms: {} of {}", self.over_1ms(), self.messages),
        ];
        if let Pace::Open { .. } = self.pace {
            lines.push(format!(
                "client lateness (us), due to queued: p50 {}  p99 {}  max {}",
                format_us(self.lag.value_at_quantile(0.5)),
                format_us(self.lag.value_at_quantile(0.99)),
                format_us(self.lag.max())
            ));
        }
        lines.push(errors);
        lines.push(self.result_line());
        lines
    }

    /// The machine-readable last line: `RESULT key=value ...`, always the same keys
    /// in the same order, `offered_per_sec` only in open loop.
    pub fn result_line(&self) -> String {
        let mut line = format!(
            "RESULT conns={} msgs={} size={} threads={} idle={} messages={} secs={:.6} msgs_per_sec={:.0}",
            self.conns,
            self.msgs,
            self.size,
            self.threads,
            self.idle,
            self.messages,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec()
        );
        if let Pace::Open { rate } = self.pace {
            line += &format!(" offered_per_sec={rate:.0}");
        }
        for (_, key, ns) in self.percentiles() {
            line += &format!(" {key}={}", format_us(ns));
        }
        line += &format!(
            " errors={} idle_closed={} mode={} over_1ms={}",
            self.errors,
            self.idle_closed,
            self.pace.name(),
            self.over_1ms()
        );
        if let Pace::Open { .. } = self.pace {
            line += &format!(" lag_p99_us={}", format_us(self.lag.value_at_quantile(0.99)));
        }
        line
    }
}

/// Fills `message` with message `index` of connection `conn`: `<conn>.<index> `
/// then lowercase letters, `size` bytes in all. Lowercase ASCII so that both
/// an echo and an uppercasing server can be checked; numbered so that a reply
/// to another message shows, and so that strace output says which is which.
pub fn fill_message(message: &mut Vec<u8>, conn: usize, index: u64, size: usize) {
    message.clear();
    let _ = write!(message, "{conn}.{index} "); // writing to a Vec cannot fail
    message.truncate(size);
    let mut x = ((conn as u64) << 32) ^ index ^ 0x9E37_79B9_7F4A_7C15;
    while message.len() < size {
        // A linear congruential step: cheap, and letters that differ per message.
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        message.push(b'a' + ((x >> 33) % 26) as u8);
    }
}

/// The offset of the first byte of `got` that is not what `sent` must come back as.
pub fn first_mismatch(expect: Expect, sent: &[u8], got: &[u8]) -> Option<usize> {
    sent.iter().zip(got).position(|(&s, &g)| expect.reply_byte(s) != g)
}

/// Threads to use: as asked, at least 1, at most one per connection. 0 asks
/// for one per CPU but one: a client thread costs about what a server thread
/// does per message (a recv and a send each), so a single-threaded server on
/// the same machine needs a core of its own or the two just take turns.
pub fn thread_count(asked: usize, conns: usize, cpus: usize) -> usize {
    let wanted = if asked == 0 { cpus.saturating_sub(1) } else { asked };
    wanted.clamp(1, conns.max(1))
}

/// Runs the load and prints a header, the summary and the RESULT line to `out`.
pub fn run(options: &Options, out: &mut impl Write) -> io::Result<Report> {
    if options.conns == 0 || options.msgs == 0 || options.size == 0 {
        let message = "--conns, --msgs and --size must be at least 1";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    if let Pace::Open { rate } = options.pace
        && !(rate.is_finite() && rate > 0.0)
    {
        let message =
            format!("--rate must be a positive number of messages per second, got {rate}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let addr = resolve(&options.target)?;
    // One descriptor per connection here too.
    if let Err(e) = limits::raise_nofile() {
        warn!("cannot raise RLIMIT_NOFILE: {e}");
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count(options.threads, options.conns, cpus);
    let pacing = match options.pace {
        Pace::Closed => "closed loop".to_string(),
        Pace::Open { rate } => format!("open loop at {rate} messages/s"),
        Pace::Churn => "churn (a connection per message)".to_string(),
    };
    writeln!(
        out,
        "load {} ({addr}): {} x {} of {} bytes, {pacing}, expect {}, warm-up {}, {} idle, {}",
        options.target,
        counted(options.conns as u64, "connection"),
        counted(options.msgs, "message"),
        options.size,
        options.expect.name(),
        options.warmup,
        options.idle,
        counted(threads as u64, "thread")
    )?;
    out.flush()?;
    let total = options.conns as u64 * (options.warmup + options.msgs);
    let shared = Shared {
        options,
        addr,
        barrier: Barrier::new(threads),
        start: OnceLock::new(),
        errors: AtomicU64::new(0),
        bar: options.progress.then(|| progress_bar(total)),
    };
    let tallies: Vec<Tally> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<usize> = (t..options.conns).step_by(threads).collect();
                let idle = options.idle / threads + usize::from(t < options.idle % threads);
                let shared = &shared;
                thread::Builder::new()
                    .name(format!("load-{t}"))
                    .spawn_scoped(scope, move || Worker::run(shared, ids, idle))
                    .expect("spawn a load thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a load thread panicked")).collect()
    });
    if let Some(bar) = &shared.bar {
        bar.finish_and_clear();
    }
    let mut report = Report {
        conns: options.conns,
        msgs: options.msgs,
        size: options.size,
        pace: options.pace,
        threads,
        idle: options.idle,
        messages: 0,
        elapsed: Duration::ZERO,
        errors: shared.errors.load(Ordering::Relaxed),
        idle_closed: 0,
        histogram: new_histogram(),
        lag: new_histogram(),
    };
    let first = tallies.iter().filter_map(|t| t.first_start).min();
    let last = tallies.iter().filter_map(|t| t.last_end).max();
    if let (Some(first), Some(last)) = (first, last) {
        report.elapsed = last.saturating_duration_since(first);
    }
    for tally in tallies {
        report.messages += tally.messages;
        report.idle_closed += tally.idle_closed;
        report.histogram.add(&tally.histogram).expect("histograms of the same bounds");
        report.lag.add(&tally.lag).expect("histograms of the same bounds");
    }
    for line in report.lines() {
        writeln!(out, "{line}")?;
    }
    Ok(report)
}

/// `1 thread`, `2 threads`.
fn counted(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// An empty histogram of latencies in nanoseconds, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

/// A bar of `total` messages on stderr, with the rate so far.
fn progress_bar(total: u64) -> ProgressBar {
    let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0} messages/s", state.per_sec());
    };
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {rate}, eta {eta}")
        .expect("a valid progress template")
        .with_key("rate", rate);
    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style)
}

/// What every thread shares.
struct Shared<'a> {
    /// The options.
    options: &'a Options,
    /// The server.
    addr: SocketAddr,
    /// Where threads wait for each other once connected.
    barrier: Barrier,
    /// When the run started: the open-loop schedule's time zero, the same for every thread.
    start: OnceLock<Instant>,
    /// Errors so far, over all threads.
    errors: AtomicU64,
    /// The progress bar, on a terminal.
    bar: Option<ProgressBar>,
}

impl Shared<'_> {
    /// Counts an error, and logs it if few came before.
    fn error(&self, what: String) {
        let before = self.errors.fetch_add(1, Ordering::Relaxed);
        if before < MAX_LOGGED_ERRORS {
            error!("{what}");
        } else if before == MAX_LOGGED_ERRORS {
            error!("more errors: counted, not logged");
        }
    }

    /// Messages per connection, warm-up included.
    fn per_conn(&self) -> u64 {
        self.options.warmup + self.options.msgs
    }
}

/// What one thread measured.
struct Tally {
    /// Its measured latencies, in nanoseconds.
    histogram: Histogram<u64>,
    /// Open loop: how late it queued each measured message, in nanoseconds.
    lag: Histogram<u64>,
    /// How many.
    messages: u64,
    /// When its first measured message started (closed loop: was sent; open loop: was due).
    first_start: Option<Instant>,
    /// When its last measured reply was complete.
    last_end: Option<Instant>,
    /// Its idle connections the server closed.
    idle_closed: u64,
}

impl Tally {
    /// Nothing measured yet.
    fn new() -> Self {
        Tally {
            histogram: new_histogram(),
            lag: new_histogram(),
            messages: 0,
            first_start: None,
            last_end: None,
            idle_closed: 0,
        }
    }
}

/// A message sent (or to be sent) and not yet answered in full.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Its number on its connection, warm-up included.
    index: u64,
    /// Its length in bytes.
    len: usize,
    /// When its latency starts: when it was due (open loop), or sent.
    due: Instant,
}

/// One active connection.
struct Conn {
    /// Its number, 0 to conns - 1, as written in its messages.
    id: usize,
    /// The non-blocking socket.
    stream: TcpStream,
    /// The bytes of the messages in `queue`, oldest first: what is still owed back.
    out: Vec<u8>,
    /// Bytes of `out` sent so far.
    sent: usize,
    /// Bytes of `out` received back and checked so far.
    received: usize,
    /// The messages outstanding, oldest first.
    queue: VecDeque<Pending>,
    /// Messages queued so far, warm-up included: the next one's number.
    queued: u64,
    /// Messages answered, warm-up included.
    done: u64,
    /// Churn: the connect is still in progress (nothing is sent until it completes).
    connecting: bool,
}

impl Conn {
    /// A connection with nothing outstanding.
    fn new(id: usize, stream: TcpStream, connecting: bool, size: usize) -> Conn {
        Conn {
            id,
            stream,
            out: Vec::with_capacity(size),
            sent: 0,
            received: 0,
            queue: VecDeque::new(),
            queued: 0,
            done: 0,
            connecting,
        }
    }

    /// Appends message number `queued` (`size` bytes), its latency timed from `due`.
    fn enqueue(&mut self, size: usize, due: Instant, scratch: &mut Vec<u8>) {
        fill_message(scratch, self.id, self.queued, size);
        self.out.extend_from_slice(scratch);
        self.queue.push_back(Pending { index: self.queued, len: size, due });
        self.queued += 1;
    }

    /// Input always; output while a connect is in progress or bytes are unsent.
    fn wants(&self) -> Interest {
        Interest { readable: true, writable: self.connecting || self.sent < self.out.len() }
    }
}

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

/// What one turn of an active connection came to.
enum Turn {
    /// No reply completed.
    Waiting,
    /// This many replies (the oldest outstanding) are complete and correct, at this instant.
    Replied(usize, Instant),
    /// It failed; the connection must be closed.
    Failed(String),
}

/// One thread: its connections, indexed by descriptor, and its poller.
struct Worker<'a> {
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
    fn run(shared: &'a Shared<'a>, ids: Vec<usize>, idle: usize) -> Tally {
        let options = shared.options;
        let slots = match FdMap::new(BackendKind::Epoll) {
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

    /// Opens the active connections `ids`.
    fn connect(&mut self, ids: &[usize]) {
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
    fn connect_idle(&mut self, idle: usize) {
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

    /// Open loop: the timer the thread sleeps on between messages. Without it
    /// (it cannot fail but for lack of descriptors), the thread polls throughout.
    fn start_timer(&mut self) {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        match TimerFd::new(ClockId::CLOCK_MONOTONIC, flags) {
            Ok(timer) => match self.slots.insert(Slot::Timer(timer), Interest::READ) {
                Ok(fd) => self.timer = Some(fd),
                Err((_, e)) => warn!("timerfd: {e}; polling between messages instead"),
            },
            Err(e) => warn!("timerfd_create: {e}; polling between messages instead"),
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

    /// Churn: starts a connection for connection number `id`'s message number
    /// `done`, whose latency starts now, with the connect.
    fn open_churn(&mut self, id: usize, done: u64) {
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

    /// Registers a new connection, watched for input.
    fn insert(&mut self, slot: Slot) -> Result<RawFd, SysError> {
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

/// send(2) what is left of the queued bytes, until all are sent or the buffer is full.
fn send_more(conn: &mut Conn) -> Result<(), String> {
    while conn.sent < conn.out.len() {
        match net::send(conn.stream.as_fd(), &[IoSlice::new(&conn.out[conn.sent..])]) {
            Ok(n) => conn.sent += n,
            Err(Errno::EAGAIN) => break,
            Err(errno) => return Err(format!("send: {errno}")),
        }
    }
    Ok(())
}

/// The outstanding message that byte `offset` of `out` belongs to, and the
/// offset of that message's first byte.
fn message_at(queue: &VecDeque<Pending>, offset: usize) -> (u64, usize) {
    let mut start = 0;
    for message in queue {
        if offset < start + message.len {
            return (message.index, start);
        }
        start += message.len;
    }
    (queue.back().map_or(0, |m| m.index), start)
}

/// One ready event of an active connection: completes a connect in progress,
/// sends more if it is writable, then one recv(2) if readable, its bytes
/// checked against what was sent.
fn turn(conn: &mut Conn, event: Event, buf: &mut [u8], expect: Expect) -> Turn {
    if conn.connecting {
        match conn.stream.take_error() {
            Ok(None) => conn.connecting = false,
            Ok(Some(e)) | Err(e) => return Turn::Failed(format!("connect: {e}")),
        }
    }
    if event.writable
        && let Err(why) = send_more(conn)
    {
        return Turn::Failed(why);
    }
    if !event.readable {
        return Turn::Waiting;
    }
    let len = match net::recv(conn.stream.as_fd(), buf) {
        Ok(0) => {
            let (index, start) = message_at(&conn.queue, conn.received);
            return Turn::Failed(format!(
                "the server closed the connection ({} of {} bytes of message {index} back)",
                conn.received - start,
                conn.queue.front().map_or(0, |m| m.len),
            ));
        }
        Ok(len) => len,
        Err(Errno::EAGAIN) => return Turn::Waiting,
        Err(errno) => return Turn::Failed(format!("recv: {errno}")),
    };
    let (from, to) = (conn.received, conn.received + len);
    if to > conn.sent {
        let (index, _) = message_at(&conn.queue, from);
        return Turn::Failed(format!(
            "{} bytes back for {} sent, from message {index} on",
            to - from,
            conn.sent - from
        ));
    }
    if let Some(at) = first_mismatch(expect, &conn.out[from..to], &buf[..len]) {
        let end = len.min(at + 16);
        let wanted: Vec<u8> =
            conn.out[from + at..from + end].iter().map(|&b| expect.reply_byte(b)).collect();
        let (index, start) = message_at(&conn.queue, from + at);
        return Turn::Failed(format!(
            "reply to message {index} differs at byte {}: got \"{}\", expected \"{}\" (--expect {})",
            from + at - start,
            buf[at..end].escape_ascii(),
            wanted.escape_ascii(),
            expect.name()
        ));
    }
    conn.received = to;
    let mut complete = 0;
    let mut end = 0;
    for message in &conn.queue {
        if end + message.len > to {
            break;
        }
        end += message.len;
        complete += 1;
    }
    if complete > 0 { Turn::Replied(complete, Instant::now()) } else { Turn::Waiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conn: usize, index: u64, size: usize) -> Vec<u8> {
        let mut m = Vec::new();
        fill_message(&mut m, conn, index, size);
        m
    }

    #[test]
    fn messages_are_numbered_lowercase_ascii_of_the_asked_size() {
        for size in [1, 5, 8, 64, 1000] {
            let m = message(17, 42, size);
            assert_eq!(m.len(), size);
            assert!(m.iter().all(|b| b.is_ascii() && !b.is_ascii_uppercase()), "{m:?}");
        }
        assert!(message(17, 42, 64).starts_with(b"17.42 "));
        assert_eq!(message(17, 42, 3), b"17.");
        assert_ne!(message(1, 2, 64), message(2, 1, 64));
        assert_ne!(message(1, 2, 64)[8..], message(1, 3, 64)[8..], "letters differ too");
        assert_eq!(message(1, 2, 64), message(1, 2, 64), "deterministic");
    }

    #[test]
    fn fill_reuses_the_buffer() {
        let mut m = b"left over from before".to_vec();
        fill_message(&mut m, 0, 0, 4);
        assert_eq!(m, b"0.0 ");
    }

    #[test]
    fn echo_and_upper_replies_are_checked_byte_by_byte() {
        let sent = b"3.7 abcxyz";
        assert_eq!(first_mismatch(Expect::Echo, sent, b"3.7 abcxyz"), None);
        assert_eq!(first_mismatch(Expect::Echo, sent, b"3.7 abCxyz"), Some(6));
        assert_eq!(first_mismatch(Expect::Upper, sent, b"3.7 ABCXYZ"), None);
        assert_eq!(first_mismatch(Expect::Upper, sent, b"3.7 abcxyz"), Some(4));
        assert_eq!(first_mismatch(Expect::Upper, &sent[4..], b"ABC"), None, "a prefix");
    }

    #[test]
    fn thread_count_is_bounded_by_connections() {
        assert_eq!(thread_count(0, 1, 8), 1);
        assert_eq!(thread_count(0, 1000, 2), 1);
        assert_eq!(thread_count(0, 1000, 8), 7);
        assert_eq!(thread_count(0, 1000, 1), 1);
        assert_eq!(thread_count(4, 2, 2), 2);
        assert_eq!(thread_count(3, 100, 2), 3);
        assert_eq!(thread_count(0, 0, 0), 1);
    }

    fn report(values_us: &[u64]) -> Report {
        let mut histogram = new_histogram();
        for &us in values_us {
            histogram.record(us * 1000).unwrap();
        }
        Report {
            conns: 2,
            msgs: 5,
            size: 64,
            pace: Pace::Closed,
            threads: 1,
            idle: 0,
            messages: values_us.len() as u64,
            elapsed: Duration::from_millis(500),
            errors: 0,
            idle_closed: 0,
            histogram,
            lag: new_histogram(),
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let values: Vec<u64> = (1..=1000).collect();
        let r = report(&values);
        let p: Vec<(&str, u64)> =
            r.percentiles().iter().map(|&(l, _, ns)| (l, ns / 1000)).collect();
        assert_eq!(p, [("p50", 500), ("p90", 900), ("p99", 990), ("p99.9", 999), ("max", 1000)]);
    }

    #[test]
    fn result_line_has_every_key_in_order() {
        let r = report(&[10, 20, 30, 40]);
        assert_eq!(r.msgs_per_sec(), 8.0);
        assert_eq!(
            r.result_line(),
            "RESULT conns=2 msgs=5 size=64 threads=1 idle=0 messages=4 secs=0.500000 \
             msgs_per_sec=8 p50_us=20.0 p90_us=40.0 p99_us=40.0 p999_us=40.0 max_us=40.0 \
             errors=0 idle_closed=0 mode=closed over_1ms=0"
        );
        let lines = r.lines();
        assert_eq!(lines[0], "4 round trips in 0.500 s: 8 messages/s");
        assert_eq!(lines.last().unwrap(), &r.result_line());
    }

    #[test]
    fn open_loop_result_line_has_the_offered_rate_beside_the_achieved_one() {
        let mut r = report(&[10, 2000, 3000, 40]);
        r.pace = Pace::Open { rate: 10.0 };
        let line = r.result_line();
        assert!(line.contains(" msgs_per_sec=8 offered_per_sec=10 p50_us="), "{line}");
        assert!(line.ends_with(" mode=open over_1ms=2 lag_p99_us=0.0"), "{line}");
        assert_eq!(r.lines()[0], "4 replies in 0.500 s: 8 messages/s achieved, 10 offered");
    }

    #[test]
    fn open_loop_messages_per_connection_cover_rate_times_duration() {
        assert_eq!(open_loop_msgs(1000.0, Duration::from_secs(2), 4), 500);
        assert_eq!(open_loop_msgs(1000.0, Duration::from_millis(500), 3), 167, "rounded");
        assert_eq!(open_loop_msgs(1.0, Duration::from_millis(10), 100), 1, "at least one");
    }

    #[test]
    fn schedule_is_evenly_spaced_and_round_robin() {
        let s = Schedule { rate: 1000.0, conns: 4, per_conn: 3 };
        assert_eq!(s.total(), 12);
        for k in 0..s.total() {
            assert_eq!(s.due(k), Duration::from_millis(k), "message {k} is due at k / rate");
            assert_eq!(s.conn(k), (k % 4) as usize);
            assert_eq!(s.index_on_conn(k), k / 4);
        }
    }

    #[test]
    fn schedule_split_over_threads_covers_every_message_once_in_order() {
        for (conns, threads) in [(1, 1), (4, 1), (4, 3), (10, 3), (7, 7)] {
            let s = Schedule { rate: 250.0, conns, per_conn: 5 };
            let mut all = Vec::new();
            for t in 0..threads {
                let ids: Vec<usize> = (t..conns).step_by(threads).collect();
                let mine: Vec<u64> = s.of(&ids).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "in due order: {mine:?}");
                assert!(mine.iter().all(|&k| ids.contains(&s.conn(k))), "its own connections");
                for &id in &ids {
                    let on_id: Vec<u64> =
                        mine.iter().copied().filter(|&k| s.conn(k) == id).collect();
                    let numbers: Vec<u64> = on_id.iter().map(|&k| s.index_on_conn(k)).collect();
                    assert_eq!(
                        numbers,
                        [0, 1, 2, 3, 4],
                        "connection {id}: every message, in order"
                    );
                }
                all.extend(mine);
            }
            all.sort_unstable();
            assert_eq!(
                all,
                (0..s.total()).collect::<Vec<u64>>(),
                "{conns} conns, {threads} threads"
            );
        }
    }

    #[test]
    fn a_connection_is_due_every_conns_over_rate_seconds() {
        let s = Schedule { rate: 100.0, conns: 10, per_conn: 4 };
        let on_3: Vec<Duration> = s.of(&[3]).map(|k| s.due(k)).collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(on_3, [ms(30), ms(130), ms(230), ms(330)]);
    }

    #[test]
    fn a_reply_byte_is_traced_to_its_message() {
        let queue: VecDeque<Pending> =
            (0..3).map(|i| Pending { index: 10 + i, len: 4, due: Instant::now() }).collect();
        assert_eq!(message_at(&queue, 0), (10, 0));
        assert_eq!(message_at(&queue, 5), (11, 4));
        assert_eq!(message_at(&queue, 11), (12, 8));
    }

    #[test]
    fn empty_report_prints_zeros() {
        let mut r = report(&[]);
        r.elapsed = Duration::ZERO;
        r.errors = 3;
        assert!(r.result_line().contains("msgs_per_sec=0 p50_us=0.0"), "{}", r.result_line());
        assert!(r.result_line().ends_with("errors=3 idle_closed=0 mode=closed over_1ms=0"));
    }
}
