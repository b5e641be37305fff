//! A client that sends a few bytes and its FIN after the server has shut its
//! side, while a large reply is still in the server's send queue: the server
//! reads to EOF before it closes, so no reset throws the queue away. Every
//! owed byte arrives, then EOF.

mod common;

use common::*;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

common::backend_tests!(
    owed_bytes_survive_data_and_fin_after_a_violation,
    owed_bytes_survive_data_and_fin_during_a_sigterm_drain,
);

/// Values in the array, and so in the one large reply: 2 MB, far more than a
/// client that does not read takes into its receive buffer (about 128 KB), and
/// within what the server's send buffer holds once handed over (about 4 MB).
const VALUES: u64 = 250_000;

/// The server's side of `client` is in FIN_WAIT1: it has called
/// shutdown(SHUT_WR) with bytes still queued. Read from /proc/net/tcp, so the
/// client need not read (and so drain the queue) to know it.
fn server_side_shut(server: SocketAddr, client: &TcpStream) -> bool {
    let client_port = client.local_addr().unwrap().port();
    let fin_wait1 = "04";
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().map(|p| u16::from_str_radix(p, 16));
            fields.len() > 3
                && port(fields[1]) == Some(Ok(server.port()))
                && port(fields[2]) == Some(Ok(client_port))
                && fields[3] == fin_wait1
        })
    })
}

/// Waits, without reading, until the server has shut its side of `client`.
fn wait_until_server_side_shut(server: SocketAddr, client: &TcpStream) {
    let start = Instant::now();
    while !server_side_shut(server, client) {
        assert!(start.elapsed() < PROCESS_DEADLINE, "the server never shut its side");
        std::thread::sleep(std::time::Duration::from_millis(1)); // polling a condition, not a guess
    }
}

/// Sends bytes the server will never read as requests, then FIN, then reads
/// everything: the whole reply must arrive, then EOF, not a reset.
/// TCP_CORK holds the bytes back until the FIN, so both arrive in one segment
/// and the server wakes once, to readable and hung up at the same time.
fn send_junk_and_fin_then_expect(stream: &mut TcpStream, expected: &[u8]) {
    socket2::SockRef::from(&*stream).set_tcp_cork(true).unwrap();
    stream.write_all(b"after your FIN").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (got, closed) = read_until_closed(stream);
    assert!(
        matches!(closed, Closed::Eof),
        "the connection was reset after {} of {} bytes",
        got.len(),
        expected.len()
    );
    assert_bytes_eq(&got, expected);
}

/// The reply to `0:VALUES`: header, status, values.
fn whole_array_reply() -> Vec<u8> {
    let mut expected = (1 + 8 * VALUES as u32).to_be_bytes().to_vec();
    expected.push(0);
    expected.extend(array_slice(0, VALUES).iter().flat_map(|v| v.to_le_bytes()));
    expected
}

fn owed_bytes_survive_data_and_fin_after_a_violation(backend: &str) {
    let len = VALUES.to_string();
    let srv = Server::start(backend, &["--array-len", &len, "--max-frame", "1024"]);
    let addr = srv.addr("tcp-array");
    let mut stream = connect(addr);
    // A request, then a header over --max-frame: the reply is owed, then the server shuts its side.
    let mut wire = array_request(&format!("0:{VALUES}"));
    wire.extend_from_slice(&frame_header(1 << 20));
    stream.write_all(&wire).unwrap();
    wait_until_server_side_shut(addr, &stream);
    send_junk_and_fin_then_expect(&mut stream, &whole_array_reply());
}

fn owed_bytes_survive_data_and_fin_during_a_sigterm_drain(backend: &str) {
    let len = VALUES.to_string();
    let srv = Server::start(backend, &["--array-len", &len, "--drain-timeout", "60"]);
    let addr = srv.addr("tcp-array");
    let mut stream = connect(addr);
    stream.write_all(&array_request(&format!("0:{VALUES}"))).unwrap();
    // The request is read once the reply starts coming; only then is it owed.
    let head = read_exact_or_fail(&mut stream, 5);
    srv.signal(libc::SIGTERM);
    wait_until_server_side_shut(addr, &stream);
    let expected = whole_array_reply();
    send_junk_and_fin_then_expect(&mut stream, &expected[5..]);
    assert_eq!(head, expected[..5]);
    let done = srv.wait();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}
