//! The limits a hostile or careless client runs into: `--max-conns`,
//! `--max-pending` (backpressure, with the server's memory measured),
//! `--max-frame` on both framed services, and `--idle-timeout`.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

common::backend_tests!(
    connections_past_max_conns_are_closed_at_once_while_the_others_are_served,
    refused_connections_are_counted_and_warned_at_most_once_a_second,
    client_that_sends_without_reading_costs_bounded_memory_and_stalls_no_one,
    paused_client_gets_every_byte_in_order_once_it_reads,
    slow_reader_with_a_small_window_costs_bounded_memory,
    frame_header_over_max_frame_closes_before_any_body_arrives,
    array_request_header_over_max_frame_closes_before_any_body_arrives,
    body_sent_after_an_oversized_header_is_thrown_away_not_buffered,
    silent_connections_are_closed_after_idle_timeout_while_an_active_one_is_kept,
    a_client_that_goes_on_sending_after_a_violation_is_cut_at_the_linger_timeout,
    accepted_connections_have_tcp_keepalive,
);

const MIB: usize = 1 << 20;

// ------------------------------------------------------------------ helpers

/// Stream byte `i` of a sequence in which every position is distinct enough
/// that a lost, repeated or reordered block shows.
fn pattern_into(offset: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let at = (offset + i) as u64;
        *b = ((at / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (8 * (at % 8))) as u8;
    }
}

// ---------------------------------------------------------------- --max-conns

const REFUSED: usize = 30;

/// Fills `--max-conns 3`, then connects `REFUSED` more, returning the three
/// served clients and how long the refusals took.
fn fill_and_overflow(srv: &Server) -> (Vec<TcpStream>, Duration) {
    let mut served: Vec<TcpStream> = ["tcp-echo", "tcp-echo", "tcp-frame"]
        .iter()
        .map(|service| connect(srv.addr(service)))
        .collect();
    echo_roundtrip(&mut served[0], b"first");
    echo_roundtrip(&mut served[1], b"second");
    write_or_fail(&mut served[2], &frame(b"third"));
    expect_frame(&mut served[2], b"THIRD");
    let started = Instant::now();
    for i in 0..REFUSED {
        let service = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array"][i % 4];
        let mut extra = connect(srv.addr(service));
        // Closed by the server without a byte: EOF, however long the client waits.
        let (got, how) = read_until_closed(&mut extra);
        assert!(got.is_empty(), "refused {service} connection {i} got {:?}", Shown(&got));
        assert_eq!(how, Closed::Eof, "refused {service} connection {i}");
    }
    (served, started.elapsed())
}

fn connections_past_max_conns_are_closed_at_once_while_the_others_are_served(backend: &str) {
    let srv = Server::start(backend, &["--max-conns", "3", "--array-len", "10"]);
    let (mut served, _) = fill_and_overflow(&srv);
    // The three admitted ones are still served, in full.
    echo_roundtrip(&mut served[0], &[b'a'; 100_000]);
    echo_roundtrip(&mut served[1], b"still here");
    write_or_fail(&mut served[2], &frame(b"still here"));
    expect_frame(&mut served[2], b"STILL HERE");
    // UDP is not a connection: it is answered whatever the count.
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING x"), b"PONG x");
    // One closes: the next newcomer is admitted and served.
    close_cleanly(served.remove(0));
    let mut newcomer = connect(srv.addr("tcp-array"));
    assert_values(ask_array(&mut newcomer, "1:3"), 1, 3, "1:3");
    // ... and the one after it is refused again.
    let mut extra = connect(srv.addr("tcp-echo"));
    let (got, _) = read_until_closed(&mut extra);
    assert!(got.is_empty(), "a fourth connection got {:?}", Shown(&got));
    echo_roundtrip(&mut served[0], b"and still");
}

fn refused_connections_are_counted_and_warned_at_most_once_a_second(backend: &str) {
    let srv = Server::start(backend, &["--max-conns", "3", "--array-len", "10", "--stats"]);
    let (served, took) = fill_and_overflow(&srv);
    let stderr = srv.stderr();
    let warnings = stderr.lines().filter(|l| l.contains("--max-conns 3 reached")).count();
    // Each refusal was made before its client saw EOF, so all fall within `took`.
    let allowed = 1 + took.as_secs() as usize;
    assert!(
        (1..=allowed).contains(&warnings),
        "{warnings} warnings for {REFUSED} refusals in {took:?} (at most {allowed})\nstderr:\n{stderr}"
    );
    for stream in served {
        close_cleanly(stream);
    }
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
    assert_eq!(common::stat(&done.stderr, "refused"), REFUSED as u64, "stderr:\n{}", done.stderr);
    assert_eq!(common::stat(&done.stderr, "accepted"), 3, "stderr:\n{}", done.stderr);
}

