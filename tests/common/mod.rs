//! Shared harness of the integration tests: a running `pollmux serve`, clients
//! with hang guards, the wire formats and a model of the uppercasing.
//!
//! No test synchronises by sleeping: the server is ready once it has printed its
//! `listening` lines, and a reply read back proves the server consumed what came
//! before it. Timeouts here only turn a hang into a failure.

#![allow(dead_code)]

pub mod process;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use process::Spawned;

/// Every backend; each integration test runs against each of them.
pub const BACKENDS: &[&str] = &["poll", "select", "epoll"];

/// Every service, by the name used in its flag and its `listening` line.
pub const SERVICES: &[&str] =
    &["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"];

/// The `--array-len` of servers whose test does not set one.
pub const DEFAULT_ARRAY_LEN: usize = 1000;

/// How long the server may take to print its `listening` lines or to exit.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);
/// Read and write timeout of every client socket: a hang guard only.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs each listed `fn name(backend: &str)` once per backend, as
/// `poll::name`, `select::name` and `epoll::name`.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod poll {
            $(#[test]
            fn $name() {
                super::$name("poll")
            })+
        }
        mod select {
            $(#[test]
            fn $name() {
                super::$name("select")
            })+
        }
        mod epoll {
            $(#[test]
            fn $name() {
                super::$name("epoll")
            })+
        }
    };
}
pub(crate) use backend_tests;

/// A running `pollmux serve`; killed on drop, and its stderr is printed if the
/// test is failing at that moment.
pub struct Server {
    proc: Spawned,
    addrs: HashMap<String, SocketAddr>,
}

/// What a server left behind once it exited.
pub struct Finished {
    pub status: ExitStatus,
    /// Stdout lines printed after the `listening` lines `Server::start` consumed.
    pub later_stdout: Vec<String>,
    pub stderr: String,
}

impl Server {
    /// Starts `pollmux serve --backend BACKEND` with every port flag set to 0 and
    /// `--array-len DEFAULT_ARRAY_LEN`, then `extra_args` (which may override any of them, e.g. `--tcp-echo off`),
    /// and waits until every enabled service printed its `listening` line.
    pub fn start(backend: &str, extra_args: &[&str]) -> Server {
        Server::start_with(backend, extra_args, |_| {})
    }

    /// `start`, letting `configure` adjust the command before it is spawned
    /// (e.g. a `pre_exec` that lowers a resource limit).
    pub fn start_with(
        backend: &str,
        extra_args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let mut args: Vec<String> = vec!["serve".into(), "--backend".into(), backend.into()];
        for service in SERVICES {
            let flag = format!("--{service}");
            let overridden =
                extra_args.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
            if !overridden {
                args.push(flag);
                args.push("0".into());
            }
        }
        // A small array unless a test asks otherwise: the default is large, and
        // building it would dominate every test's run time.
        if !extra_args.iter().any(|a| a.starts_with("--array-len")) {
            args.extend(["--array-len".into(), DEFAULT_ARRAY_LEN.to_string()]);
        }
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let enabled: Vec<&str> = SERVICES
            .iter()
            .copied()
            .filter(|s| flag_value(&args, s).as_deref() != Some("off"))
            .collect();

        let mut command = Command::new(env!("CARGO_BIN_EXE_pollmux"));
        configure(&mut command);
        command.args(&args);
        let proc = Spawned::spawn(&mut command).expect("spawn pollmux");
        let mut server = Server { proc, addrs: HashMap::new() };
        match server.proc.listening(&enabled, true, PROCESS_DEADLINE) {
            Ok(addrs) => server.addrs = addrs,
            Err(why) => panic!("pollmux {args:?}: {why}\nstderr:\n{}", server.stderr()),
        }
        server
    }

    /// Starts a comparison server, `pollmux serve --model MODEL` (sequential,
    /// threads, pool): tcp-echo alone, on a free port, every other service off.
    pub fn start_model(model: &str) -> Server {
        Server::start_model_with(model, &[])
    }

    /// `start_model`, then `extra_args` (which may turn a service back on:
    /// `--tcp-upper 0`), waiting for the `listening` line of each service on.
    pub fn start_model_with(model: &str, extra_args: &[&str]) -> Server {
        let mut args = vec!["--model".to_string(), model.to_string()];
        for service in SERVICES.iter().filter(|s| **s != "tcp-echo") {
            let flag = format!("--{service}");
            if !extra_args.contains(&flag.as_str()) {
                args.extend([flag, "off".to_string()]);
            }
        }
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start("poll", &args)
    }

    /// The address a service announced.
    pub fn addr(&self, service: &str) -> SocketAddr {
        *self
            .addrs
            .get(service)
            .unwrap_or_else(|| panic!("no listening line for {service}: {:?}", self.addrs))
    }

