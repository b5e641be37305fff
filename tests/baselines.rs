//! The comparison servers (`serve --model sequential|threads|pool`) serve what the
//! lessons' servers serve: tcp-echo and tcp-upper, `--pool-size` threads, and
//! `--reply-delay` replies whose wait shows what each model does with a second client.
//!
//! The backend flag does not apply to them, so these tests run once per model
//! rather than once per backend; `--backlog` is in tests/backlog.rs.

mod common;

use common::*;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MODELS: [&str; 3] = ["sequential", "threads", "pool"];

// The one test here whose server is the event loop.
common::backend_tests!(event_loop_delays_replies_on_a_timer_and_serves_everyone_meanwhile);

/// A baseline serving tcp-upper alone (plus `extra`).
fn start_upper(model: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--tcp-upper", "0", "--tcp-echo", "off"];
    args.extend(extra);
    Server::start_model_with(model, &args)
}

/// Asserts the server has sent `stream` nothing so far (without waiting for anything).
fn assert_nothing_arrived(stream: &mut TcpStream, what: &str) {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(0) => panic!("{what}: EOF"),
        Ok(n) => panic!("{what}: already got {:?}", Shown(&buf[..n])),
        Err(e) => panic!("{what}: {e}"),
    }
    stream.set_nonblocking(false).unwrap();
}

// ------------------------------------------------------------------ tcp-upper

/// tcp-upper through `model`: a character split across writes, each half
/// proven consumed by the reply to what came before it, and a character cut
/// short by EOF sent back unchanged. tcp-echo is served beside it.
fn upper_handles_split_characters(model: &str) {
    let srv = Server::start_model_with(model, &["--tcp-upper", "0"]);
    assert_eq!(srv.addrs().len(), 2, "{:?}", srv.addrs());
    let mut s = connect(srv.addr("tcp-upper"));
    // ß is c3 9f: its first byte is held until the second arrives.
    write_or_fail(&mut s, b"stra\xc3");
    expect_bytes(&mut s, b"STRA");
    write_or_fail(&mut s, b"\x9fe \xe2\x82");
    expect_bytes(&mut s, b"SSE ");
    write_or_fail(&mut s, b"\xac!");
    expect_bytes(&mut s, "€!".as_bytes());
    // A sequence that EOF cuts short goes back as it came.
    write_or_fail(&mut s, b"x\xf0\x9f");
    expect_bytes(&mut s, b"X");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"\xf0\x9f");
    // Mixed text, whole: as the model of Python's str.upper says.
    let mut rng = Rng::new(7);
    let text = mixed_text(&mut rng, 20_000);
    assert_bytes_eq(&exchange(srv.addr("tcp-upper"), text.clone()), &upper_model(&text));
    let mut echo = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut echo, b"stra\xc3\x9fe \xff");
    close_cleanly(echo);
}

#[test]
fn sequential_serves_tcp_upper() {
    upper_handles_split_characters("sequential");
}

#[test]
fn threads_serves_tcp_upper() {
    upper_handles_split_characters("threads");
}

#[test]
fn pool_serves_tcp_upper() {
    upper_handles_split_characters("pool");
}

// ------------------------------------------------------------ --reply-delay

/// With each reply 300 ms late, a server that serves one client at a time
/// does not answer a second client, connected and waiting, while the first
/// is still connected; it answers once the first has gone. A concurrent
/// server would have answered it during the first client's second exchange.
fn answers_second_client_only_after_the_first_is_done(model: &str, extra: &[&str]) {
    let mut args = vec!["--reply-delay", "300"];
    args.extend(extra);
    let srv = start_upper(model, &args);
    let addr = srv.addr("tcp-upper");
    let mut first = connect(addr);
    write_or_fail(&mut first, b"first");
    let mut second = connect(addr); // completed by the kernel, waiting in the backlog
    write_or_fail(&mut second, b"second");
    expect_bytes(&mut first, b"FIRST");
    write_or_fail(&mut first, b"again");
    expect_bytes(&mut first, b"AGAIN");
    assert_nothing_arrived(&mut second, "second client while the first is connected");
    close_cleanly(first);
    expect_bytes(&mut second, b"SECOND");
    close_cleanly(second);
}

/// With each reply 300 ms late, a concurrent server answers a second client
/// while the first, connected before it, still waits for its own reply.
fn answers_both_clients_while_both_are_connected(model: &str, extra: &[&str]) {
    let mut args = vec!["--reply-delay", "300"];
    args.extend(extra);
    answers_both_while_both_are_connected(&start_upper(model, &args));
}

/// The body of `answers_both_clients_while_both_are_connected`, against any
/// server whose tcp-upper delays each reply by 300 ms.
fn answers_both_while_both_are_connected(srv: &Server) {
    let addr = srv.addr("tcp-upper");
    let mut first = connect(addr);
    write_or_fail(&mut first, b"first");
    let mut second = connect(addr);
    write_or_fail(&mut second, b"second");
    expect_bytes(&mut second, b"SECOND");
    expect_bytes(&mut first, b"FIRST");
    // Both still connected, both served again. The reply waits at least the
    // delay: a lower bound, which a sleep guarantees (never an upper one).
    let asked = Instant::now();
    write_or_fail(&mut second, b"two");
    write_or_fail(&mut first, b"one");
    expect_bytes(&mut first, b"ONE");
    expect_bytes(&mut second, b"TWO");
    assert!(asked.elapsed() >= Duration::from_millis(300), "{:?}", asked.elapsed());
    close_cleanly(first);
    close_cleanly(second);
}

