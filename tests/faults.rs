//! Faults the server must survive while serving everyone else: descriptor
//! exhaustion, select's FD_SETSIZE, clients that reset, vanish or half-close
//! mid-transfer, UDP at its size limits, and shutdown with replies in flight.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

common::backend_tests!(
    out_of_descriptors_stops_accepting_without_spinning_and_resumes_when_one_closes,
    connections_past_fd_setsize_are_refused_by_select_only_and_the_rest_served,
    reset_during_large_array_reply_ends_only_that_connection,
    clients_that_vanish_or_half_close_mid_reply_end_only_their_connection,
    udp_empty_datagrams_are_answered,
    udp_largest_datagram_is_answered_in_full,
    udp_reply_too_large_for_a_datagram_is_dropped_and_counted,
    udp_client_that_never_reads_its_replies_stalls_no_one,
    sigterm_sends_everything_owed_to_slow_readers_then_exits_zero,
    sigterm_cuts_a_client_that_never_reads_at_drain_timeout_and_exits_zero,
    second_signal_during_drain_exits_at_once,
    a_second_sigterm_exits_with_143,
    a_failing_wait_is_retried_and_the_server_recovers,
);

// ------------------------------------------------------------------ helpers

/// The descriptors the process has open.
fn open_fds(pid: libc::pid_t) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

fn stats_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("stats: ")).count()
}

/// Sends the SIGTERM, closes `clients` cleanly, and expects exit 0 after a full drain.
fn terminate_after_closing(srv: Server, clients: Vec<TcpStream>) -> Finished {
    for client in clients {
        close_cleanly(client);
    }
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    done
}

// ------------------------------------------------------- descriptor exhaustion

/// The descriptor limit the test sets on the running server.
const NOFILE: u64 = 64;

/// Sets the running process `pid`'s soft RLIMIT_NOFILE to `limit` (its hard
/// limit stays: raising that back would need CAP_SYS_RESOURCE). Done after
/// start, so that the server's own reconciliation of `--max-conns` with the
/// limit (at start) cannot keep it from running out: as when an operator
/// lowers it, or other descriptors take the room.
#[allow(unsafe_code)]
fn set_nofile(pid: libc::pid_t, limit: u64) {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit(2) with no new limit only writes the old one into `old`.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit { rlim_cur: limit, rlim_max: old.rlim_max };
    // SAFETY: prlimit(2) reads `new` and writes nothing (old is null).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

const EXHAUSTED: &str = "not accepting for";

fn out_of_descriptors_stops_accepting_without_spinning_and_resumes_when_one_closes(backend: &str) {
    let srv = Server::start(backend, &["--stats", "--array-len", "10"]);
    let pid = srv.pid();
    set_nofile(pid, NOFILE);
    let echo = srv.addr("tcp-echo");
    // Fill every free descriptor with a served connection. Descriptors the
    // server inherited above the limit (a build tool's pipe) take no slot.
    let below_limit = |pid| open_fds(pid).iter().filter(|&&fd| (fd as u64) < NOFILE).count();
    let free = NOFILE as usize - below_limit(pid);
    let mut clients: Vec<TcpStream> = (0..free)
        .map(|i| {
            let mut c = connect(echo);
            echo_roundtrip(&mut c, format!("client {i}").as_bytes());
            c
        })
        .collect();
    assert_eq!(below_limit(pid), NOFILE as usize);
    // One more: the kernel completes its handshake, the server has no descriptor for it.
    let mut waiting = connect(echo);
    write_or_fail(&mut waiting, b"waiting");
    // (accept4 fails with EMFILE as soon as the table is full, whether or not
    // a connection waits: the kernel reserves the descriptor first.)
    let stderr = srv.wait_for_stderr(EXHAUSTED);
    assert!(stderr.contains("EMFILE"), "the warning does not name EMFILE:\n{stderr}");
    // No busy loop: across one whole stats interval spent in this state, the
    // server made a handful of wait calls (the back-off retries ten times a
    // second), not thousands.
    let seen = stats_lines(&stderr);
    let stderr = srv.wait_for_stderr_until("two more stats lines", |t| stats_lines(t) >= seen + 2);
    let waits: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.split_once("stats: waits ").map(|(_, s)| s))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    let idle = waits[seen + 1] - waits[seen];
    assert!(idle < 50, "{idle} wait calls in one second with a connection it cannot accept");
    // Everyone already in is served, and UDP needs no new descriptor.
    for (i, c) in clients.iter_mut().enumerate() {
        echo_roundtrip(c, format!("still {i}").as_bytes());
    }
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING e"), b"PONG e");
    // One closes: the waiting connection is accepted and answered.
    close_cleanly(clients.pop().unwrap());
    expect_bytes(&mut waiting, b"waiting");
    clients.push(waiting);
    // Two more free up: two newcomers are served, and the next waits again
    // until one more closes.
    close_cleanly(clients.pop().unwrap());
    close_cleanly(clients.pop().unwrap());
    for i in 0..2 {
        let mut c = connect(echo);
        echo_roundtrip(&mut c, format!("newcomer {i}").as_bytes());
        clients.push(c);
    }
    let mut again = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut again, &frame(b"again"));
    close_cleanly(clients.pop().unwrap());
    expect_frame(&mut again, b"AGAIN");
    clients.push(again);
    // Out again, and this time nothing closes: the limit is raised instead.
    // Only the back-off timer can notice, and the newcomer is served.
    let mut late = connect(echo);
    write_or_fail(&mut late, b"late");
    let warned = srv.stderr().matches(EXHAUSTED).count();
    srv.wait_for_stderr_until("another exhaustion warning", |t| {
        t.matches(EXHAUSTED).count() > warned
    });
    set_nofile(pid, 1024);
    expect_bytes(&mut late, b"late");
    clients.push(late);
    terminate_after_closing(srv, clients);
}

