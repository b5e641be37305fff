//! tcp-array's other wires (`--array-wire push|fixed`), the lessons' own
//! protocols, and what a client speaking the wrong one is told.

mod common;

use common::*;
use std::io::Write;
use std::net::{Shutdown, TcpStream};

common::backend_tests!(
    push_sends_the_whole_array_then_eof,
    push_to_a_client_that_half_closes_first_still_sends_everything,
    fixed_request_gets_exactly_the_slice_then_eof,
    fixed_request_in_pieces_is_waited_for,
    input_after_a_fixed_request_is_never_answered,
    malformed_fixed_request_gets_a_clean_eof_and_an_info_line,
    fixed_request_past_the_end_gets_a_clean_eof_and_an_info_line,
    unframed_request_to_framed_array_is_closed_with_a_hint,
);

/// Values in the pushed array: 800,000 bytes, more than one send buffer holds.
const PUSH_LEN: usize = 100_000;

fn start(backend: &str, wire: &str, len: usize) -> Server {
    let len = len.to_string();
    Server::start(backend, &["--array-wire", wire, "--array-len", &len])
}

/// Asserts `bytes` are a[offset..offset+count] as little-endian float64.
fn assert_slice(bytes: &[u8], offset: usize, count: usize) {
    assert_eq!(bytes.len(), count * 8, "bytes for {count} values from {offset}");
    for (i, value) in bytes.chunks_exact(8).enumerate() {
        let value = f64::from_le_bytes(value.try_into().unwrap());
        assert_eq!(value.to_bits(), ((offset + i) as f64).to_bits(), "value {i}");
    }
}

/// The server's info line for a closed connection that mentions `needle`.
fn wait_for_info_line(srv: &Server, needle: &str) -> String {
    let stderr = srv.wait_for_stderr_until(needle, |text| {
        text.lines().any(|l| l.contains(" INFO ") && l.contains(needle))
    });
    let line = stderr.lines().find(|l| l.contains(" INFO ") && l.contains(needle)).unwrap();
    assert!(line.contains("closing a connection after the replies it is owed"), "{line}");
    line.to_string()
}

fn push_sends_the_whole_array_then_eof(backend: &str) {
    let srv = start(backend, "push", PUSH_LEN);
    // Two clients at once, neither sending a byte: each gets the whole array, then EOF.
    let mut first = connect(srv.addr("tcp-array"));
    let mut second = connect(srv.addr("tcp-array"));
    assert_slice(&read_to_eof(&mut first), 0, PUSH_LEN);
    assert_slice(&read_to_eof(&mut second), 0, PUSH_LEN);
    // Whatever a client sends is ignored, never answered.
    let mut third = connect(srv.addr("tcp-array"));
    write_or_fail(&mut third, &array_request("0:1"));
    assert_slice(&read_to_eof(&mut third), 0, PUSH_LEN);
    smoke_every_service_but_array(&srv);
}

fn push_to_a_client_that_half_closes_first_still_sends_everything(backend: &str) {
    let srv = start(backend, "push", PUSH_LEN);
    let mut s = connect(srv.addr("tcp-array"));
    s.shutdown(Shutdown::Write).unwrap();
    assert_slice(&read_to_eof(&mut s), 0, PUSH_LEN);
}

fn fixed_request_gets_exactly_the_slice_then_eof(backend: &str) {
    let srv = start(backend, "fixed", 20_000);
    for (request, offset, count) in
        [("5000:10000", 5000, 10_000), ("0000:00010", 0, 10), ("19999:0001", 19_999, 1)]
    {
        let mut s = connect(srv.addr("tcp-array"));
        write_or_fail(&mut s, request.as_bytes());
        assert_slice(&read_to_eof(&mut s), offset, count);
    }
    // COUNT 0: nothing, then EOF.
    let mut s = connect(srv.addr("tcp-array"));
    write_or_fail(&mut s, b"0000:00000");
    assert_bytes_eq(&read_to_eof(&mut s), b"");
    smoke_every_service_but_array(&srv);
}