    /// Every announced service and its address.
    pub fn addrs(&self) -> &HashMap<String, SocketAddr> {
        &self.addrs
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// Waits (at most `PROCESS_DEADLINE`) until stderr contains `needle`, and returns it all.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        self.wait_for_stderr_until(needle, |text| text.contains(needle))
    }

    /// Waits (at most `PROCESS_DEADLINE`) until `done` holds for all of stderr so
    /// far, and returns it all; `what` names the wait in the failure message.
    pub fn wait_for_stderr_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.proc.stderr.wait_until(PROCESS_DEADLINE, done).unwrap_or_else(|text| {
            panic!("stderr: no {what:?} after {PROCESS_DEADLINE:?}:\n{text}")
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.proc.pid
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: libc::c_int) {
        let rc = self.proc.signal(signal);
        assert!(rc.is_ok(), "kill({}, {signal})", self.proc.pid);
    }

    /// Waits (at most `PROCESS_DEADLINE`) for the server to exit by itself.
    pub fn wait(mut self) -> Finished {
        let (status, killed) = self.proc.wait_timeout(PROCESS_DEADLINE).expect("wait pollmux");
        if killed {
            panic!("pollmux did not exit within {PROCESS_DEADLINE:?}\nstderr:\n{}", self.stderr());
        }
        self.proc.join_stderr();
        Finished { status, later_stdout: self.proc.later_stdout(), stderr: self.stderr() }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait().status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.proc.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("---- pollmux stderr ----\n{}---- end ----", self.stderr());
        }
    }
}

/// The value of `--<service> V` or `--<service>=V`, last one winning.
fn flag_value(args: &[String], service: &str) -> Option<String> {
    let flag = format!("--{service}");
    let mut value = None;
    for (i, arg) in args.iter().enumerate() {
        if *arg == flag {
            value = args.get(i + 1).cloned();
        } else if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
            value = Some(v.to_string());
        }
    }
    value
}

/// `listening <service> <address>` into its parts.
pub fn parse_listening_line(line: &str) -> Option<(String, SocketAddr)> {
    process::parse_listening(line)
}

/// What a pollmux run that was expected to end by itself left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0, showing everything the run printed if not.
    pub fn assert_success(&self) {
        let Run { status, stdout, stderr } = self;
        assert!(status.success(), "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    }
}

/// One echo round trip.
pub fn echo_roundtrip(stream: &mut TcpStream, message: &[u8]) {
    write_or_fail(stream, message);
    expect_bytes(stream, message);
}

/// Half-closes `stream`, expects nothing more but the server's EOF, and drops it.
pub fn close_cleanly(mut stream: TcpStream) {
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut stream), b"");
}

/// Runs pollmux with `args` to its exit (killed after `PROCESS_DEADLINE`).
pub fn run_to_exit(args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pollmux"));
    command.args(args);
    run_command(command)
}

/// Runs `command` to its exit, output captured (killed after `PROCESS_DEADLINE`).
pub fn run_command(mut command: Command) -> Run {
    let (out, killed) = process::run_to_end(&mut command, PROCESS_DEADLINE)
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let run = Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if killed {
        panic!(
            "{command:?} still ran after {PROCESS_DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
    }
    run
}

// ---------------------------------------------------------------- TCP clients

/// A client connection with TCP_NODELAY and hang-guard timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Writes all of `bytes`, failing the test on error or timeout.
pub fn write_or_fail(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap_or_else(|e| panic!("writing {} bytes: {e}", bytes.len()));
}

/// Reads exactly `n` bytes, failing the test on error, timeout or early EOF.
pub fn read_exact_or_fail(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} expected bytes; got {:?}", Shown(&buf[..got])),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {n} bytes: {e} after {got}; got {:?}", Shown(&buf[..got])),
        }
    }
    buf
}

/// Reads `expected.len()` bytes and asserts they are `expected`.
pub fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    let got = read_exact_or_fail(stream, expected.len());
    assert_bytes_eq(&got, expected);
}

/// Reads until a clean EOF; a reset or a timeout fails the test.
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) => panic!(
            "reading to EOF: {e} after {} bytes (last: {:?})",
            out.len(),
            Shown(&out[out.len().saturating_sub(64)..])
        ),
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Eof,
    Reset,
}

/// Reads until the server closes the connection, by FIN or by reset; returns
/// what arrived first. A timeout fails the test.
pub fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Closed) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, Closed::Eof),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, Closed::Reset),
            Err(e) => panic!("waiting for the server to close: {e} after {} bytes", out.len()),
        }
    }
}