// ------------------------------------------------------- --max-pending (backpressure)

const MAX_PENDING: usize = MIB;
/// What the non-reading client tries to push through tcp-echo.
const FLOOD: usize = 64 * MIB;
/// A write blocked this long means the server stopped reading: the push is over.
const STALLED: Duration = Duration::from_secs(2);
/// Generous: what the server may hold resident while one client floods it.
const RSS_BOUND: usize = MAX_PENDING + 32 * MIB;

enum Push {
    /// At least this much was taken by the kernel so far.
    Progress(usize),
    /// The push ended: everything was taken, or a write stalled.
    Done,
}

/// Writes the pattern from byte `from` up to byte `to`; a write that blocks
/// as long as the socket's write timeout ends the push early. Returns how far it got.
fn push(stream: &mut TcpStream, from: usize, to: usize, progress: &mpsc::Sender<Push>) -> usize {
    let mut sent = from;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut reported = sent;
    while sent < to {
        let len = chunk.len().min(to - sent);
        pattern_into(sent, &mut chunk[..len]);
        match stream.write(&chunk[..len]) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("flooding tcp-echo: {e} after {sent} bytes"),
        }
        if sent - reported >= MIB {
            reported = sent;
            let _ = progress.send(Push::Progress(sent));
        }
    }
    let _ = progress.send(Push::Done);
    sent
}

/// Starts a server with `--max-pending 1 MiB`, floods a tcp-echo connection
/// without reading until the server stops taking input, and checks on the way
/// that other clients are served and the server's memory stays bounded.
/// Returns the server, the flooding stream and how much it pushed.
fn flood_without_reading(backend: &str) -> (Server, TcpStream, usize) {
    let pending = MAX_PENDING.to_string();
    let srv = Server::start(backend, &["--max-pending", &pending, "--array-len", "10"]);
    let flooder = connect(srv.addr("tcp-echo"));
    let mut writer = flooder.try_clone().unwrap();
    writer.set_write_timeout(Some(STALLED)).unwrap();
    let (tx, rx) = mpsc::channel();
    let pusher = thread::spawn(move || {
        let sent = push(&mut writer, 0, FLOOD, &tx);
        (writer, sent)
    });
    // Once the flood is well past what the server may buffer (or already
    // stopped), everyone else must still be served, promptly and fully.
    let mut max_rss = peak_rss(&srv);
    for report in &rx {
        max_rss = max_rss.max(peak_rss(&srv));
        match report {
            Push::Progress(sent) if sent < 4 * MAX_PENDING => {}
            Push::Progress(_) | Push::Done => break,
        }
    }
    let mut other = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut other, &[b'o'; 200_000]);
    let upper = exchange(srv.addr("tcp-upper"), "straße ".repeat(1000).into_bytes());
    assert_bytes_eq(&upper, "STRASSE ".repeat(1000).as_bytes());
    assert_bytes_eq(&exchange(srv.addr("tcp-frame"), frame(b"x")), &frame(b"X"));
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-upper"), b"u"), b"U");
    for report in &rx {
        max_rss = max_rss.max(peak_rss(&srv));
        if let Push::Done = report {
            break;
        }
    }
    let (writer, sent) = pusher.join().unwrap();
    writer.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // The push is over: whatever the server took, it holds now.
    max_rss = max_rss.max(peak_rss(&srv));
    assert!(
        max_rss < RSS_BOUND,
        "server peak RSS reached {} MiB while a client pushed {} MiB without reading \
         (--max-pending {MAX_PENDING}; bound {} MiB)",
        max_rss / MIB,
        sent / MIB,
        RSS_BOUND / MIB
    );
    echo_roundtrip(&mut other, b"after the push");
    (srv, flooder, sent)
}

