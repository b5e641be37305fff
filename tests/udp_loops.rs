//! The UDP services cannot be made to answer themselves, or another server
//! like them, in a loop: a datagram from one of the server's own UDP ports
//! (or port 0) is not answered, a `PONG` is not answered by udp-ping, and any
//! loop the guard cannot recognise stays within `--udp-rate` replies per
//! second per source address. Spoofed source ports come from a raw socket
//! (root, as CI runs).

mod common;

use common::*;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

common::backend_tests!(
    udp_ping_does_not_answer_a_pong,
    a_datagram_from_its_own_ports_is_not_answered,
    two_servers_on_the_same_ports_do_not_answer_each_other,
    two_servers_on_other_ports_stop_at_the_rate,
);

/// A raw IPv4 socket that sends UDP with any source port, or `None` (skipped,
/// or failed under CI) where raw sockets are not allowed.
fn raw_socket() -> Option<Socket> {
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP));
    let why = |e: std::io::Error| {
        format!("cannot open a raw socket to spoof UDP ({e}; needs CAP_NET_RAW)")
    };
    match raw {
        Ok(socket) => Some(socket),
        Err(e) => {
            tool_present(Err(why(e)));
            None
        }
    }
}

/// Sends `payload` to `to` as a UDP datagram from 127.0.0.1:`from_port`.
fn spoof(raw: &Socket, from_port: u16, to: SocketAddr, payload: &[u8]) {
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&from_port.to_be_bytes());
    datagram.extend_from_slice(&to.port().to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]); // no checksum (allowed over IPv4)
    datagram.extend_from_slice(payload);
    let sent = raw.send_to(&datagram, &SockAddr::from(to)).unwrap();
    assert_eq!(sent, datagram.len());
}

/// A port that was free on 127.0.0.1 a moment ago (for servers that must share one).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn udp_ping_does_not_answer_a_pong(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-ping");
    let socket = udp_socket_for(addr);
    socket.connect(addr).unwrap();
    socket.send(b"PONG 1").unwrap();
    socket.send(b"PING 2").unwrap();
    // Datagrams on one socket are answered in order: had the PONG been
    // answered, its bare `PONG` would come first.
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("the PING is answered");
    assert_bytes_eq(&buf[..n], b"PONG 2");
}

fn a_datagram_from_its_own_ports_is_not_answered(backend: &str) {
    let Some(raw) = raw_socket() else { return };
    let srv = Server::start(backend, &["--stats"]);
    let (ping, upper) = (srv.addr("udp-ping"), srv.addr("udp-upper"));
    // Each of these, answered, would start the server talking to itself forever.
    spoof(&raw, upper.port(), ping, b"PING loop");
    spoof(&raw, ping.port(), upper, b"loop");
    spoof(&raw, upper.port(), upper, b"loop");
    spoof(&raw, 0, upper, b"from port zero");
    // A socket's datagrams are read in order: these replies prove the spoofed
    // ones were read (and refused) first.
    assert_bytes_eq(&udp_roundtrip(ping, b"PING marker"), b"PONG marker");
    assert_bytes_eq(&udp_roundtrip(upper, b"marker"), b"MARKER");
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert_eq!(stat(&done.stderr, "datagrams-refused"), 4, "{}", done.stderr);
    assert_eq!(stat(&done.stderr, "datagrams-out"), 2, "only the markers: {}", done.stderr);
}

fn two_servers_on_the_same_ports_do_not_answer_each_other(backend: &str) {
    let Some(raw) = raw_socket() else { return };
    // As two hosts running pollmux on its default ports: A on 127.0.0.1, B on 127.0.0.2.
    let (ping_port, upper_port) = (free_udp_port(), free_udp_port());
    let ports = |host: &'static str| {
        let (p, u) = (ping_port.to_string(), upper_port.to_string());
        Server::start(backend, &["--stats", "--host", host, "--udp-ping", &p, "--udp-upper", &u])
    };
    let a = ports("127.0.0.1");
    let b = ports("127.0.0.2");
    // A datagram that looks as if it came from A's udp-upper, to each of B's services.
    spoof(&raw, upper_port, b.addr("udp-ping"), b"PING loop");
    spoof(&raw, upper_port, b.addr("udp-upper"), b"loop");
    spoof(&raw, ping_port, b.addr("udp-ping"), b"PING loop");
    assert_bytes_eq(&udp_roundtrip(b.addr("udp-ping"), b"PING marker"), b"PONG marker");
    assert_bytes_eq(&udp_roundtrip(b.addr("udp-upper"), b"marker"), b"MARKER");
    for srv in [&a, &b] {
        srv.signal(libc::SIGTERM);
    }
    let (a, b) = (a_done(a), a_done(b));
    assert_eq!(stat(&b, "datagrams-refused"), 3, "{b}");
    assert_eq!(stat(&b, "datagrams-out"), 2, "only the markers: {b}");
    assert_eq!(stat(&a, "datagrams-in"), 0, "A never heard from B: {a}");
}

/// The stderr of a server that was sent SIGTERM, once it exited.
fn a_done(srv: Server) -> String {
    srv.wait().stderr
}

fn two_servers_on_other_ports_stop_at_the_rate(backend: &str) {
    let Some(raw) = raw_socket() else { return };
    let started = Instant::now();
    let a = Server::start(backend, &["--stats", "--host", "127.0.0.1", "--udp-rate", "1000"]);
    let b = Server::start(backend, &["--stats", "--host", "127.0.0.2", "--udp-rate", "1000"]);
    // A's udp-upper and B's uppercase each other's replies: "HELLO" uppercases to itself.
    spoof(&raw, a.addr("udp-upper").port(), b.addr("udp-upper"), b"hello");
    // The loop runs until one side's budget for the other is spent; that
    // side refuses one datagram, and the loop, one datagram in flight, ends.
    let refused =
        |t: &str| t.lines().any(|l| l.contains("stats:") && !l.contains("datagrams-refused 0"));
    let a_stderr = a.stderr();
    if !refused(&a_stderr) {
        b.wait_for_stderr_until("a refusal at A or B", |t| refused(t) || refused(&a.stderr()));
    }
    for srv in [&a, &b] {
        srv.signal(libc::SIGTERM);
    }
    let lifetime = started.elapsed().as_secs_f64();
    let (a, b) = (a_done(a), a_done(b));
    let (a_out, b_out) = (stat(&a, "datagrams-out"), stat(&b, "datagrams-out"));
    assert!(a_out > 100 && b_out > 100, "the loop did run: {a_out} and {b_out} replies");
    // The budget: at most a burst of --udp-rate, then --udp-rate per second.
    let bound = 1000.0 + 1000.0 * lifetime;
    assert!((a_out as f64) <= bound && (b_out as f64) <= bound, "{a_out}, {b_out} > {bound}");
    assert_eq!(stat(&a, "datagrams-refused") + stat(&b, "datagrams-refused"), 1, "{a}\n{b}");
}
