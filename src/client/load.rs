//! `pollmux load`: closed-loop TCP load, every reply byte checked, round trips in an HDR histogram.
//!
//! Each of N connections keeps exactly one message outstanding: the next
//! leaves when the last byte of the previous reply has arrived. The
//! connections are spread over a few threads, each running its own epoll
//! loop (the crate's `Poller`), so a thousand connections cost a few threads
//! rather than a thousand. All threads connect, meet at a barrier, then run:
//! warm-up messages first (checked, not timed), then the measured ones.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use log::{error, warn};
use nix::errno::Errno;

use super::{connect_nonblocking, format_us, resolve};
use crate::fd_map::FdMap;
use crate::sys::{BackendKind, Event, Interest, SysError, limits, net};

/// Errors logged one by one; past this many they are only counted.
const MAX_LOGGED_ERRORS: u64 = 10;
/// The largest round trip the histogram holds: an hour, in nanoseconds.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;
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

/// What `pollmux load` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` of an echo-like TCP server.
    pub target: String,
    /// Connections, each with one message outstanding at a time (at least 1).
    pub conns: usize,
    /// Measured messages per connection (at least 1).
    pub msgs: u64,
    /// Bytes per message (at least 1).
    pub size: usize,
    /// How replies are checked.
    pub expect: Expect,
    /// Messages per connection exchanged and checked before measuring.
    pub warmup: u64,
    /// Client threads; 0 picks one per CPU but one, never more than connections.
    pub threads: usize,
    /// Extra connections opened after the active ones and left silent for the run.
    pub idle: usize,
    /// A thread that hears nothing for this long fails its outstanding messages (a hang guard).
    pub timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Active connections asked for.
    pub conns: usize,
    /// Measured messages per connection asked for.
    pub msgs: u64,
    /// Bytes per message.
    pub size: usize,
    /// Client threads used.
    pub threads: usize,
    /// Idle connections asked for.
    pub idle: usize,
    /// Measured round trips completed.
    pub messages: u64,
    /// From the first measured send to the last measured reply.
    pub elapsed: Duration,
    /// Failed connects, mismatches, closed connections, timeouts.
    pub errors: u64,
    /// Idle connections the server closed (select's FD_SETSIZE, `--max-conns`).
    pub idle_closed: u64,
    /// Round trips of the measured messages, in nanoseconds.
    pub histogram: Histogram<u64>,
}

impl Report {
    /// Measured round trips per second.
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
        vec![
            format!("{} round trips in {secs:.3} s: {rate:.0} messages/s", self.messages),
            format!("round trip (us): {}", times.join("  ")),
            errors,
            self.result_line(),
        ]
    }

    /// The machine-readable last line: `RESULT key=value ...`, always the same keys in the same order.
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
        for (_, key, ns) in self.percentiles() {
            line += &format!(" {key}={}", format_us(ns));
        }
        line + &format!(" errors={} idle_closed={}", self.errors, self.idle_closed)
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
    let addr = resolve(&options.target)?;
    // One descriptor per connection here too.
    if let Err(e) = limits::raise_nofile() {
        warn!("cannot raise RLIMIT_NOFILE: {e}");
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count(options.threads, options.conns, cpus);
    writeln!(
        out,
        "load {} ({addr}): {} x {} of {} bytes, expect {}, warm-up {}, {} idle, {}",
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
        threads,
        idle: options.idle,
        messages: 0,
        elapsed: Duration::ZERO,
        errors: shared.errors.load(Ordering::Relaxed),
        idle_closed: 0,
        histogram: new_histogram(),
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

/// An empty histogram of round trips in nanoseconds, 3 significant digits.
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
}

/// What one thread measured.
struct Tally {
    /// Its measured round trips, in nanoseconds.
    histogram: Histogram<u64>,
    /// How many.
    messages: u64,
    /// When its first measured message left.
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
            messages: 0,
            first_start: None,
            last_end: None,
            idle_closed: 0,
        }
    }
}

/// One active connection.
struct Conn {
    /// Its number, 0 to conns - 1, as written in its messages.
    id: usize,
    /// The non-blocking socket.
    stream: TcpStream,
    /// The message outstanding.
    message: Vec<u8>,
    /// Bytes of it sent so far.
    sent: usize,
    /// Bytes of its reply received and checked so far.
    received: usize,
    /// When its first byte was handed to send(2).
    started: Instant,
    /// Messages completed, warm-up included.
    done: u64,
}

/// What a descriptor of a thread is.
enum Slot {
    /// An active connection.
    Active(Box<Conn>),
    /// An idle connection: only its closing is expected.
    Idle(TcpStream),
}

