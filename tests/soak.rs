//! The soak: 1,000 connections at once over the four TCP services, each with
//! a random script (random message sizes, random frame and array requests)
//! written in random chunks and read in random pieces, replaced by a new one
//! as it completes, plus stop-and-wait UDP traffic on both UDP services, for a
//! bounded time. Every byte that comes back is checked against what the
//! services must answer; the run ends with a summary line and `lost 0`.
//!
//! `SOAK_SECS` sets the time per backend (5 s by default, so `make test`
//! spends 15 s here); `make soak` runs 60 s per backend in release mode.
//! A few driver threads, each with a non-blocking poll loop
//! (`pollmux::sys::Poller` over epoll), stand for the 1,000 clients.

mod common;

use common::*;
use pollmux::fd_map::FdMap;
use pollmux::sys::{BackendKind, Event, Interest};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::thread;
use std::time::{Duration, Instant};

common::backend_tests!(soak_delivers_every_byte_over_a_thousand_connections_with_random_splits);

/// Connections open at once. With the server's own descriptors this stays
/// under select's FD_SETSIZE (1024): past it, select refuses connections.
const CONNECTIONS: usize = 1000;
/// Threads driving them.
const DRIVERS: usize = 4;
/// Values tcp-array serves (8 MiB).
const ARRAY_LEN: usize = 1 << 20;
/// Seconds per backend when `SOAK_SECS` is not set.
const DEFAULT_SECS: f64 = 5.0;
/// No byte moving for this long fails the run (a hang guard, not a measure).
const STALL: Duration = Duration::from_secs(30);
/// A datagram unanswered this long is sent again (UDP may drop).
const UDP_RESEND: Duration = Duration::from_millis(500);

const TCP_SERVICES: [&str; 4] = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array"];

fn soak_time() -> Duration {
    match std::env::var("SOAK_SECS") {
        Ok(v) => Duration::from_secs_f64(
            v.parse().unwrap_or_else(|_| panic!("SOAK_SECS={v:?} is not a number of seconds")),
        ),
        Err(_) => Duration::from_secs_f64(DEFAULT_SECS),
    }
}

/// What one driver (and then the whole run) did.
#[derive(Default)]
struct Tally {
    /// TCP connections that completed their script.
    connections: u64,
    /// Messages (echo writes, upper texts, frames, array requests) answered in full.
    messages: u64,
    /// Bytes written to the server, TCP and UDP.
    bytes_sent: u64,
    /// Bytes received from the server and checked, TCP and UDP.
    bytes_checked: u64,
    /// Datagrams answered (and checked).
    datagrams: u64,
    /// Datagrams sent again after no answer came.
    resent: u64,
    /// TCP bytes owed but never delivered, or delivered wrong.
    lost: u64,
    /// What went wrong, per connection.
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.connections += other.connections;
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_checked += other.bytes_checked;
        self.datagrams += other.datagrams;
        self.resent += other.resent;
        self.lost += other.lost;
        self.errors.extend(other.errors);
    }
}

// ------------------------------------------------------------------- scripts

/// A message size: mostly tiny, sometimes KiBs or tens of KiB, rarely over
/// half a MiB (larger than the socket buffers and `--max-pending`).
fn message_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0 => (64 << 10) + rng.below(512 << 10),
        1..=9 => (4 << 10) + rng.below(32 << 10),
        10..=39 => 64 + rng.below(4 << 10),
        _ => rng.below(64),
    }
}

/// How much one write call offers: often a few bytes, sometimes a lot.
fn write_size(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=3 => 1 + rng.below(16),
        4..=7 => 1 + rng.below(2048),
        _ => 1 + rng.below(64 << 10),
    }
}

/// Text and bytes to cut messages from, built once: generating megabytes of
/// random text per connection would make the clients, not the server, the
/// bottleneck of the run.
struct Pool {
    /// Random bytes, for tcp-echo and udp-ping.
    bytes: Vec<u8>,
    /// Random text of `MIXED_CHARS`.
    text: Vec<u8>,
    /// The text uppercased character by character (what the services answer).
    upper: Vec<u8>,
    /// For each character boundary: its offset in `text` and in `upper`.
    bounds: Vec<(usize, usize)>,
    /// tcp-array's values in wire form.
    array: Vec<u8>,
}

/// The one pool, shared by every driver.
fn pool() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(Pool::new)
}