// ---------------------------------------------------------------- FD_SETSIZE

const FD_SETSIZE: usize = 1024;
/// More connections than an `fd_set` can hold, with the server's own descriptors.
const CROWD: usize = 1100;

/// How a client's connection turned out.
fn served_or_refused(stream: &mut TcpStream, message: &[u8]) -> bool {
    // A refused connection may already be closed: the write may fail.
    if stream.write_all(message).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < message.len() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading an echo: {e}"),
        }
    }
    if got.is_empty() {
        return false;
    }
    assert_bytes_eq(&got, message);
    true
}

fn connections_past_fd_setsize_are_refused_by_select_only_and_the_rest_served(backend: &str) {
    pollmux::sys::limits::raise_nofile().expect("raise RLIMIT_NOFILE");
    let srv = Server::start(backend, &["--stats", "--array-len", "10"]);
    // Under select the server lowers --max-conns below FD_SETSIZE at start, and says so.
    let said = if backend == "select" { "lowered to" } else { "serving at most" };
    let stderr = srv.wait_for_stderr(said);
    let limit = stderr
        .split_once("lowered to ")
        .and_then(|(_, rest)| rest.split(':').next()?.parse::<usize>().ok());
    let below = open_fds(srv.pid()).iter().filter(|&&fd| (fd as usize) < FD_SETSIZE).count();
    if backend == "select" {
        let limit = limit.unwrap_or_else(|| panic!("no lowered --max-conns:\n{stderr}"));
        assert!(below + limit <= FD_SETSIZE, "{below} + {limit} descriptors do not fit");
    } else {
        assert_eq!(limit, None, "{stderr}");
    }
    let echo = srv.addr("tcp-echo");
    let mut crowd: Vec<TcpStream> = (0..CROWD).map(|_| connect(echo)).collect();
    let served: Vec<bool> = crowd
        .iter_mut()
        .enumerate()
        .map(|(i, c)| served_or_refused(c, format!("{i}.").as_bytes()))
        .collect();
    let count = served.iter().filter(|&&s| s).count();
    let expected = if backend == "select" { limit.unwrap() } else { CROWD };
    let stderr = srv.stderr();
    assert_eq!(count, expected, "{backend}: connections served of {CROWD}\nstderr:\n{stderr}");
    let warnings = stderr.lines().filter(|l| l.contains("FD_SETSIZE")).count();
    assert_eq!(warnings, usize::from(backend == "select"), "warnings:\n{stderr}");
    // Those served still are; a freed slot below FD_SETSIZE admits a newcomer.
    let mut kept: Vec<TcpStream> =
        crowd.into_iter().zip(&served).filter(|(_, s)| **s).map(|(c, _)| c).collect();
    for (i, c) in kept.iter_mut().enumerate().step_by(50) {
        echo_roundtrip(c, format!("again {i}").as_bytes());
    }
    close_cleanly(kept.pop().unwrap());
    let mut newcomer = connect(echo);
    echo_roundtrip(&mut newcomer, b"newcomer");
    kept.push(newcomer);
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING s"), b"PONG s");
    let done = terminate_after_closing(srv, kept);
    assert_eq!(common::stat(&done.stderr, "refused"), (CROWD - expected) as u64);
}