fn client_that_sends_without_reading_costs_bounded_memory_and_stalls_no_one(backend: &str) {
    let (srv, flooder, sent) = flood_without_reading(backend);
    eprintln!(
        "{backend}: the non-reading client pushed {} MiB; server peak RSS {} KiB",
        sent / MIB,
        peak_rss(&srv) / 1024
    );
    drop(flooder);
    // Gone with its echo unread: the server goes on.
    assert_bytes_eq(&exchange(srv.addr("tcp-echo"), b"next".to_vec()), b"next");
}

fn paused_client_gets_every_byte_in_order_once_it_reads(backend: &str) {
    let (srv, mut flooder, sent) = flood_without_reading(backend);
    // Now it reads, while it sends the rest of its 64 MiB.
    let mut writer = flooder.try_clone().unwrap();
    let (tx, _rx) = mpsc::channel();
    let pusher = thread::spawn(move || {
        let total = push(&mut writer, sent, FLOOD, &tx);
        assert_eq!(total, FLOOD, "the rest of the push stalled with the client reading");
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let (got, max_rss) = read_pattern_echo(&srv, &mut flooder, 256 * 1024);
    pusher.join().unwrap();
    eprintln!("{backend}: server RSS peaked at {} KiB while catching up", max_rss / 1024);
    assert_eq!(got, FLOOD, "echo ended early: {got} of {FLOOD} bytes");
    assert!(
        max_rss < RSS_BOUND,
        "server peak RSS reached {} MiB while echoing {} MiB to a client reading and writing at once \
         (--max-pending {MAX_PENDING}; bound {} MiB)",
        max_rss / MIB,
        FLOOD / MIB,
        RSS_BOUND / MIB
    );
}

/// Reads the echo of the pattern to EOF, `read_size` bytes at a time; checks
/// every byte and samples the server's RSS every MiB. Returns the bytes read
/// and the largest RSS seen.
fn read_pattern_echo(srv: &Server, stream: &mut TcpStream, read_size: usize) -> (usize, usize) {
    let mut echo = EchoReader::new(read_size);
    while echo.read(srv, stream) > 0 {}
    (echo.got, echo.max_rss.max(peak_rss(srv)))
}

/// Reads the echo of the pattern, checking every byte and sampling the
/// server's RSS every MiB.
struct EchoReader {
    /// Echo bytes read and checked so far.
    got: usize,
    /// Where one read lands.
    buf: Vec<u8>,
    /// The pattern those bytes must equal.
    want: Vec<u8>,
    /// The largest server RSS sampled.
    max_rss: usize,
    /// `got` at which to sample the RSS next.
    next_sample: usize,
}

impl EchoReader {
    fn new(read_size: usize) -> Self {
        EchoReader {
            got: 0,
            buf: vec![0; read_size],
            want: vec![0; read_size],
            max_rss: 0,
            next_sample: 0,
        }
    }

    /// One read (blocking): the bytes it brought, checked; 0 at EOF.
    fn read(&mut self, srv: &Server, stream: &mut TcpStream) -> usize {
        let n = loop {
            match stream.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("reading the echo: {e} after {} bytes", self.got),
            }
        };
        pattern_into(self.got, &mut self.want[..n]);
        if let Some(at) = self.buf[..n].iter().zip(&self.want[..n]).position(|(a, b)| a != b) {
            panic!("echo differs at byte {}", self.got + at);
        }
        self.got += n;
        if self.got >= self.next_sample {
            self.max_rss = self.max_rss.max(peak_rss(srv));
            self.next_sample = self.got + MIB;
        }
        n
    }
}

/// A client that shrinks its receive window to 4 KiB (so every send the
/// server makes is cut short) and, in one thread, alternates: write all the
/// kernel will take at once (MSG_DONTWAIT), then read one 4 KiB piece of the echo. Its reading is always behind its
/// writing, by construction rather than by a pause: the server's unsent
/// output climbs to `--max-pending`, keeps being appended to while partly
/// sent, and stays between half and all of it until the writing ends. What
/// the server keeps for it must stay bounded all the same.
fn slow_reader_with_a_small_window_costs_bounded_memory(backend: &str) {
    const TOTAL: usize = 40 * MIB;
    const PIECE: usize = 4096;
    let pending = MAX_PENDING.to_string();
    let srv = Server::start(backend, &["--max-pending", &pending, "--array-len", "10"]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(PIECE).unwrap();
    socket.connect_timeout(&srv.addr("tcp-echo").into(), IO_TIMEOUT).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let before = peak_rss(&srv);
    let mut echo = EchoReader::new(PIECE);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < TOTAL {
        // Never both blocked: whatever was written and not yet read back is
        // in flight, so the read below always has something coming.
        while sent < TOTAL {
            let len = chunk.len().min(TOTAL - sent);
            pattern_into(sent, &mut chunk[..len]);
            match socket2::SockRef::from(&stream).send_with_flags(&chunk[..len], libc::MSG_DONTWAIT)
            {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("writing to tcp-echo: {e} after {sent} bytes"),
            }
        }
        if sent > echo.got {
            assert!(echo.read(&srv, &mut stream) > 0, "EOF after {} of {sent} bytes", echo.got);
        }
    }
    stream.shutdown(Shutdown::Write).unwrap();
    while echo.read(&srv, &mut stream) > 0 {}
    let (got, max_rss) = (echo.got, echo.max_rss.max(peak_rss(&srv)));
    assert_eq!(got, TOTAL, "echo ended early: {got} of {TOTAL} bytes");
    // Generous: 16 times --max-pending more than before; a server that keeps
    // what it has sent grows by about the whole 40 MiB.
    let bound = before + 16 * MAX_PENDING;
    assert!(
        max_rss < bound,
        "server peak RSS grew from {} to {} MiB while echoing {} MiB to a slow reader with a \
         4 KiB receive buffer (--max-pending {MAX_PENDING}; bound {} MiB)",
        before / MIB,
        max_rss / MIB,
        TOTAL / MIB,
        bound / MIB
    );
}

// ---------------------------------------------------------------- --max-frame

/// After `owed` (a complete request and its reply), a header announcing one
/// byte more than `--max-frame`, and no body at all: the server must answer
/// what it owes and close without waiting for the body.
fn assert_header_alone_closes(service: &str, backend: &str) {
    let srv = Server::start(backend, &["--max-frame", "1024", "--array-len", "100"]);
    let mut s = connect(srv.addr(service));
    let (request, reply) = match service {
        "tcp-frame" => (frame(b"owed"), frame(b"OWED")),
        _ => {
            let mut reply = 17u32.to_be_bytes().to_vec();
            reply.push(0);
            reply.extend(array_slice(3, 2).iter().flat_map(|v| v.to_le_bytes()));
            (array_request("3:2"), reply)
        }
    };
    let mut wire = request;
    wire.extend(frame_header(1025));
    write_or_fail(&mut s, &wire);
    expect_bytes(&mut s, &reply);
    let (rest, how) = read_until_closed(&mut s);
    assert!(rest.is_empty(), "{service} sent {:?} after an oversized header", Shown(&rest));
    assert_eq!(how, Closed::Eof, "{service}: closed by reset, not FIN");
    // Others on the same service are untouched, up to the limit itself.
    let mut other = connect(srv.addr(service));
    match service {
        "tcp-frame" => {
            let payload = vec![b'q'; 1024];
            write_or_fail(&mut other, &frame(&payload));
            expect_frame(&mut other, &vec![b'Q'; 1024]);
        }
        _ => assert_values(ask_array(&mut other, "0:100"), 0, 100, "0:100"),
    }
}

fn frame_header_over_max_frame_closes_before_any_body_arrives(backend: &str) {
    assert_header_alone_closes("tcp-frame", backend);
}

fn array_request_header_over_max_frame_closes_before_any_body_arrives(backend: &str) {
    assert_header_alone_closes("tcp-array", backend);
}

fn body_sent_after_an_oversized_header_is_thrown_away_not_buffered(backend: &str) {
    // A limit of 64 MiB and a header one byte over it, then 48 MiB of body:
    // a server that kept the body would hold tens of MiB more.
    let limit = 64 * MIB;
    let srv = Server::start(backend, &["--max-frame", &limit.to_string(), "--array-len", "10"]);
    let before = peak_rss(&srv);
    for service in ["tcp-frame", "tcp-array"] {
        let mut s = connect(srv.addr(service));
        write_or_fail(&mut s, &frame_header(limit as u32 + 1));
        let (rest, how) = read_until_closed(&mut s);
        assert!(rest.is_empty() && how == Closed::Eof, "{service}: {how:?} after {rest:?}");
        // The server still reads (so that closing sends no RST) and discards.
        let junk = vec![b'j'; MIB];
        for _ in 0..48 {
            write_or_fail(&mut s, &junk);
        }
        s.shutdown(Shutdown::Write).unwrap();
    }
    // Whatever of the 96 MiB the kernel buffers do not hold, the server has read by now.
    let after = peak_rss(&srv);
    assert!(
        after < before + 16 * MIB,
        "server peak RSS grew from {} to {} MiB while 2 x 48 MiB of refused bodies arrived",
        before / MIB,
        after / MIB
    );
    assert_bytes_eq(&exchange(srv.addr("tcp-frame"), frame(b"ok")), &frame(b"OK"));
}

// ------------------------------------------------------------- --idle-timeout

fn silent_connections_are_closed_after_idle_timeout_while_an_active_one_is_kept(backend: &str) {
    let srv = Server::start(backend, &["--idle-timeout", "1", "--array-len", "10"]);
    let mut active = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut active, b"hello");
    // Before the silent ones' last activity, so their timeout ends after `opened + 1 s`.
    let opened = Instant::now();
    let silent = connect(srv.addr("tcp-echo"));
    // A slow-loris: half a frame header, then nothing.
    let mut half_frame = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut half_frame, &[0, 0]);
    // Served once, then silent.
    let mut served_once = connect(srv.addr("tcp-array"));
    assert_values(ask_array(&mut served_once, "1:2"), 1, 2, "1:2");
    let (tx, rx) = mpsc::channel();
    for (name, mut stream) in
        [("silent", silent), ("half frame", half_frame), ("served once", served_once)]
    {
        let tx = tx.clone();
        thread::spawn(move || {
            // Blocks until the server closes it (IO_TIMEOUT is only a hang guard).
            let closed = read_until_closed(&mut stream);
            let _ = tx.send((name, closed, opened.elapsed()));
        });
    }
    drop(tx);
    // The active client keeps talking (every 100 ms) until all three are closed.
    let mut closed = Vec::new();
    let mut rounds = 0;
    while closed.len() < 3 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(report) => closed.push(report),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a reader thread died"),
        }
        rounds += 1;
        echo_roundtrip(&mut active, format!("round {rounds}").as_bytes());
    }
    for (name, (got, how), after) in &closed {
        assert!(got.is_empty(), "{name}: got {:?} before the close", Shown(got));
        assert_eq!(*how, Closed::Eof, "{name}: closed by reset");
        // The timeout measured: not before a second of silence.
        assert!(*after >= Duration::from_secs(1), "{name} closed after only {after:?}");
    }
    // Older than the timeout, but never silent that long: still served.
    echo_roundtrip(&mut active, b"still open");
    close_cleanly(active);
}

