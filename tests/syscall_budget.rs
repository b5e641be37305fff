//! The syscall budget, measured with strace, for every backend:
//!
//! 1. idle: with 100 idle connections open, the server sleeps in one wait call
//!    and makes no other syscall for 2 seconds;
//! 2. ping-pong: echoing 1,000 messages one at a time costs at most 3 syscalls
//!    each (wait, recv, send): no recv that returns EAGAIN, no POLLOUT round trip;
//! 3. no busy loop: across a mixed run, every wait that returns reports a ready
//!    descriptor (or a deadline it was given), and something is done about it.
//!
//! The server runs under `strace -f` from its start, every syscall traced;
//! the trace is read after it exits. Stretches of it are found between marker
//! datagrams sent to udp-ping (`PING <marker>`), whose replies prove the
//! server got there. The only sleep is the 2-second window of the idle test,
//! which is what it measures. Skips (saying so) when strace is absent.

mod common;
mod strace;

use std::collections::HashSet;
use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::thread;
use std::time::Duration;

use common::*;
use strace::{Call, Timeout, TracedServer};

common::backend_tests!(
    idle_connections_cost_one_blocked_wait,
    echo_costs_three_syscalls_per_message,
    every_wait_returns_something_to_do,
);

/// Connections held open by the idle test.
const IDLE_CONNECTIONS: usize = 100;
/// How long the idle test watches.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// Messages echoed one at a time by the ping-pong test.
const MESSAGES: usize = 1_000;

/// One udp-ping round trip carrying `marker`, so the trace can be cut there.
fn mark(srv: &TracedServer, marker: &str) {
    let got = udp_roundtrip(srv.addr("udp-ping"), format!("PING {marker}").as_bytes());
    assert_bytes_eq(&got, format!("PONG {marker}").as_bytes());
}

/// The calls after the server finished answering `start` (its recvfrom that
/// returned EAGAIN, ending that batch of datagrams) and before its recvfrom of `end`.
fn between<'a>(calls: &'a [Call], start: &str, end: &str) -> &'a [Call] {
    let is_marker =
        |c: &Call, m: &str| c.name == "recvfrom" && c.args.contains(&format!("\"PING {m}\""));
    let at = calls.iter().rposition(|c| is_marker(c, start)).expect("start marker in the trace");
    let udp = calls[at].fd();
    let from = at
        + calls[at..]
            .iter()
            .position(|c| c.name == "recvfrom" && c.fd() == udp && c.errno() == Some("EAGAIN"))
            .expect("the recvfrom returning EAGAIN that ends the marker's batch")
        + 1;
    let to = from
        + calls[from..].iter().position(|c| is_marker(c, end)).expect("end marker in the trace");
    &calls[from..to]
}

/// The calls one per line, for failure messages.
fn listing(calls: &[Call]) -> String {
    calls.iter().map(|c| format!("  {c}\n")).collect()
}

/// With 100 idle connections open, the server sits in one wait call.
fn idle_connections_cost_one_blocked_wait(backend: &str) {
    let Some(srv) = TracedServer::start("idle", backend, &[]) else { return };
    let mut conns: Vec<_> = (0..IDLE_CONNECTIONS).map(|_| connect(srv.addr("tcp-echo"))).collect();
    // A round trip on each proves it was accepted and served.
    for conn in &mut conns {
        write_or_fail(conn, b"?");
        expect_bytes(conn, b"?");
    }
    mark(&srv, "idle-start");
    thread::sleep(IDLE_WINDOW); // the measurement window, not a synchronisation
    mark(&srv, "idle-end");
    drop(conns);
    srv.terminate();
    let calls = srv.finish();

    let window = between(&calls, "idle-start", "idle-end");
    assert!(
        window.len() == 1 && window[0].is_wait(),
        "{backend}: over {IDLE_WINDOW:?} with {IDLE_CONNECTIONS} idle connections the server \
         should make one wait call (the one the second marker ends), but made {}:\n{}",
        window.len(),
        listing(window)
    );
    eprintln!("{backend}: idle for {IDLE_WINDOW:?}: {} call: {}", window.len(), window[0].name);
}