// ------------------------------------------------------- resets and vanishing

/// Every value of a[offset..offset+count] as tcp-array sends them.
fn values_bytes(offset: u64, count: u64) -> Vec<u8> {
    (offset..offset + count).flat_map(|i| (i as f64).to_le_bytes()).collect()
}

/// A tcp-echo and a tcp-array client that keep working while others misbehave.
struct Bystanders {
    echo: TcpStream,
    array: TcpStream,
    rounds: u64,
}

impl Bystanders {
    fn new(srv: &Server) -> Self {
        let mut b = Bystanders {
            echo: connect(srv.addr("tcp-echo")),
            array: connect(srv.addr("tcp-array")),
            rounds: 0,
        };
        b.check();
        b
    }

    fn check(&mut self) {
        self.rounds += 1;
        echo_roundtrip(&mut self.echo, format!("round {}", self.rounds).as_bytes());
        let request = format!("{}:1000", self.rounds);
        assert_values(ask_array(&mut self.array, &request), self.rounds, 1000, &request);
    }

    fn close(self) {
        close_cleanly(self.echo);
        close_cleanly(self.array);
    }
}

/// Asks tcp-array for `count` values and reads `read` bytes of the reply.
fn start_big_reply(srv: &Server, count: u64, read: usize) -> TcpStream {
    let mut s = connect(srv.addr("tcp-array"));
    write_or_fail(&mut s, &array_request(&format!("0:{count}")));
    if read > 0 {
        let mut expected = (1 + 8 * count as u32).to_be_bytes().to_vec();
        expected.push(0);
        expected.extend(values_bytes(0, (read as u64).div_ceil(8)));
        expect_bytes(&mut s, &expected[..read]);
    }
    s
}

/// Drops `stream` with SO_LINGER 0: the kernel sends RST instead of FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

fn reset_during_large_array_reply_ends_only_that_connection(backend: &str) {
    // 20,000,000 values: a 160 MB reply, far more than any socket buffer.
    const COUNT: u64 = 20_000_000;
    let srv = Server::start(backend, &["--array-len", &COUNT.to_string()]);
    let mut bystanders = Bystanders::new(&srv);
    // Reset before reading a byte, after the header, and a mebibyte in.
    for read in [0, 5, 1 << 20] {
        let victim = start_big_reply(&srv, COUNT, read);
        bystanders.check();
        reset(victim);
        bystanders.check();
    }
    // A newcomer gets a whole large reply.
    let mut s = connect(srv.addr("tcp-array"));
    assert_values(ask_array(&mut s, "0:1000000"), 0, 1_000_000, "0:1000000");
    bystanders.check();
    bystanders.close();
    close_cleanly(s);
}