impl Pool {
    fn new() -> Pool {
        let mut rng = Rng::new(7);
        let mut bytes = Vec::with_capacity(POOL);
        while bytes.len() < POOL {
            bytes.extend_from_slice(&rng.next().to_le_bytes());
        }
        let (mut text, mut upper, mut bounds) = (Vec::new(), Vec::new(), vec![(0, 0)]);
        let mut utf8 = [0u8; 4];
        while text.len() < POOL {
            let c = MIXED_CHARS[rng.below(MIXED_CHARS.len())];
            text.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            for u in c.to_uppercase() {
                upper.extend_from_slice(u.encode_utf8(&mut utf8).as_bytes());
            }
            bounds.push((text.len(), upper.len()));
        }
        let (t, u) = bounds[4096];
        assert_eq!(upper_model(&text[..t]), upper[..u], "the pool's uppercase disagrees");
        let array = (0..ARRAY_LEN).flat_map(|i| (i as f64).to_le_bytes()).collect();
        Pool { bytes, text, upper, bounds, array }
    }

    /// About `len` random bytes.
    fn bytes(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let start = rng.below(self.bytes.len() - len + 1);
        &self.bytes[start..start + len]
    }

    /// About `len` bytes of whole characters, and their uppercase.
    fn text(&self, rng: &mut Rng, len: usize) -> (&[u8], &[u8]) {
        let chars = self.bounds.len() - 1;
        let first = rng.below(chars - len.min(chars) + 1);
        // Characters are 1 to 4 bytes: take as many as make `len` or more.
        let mut last = first + (len / 4).min(chars - first);
        while last < chars && self.bounds[last].0 - self.bounds[first].0 < len {
            last += 1;
        }
        let ((t0, u0), (t1, u1)) = (self.bounds[first], self.bounds[last]);
        (&self.text[t0..t1], &self.upper[u0..u1])
    }
}

/// Bytes in each pool: larger than any message.
const POOL: usize = 4 << 20;

/// What one connection sends and must get back.
struct Script {
    wire: Vec<u8>,
    expected: Vec<u8>,
    messages: u64,
}

fn script(service: &str, rng: &mut Rng, pool: &Pool) -> Script {
    let messages = 1 + rng.below(12);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..messages {
        let size = message_size(rng);
        match service {
            "tcp-echo" => {
                let bytes = pool.bytes(rng, size);
                wire.extend_from_slice(bytes);
                expected.extend_from_slice(bytes);
            }
            "tcp-upper" => {
                let (text, upper) = pool.text(rng, size);
                wire.extend_from_slice(text);
                expected.extend_from_slice(upper);
                // Now and then a byte that can never be UTF-8 here (the stream
                // is cut at character boundaries), passed through as is.
                if rng.below(8) == 0 {
                    let stray = [0xff, 0x80][rng.below(2)];
                    wire.push(stray);
                    expected.push(stray);
                }
            }
            "tcp-frame" => {
                let (text, upper) = pool.text(rng, size);
                wire.extend(frame(text));
                expected.extend(frame(upper));
            }
            "tcp-array" => {
                let count = (size / 8).min(ARRAY_LEN);
                let offset = rng.below(ARRAY_LEN - count + 1);
                wire.extend(array_request(&format!("{offset}:{count}")));
                expected.extend_from_slice(&(1 + 8 * count as u32).to_be_bytes());
                expected.push(0);
                expected.extend_from_slice(&pool.array[offset * 8..(offset + count) * 8]);
            }
            other => unreachable!("{other}"),
        }
    }
    Script { wire, expected, messages: messages as u64 }
}

// ------------------------------------------------------------- TCP clients

struct Conn {
    id: u64,
    service: &'static str,
    stream: TcpStream,
    script: Script,
    written: usize,
    received: usize,
    write_shut: bool,
}

enum Outcome {
    Going,
    Done,
    Failed(String),
}

impl Conn {
    fn open(id: u64, service: &'static str, addr: SocketAddr, rng: &mut Rng, pool: &Pool) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {service} at {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_nonblocking(true).unwrap();
        Conn {
            id,
            service,
            stream,
            script: script(service, rng, pool),
            written: 0,
            received: 0,
            write_shut: false,
        }
    }

    fn wanted(&self) -> Interest {
        Interest { readable: true, writable: !self.write_shut }
    }