/// What one turn of an active connection came to.
enum Turn {
    /// Its reply is not complete yet.
    Waiting,
    /// Its reply is complete and correct, at this instant.
    Replied(Instant),
    /// It failed; the connection is closed.
    Failed(String),
}

/// One thread: its connections, indexed by descriptor, and its poller.
struct Worker<'a> {
    /// What all threads share.
    shared: &'a Shared<'a>,
    /// fd -> connection, waiting through epoll (the crate's wait interface).
    slots: FdMap<Slot>,
    /// Active connections not yet finished.
    active: usize,
    /// The read buffer.
    buf: Vec<u8>,
    /// What it measured.
    tally: Tally,
}

impl<'a> Worker<'a> {
    /// Connects the thread's share of connections, waits for the other
    /// threads, then runs every connection to its end.
    fn run(shared: &'a Shared<'a>, ids: Vec<usize>, idle: usize) -> Tally {
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
            active: 0,
            buf: vec![0; net::READ_BUFFER],
            tally: Tally::new(),
        };
        worker.connect(ids, idle);
        shared.barrier.wait();
        let active: Vec<RawFd> = worker
            .slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Active(_)))
            .map(|(fd, _)| fd)
            .collect();
        for fd in active {
            worker.next_message(fd, Instant::now());
        }
        worker.serve_all();
        worker.tally
    }

    /// Opens the active connections, then the idle ones. Idle ones come
    /// last so that, under select(2), the active ones get the server's low
    /// descriptors, below FD_SETSIZE.
    fn connect(&mut self, ids: Vec<usize>, idle: usize) {
        let options = self.shared.options;
        let addr = self.shared.addr;
        for id in ids {
            let opened = connect_nonblocking(addr, options.timeout).map_err(|e| e.to_string());
            let added = opened.and_then(|stream| {
                let conn = Conn {
                    id,
                    stream,
                    message: Vec::with_capacity(options.size),
                    sent: 0,
                    received: 0,
                    started: Instant::now(),
                    done: 0,
                };
                self.insert(Slot::Active(Box::new(conn))).map_err(|e| e.to_string())
            });
            if let Err(e) = added {
                self.shared.error(format!("connection {id}: connect {addr}: {e}"));
            }
        }
        for n in 0..idle {
            let opened = connect_nonblocking(addr, options.timeout).map_err(|e| e.to_string());
            let added = opened
                .and_then(|stream| self.insert(Slot::Idle(stream)).map_err(|e| e.to_string()));
            if let Err(e) = added {
                self.shared.error(format!("idle connection {n}: connect {addr}: {e}"));
            }
        }
    }

    /// Waits and serves until every active connection has finished or failed.
    fn serve_all(&mut self) {
        let timeout = self.shared.options.timeout;
        let mut events = Vec::new();
        let mut last_heard = Instant::now();
        while self.active > 0 {
            if let Err(e) = self.slots.wait(Some(timeout), &mut events) {
                self.fail_all(&format!("epoll_wait: {e}"));
                return;
            }
            if events.is_empty() {
                if last_heard.elapsed() >= timeout {
                    self.fail_all(&format!("no reply within {timeout:?}"));
                }
                continue;
            }
            last_heard = Instant::now();
            let mut replies = 0;
            for &event in &events {
                replies += u64::from(self.on_event(event));
            }
            if let Some(bar) = &self.shared.bar {
                bar.inc(replies);
            }
        }
    }

    /// Serves one ready descriptor; true when a reply completed.
    fn on_event(&mut self, event: Event) -> bool {
        let fd = event.fd;
        let options = self.shared.options;
        let turn = match self.slots.get_mut(fd) {
            Some(Slot::Active(conn)) => turn(conn, event, &mut self.buf, options.expect),
            Some(Slot::Idle(stream)) => {
                // Anything on an idle connection is its end, or bytes nobody asked for.
                match net::recv(stream.as_fd(), &mut self.buf) {
                    Err(Errno::EAGAIN) => return false,
                    Ok(0) | Err(_) => self.tally.idle_closed += 1,
                    Ok(n) => self.shared.error(format!("idle connection: {n} unexpected bytes")),
                }
                self.close(fd);
                return false;
            }
            None => return false,
        };
        let Some(Slot::Active(conn)) = self.slots.get_mut(fd) else { return false };
        match turn {
            Turn::Waiting => {
                self.rewatch(fd);
                false
            }
            Turn::Replied(now) => {
                if conn.done >= options.warmup {
                    let rtt = now.saturating_duration_since(conn.started);
                    self.tally.histogram.saturating_record(rtt.as_nanos() as u64);
                    self.tally.messages += 1;
                    self.tally.last_end = Some(now);
                }
                conn.done += 1;
                if conn.done == options.warmup + options.msgs {
                    self.close(fd);
                } else {
                    self.next_message(fd, now);
                }
                true
            }
            Turn::Failed(why) => {
                let why = format!("connection {}: {why}", conn.id);
                self.fail(fd, why);
                false
            }
        }
    }

    /// Builds and sends the next message of the connection on `fd`.
    fn next_message(&mut self, fd: RawFd, now: Instant) {
        let options = self.shared.options;
        let Some(Slot::Active(conn)) = self.slots.get_mut(fd) else { return };
        fill_message(&mut conn.message, conn.id, conn.done, options.size);
        conn.sent = 0;
        conn.received = 0;
        conn.started = now;
        if conn.done == options.warmup && self.tally.first_start.is_none_or(|first| now < first) {
            self.tally.first_start = Some(now);
        }
        match send_more(conn) {
            Ok(()) => self.rewatch(fd),
            Err(why) => {
                let why = format!("connection {}: {why}", conn.id);
                self.fail(fd, why);
            }
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
                        "connection {}: {why} (message {}, {} of {} bytes back)",
                        conn.id,
                        conn.done,
                        conn.received,
                        conn.message.len()
                    ),
                )),
                Slot::Idle(_) => None,
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
    fn insert(&mut self, slot: Slot) -> Result<(), SysError> {
        let active = matches!(slot, Slot::Active(_));
        self.slots.insert(slot, Interest::READ).map_err(|(_, e)| e)?;
        self.active += usize::from(active);
        Ok(())
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

    /// Stops watching `fd` and closes it.
    fn close(&mut self, fd: RawFd) {
        if let Some(slot) = self.slots.remove(fd) {
            self.active -= usize::from(matches!(slot, Slot::Active(_)));
        }
    }
}