fn fixed_request_in_pieces_is_waited_for(backend: &str) {
    let srv = start(backend, "fixed", 1000);
    let mut s = connect(srv.addr("tcp-array"));
    for piece in ["0", "010:0", "000", "3"] {
        write_or_fail(&mut s, piece.as_bytes());
    }
    assert_slice(&read_to_eof(&mut s), 10, 3);
}

fn input_after_a_fixed_request_is_never_answered(backend: &str) {
    let srv = start(backend, "fixed", 1000);
    let mut s = connect(srv.addr("tcp-array"));
    // A second request in the same write, and a third after the reply began.
    write_or_fail(&mut s, b"0001:000020002:00002");
    assert_slice(&read_exact_or_fail(&mut s, 16), 1, 2);
    write_or_fail(&mut s, b"0003:00002");
    assert_bytes_eq(&read_to_eof(&mut s), b"");
}

/// Sends `request` (and a trailing 64 KiB the server must read and discard,
/// or closing would reset) and expects no byte, then a clean EOF.
fn expect_clean_close_without_reply(srv: &Server, request: &[u8]) {
    let mut s = connect(srv.addr("tcp-array"));
    let mut input = request.to_vec();
    input.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&input));
    let (got, closed) = read_until_closed(&mut s);
    assert_eq!(closed, Closed::Eof, "{:?}: the server reset instead of closing", Shown(request));
    assert_bytes_eq(&got, b"");
    sender.join().unwrap().expect("the server reads what follows a refused request");
}

fn malformed_fixed_request_gets_a_clean_eof_and_an_info_line(backend: &str) {
    let srv = start(backend, "fixed", 1000);
    expect_clean_close_without_reply(&srv, b"0005;00002");
    let line = wait_for_info_line(&srv, r#"got the request "0005;00002""#);
    assert!(line.contains("not two unsigned decimal integers around one colon"), "{line}");
    assert!(line.contains("it expects exactly 10 ASCII bytes OFFSET:COUNT"), "{line}");
    expect_clean_close_without_reply(&srv, b"GET / HTTP/1.0\r\n");
    wait_for_info_line(&srv, r#"got the request "GET / HTTP""#);
    // The service goes on for the next client.
    let mut s = connect(srv.addr("tcp-array"));
    write_or_fail(&mut s, b"0002:00003");
    assert_slice(&read_to_eof(&mut s), 2, 3);
}

fn fixed_request_past_the_end_gets_a_clean_eof_and_an_info_line(backend: &str) {
    let srv = start(backend, "fixed", 1000);
    expect_clean_close_without_reply(&srv, b"0995:00010");
    let line = wait_for_info_line(&srv, r#"got the request "0995:00010""#);
    assert!(line.contains("it asks for values 995..1005, past the end"), "{line}");
    assert!(line.contains("within its 1000 values"), "{line}");
}

fn unframed_request_to_framed_array_is_closed_with_a_hint(backend: &str) {
    // The lessons' client against the default wire.
    let srv = Server::start(backend, &["--array-len", "20000"]);
    expect_clean_close_without_reply(&srv, b"5000:10000");
    let line = wait_for_info_line(&srv, r#"tcp-array read "5000" where a frame header belongs"#);
    assert!(line.contains("4-byte big-endian length"), "{line}");
    assert!(line.contains("--array-wire fixed"), "{line}");
    // tcp-frame says what it expects too, without the hint.
    let mut s = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut s, b"hello\n");
    assert_eq!(read_until_closed(&mut s), (Vec::new(), Closed::Eof));
    let line = wait_for_info_line(&srv, r#"tcp-frame read "hell" where a frame header belongs"#);
    assert!(!line.contains("--array-wire"), "{line}");
    // Framed clients are still served.
    let mut s: TcpStream = connect(srv.addr("tcp-array"));
    assert_values(ask_array(&mut s, "5000:3"), 5000, 3, "5000:3");
}

/// The other services are unaffected by tcp-array's wire.
fn smoke_every_service_but_array(srv: &Server) {
    assert_bytes_eq(&exchange(srv.addr("tcp-echo"), b"echo".to_vec()), b"echo");
    assert_bytes_eq(&exchange(srv.addr("tcp-frame"), frame(b"abc")), &frame(b"ABC"));
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING 1"), b"PONG 1");
}
