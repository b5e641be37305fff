//! The clients, `pollmux ping` and `pollmux load`, against the server's
//! services and against the comparison servers of `serve --model`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::Duration;

common::backend_tests!(
    load_open_loop_reports_the_achieved_and_offered_rates,
    load_open_loop_pipelines_messages_larger_than_socket_buffers,
    load_churn_opens_a_connection_per_message,
    ping_gets_every_reply,
    ping_replies_have_the_asked_size,
    load_against_tcp_echo_has_no_errors,
    load_against_tcp_upper_expecting_upper_has_no_errors,
    load_with_messages_larger_than_socket_buffers_has_no_errors,
    load_with_idle_connections_has_no_errors,
    load_expecting_upper_from_echo_reports_mismatches,
    clients_wait_through_each_backend,
);

/// The clients use the crate's own wait protocol: on each backend, the same
/// code (closed loop, open loop, churn, ping) runs and checks every byte.
fn clients_wait_through_each_backend(backend: &str) {
    let srv = Server::start(backend, &[]);
    let echo = srv.addr("tcp-echo").to_string();
    for mode in [
        &["--conns", "20", "--msgs", "50"][..],
        &["--rate", "2000", "--duration", "0.5", "--conns", "10"],
        &["--churn", "--conns", "4", "--msgs", "20"],
    ] {
        let mut args = vec!["--backend", backend];
        args.extend_from_slice(mode);
        let run = load(&echo, &args);
        run.assert_success();
        assert_eq!(field(&run, "errors"), "0", "{mode:?}: {}", run.stdout);
    }
    let run = ping(
        &srv.addr("udp-ping").to_string(),
        &["-c", "3", "--backend", backend, "-W", CLIENT_TIMEOUT],
    );
    run.assert_success();
    assert!(run.stdout.contains("3 packets transmitted, 3 received"), "{}", run.stdout);
}

/// Hang guard of the clients: far longer than any reply should take.
const CLIENT_TIMEOUT: &str = "20";

/// `pollmux ping ADDR` with `args`, flood-ish (`-i 0` unless `args` sets `-i`)
/// so no test waits on intervals.
fn ping(addr: &str, args: &[&str]) -> Run {
    let mut all = vec!["ping", addr];
    if !args.contains(&"-i") {
        all.extend(["-i", "0"]);
    }
    all.extend_from_slice(args);
    run_to_exit(&all)
}

/// `pollmux load ADDR` with `args`.
fn load(addr: &str, args: &[&str]) -> Run {
    let mut all = vec!["load", addr, "--timeout", CLIENT_TIMEOUT];
    all.extend_from_slice(args);
    run_to_exit(&all)
}