/// Sends `input` from a writer thread, then FIN, while this thread reads every
/// reply byte until the server's EOF. Neither side can stall the other.
pub fn exchange(addr: SocketAddr, input: Vec<u8>) -> Vec<u8> {
    let mut stream = connect(addr);
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&input)?;
        writer.shutdown(Shutdown::Write)
    });
    let got = read_to_eof(&mut stream);
    sender.join().unwrap().unwrap_or_else(|e| panic!("writing to {addr}: {e}"));
    got
}

/// Asserts byte equality, showing the first difference legibly.
pub fn assert_bytes_eq(got: &[u8], expected: &[u8]) {
    if got == expected {
        return;
    }
    let at =
        got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
    let from = at.saturating_sub(16);
    panic!(
        "bytes differ at offset {at} (got {} bytes, expected {}):\n     got[{from}..]: {:?}\nexpected[{from}..]: {:?}",
        got.len(),
        expected.len(),
        Shown(&got[from..got.len().min(at + 48)]),
        Shown(&expected[from..expected.len().min(at + 48)]),
    );
}

/// Debug-prints bytes as an escaped byte string.
pub struct Shown<'a>(pub &'a [u8]);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

// --------------------------------------------------------------------- frames

/// A 4-byte big-endian length, then `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A frame header alone.
pub fn frame_header(len: u32) -> [u8; 4] {
    len.to_be_bytes()
}

/// Reads one frame's payload.
pub fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let header = read_exact_or_fail(stream, 4);
    let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
    read_exact_or_fail(stream, len)
}

/// Reads one frame and asserts its payload.
pub fn expect_frame(stream: &mut TcpStream, expected_payload: &[u8]) {
    let got = read_frame(stream);
    assert_bytes_eq(&got, expected_payload);
}

// ---------------------------------------------------------------------- array

/// A tcp-array reply.
#[derive(Debug, PartialEq)]
pub enum ArrayReply {
    /// Status 0: the values.
    Values(Vec<f64>),
    /// Status 1: the message.
    Error(String),
}

/// The request frame for `OFFSET:COUNT` (or any payload).
pub fn array_request(payload: &str) -> Vec<u8> {
    frame(payload.as_bytes())
}

/// Reads one tcp-array reply, checking its framing.
pub fn read_array_reply(stream: &mut TcpStream) -> ArrayReply {
    let header = read_exact_or_fail(stream, 4);
    let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
    assert!(len >= 1, "array reply of length 0 has no status byte");
    let body = read_exact_or_fail(stream, len);
    match body[0] {
        0 => {
            assert_eq!(
                (len - 1) % 8,
                0,
                "status 0 with {} value bytes, not a whole number of f64",
                len - 1
            );
            ArrayReply::Values(
                body[1..]
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }
        1 => {
            let msg = String::from_utf8(body[1..].to_vec())
                .unwrap_or_else(|e| panic!("error message is not UTF-8: {e}"));
            assert!(!msg.is_empty(), "error reply with an empty message");
            ArrayReply::Error(msg)
        }
        s => panic!("array reply with status {s} (expected 0 or 1): {:?}", Shown(&body)),
    }
}

/// Sends one request and returns its reply.
pub fn ask_array(stream: &mut TcpStream, payload: &str) -> ArrayReply {
    write_or_fail(stream, &array_request(payload));
    read_array_reply(stream)
}

/// a[offset..offset+count] where a[i] = i.
pub fn array_slice(offset: u64, count: u64) -> Vec<f64> {
    (offset..offset + count).map(|i| i as f64).collect()
}

/// Asserts a success reply carrying exactly a[offset..offset+count].
pub fn assert_values(reply: ArrayReply, offset: u64, count: u64, request: &str) {
    match reply {
        ArrayReply::Values(values) => {
            assert_eq!(values.len() as u64, count, "request {request:?}: number of values");
            for (i, v) in values.iter().enumerate() {
                let want = (offset + i as u64) as f64;
                assert_eq!(
                    v.to_bits(),
                    want.to_bits(),
                    "request {request:?}: value {i} is {v}, expected {want}"
                );
            }
        }
        ArrayReply::Error(msg) => panic!("request {request:?} failed: {msg}"),
    }
}

/// Asserts an error reply and returns its message.
pub fn assert_error(reply: ArrayReply, request: &str) -> String {
    match reply {
        ArrayReply::Error(msg) => msg,
        ArrayReply::Values(v) => panic!(
            "request {request:?} should fail, got {} values: {:?}",
            v.len(),
            &v[..v.len().min(8)]
        ),
    }
}

// ------------------------------------------------------------------------ UDP

/// Sends `bytes` from a fresh socket and returns the reply; retried a few
/// times, since datagrams may be dropped.
pub fn udp_roundtrip(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = udp_socket_for(addr);
    socket.connect(addr).unwrap();
    let mut buf = vec![0u8; 65536];
    for _attempt in 0..5 {
        socket.send(bytes).unwrap_or_else(|e| panic!("send to {addr}: {e}"));
        match socket.recv(&mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("recv from {addr}: {e}"),
        }
    }
    panic!("no reply from {addr} to {:?} after 5 tries", Shown(bytes));
}

/// A UDP socket on the loopback address of `addr`'s family, with a hang guard.
pub fn udp_socket_for(addr: SocketAddr) -> UdpSocket {
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket
}

// ---------------------------------------------------------------- uppercasing

/// What tcp-upper must make of `input` as a whole: valid UTF-8 uppercased with
/// the full Unicode mapping, every other byte passed through unchanged.
pub fn upper_model(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Characters whose uppercase differs in length or script: 1- to 4-byte UTF-8.
pub const MIXED_CHARS: &[char] = &[
    'a', 'z', 'Q', '7', ' ', '\n', 'ß', 'é', 'ÿ', 'ŉ', 'ǆ', 'ǰ', 'ı', 'µ', 'ΐ', 'ς', 'я', 'ﬁ', 'ﬀ',
    'ᾳ', '€', '日', '😀', '𐐨', '𝔞',
];

/// `len` bytes (roughly: whole characters) of text drawn from `MIXED_CHARS`.
pub fn mixed_text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 4);
    while out.len() < len {
        out.push(MIXED_CHARS[rng.below(MIXED_CHARS.len())]);
    }
    out.into_bytes()
}