/// One connection, 1,000 messages echoed one at a time: wait, recv, send each.
fn echo_costs_three_syscalls_per_message(backend: &str) {
    let Some(srv) = TracedServer::start("ping-pong", backend, &[]) else { return };
    let mut conn = connect(srv.addr("tcp-echo"));
    write_or_fail(&mut conn, b"warm-up");
    expect_bytes(&mut conn, b"warm-up");
    mark(&srv, "echo-start");
    for i in 0..MESSAGES {
        let message = format!("message {i:04}\n");
        write_or_fail(&mut conn, message.as_bytes());
        expect_bytes(&mut conn, message.as_bytes());
    }
    mark(&srv, "echo-end");
    drop(conn);
    srv.terminate();
    let calls = srv.finish();

    // The window ends with the wait that the end marker wakes: one more than the messages'.
    let window = between(&calls, "echo-start", "echo-end");
    let per_message = (window.len() - 1) as f64 / MESSAGES as f64;
    eprintln!(
        "{backend}: {} calls for {MESSAGES} echoed messages: {per_message:.3} per message",
        window.len()
    );
    if let Err(why) = check_echo_window(window, MESSAGES) {
        panic!("{backend}: {why}");
    }
}

/// The echo budget over the calls between the markers: at most 3 per message
/// plus the wait the end marker wakes, none returning EAGAIN, and no wait for
/// writability (every reply was sent whole at once).
fn check_echo_window(window: &[Call], messages: usize) -> Result<(), String> {
    let eagain: Vec<Call> =
        window.iter().filter(|c| c.errno() == Some("EAGAIN")).cloned().collect();
    if !eagain.is_empty() {
        return Err(format!("calls returning EAGAIN:\n{}", listing(&eagain)));
    }
    let writable: Vec<Call> =
        window.iter().filter(|c| c.waits_for_writable() || c.asks_epollout()).cloned().collect();
    if !writable.is_empty() {
        return Err(format!(
            "a send that succeeded at once was followed by a wait for writability:\n{}",
            listing(&writable[..writable.len().min(6)])
        ));
    }
    if window.len() > 3 * messages + 1 {
        let count = |pred: &dyn Fn(&Call) -> bool| window.iter().filter(|c| pred(c)).count();
        let waits = count(&|c| c.is_wait());
        let recvs = count(&|c| c.name == "recvfrom" || c.name == "recv");
        let sends = count(&|c| matches!(c.name.as_str(), "sendto" | "send" | "sendmsg"));
        return Err(format!(
            "{} calls for {messages} messages ({waits} waits, {recvs} recvs, {sends} sends, \
             {} others); at most 3 per message. First 12:\n{}",
            window.len(),
            window.len() - waits - recvs - sends,
            listing(&window[..window.len().min(12)])
        ));
    }
    Ok(())
}