// ----------------------------------------------------------- --linger-timeout

fn a_client_that_goes_on_sending_after_a_violation_is_cut_at_the_linger_timeout(backend: &str) {
    let srv = Server::start(backend, &["--linger-timeout", "1", "--max-frame", "16"]);
    let mut s = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut s, &frame_header(17));
    // The server shuts its side at once (EOF), yet keeps reading, and so
    // throwing away, what the client sends: but only for --linger-timeout.
    let (rest, how) = read_until_closed(&mut s);
    assert!(rest.is_empty() && how == Closed::Eof, "{how:?} after {rest:?}");
    let junk = vec![b'j'; 4096];
    let mut sent = 0usize;
    // Idle timeout is 300 s: only the linger timeout can end this. The loop is
    // bounded only to turn a missing cut into a failure rather than a hang.
    let cut = loop {
        match s.write(&junk) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
        assert!(sent < (1 << 40), "{backend}: never cut after {sent} bytes");
    };
    assert!(
        matches!(cut.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "{backend}: {cut}"
    );
    srv.wait_for_stderr("of --linger-timeout");
}

// --------------------------------------------------------------- --keepalive

fn accepted_connections_have_tcp_keepalive(backend: &str) {
    let ss = std::process::Command::new("ss").arg("-V").output();
    if !tool_present(ss.map(drop).map_err(|e| format!("ss missing ({e})"))) {
        return;
    }
    let srv = Server::start(backend, &["--keepalive", "7"]);
    let mut client = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut client, b"alive");
    let port = srv.addr("tcp-echo").port();
    // The server's side of the connection: its local port is the service's.
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", "sport", "=", &format!(":{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("timer:(keepalive,"), "{backend}: no keepalive timer:\n{text}");
    close_cleanly(client);
}
