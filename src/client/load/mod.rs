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
//! loop (the crate's [`FdMap`](crate::fd_map::FdMap)), so a thousand
//! connections cost a few threads rather than a thousand. All threads
//! connect, meet at a barrier, then run: warm-up messages first (checked, not
//! timed), then the measured ones.

/// One connection's messages: built, queued, sent, and checked as they come back.
mod conn;
/// What a run measured: the summary and the RESULT line.
mod report;
/// The open-loop schedule: when each message is due, and on which connection.
mod schedule;
/// One thread: its connections and its wait loop.
mod worker;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use log::{error, warn};

pub use conn::{fill_message, first_mismatch};
pub use report::Report;
pub use schedule::{EARLY, Schedule, open_loop_msgs};

use super::resolve;
use crate::sys::BackendKind;
use crate::sys::limits;
use report::new_histogram;
use worker::Worker;

/// The target of every log line of `pollmux load`, its threads' too: `pollmux::client::load`.
const LOG: &str = module_path!();
/// Errors logged one by one; past this many they are only counted.
const MAX_LOGGED_ERRORS: u64 = 10;

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
    /// The wait syscall of every client thread.
    pub backend: BackendKind,
    /// Draw a progress bar on stderr.
    pub progress: bool,
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
    check(options)?;
    let addr = resolve(&options.target)?;
    // One descriptor per connection here too.
    if let Err(e) = limits::raise_nofile() {
        warn!("cannot raise RLIMIT_NOFILE: {e}");
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count(options.threads, options.conns, cpus);
    writeln!(out, "{}", header(options, addr, threads))?;
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
    let tallies = run_threads(&shared, threads);
    if let Some(bar) = &shared.bar {
        bar.finish_and_clear();
    }
    let report = gather(options, threads, shared.errors.load(Ordering::Relaxed), tallies);
    for line in report.lines() {
        writeln!(out, "{line}")?;
    }
    Ok(report)
}

/// Refuses options no run can carry out: no connections, messages or bytes,
/// or a rate that is not a positive number.
fn check(options: &Options) -> io::Result<()> {
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
    Ok(())
}

/// The first line printed: what the run is about to do, and against which address.
fn header(options: &Options, addr: SocketAddr, threads: usize) -> String {
    let pacing = match options.pace {
        Pace::Closed => "closed loop".to_string(),
        Pace::Open { rate } => format!("open loop at {rate} messages/s"),
        Pace::Churn => "churn (a connection per message)".to_string(),
    };
    format!(
        "load {} ({addr}): {} x {} of {} bytes, {pacing}, expect {}, warm-up {}, {} idle, {}",
        options.target,
        counted(options.conns as u64, "connection"),
        counted(options.msgs, "message"),
        options.size,
        options.expect.name(),
        options.warmup,
        options.idle,
        counted(threads as u64, "thread")
    )
}

/// Runs `threads` threads, connections dealt to them in turn (and idle ones
/// as evenly), and returns what each measured.
fn run_threads(shared: &Shared<'_>, threads: usize) -> Vec<Tally> {
    let options = shared.options;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<usize> = (t..options.conns).step_by(threads).collect();
                let idle = options.idle / threads + usize::from(t < options.idle % threads);
                thread::Builder::new()
                    .name(format!("load-{t}"))
                    .spawn_scoped(scope, move || Worker::run(shared, ids, idle))
                    .expect("spawn a load thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a load thread panicked")).collect()
    })
}

/// The report of a run from what its threads measured and the errors they counted.
fn gather(options: &Options, threads: usize, errors: u64, tallies: Vec<Tally>) -> Report {
    let mut report = Report {
        conns: options.conns,
        msgs: options.msgs,
        size: options.size,
        pace: options.pace,
        threads,
        idle: options.idle,
        messages: 0,
        elapsed: Duration::ZERO,
        errors,
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
    report
}

/// `1 thread`, `2 threads`.
fn counted(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