/// Across every service, half-closes, an oversized frame, an array reply that
/// fills the send buffer, an idle timeout and a drain on SIGTERM, no wait call
/// comes back empty-handed or is followed straight by another.
fn every_wait_returns_something_to_do(backend: &str) {
    // 32 MB of array: a reply larger than any default send buffer (at most
    // 4 MB), so it cannot leave in one send and POLLOUT must be waited for.
    const VALUES: usize = 4_000_000;
    let args = ["--array-len", "4000000", "--max-frame", "1024", "--idle-timeout", "3"];
    let Some(srv) = TracedServer::start("mixed", backend, &args) else { return };

    // every service once; tcp-upper and tcp-frame with a half-close
    assert_bytes_eq(&exchange(srv.addr("tcp-echo"), b"echo".to_vec()), b"echo");
    assert_bytes_eq(&exchange(srv.addr("tcp-upper"), "straße".as_bytes().to_vec()), b"STRASSE");
    assert_bytes_eq(&exchange(srv.addr("tcp-frame"), frame(b"abc")), &frame(b"ABC"));
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-upper"), b"abc"), b"ABC");
    mark(&srv, "services");

    // a frame over --max-frame: the server shuts its write side and waits for our FIN
    let mut over = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut over, &frame_header(2048));
    write_or_fail(&mut over, &[b'x'; 100]);
    let (got, closed) = read_until_closed(&mut over);
    assert_eq!((got.len(), closed), (0, Closed::Eof), "{backend}: oversized frame");
    over.shutdown(Shutdown::Write).unwrap();
    drop(over);

    // a burst of datagrams: one batch of recvfrom/sendto ended by EAGAIN
    let udp = udp_socket_for(srv.addr("udp-upper"));
    for i in 0..10 {
        udp.send_to(format!("d{i}").as_bytes(), srv.addr("udp-upper")).unwrap();
    }
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        udp.recv_from(&mut buf).expect("udp-upper reply");
    }

    // an array reply too large for one send, with a small one queued behind it
    let mut array = connect(srv.addr("tcp-array"));
    let mut requests = array_request(&format!("0:{VALUES}"));
    requests.extend(array_request("7:2"));
    write_or_fail(&mut array, &requests);
    let head = read_exact_or_fail(&mut array, 5);
    assert_eq!(head, [&((1 + 8 * VALUES) as u32).to_be_bytes()[..], &[0]].concat());
    let values = read_exact_or_fail(&mut array, 8 * VALUES);
    assert_eq!(values[8 * (VALUES - 1)..], ((VALUES - 1) as f64).to_le_bytes());
    assert_values(read_array_reply(&mut array), 7, 2, "7:2");
    array.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut array), b"");
    mark(&srv, "array");

    // a silent connection, closed by --idle-timeout: a wait that ends by its deadline
    let mut silent = connect(srv.addr("tcp-echo"));
    write_or_fail(&mut silent, b"x");
    expect_bytes(&mut silent, b"x");
    assert_eq!(read_until_closed(&mut silent), (Vec::new(), Closed::Eof), "{backend}: idle close");
    drop(silent);

    // SIGTERM with a connection open: it is drained (FIN) before the exit
    let mut last = connect(srv.addr("tcp-echo"));
    write_or_fail(&mut last, b"last");
    expect_bytes(&mut last, b"last");
    srv.terminate();
    assert_eq!(read_to_eof(&mut last), b"", "{backend}: drain on SIGTERM");
    last.flush().unwrap();
    drop(last);
    let calls = srv.finish();

    // The event loop's calls: from the signalfd on (before it, the Rust
    // runtime polls descriptors 0-2 with a zero timeout to check they are open).
    let start = calls.iter().position(|c| c.name == "signalfd4").expect("signalfd4 in the trace");
    let calls = &calls[start..];
    let (waits, timeouts) = check_waits(calls).unwrap_or_else(|why| panic!("{backend}: {why}"));
    let pollout = calls.iter().any(|c| c.waits_for_writable() || c.asks_epollout());
    assert!(pollout, "{backend}: the array reply never waited for writability; scenario too small");
    assert!(timeouts >= 1, "{backend}: no wait ended by the idle timeout's deadline");
    eprintln!("{backend}: {waits} waits, {timeouts} ended by a deadline, all others ready");
}

/// No busy loop: every wait call returns at least one ready descriptor, or 0
/// at the end of a finite, non-zero timeout it was given; and a wait that
/// reported ready descriptors is followed by some other call before the next
/// wait (ignoring a level-triggered readiness would spin). Returns the number
/// of waits and of those that ended by their timeout.
fn check_waits(calls: &[Call]) -> Result<(usize, usize), String> {
    let (mut waits, mut timeouts) = (0, 0);
    for (i, wait) in calls.iter().enumerate().filter(|(_, c)| c.is_wait()) {
        waits += 1;
        let context = || listing(&calls[i.saturating_sub(4)..(i + 4).min(calls.len())]);
        match (wait.result(), wait.timeout()) {
            (Some(n), _) if n > 0 => {
                if calls.get(i + 1).is_some_and(Call::is_wait) {
                    return Err(format!(
                        "a wait reported ready descriptors and the server did nothing about \
                         them before waiting again (a busy loop):\n{}",
                        context()
                    ));
                }
            }
            (Some(0), Some(Timeout::Finite)) => timeouts += 1,
            _ => {
                return Err(format!(
                    "a wait returned with nothing ready and no deadline due:\n{}",
                    context()
                ));
            }
        }
    }
    Ok((waits, timeouts))
}