fn clients_that_vanish_or_half_close_mid_reply_end_only_their_connection(backend: &str) {
    const COUNT: u64 = 2_000_000;
    let srv = Server::start(backend, &["--array-len", &COUNT.to_string()]);
    let mut bystanders = Bystanders::new(&srv);
    // Vanishes: closes with the reply unread (its kernel answers the rest with RST).
    let vanisher = start_big_reply(&srv, COUNT, 1000);
    drop(vanisher);
    bystanders.check();
    // Shuts its read side and leaves: its kernel discards what still arrives.
    let deaf = start_big_reply(&srv, COUNT, 1000);
    deaf.shutdown(Shutdown::Read).unwrap();
    bystanders.check();
    // An echo client that sent a lot, half-closed, and went away unread.
    let mut sender = connect(srv.addr("tcp-echo"));
    write_or_fail(&mut sender, &vec![b's'; 1 << 20]);
    sender.shutdown(Shutdown::Write).unwrap();
    drop(sender);
    bystanders.check();
    // Half-closes mid-reply, then reads: it still gets every byte, then EOF.
    let mut half = start_big_reply(&srv, COUNT, 1000);
    half.shutdown(Shutdown::Write).unwrap();
    bystanders.check();
    let rest = read_to_eof(&mut half);
    let mut expected = (1 + 8 * COUNT as u32).to_be_bytes().to_vec();
    expected.push(0);
    expected.extend(values_bytes(0, COUNT));
    assert_bytes_eq(&rest, &expected[1000..]);
    drop(deaf);
    bystanders.check();
    bystanders.close();
}

// ----------------------------------------------------------------------- UDP

fn udp_empty_datagrams_are_answered(backend: &str) {
    let srv = Server::start(backend, &[]);
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b""), b"PONG");
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-upper"), b""), b"");
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING"), b"PONG");
}

/// The largest UDP payload over IPv4: 65,535 - 20 (IP) - 8 (UDP).
const MAX_DATAGRAM: usize = 65_507;

fn udp_largest_datagram_is_answered_in_full(backend: &str) {
    let srv = Server::start(backend, &[]);
    let text: Vec<u8> = (0..MAX_DATAGRAM).map(|i| b'a' + (i % 26) as u8).collect();
    let reply = udp_roundtrip(srv.addr("udp-upper"), &text);
    assert_bytes_eq(&reply, &text.to_ascii_uppercase());
    // A reply that grows to exactly the largest datagram is still sent:
    // one 'ɐ' (2 bytes) becomes 'Ɐ' (3 bytes).
    let mut grows = "ɐ".as_bytes().to_vec();
    grows.extend(vec![b'b'; MAX_DATAGRAM - 3]);
    let reply = udp_roundtrip(srv.addr("udp-upper"), &grows);
    assert_eq!(reply.len(), MAX_DATAGRAM);
    assert_bytes_eq(&reply, &upper_model(&grows));
    let ping = [b"PING".as_slice(), &vec![b'p'; MAX_DATAGRAM - 4]].concat();
    let pong = udp_roundtrip(srv.addr("udp-ping"), &ping);
    assert_bytes_eq(&pong, &[b"PONG".as_slice(), &ping[4..]].concat());
}

fn udp_reply_too_large_for_a_datagram_is_dropped_and_counted(backend: &str) {
    let srv = Server::start(backend, &["--stats"]);
    let upper = srv.addr("udp-upper");
    // 32,753 x 'ɐ' is 65,506 bytes; uppercased ('Ɐ', 3 bytes each) 98,259.
    let big = "ɐ".repeat(MAX_DATAGRAM / 2);
    assert!(big.len() <= MAX_DATAGRAM && upper_model(big.as_bytes()).len() > MAX_DATAGRAM);
    let socket = udp_socket_for(upper);
    socket.connect(upper).unwrap();
    socket.send(big.as_bytes()).unwrap();
    // Answered in order from one socket: the first reply to arrive is to the
    // datagram after it, so the big one got none.
    let mut buf = vec![0u8; 1 << 17];
    let mut tries = 0;
    let first = loop {
        socket.send(b"after").unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => break buf[..n].to_vec(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                tries += 1;
                assert!(tries < 5, "no reply after the oversized one");
            }
            Err(e) => panic!("recv: {e}"),
        }
    };
    assert_bytes_eq(&first, b"AFTER");
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING 1"), b"PONG 1");
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    assert_eq!(common::stat(&done.stderr, "datagrams-dropped"), 1, "stderr:\n{}", done.stderr);
}