#[test]
fn sequential_answers_a_second_client_only_after_the_first_is_done() {
    answers_second_client_only_after_the_first_is_done("sequential", &[]);
}

#[test]
fn threads_answers_both_clients_while_both_are_connected() {
    answers_both_clients_while_both_are_connected("threads", &[]);
}

#[test]
fn pool_of_two_answers_both_clients_while_both_are_connected() {
    answers_both_clients_while_both_are_connected("pool", &["--pool-size", "2"]);
}

#[test]
fn pool_of_one_answers_a_second_client_only_after_the_first_is_done() {
    answers_second_client_only_after_the_first_is_done("pool", &["--pool-size", "1"]);
}

#[test]
fn reply_delay_applies_to_tcp_echo_too() {
    let srv = Server::start_model_with("threads", &["--reply-delay", "200"]);
    let mut s = connect(srv.addr("tcp-echo"));
    let asked = Instant::now();
    echo_roundtrip(&mut s, b"slow echo");
    assert!(asked.elapsed() >= Duration::from_millis(200), "{:?}", asked.elapsed());
    close_cleanly(s);
}

// ------------------------------------------------------------- flag checks

#[test]
fn pool_size_out_of_range_is_refused() {
    for value in ["0", "10001", "four", "-2"] {
        let run = run_to_exit(&["serve", "--model", "pool", "--pool-size", value]);
        assert_eq!(run.status.code(), Some(2), "--pool-size {value}\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        if value != "-2" {
            assert!(
                run.stderr.contains("expected a number of threads from 1 to 10000"),
                "{}",
                run.stderr
            );
        }
    }
}

#[test]
fn pool_size_is_logged_and_ignored_elsewhere_with_a_warning() {
    let srv = Server::start_model_with("pool", &["--pool-size", "3"]);
    srv.wait_for_stderr("model pool: serving tcp-echo with blocking sockets, 3 threads");
    drop(srv);
    let srv = Server::start_model_with("threads", &["--pool-size", "3"]);
    srv.wait_for_stderr("--pool-size applies to --model pool only; ignored");
}

#[test]
fn reply_delay_out_of_range_is_refused() {
    let run = run_to_exit(&["serve", "--model", "threads", "--reply-delay", "86400001"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("expected milliseconds from 0 to 86400000"), "{}", run.stderr);
}

/// The event loop delays with a timer, never a sleep: both delayed clients
/// are answered while both are connected, and a client of a service that is
/// not delayed is answered while a delayed reply is still pending.
fn event_loop_delays_replies_on_a_timer_and_serves_everyone_meanwhile(backend: &str) {
    let srv = Server::start(backend, &["--reply-delay", "300"]);
    answers_both_while_both_are_connected(&srv);
    let mut slow = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut slow, b"slow");
    let mut quick = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut quick, &frame(b"quick"));
    expect_frame(&mut quick, b"QUICK");
    // Had the loop slept through the delay, this would have come first.
    assert_nothing_arrived(&mut slow, "the delayed reply, before the undelayed one");
    expect_bytes(&mut slow, b"SLOW");
    // Half-closed with a delayed reply still to come: it comes, then EOF.
    write_or_fail(&mut slow, b"last");
    slow.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut slow), b"LAST");
    close_cleanly(quick);
}

#[test]
fn a_port_for_a_service_a_baseline_cannot_serve_is_an_error() {
    for model in MODELS {
        // Even a port equal to the default: it was asked for.
        for (flag, port) in [("--tcp-frame", "0"), ("--tcp-array", "25000"), ("--udp-ping", "1234")]
        {
            let run = run_to_exit(&["serve", "--model", model, "--tcp-echo", "0", flag, port]);
            assert_eq!(run.status.code(), Some(2), "{model} {flag}\n{}", run.stderr);
            let says = format!("serves tcp-echo and tcp-upper only: drop {flag} {port}");
            assert!(run.stderr.contains(&says), "{}", run.stderr);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
        }
    }
}

#[test]
fn turning_another_service_off_is_fine() {
    let srv = Server::start_model_with("sequential", &["--tcp-frame", "off", "--udp-upper", "off"]);
    assert_eq!(srv.addrs().len(), 1, "{:?}", srv.addrs());
    let mut s = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut s, b"ok");
    close_cleanly(s);
}

#[test]
fn a_baseline_with_both_services_off_fails() {
    let run = run_to_exit(&["serve", "--model", "pool", "--tcp-echo", "off", "--tcp-upper", "off"]);
    assert_eq!(run.status.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("--model pool serves tcp-echo and tcp-upper, and both are off"),
        "{}",
        run.stderr
    );
}

#[test]
fn event_loop_flags_given_to_a_baseline_are_named_as_ignored() {
    let srv = Server::start_model_with(
        "threads",
        &["--stats", "--array-wire", "push", "--max-frame", "10"],
    );
    let stderr = srv.wait_for_stderr("apply to --model mux only; ignored");
    let line = stderr.lines().find(|l| l.contains("apply to --model mux only")).unwrap();
    for flag in ["--backend", "--stats", "--array-wire", "--max-frame"] {
        assert!(line.contains(flag), "{line}");
    }
    let mut s = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut s, b"still serving");
    close_cleanly(s);
}