/// ffi-notes/ quotes real output only: every strace line in its notes
/// (`PID HH:MM:SS.micro call(...)`, or without the PID) is a line of one of
/// the captured traces in ffi-notes/traces/. Refreshing the traces without
/// refreshing the quotes, or writing a line by hand, fails here.
#[test]
fn ffi_notes_quote_captured_trace_lines() {
    let notes = Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi-notes");
    let mut captured = HashSet::new();
    for entry in std::fs::read_dir(notes.join("traces")).expect("ffi-notes/traces") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "trace") {
            let text = std::fs::read_to_string(&path).unwrap();
            captured.extend(text.lines().map(str::to_owned));
        }
    }
    let mut quoted = 0;
    let mut invented = Vec::new();
    for entry in std::fs::read_dir(&notes).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if looks_like_trace_line(line) {
                quoted += 1;
                if !captured.contains(line) {
                    invented.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(quoted > 0, "no trace lines quoted in {}", notes.display());
    assert!(invented.is_empty(), "quoted lines not in ffi-notes/traces/:\n{}", invented.join("\n"));
}

/// `[PID ]HH:MM:SS.micro name(`: the start of a line of `strace [-f] -tt`.
fn looks_like_trace_line(line: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut words = line.splitn(3, ' ');
    let (Some(first), Some(second)) = (words.next(), words.next()) else { return false };
    let (stamp, call) = if digits(first) {
        (second, words.next().unwrap_or(""))
    } else {
        (first, line.split_once(' ').map_or("", |(_, rest)| rest))
    };
    let clock = stamp.split([':', '.']).collect::<Vec<_>>();
    clock.len() == 4
        && clock.iter().all(|part| digits(part))
        && call.split_once('(').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// The checks catch what they are meant to, on hand-made traces.
#[test]
fn budget_checks_reject_wasted_calls() {
    let calls = |text: &str| strace::parse(text);
    let good = calls(
        "1 poll([{fd=3, events=POLLIN}, {fd=10, events=POLLIN}], 2, 300000) = 1 ([{fd=10, revents=POLLIN}])
1 recvfrom(10, \"m\", 65536, 0, NULL, NULL) = 1
1 sendto(10, \"m\", 1, MSG_NOSIGNAL, NULL, 0) = 1
1 poll([{fd=3, events=POLLIN}, {fd=9, events=POLLIN}], 2, 300000) = 1 ([{fd=9, revents=POLLIN}])
",
    );
    assert_eq!(check_echo_window(&good, 1), Ok(()));
    assert_eq!(check_waits(&good), Ok((2, 0)));

    let extra_recv = calls(
        "1 poll([{fd=10, events=POLLIN}], 1, -1) = 1 ([{fd=10, revents=POLLIN}])
1 recvfrom(10, \"m\", 65536, 0, NULL, NULL) = 1
1 recvfrom(10, 0x7ffc87fdb1b0, 65536, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)
1 sendto(10, \"m\", 1, MSG_NOSIGNAL, NULL, 0) = 1
",
    );
    assert!(check_echo_window(&extra_recv, 1).unwrap_err().contains("EAGAIN"));

    let pollout_round_trip = calls(
        "1 epoll_wait(3, [{events=EPOLLIN, data={u32=10, u64=10}}], 256, -1) = 1
1 recvfrom(10, \"m\", 65536, 0, NULL, NULL) = 1
1 sendto(10, \"m\", 1, MSG_NOSIGNAL, NULL, 0) = 1
1 epoll_ctl(3, EPOLL_CTL_MOD, 10, {events=EPOLLIN|EPOLLOUT, data={u32=10, u64=10}}) = 0
",
    );
    assert!(check_echo_window(&pollout_round_trip, 1).unwrap_err().contains("writability"));

    let over_budget = calls(
        "1 pselect6(11, [10], [], NULL, NULL, NULL) = 1 (in [10])
1 recvfrom(10, \"m\", 65536, 0, NULL, NULL) = 1
1 close(12)                         = 0
1 sendto(10, \"m\", 1, MSG_NOSIGNAL, NULL, 0) = 1
1 pselect6(11, [10], [], NULL, NULL, NULL) = 1 (in [10])
",
    );
    assert!(check_echo_window(&over_budget, 1).unwrap_err().contains("1 others"));

    let empty_handed = calls(
        "1 poll([{fd=3, events=POLLIN}], 1, -1) = 0 (Timeout)
",
    );
    assert!(check_waits(&empty_handed).unwrap_err().contains("nothing ready"));
    let zero_timeout = calls(
        "1 epoll_wait(3, [], 256, 0) = 0
",
    );
    assert!(check_waits(&zero_timeout).unwrap_err().contains("nothing ready"));
    let deadline = calls(
        "1 pselect6(10, [3 4], [], NULL, {tv_sec=2, tv_nsec=973203000}, NULL) = 0 (Timeout)
",
    );
    assert_eq!(check_waits(&deadline), Ok((1, 1)));
    let spinning = calls(
        "1 poll([{fd=10, events=POLLOUT}], 1, 300000) = 1 ([{fd=10, revents=POLLOUT}])
1 poll([{fd=10, events=POLLOUT}], 1, 300000) = 1 ([{fd=10, revents=POLLOUT}])
",
    );
    assert!(check_waits(&spinning).unwrap_err().contains("busy loop"));
    let interrupted = calls(
        "1 poll([{fd=3, events=POLLIN}], 1, -1) = -1 EINTR (Interrupted system call)
",
    );
    assert!(check_waits(&interrupted).is_err());
}