fn udp_client_that_never_reads_its_replies_stalls_no_one(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "10"]);
    let upper = srv.addr("udp-upper");
    // Its receive buffer fills after a few hundred replies; the rest are lost
    // on the way to it, never held up in the server.
    let deaf = UdpSocket::bind("127.0.0.1:0").unwrap();
    deaf.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let payload = vec![b'd'; 8192];
    let mut tcp = connect(srv.addr("tcp-echo"));
    for round in 0..20 {
        for _ in 0..100 {
            deaf.send_to(&payload, upper).unwrap();
        }
        let message = format!("round {round}");
        assert_bytes_eq(
            &udp_roundtrip(upper, message.as_bytes()),
            &message.to_uppercase().into_bytes(),
        );
        echo_roundtrip(&mut tcp, message.as_bytes());
    }
    close_cleanly(tcp);
}

// ------------------------------------------------------------------ shutdown

fn sigterm_sends_everything_owed_to_slow_readers_then_exits_zero(backend: &str) {
    // 5,000,000 values: a 40 MB reply.
    const COUNT: u64 = 5_000_000;
    let srv = Server::start(backend, &["--array-len", &COUNT.to_string(), "--drain-timeout", "25"]);
    // Owed a 40 MB reply, of which it has read only the start.
    let mut big = start_big_reply(&srv, COUNT, 5);
    // Owed three replies to requests sent in one segment, one of them read.
    let mut pipelined = connect(srv.addr("tcp-array"));
    let requests = [array_request("0:1000"), array_request("7:3"), array_request("x")].concat();
    write_or_fail(&mut pipelined, &requests);
    assert_values(read_array_reply(&mut pipelined), 0, 1000, "0:1000");
    // Owed the first byte of a character it has not finished.
    let mut upper = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut upper, b"stra\xc3\x9fe \xc3");
    expect_bytes(&mut upper, b"STRASSE ");
    // Owed nothing (after one exchange, so it is surely accepted, not queued).
    let mut idle = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut idle, b"idle");

    srv.signal(libc::SIGTERM);
    srv.wait_for_stderr("no longer accepting");
    // No newcomer is served: refused once the listeners are closed, or reset
    // if it reached the accept queue just before (the log line comes first).
    match TcpStream::connect(srv.addr("tcp-echo")) {
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset) => {
        }
        Err(e) => panic!("connecting during the drain: {e}"),
        Ok(mut late) => {
            late.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let _ = late.write_all(b"late");
            let (got, _) = read_until_closed(&mut late);
            assert!(got.is_empty(), "a connection made during the drain was served: {got:?}");
        }
    }
    let readers: Vec<thread::JoinHandle<()>> = vec![
        thread::spawn(move || {
            // Slowly: 16 KiB at a time, checking every value.
            let total = 8 * COUNT as usize;
            let mut got = 0; // value bytes: the header and status byte were read
            let mut buf = vec![0u8; 16 * 1024];
            let mut values = Vec::with_capacity(buf.len() + 16);
            while got < total {
                let want = buf.len().min(total - got);
                let n = match big.read(&mut buf[..want]) {
                    Ok(0) => panic!("EOF after {got} value bytes of {total}"),
                    Ok(n) => n,
                    Err(e) => panic!("reading the big reply after {got} value bytes: {e}"),
                };
                let start = got;
                let end = start + n;
                values.clear();
                values.extend((start / 8..end.div_ceil(8)).flat_map(|i| (i as f64).to_le_bytes()));
                let skip = start % 8;
                assert_bytes_eq(&buf[..n], &values[skip..skip + n]);
                got += n;
            }
            assert_bytes_eq(&read_to_eof(&mut big), b"");
        }),
        thread::spawn(move || {
            assert_values(read_array_reply(&mut pipelined), 7, 3, "7:3");
            assert_error(read_array_reply(&mut pipelined), "x");
            assert_bytes_eq(&read_to_eof(&mut pipelined), b"");
        }),
        thread::spawn(move || {
            assert_bytes_eq(&read_to_eof(&mut upper), b"\xc3");
        }),
        thread::spawn(move || {
            assert_bytes_eq(&read_to_eof(&mut idle), b"");
        }),
    ];
    // Each client closes once it has read its EOF; then the server is done.
    for reader in readers {
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    assert!(
        !done.stderr.contains("drain timeout"),
        "the drain was cut although every client read all and closed:\n{}",
        done.stderr
    );
}