/// One short exchange with every enabled service (tcp-array needs `--array-len` of 10 or more).
pub fn smoke_every_service(srv: &Server) {
    for (service, addr) in srv.addrs() {
        let addr = *addr;
        match service.as_str() {
            "tcp-echo" => assert_bytes_eq(&exchange(addr, b"echo \xff".to_vec()), b"echo \xff"),
            "tcp-upper" => {
                assert_bytes_eq(&exchange(addr, "straße".as_bytes().to_vec()), b"STRASSE")
            }
            "tcp-frame" => assert_bytes_eq(&exchange(addr, frame(b"abc")), &frame(b"ABC")),
            "tcp-array" => {
                let mut s = connect(addr);
                assert_values(ask_array(&mut s, "2:3"), 2, 3, "2:3");
            }
            "udp-upper" => assert_bytes_eq(&udp_roundtrip(addr, b"abc"), b"ABC"),
            "udp-ping" => assert_bytes_eq(&udp_roundtrip(addr, b"PING 1"), b"PONG 1"),
            other => panic!("unknown service {other}"),
        }
    }
}

/// The counter `name` of the last `stats:` line in `stderr` (printed at exit with `--stats`).
pub fn stat(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .filter_map(|l| l.split_once("stats: ").map(|(_, s)| s))
        .next_back()
        .unwrap_or_else(|| panic!("no stats line in stderr:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .chunks(2)
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv.get(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in stats line {line:?}"))
}

/// Whether a test's tool (python3, strace, IPv6, raw sockets) is here: `Ok`, or
/// `Err(why not)`. Missing under CI (the `CI` variable set, as `.ci/run` runs),
/// the test fails, since CI installs every tool; elsewhere it prints
/// `skipped: <why>` and the caller returns.
pub fn tool_present(found: Result<(), String>) -> bool {
    match found {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}; CI is set, and CI must run this test (.ci/run installs its tools)")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// `python3` runs here.
pub fn python3_present() -> bool {
    let found = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    tool_present(if found { Ok(()) } else { Err("python3 not found".into()) })
}

// -------------------------------------------------------- servers not pollmux

impl Server {
    /// Spawns any server that prints `listening <service> <address>` lines
    /// (the Python reference servers in examples/servers/, say) and waits until
    /// each of `services` has printed its line. Killed on drop, like `start`'s.
    pub fn start_command(mut command: Command, services: &[&str]) -> Server {
        let proc =
            Spawned::spawn(&mut command).unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let mut server = Server { proc, addrs: HashMap::new() };
        match server.proc.listening(services, true, PROCESS_DEADLINE) {
            Ok(addrs) => server.addrs = addrs,
            Err(why) => panic!("{command:?}: {why}\nstderr:\n{}", server.stderr()),
        }
        server
    }
}

// ------------------------------------------------------------------- memory

/// A /proc/PID/status field in bytes (`VmRSS`, `VmHWM`).
pub fn proc_status_bytes(pid: libc::pid_t, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {field}:\n{status}"));
    let kib: usize = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kib * 1024
}

/// The server's resident memory at its peak so far (VmHWM): whatever it held
/// between two looks counts too.
pub fn peak_rss(srv: &Server) -> usize {
    proc_status_bytes(srv.pid(), "VmHWM")
}
