//! The clients, `pollmux ping` and `pollmux load`, against the server's
//! services and against the comparison servers of `serve --model`.

mod common;

use common::*;
use std::net::UdpSocket;

common::backend_tests!(
    ping_gets_every_reply,
    ping_replies_have_the_asked_size,
    load_against_tcp_echo_has_no_errors,
    load_against_tcp_upper_expecting_upper_has_no_errors,
    load_with_messages_larger_than_socket_buffers_has_no_errors,
    load_with_idle_connections_has_no_errors,
    load_expecting_upper_from_echo_reports_mismatches,
);

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