    /// Writes a few randomly sized pieces; half-closes once all is written.
    fn write_some(&mut self, rng: &mut Rng, tally: &mut Tally) -> Result<bool, String> {
        let mut moved = false;
        for _ in 0..8 {
            let wire = &self.script.wire;
            if self.written == wire.len() {
                if !self.write_shut {
                    self.stream.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
                    self.write_shut = true;
                }
                break;
            }
            let len = write_size(rng).min(wire.len() - self.written);
            match self.stream.write(&wire[self.written..self.written + len]) {
                Ok(n) => {
                    self.written += n;
                    tally.bytes_sent += n as u64;
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write after {} bytes: {e}", self.written)),
            }
        }
        Ok(moved)
    }

    /// Reads a few randomly sized pieces, checking each against what is owed.
    fn read_some(
        &mut self,
        rng: &mut Rng,
        buf: &mut [u8],
        tally: &mut Tally,
    ) -> Result<Option<bool>, String> {
        let mut moved = false;
        for _ in 0..8 {
            let cap = 1 + rng.below(buf.len());
            match self.stream.read(&mut buf[..cap]) {
                Ok(0) => {
                    let owed = self.script.expected.len();
                    if self.received == owed && self.write_shut {
                        return Ok(None);
                    }
                    return Err(format!(
                        "EOF after {} of {owed} bytes owed ({} of {} written)",
                        self.received,
                        self.written,
                        self.script.wire.len()
                    ));
                }
                Ok(n) => {
                    let expected = &self.script.expected;
                    let end = self.received + n;
                    if end > expected.len() {
                        return Err(format!(
                            "{} bytes more than the {} owed",
                            end - expected.len(),
                            expected.len()
                        ));
                    }
                    if buf[..n] != expected[self.received..end] {
                        let at = buf[..n]
                            .iter()
                            .zip(&expected[self.received..end])
                            .position(|(a, b)| a != b)
                            .unwrap();
                        return Err(format!(
                            "byte {} of {} differs: got {:?}, expected {:?}",
                            self.received + at,
                            expected.len(),
                            Shown(&buf[at..n.min(at + 32)]),
                            Shown(&expected[self.received + at..end.min(self.received + at + 32)])
                        ));
                    }
                    self.received = end;
                    tally.bytes_checked += n as u64;
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {} bytes: {e}", self.received)),
            }
        }
        Ok(Some(moved))
    }

    fn on_event(
        &mut self,
        event: &Event,
        rng: &mut Rng,
        buf: &mut [u8],
        tally: &mut Tally,
        moved: &mut bool,
    ) -> Outcome {
        if event.readable {
            match self.read_some(rng, buf, tally) {
                Ok(None) => return Outcome::Done,
                Ok(Some(m)) => *moved |= m,
                Err(e) => return Outcome::Failed(e),
            }
        }
        if event.writable {
            match self.write_some(rng, tally) {
                Ok(m) => *moved |= m,
                Err(e) => return Outcome::Failed(e),
            }
        }
        Outcome::Going
    }
}

// ------------------------------------------------------------- UDP clients

/// One UDP socket with at most one datagram awaiting its answer.
struct Flow {
    service: &'static str,
    socket: UdpSocket,
    seq: u64,
    /// The datagram, its expected answer, and when to send it again.
    outstanding: Option<(Vec<u8>, Vec<u8>, Instant)>,
}

impl Flow {
    fn new(service: &'static str, addr: SocketAddr) -> Flow {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        socket.set_nonblocking(true).unwrap();
        Flow { service, socket, seq: 0, outstanding: None }
    }

    /// The number an answer carries: which datagram it answers.
    fn seq_of(&self, answer: &[u8]) -> Option<u64> {
        let prefix: &[u8] = if self.service == "udp-ping" { b"PONG " } else { b"SEQ " };
        let digits = answer.strip_prefix(prefix)?;
        let end = digits.iter().position(|&b| b == b' ')?;
        std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
    }

    fn send_next(&mut self, rng: &mut Rng, pool: &Pool, tally: &mut Tally) {
        self.seq += 1;
        let size = if rng.below(20) == 0 { rng.below(16 << 10) } else { rng.below(1400) };
        let (datagram, answer) = match self.service {
            "udp-ping" => {
                let rest = pool.bytes(rng, size);
                let datagram = [format!("PING {} ", self.seq).as_bytes(), rest].concat();
                (datagram, [format!("PONG {} ", self.seq).as_bytes(), rest].concat())
            }
            _ => {
                let (text, upper) = pool.text(rng, size);
                let datagram = [format!("seq {} ", self.seq).as_bytes(), text].concat();
                (datagram, [format!("SEQ {} ", self.seq).as_bytes(), upper].concat())
            }
        };
        self.outstanding = Some((datagram, answer, Instant::now()));
        self.send(tally);
    }

    fn send(&mut self, tally: &mut Tally) {
        let (datagram, _, due) = self.outstanding.as_mut().unwrap();
        *due = Instant::now() + UDP_RESEND;
        match self.socket.send(datagram) {
            Ok(n) => tally.bytes_sent += n as u64,
            // A full buffer: the resend will try again.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{} send: {e}", self.service),
        }
    }

    /// Takes every answer waiting; returns whether the outstanding one came.
    fn receive(&mut self, buf: &mut [u8], tally: &mut Tally) -> bool {
        let mut answered = false;
        loop {
            let n = match self.socket.recv(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return answered,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("{} recv: {e}", self.service),
            };
            let got = &buf[..n];
            match &self.outstanding {
                Some((_, answer, _)) if got == answer.as_slice() => {
                    tally.datagrams += 1;
                    tally.bytes_checked += n as u64;
                    self.outstanding = None;
                    answered = true;
                }
                // A second answer to a datagram already answered (it was sent twice).
                _ if self.seq_of(got).is_some_and(|s| {
                    s < self.seq || (s == self.seq && self.outstanding.is_none())
                }) => {}
                _ => tally.errors.push(format!(
                    "{} datagram {}: unexpected answer {:?}",
                    self.service,
                    self.seq,
                    Shown(&got[..n.min(64)])
                )),
            }
        }
    }
}

// ------------------------------------------------------------------- drivers

/// Runs `count` connections at a time until `deadline`, then lets the open
/// ones finish; returns the tally.
fn drive(
    seed: u64,
    count: usize,
    tcp: [SocketAddr; 4],
    udp: [(&'static str, SocketAddr); 2],
    deadline: Instant,
) -> Tally {
    let pool = pool();
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    // The crate's own fd table and wait protocol, as the server uses them.
    let mut peers: FdMap<Peer> = FdMap::new(BackendKind::Epoll).unwrap();
    let mut next_id = seed << 32;
    let mut open = |rng: &mut Rng, peers: &mut FdMap<Peer>| {
        let which = rng.below(TCP_SERVICES.len());
        next_id += 1;
        let conn = Conn::open(next_id, TCP_SERVICES[which], tcp[which], rng, pool);
        peers.insert(Peer::Tcp(conn), Interest::READ_WRITE).map_err(|(_, e)| e).unwrap();
    };
    for _ in 0..count {
        open(&mut rng, &mut peers);
    }
    let mut flow_fds = Vec::new();
    for &(service, addr) in &udp {
        let mut flow = Flow::new(service, addr);
        flow.send_next(&mut rng, pool, &mut tally);
        flow_fds.push(peers.insert(Peer::Udp(flow), Interest::READ).map_err(|(_, e)| e).unwrap());
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut events = Vec::new();
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let running = now < deadline;
        let conns = peers.len() - flow_fds.len();
        let flows_idle = flow_fds.iter().all(|&fd| flow(&mut peers, fd).outstanding.is_none());
        if !running && conns == 0 && flows_idle {
            return tally;
        }
        assert!(
            now.duration_since(last_progress) < STALL,
            "no byte moved for {STALL:?}; {conns} connections open, e.g. {:?}",
            peers
                .iter()
                .filter_map(|(_, p)| match p {
                    Peer::Tcp(c) =>
                        Some((c.id, c.service, c.written, c.script.wire.len(), c.received)),
                    Peer::Udp(_) => None,
                })
                .take(5)
                .collect::<Vec<_>>()
        );
        let mut wake = None;
        for &fd in &flow_fds {
            let flow = flow(&mut peers, fd);
            if flow.outstanding.as_ref().is_some_and(|(_, _, due)| now >= *due) {
                tally.resent += 1;
                flow.send(&mut tally);
            }
            wake = wake.into_iter().chain(flow.outstanding.as_ref().map(|o| o.2)).min();
        }
        let timeout = wake
            .map_or(UDP_RESEND, |w: Instant| w.saturating_duration_since(now))
            .min(Duration::from_millis(100));
        peers.wait(Some(timeout), &mut events).unwrap();
        let mut moved = false;
        for event in &events {
            let conn = match peers.get_mut(event.fd) {
                Some(Peer::Udp(flow)) => {
                    if flow.receive(&mut buf, &mut tally) {
                        moved = true;
                        if running {
                            flow.send_next(&mut rng, pool, &mut tally);
                        }
                    }
                    continue;
                }
                Some(Peer::Tcp(conn)) => conn,
                None => continue,
            };
            let outcome = conn.on_event(event, &mut rng, &mut buf, &mut tally, &mut moved);
            match outcome {
                Outcome::Going => {
                    let wanted = conn.wanted();
                    peers.set_interest(event.fd, wanted).unwrap();
                    continue;
                }
                Outcome::Done => {
                    tally.connections += 1;
                    tally.messages += conn.script.messages;
                }
                Outcome::Failed(why) => {
                    tally.lost += (conn.script.expected.len() - conn.received) as u64;
                    tally.errors.push(format!("connection {} ({}): {why}", conn.id, conn.service));
                }
            }
            moved = true;
            drop(peers.remove(event.fd));
            if running {
                open(&mut rng, &mut peers);
            }
        }
        if moved {
            last_progress = Instant::now();
        }
    }
}

/// What one of the soak client's descriptors is.
enum Peer {
    /// A TCP connection running its script.
    Tcp(Conn),
    /// A UDP flow, one datagram outstanding at a time.
    Udp(Flow),
}

impl AsFd for Peer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Peer::Tcp(conn) => conn.stream.as_fd(),
            Peer::Udp(flow) => flow.socket.as_fd(),
        }
    }
}

/// The UDP flow on `fd`.
fn flow(peers: &mut FdMap<Peer>, fd: RawFd) -> &mut Flow {
    match peers.get_mut(fd) {
        Some(Peer::Udp(flow)) => flow,
        _ => unreachable!("fd {fd} is a UDP flow"),
    }
}

fn peak_rss_mib(pid: libc::pid_t) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

fn soak_delivers_every_byte_over_a_thousand_connections_with_random_splits(backend: &str) {
    pollmux::sys::limits::raise_nofile().expect("raise RLIMIT_NOFILE");
    let time = soak_time();
    pool();
    let srv = Server::start(backend, &["--array-len", &ARRAY_LEN.to_string()]);
    let tcp = TCP_SERVICES.map(|s| srv.addr(s));
    let udp = [("udp-upper", srv.addr("udp-upper")), ("udp-ping", srv.addr("udp-ping"))];
    let started = Instant::now();
    let deadline = started + time;
    let base_seed = match backend {
        "poll" => 1,
        "select" => 2,
        _ => 3,
    } * 1000;
    let drivers: Vec<thread::JoinHandle<Tally>> = (0..DRIVERS)
        .map(|d| {
            let seed = base_seed + d as u64;
            thread::spawn(move || drive(seed, CONNECTIONS / DRIVERS, tcp, udp, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for driver in drivers {
        match driver.join() {
            Ok(t) => tally.add(t),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    let took = started.elapsed();
    let peak = peak_rss_mib(srv.pid());
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    println!(
        "soak {backend}: {:.1} s, connections {}, messages {}, bytes {} sent {} checked, \
         datagrams {} (resent {}), server peak RSS {peak} MiB, lost {}",
        took.as_secs_f64(),
        tally.connections,
        tally.messages,
        tally.bytes_sent,
        tally.bytes_checked,
        tally.datagrams,
        tally.resent,
        tally.lost
    );
    let shown: Vec<&String> = tally.errors.iter().take(10).collect();
    assert!(
        tally.errors.is_empty() && tally.lost == 0,
        "{backend}: {} errors, lost {}; first ones:\n{shown:#?}\nserver stderr:\n{}",
        tally.errors.len(),
        tally.lost,
        done.stderr
    );
    assert!(tally.connections >= CONNECTIONS as u64, "only {} connections", tally.connections);
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    let complaints: Vec<&str> =
        done.stderr.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert!(complaints.is_empty(), "the server complained:\n{}", complaints.join("\n"));
}
