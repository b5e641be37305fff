//! tcp-frame at its edges: empty frames, `--max-frame` and what a violation does.

mod common;

use common::*;
use std::net::Shutdown;

common::backend_tests!(
    zero_length_frame_gets_zero_length_reply,
    frame_exactly_at_limit_is_answered,
    frame_over_limit_closes_after_owed_replies,
    frame_over_limit_does_not_disturb_other_connections,
    frame_header_of_4_gib_closes_connection_under_default_limit,
    frame_just_over_default_limit_closes_connection,
    large_frame_under_default_limit_is_answered,
);

fn zero_length_frame_gets_zero_length_reply(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut s, &frame(b""));
    expect_bytes(&mut s, &[0, 0, 0, 0]);
    let mut wire = frame(b"a");
    wire.extend(frame(b""));
    wire.extend(frame(b""));
    wire.extend(frame(b"b"));
    write_or_fail(&mut s, &wire);
    expect_bytes(&mut s, b"\0\0\0\x01A\0\0\0\0\0\0\0\0\0\0\0\x01B");
}

fn frame_exactly_at_limit_is_answered(backend: &str) {
    let srv = Server::start(backend, &["--max-frame", "1024"]);
    let mut s = connect(srv.addr("tcp-frame"));
    let payload: Vec<u8> = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
    write_or_fail(&mut s, &frame(&payload));
    expect_frame(&mut s, &payload.to_ascii_uppercase());
    // Growing past the limit on the way out is not the client's fault.
    let sharp_s = "ß".repeat(512);
    write_or_fail(&mut s, &frame(sharp_s.as_bytes()));
    expect_frame(&mut s, "SS".repeat(512).as_bytes());
    // Still open and in step.
    write_or_fail(&mut s, &frame(b"after"));
    expect_frame(&mut s, b"AFTER");
}

/// Sends `before` as frames then a header announcing `announced` bytes, and
/// asserts the replies to `before` arrive, then the close, and nothing else.
fn assert_closed_after_replies(srv: &Server, before: &[&[u8]], announced: u32, extra: &[u8]) {
    let mut s = connect(srv.addr("tcp-frame"));
    let mut wire: Vec<u8> = before.iter().flat_map(|p| frame(p)).collect();
    wire.extend_from_slice(&frame_header(announced));
    wire.extend_from_slice(extra);
    write_or_fail(&mut s, &wire);
    for p in before {
        expect_frame(&mut s, &upper_model(p));
    }
    let (rest, how) = read_until_closed(&mut s);
    assert!(
        rest.is_empty(),
        "after a header announcing {announced} bytes the server sent {} more bytes ({how:?}): {:?}",
        rest.len(),
        Shown(&rest[..rest.len().min(64)])
    );
}

fn frame_over_limit_closes_after_owed_replies(backend: &str) {
    let srv = Server::start(backend, &["--max-frame", "1024"]);
    assert_closed_after_replies(&srv, &[b"one", b"", b"two"], 1025, b"");
    assert_closed_after_replies(&srv, &[b"x"], 1025, &[b'y'; 100]);
    assert_closed_after_replies(&srv, &[], 1 << 20, b"");
}

fn frame_over_limit_does_not_disturb_other_connections(backend: &str) {
    let srv = Server::start(backend, &["--max-frame", "1024"]);
    let mut other = connect(srv.addr("tcp-frame"));
    write_or_fail(&mut other, &frame(b"before"));
    expect_frame(&mut other, b"BEFORE");
    assert_closed_after_replies(&srv, &[b"owed"], 5000, b"");
    write_or_fail(&mut other, &frame(b"after"));
    expect_frame(&mut other, b"AFTER");
    other.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut other), b"");
}

fn frame_header_of_4_gib_closes_connection_under_default_limit(backend: &str) {
    let srv = Server::start(backend, &[]);
    assert_closed_after_replies(&srv, &[b"first"], u32::MAX, b"");
}

fn frame_just_over_default_limit_closes_connection(backend: &str) {
    let srv = Server::start(backend, &[]);
    assert_closed_after_replies(&srv, &[b"first"], 16 * 1024 * 1024 + 1, b"");
}

fn large_frame_under_default_limit_is_answered(backend: &str) {
    let srv = Server::start(backend, &[]);
    let payload = mixed_text(&mut Rng::new(20), 1 << 20);
    let mut wire = frame(&payload);
    wire.extend(frame(b"tail"));
    let got = exchange(srv.addr("tcp-frame"), wire);
    let mut expected = frame(&upper_model(&payload));
    expected.extend(frame(b"TAIL"));
    assert_bytes_eq(&got, &expected);
}