impl AsFd for Slot {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Slot::Active(conn) => conn.stream.as_fd(),
            Slot::Idle(stream) => stream.as_fd(),
        }
    }
}

impl Conn {
    /// Input always; output while part of the message is unsent.
    fn wants(&self) -> Interest {
        Interest { readable: true, writable: self.sent < self.message.len() }
    }
}

/// send(2) what is left of the message, until it is all sent or the buffer is full.
fn send_more(conn: &mut Conn) -> Result<(), String> {
    while conn.sent < conn.message.len() {
        match net::send(conn.stream.as_fd(), &[IoSlice::new(&conn.message[conn.sent..])]) {
            Ok(n) => conn.sent += n,
            Err(Errno::EAGAIN) => break,
            Err(errno) => return Err(format!("send: {errno}")),
        }
    }
    Ok(())
}

/// One ready event of an active connection: send more if it is writable, then
/// one recv(2) if readable, its bytes checked against the message.
fn turn(conn: &mut Conn, event: Event, buf: &mut [u8], expect: Expect) -> Turn {
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
            return Turn::Failed(format!(
                "the server closed the connection ({} of {} bytes of message {} back)",
                conn.received,
                conn.message.len(),
                conn.done
            ));
        }
        Ok(len) => len,
        Err(Errno::EAGAIN) => return Turn::Waiting,
        Err(errno) => return Turn::Failed(format!("recv: {errno}")),
    };
    let (from, to) = (conn.received, conn.received + len);
    if to > conn.sent {
        return Turn::Failed(format!(
            "{to} bytes back for {} sent of message {}",
            conn.sent, conn.done
        ));
    }
    if let Some(at) = first_mismatch(expect, &conn.message[from..to], &buf[..len]) {
        let end = len.min(at + 16);
        let wanted: Vec<u8> =
            conn.message[from + at..from + end].iter().map(|&b| expect.reply_byte(b)).collect();
        return Turn::Failed(format!(
            "reply to message {} differs at byte {}: got \"{}\", expected \"{}\" (--expect {})",
            conn.done,
            from + at,
            buf[at..end].escape_ascii(),
            wanted.escape_ascii(),
            expect.name()
        ));
    }
    conn.received = to;
    if to == conn.message.len() { Turn::Replied(Instant::now()) } else { Turn::Waiting }
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
            threads: 1,
            idle: 0,
            messages: values_us.len() as u64,
            elapsed: Duration::from_millis(500),
            errors: 0,
            idle_closed: 0,
            histogram,
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
             errors=0 idle_closed=0"
        );
        let lines = r.lines();
        assert_eq!(lines[0], "4 round trips in 0.500 s: 8 messages/s");
        assert_eq!(lines.last().unwrap(), &r.result_line());
    }

    #[test]
    fn empty_report_prints_zeros() {
        let mut r = report(&[]);
        r.elapsed = Duration::ZERO;
        r.errors = 3;
        assert!(r.result_line().contains("msgs_per_sec=0 p50_us=0.0"), "{}", r.result_line());
        assert!(r.result_line().ends_with("errors=3 idle_closed=0"));
    }
}