fn sigterm_cuts_a_client_that_never_reads_at_drain_timeout_and_exits_zero(backend: &str) {
    const COUNT: u64 = 5_000_000;
    let srv = Server::start(backend, &["--array-len", &COUNT.to_string(), "--drain-timeout", "1"]);
    let mut stuck = start_big_reply(&srv, COUNT, 5);
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    assert!(
        done.stderr.contains("drain timeout: cutting 1 connections"),
        "stderr:\n{}",
        done.stderr
    );
    // It gets part of its reply, then the connection ends.
    let (rest, _) = read_until_closed(&mut stuck);
    assert!(rest.len() < 8 * COUNT as usize, "got all {} bytes", rest.len());
}

fn second_signal_during_drain_exits_at_once(backend: &str) {
    const COUNT: u64 = 5_000_000;
    // A drain timeout longer than the test waits for the exit.
    let timeout = (PROCESS_DEADLINE.as_secs() * 4).to_string();
    let srv =
        Server::start(backend, &["--array-len", &COUNT.to_string(), "--drain-timeout", &timeout]);
    let _stuck = start_big_reply(&srv, COUNT, 5);
    srv.signal(libc::SIGTERM);
    srv.wait_for_stderr("no longer accepting");
    srv.signal(libc::SIGINT);
    let done = srv.wait();
    assert!(done.stderr.contains("again: exiting now"), "stderr:\n{}", done.stderr);
    // The shell's convention for a process ended by a signal: 128 + its number.
    assert_eq!(done.status.code(), Some(128 + libc::SIGINT), "stderr:\n{}", done.stderr);
}

fn a_second_sigterm_exits_with_143(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "2000000", "--drain-timeout", "600"]);
    let _stuck = start_big_reply(&srv, 2_000_000, 5);
    srv.signal(libc::SIGHUP);
    srv.wait_for_stderr("no longer accepting");
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert_eq!(done.status.code(), Some(128 + libc::SIGTERM), "stderr:\n{}", done.stderr);
}

/// poll(2) fails with EINVAL while it watches more descriptors than
/// RLIMIT_NOFILE allows: the server logs it and waits again after a pause
/// (no busy loop, no exit), and serves as before once the limit is raised.
/// select(2) and epoll(7) have no such check: for them the test shows only
/// that the lowered limit ends no one's service.
fn a_failing_wait_is_retried_and_the_server_recovers(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut client = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut client, b"before");
    set_nofile(srv.pid(), 4);
    // The limit is checked as a wait begins: wake the server, so a new one does
    // (its reply may have to wait for the limit to be raised again).
    write_or_fail(&mut client, b"poke");
    if backend == "poll" {
        srv.wait_for_stderr("poll: EINVAL");
        srv.wait_for_stderr("waiting again in");
    }
    set_nofile(srv.pid(), 1024);
    expect_bytes(&mut client, b"poke");
    echo_roundtrip(&mut client, b"after");
    let mut newcomer = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut newcomer, b"newcomer");
    terminate_after_closing(srv, vec![client, newcomer]);
}