/// The `key=value` fields of the RESULT line, which must be the last line of stdout.
fn result_fields(run: &Run) -> Vec<(String, String)> {
    let last = run.stdout.lines().last().unwrap_or_default();
    let fields = last.strip_prefix("RESULT ").unwrap_or_else(|| {
        panic!("last line is not a RESULT line:\n{}\nstderr:\n{}", run.stdout, run.stderr)
    });
    fields
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("field {kv:?} in {last:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One field of the RESULT line.
fn field(run: &Run, key: &str) -> String {
    result_fields(run)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
        .unwrap_or_else(|| panic!("no {key}= in the RESULT line of:\n{}", run.stdout))
}

/// Asserts a load run succeeded: exit 0, errors=0, every message measured.
fn assert_clean_load(run: &Run, conns: u64, msgs: u64) {
    run.assert_success();
    assert_eq!(field(run, "errors"), "0", "{}", run.stdout);
    assert_eq!(field(run, "messages"), (conns * msgs).to_string(), "{}", run.stdout);
    assert_eq!(field(run, "conns"), conns.to_string());
    assert_eq!(field(run, "msgs"), msgs.to_string());
}

fn ping_gets_every_reply(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("udp-ping").to_string();
    let run = ping(&addr, &["-c", "4", "-W", CLIENT_TIMEOUT]);
    run.assert_success();
    assert!(
        run.stdout.contains("4 packets transmitted, 4 received, 0% packet loss"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("rtt min/avg/max/mdev = "), "{}", run.stdout);
    for seq in 1..=4 {
        let line = format!("64 bytes from {addr}: seq={seq} time=");
        assert!(run.stdout.contains(&line), "no {line:?} in:\n{}", run.stdout);
    }
}

fn ping_replies_have_the_asked_size(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("udp-ping").to_string();
    let run = ping(&addr, &["-c", "2", "-s", "1000", "-W", CLIENT_TIMEOUT]);
    run.assert_success();
    assert_eq!(run.stdout.matches("1000 bytes from ").count(), 2, "{}", run.stdout);
    assert!(run.stdout.contains("2 packets transmitted, 2 received, 0% packet loss"));
}

fn load_against_tcp_echo_has_no_errors(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-echo").to_string();
    let args = ["--conns", "20", "--msgs", "50", "--size", "64", "--warmup", "5", "--threads", "3"];
    let run = load(&addr, &args);
    assert_clean_load(&run, 20, 50);
    assert!(run.stdout.contains("round trip (us): p50 "), "{}", run.stdout);
}

fn load_against_tcp_upper_expecting_upper_has_no_errors(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-upper").to_string();
    let run = load(&addr, &["--conns", "20", "--msgs", "50", "--expect", "upper"]);
    assert_clean_load(&run, 20, 50);
}

fn load_with_messages_larger_than_socket_buffers_has_no_errors(backend: &str) {
    // 1 MB messages fill both directions' buffers: sends are partial, and
    // replies start arriving before the message is all sent.
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-echo").to_string();
    let run = load(&addr, &["--conns", "2", "--msgs", "3", "--size", "1000000"]);
    assert_clean_load(&run, 2, 3);
}

fn load_with_idle_connections_has_no_errors(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-echo").to_string();
    let run = load(&addr, &["--conns", "3", "--msgs", "20", "--idle", "40", "--threads", "2"]);
    assert_clean_load(&run, 3, 20);
    assert_eq!(field(&run, "idle"), "40");
    assert_eq!(field(&run, "idle_closed"), "0");
    assert_eq!(field(&run, "threads"), "2");
}

/// A RESULT field as a number.
fn number(run: &Run, key: &str) -> f64 {
    let value = field(run, key);
    value.parse().unwrap_or_else(|_| panic!("{key}={value} is not a number:\n{}", run.stdout))
}

fn load_open_loop_reports_the_achieved_and_offered_rates(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-echo").to_string();
    // 2,000 messages/s for half a second over 4 connections: 250 each.
    let args = ["--rate", "2000", "--duration", "0.5", "--conns", "4", "--warmup", "2"];
    let run = load(&addr, &[&args[..], &["--threads", "2"]].concat());
    assert_clean_load(&run, 4, 250);
    assert_eq!(field(&run, "mode"), "open");
    assert_eq!(field(&run, "offered_per_sec"), "2000");
    assert!(number(&run, "msgs_per_sec") > 0.0, "{}", run.stdout);
    let mut last = 0.0;
    for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
        let value = number(&run, key);
        assert!(value >= last, "{key} below the percentile before it:\n{}", run.stdout);
        last = value;
    }
    assert!(number(&run, "over_1ms") <= 1000.0, "{}", run.stdout);
    assert!(run.stdout.contains("offered"), "{}", run.stdout);
    assert!(run.stdout.contains("from when each message was due"), "{}", run.stdout);
}

fn load_open_loop_pipelines_messages_larger_than_socket_buffers(backend: &str) {
    // 20 messages of 200 kB due within 20 ms on one connection: many are
    // outstanding at once and split across sends, and every byte is checked.
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-upper").to_string();
    let args = ["--rate", "1000", "--duration", "0.02", "--size", "200000", "--expect", "upper"];
    let run = load(&addr, &args);
    assert_clean_load(&run, 1, 20);
}

fn load_churn_opens_a_connection_per_message(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10", "--stats"]);
    let addr = srv.addr("tcp-echo").to_string();
    let run = load(&addr, &["--churn", "--conns", "4", "--msgs", "30", "--warmup", "2"]);
    assert_clean_load(&run, 4, 30);
    assert_eq!(field(&run, "mode"), "churn");
    assert!(run.stdout.contains("connections/s"), "{}", run.stdout);
    // Every message came on a connection of its own, warm-up included.
    srv.signal(libc::SIGTERM);
    let stderr = srv.wait().stderr;
    assert_eq!(stat(&stderr, "accepted"), 4 * 32, "{stderr}");
}

fn load_expecting_upper_from_echo_reports_mismatches(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let addr = srv.addr("tcp-echo").to_string();
    let run = load(&addr, &["--conns", "3", "--msgs", "5", "--expect", "upper"]);
    assert_eq!(run.status.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(field(&run, "errors"), "3", "one per connection:\n{}", run.stdout);
    assert!(run.stderr.contains("differs at byte"), "{}", run.stderr);
}

/// A load that each comparison server must pass, then SIGTERM exits it with status 0.
fn baseline_serves_load_and_exits_zero_on_sigterm(model: &str) {
    let srv = Server::start_model(model);
    assert_eq!(srv.addrs().len(), 1, "{:?}", srv.addrs());
    let addr = srv.addr("tcp-echo").to_string();
    let run = load(&addr, &["--conns", "20", "--msgs", "50"]);
    assert_clean_load(&run, 20, 50);
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

#[test]
fn sequential_baseline_serves_load() {
    baseline_serves_load_and_exits_zero_on_sigterm("sequential");
}

#[test]
fn threads_baseline_serves_load() {
    baseline_serves_load_and_exits_zero_on_sigterm("threads");
}

#[test]
fn pool_baseline_serves_load() {
    baseline_serves_load_and_exits_zero_on_sigterm("pool");
}

#[test]
fn ping_to_a_closed_port_counts_every_packet_lost_and_exits_1() {
    // A port the kernel just handed out and took back: closed, barring a race.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = ping(&format!("127.0.0.1:{port}"), &["-c", "2", "-W", "5"]);
    assert_eq!(run.status.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2 packets transmitted, 0 received"), "{}", run.stdout);
    assert!(run.stdout.contains("100% packet loss"), "{}", run.stdout);
    assert!(!run.stdout.contains("rtt "), "{}", run.stdout);
}

#[test]
fn load_to_a_closed_port_fails_with_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = load(&format!("127.0.0.1:{port}"), &["--conns", "2", "--msgs", "1"]);
    assert_eq!(run.status.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(field(&run, "errors"), "2", "{}", run.stdout);
    assert!(run.stderr.contains("connect"), "{}", run.stderr);
}

#[test]
fn ping_to_a_closed_port_in_quick_succession_goes_on_past_icmp_errors() {
    // Sends 1 µs apart: the port-unreachable of one packet is often still
    // pending when the next is sent, and fails that send. It is counted, not fatal.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = ping(&format!("127.0.0.1:{port}"), &["-c", "50", "-i", "0.000001", "-W", "5"]);
    assert_eq!(run.status.code(), Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("50 packets transmitted, 0 received"), "{}", run.stdout);
}

/// A one-connection echo server on its own thread that, once it has echoed
/// `stall_after` bytes, stops reading until `backlog` more bytes wait in its
/// socket (a peek with MSG_WAITALL: the kernel wakes it, no clock does), then
/// carries on. An open-loop client goes on sending on schedule meanwhile, so
/// the stall lasts as long as those bytes take to fall due.
fn stalling_echo_server(stall_after: usize, backlog: usize) -> (SocketAddr, JoinHandle<()>) {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        // A hang guard only: a peek that times out ends the stall early.
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (mut buf, mut echoed, mut stalled) = ([0u8; 4096], 0, false);
        loop {
            if !stalled && echoed >= stall_after {
                stalled = true;
                let mut waiting = vec![0u8; backlog];
                let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_WAITALL;
                let _ = recv(stream.as_raw_fd(), &mut waiting, flags);
            }
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if stream.write_all(&buf[..n]).is_err() {
                return;
            }
            echoed += n;
        }
    });
    (addr, server)
}

#[test]
fn open_loop_reports_a_stall_as_every_message_it_delayed() {
    // 1,000 64-byte messages/s on one connection for a second; after 100
    // messages the server reads nothing until 250 more are waiting, which at
    // that rate take about 250 ms to fall due. Each of them waited for the
    // stall's end: the open loop times every one (a closed loop would have
    // sent nothing meanwhile, and timed one slow message).
    let (addr, server) = stalling_echo_server(100 * 64, 250 * 64);
    let run = load(&addr.to_string(), &["--rate", "1000", "--duration", "1"]);
    server.join().unwrap();
    assert_clean_load(&run, 1, 1000);
    // Message k of the 250 fell due (250 - k) ms before the stall ended.
    let over_1ms = number(&run, "over_1ms");
    assert!(over_1ms >= 240.0, "the messages due during the stall:\n{}", run.stdout);
    // 200 of them waited 50 ms or more: 20% of all, so the p90 did too.
    assert!(number(&run, "p90_us") >= 50_000.0, "{}", run.stdout);
    assert!(number(&run, "max_us") >= 240_000.0, "{}", run.stdout);
}

#[test]
fn load_help_says_what_each_mode_measures() {
    let run = run_to_exit(&["load", "--help"]);
    run.assert_success();
    for words in
        ["Closed loop", "Open loop", "--rate", "--duration", "coordinated omission", "--churn"]
    {
        assert!(run.stdout.contains(words), "no {words:?} in:\n{}", run.stdout);
    }
}

#[test]
fn load_rate_needs_a_duration_and_excludes_msgs() {
    let run = run_to_exit(&["load", "127.0.0.1:1", "--rate", "100"]);
    assert_eq!(run.status.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--duration"), "{}", run.stderr);
    let run =
        run_to_exit(&["load", "127.0.0.1:1", "--rate", "100", "--duration", "1", "--msgs", "5"]);
    assert_eq!(run.status.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    let run = run_to_exit(&["load", "127.0.0.1:1", "--rate", "0", "--duration", "1"]);
    assert_eq!(run.status.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--rate"), "{}", run.stderr);
}
