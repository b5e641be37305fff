//! Input cut at every awkward place: one byte per write (TCP_NODELAY), UTF-8
//! characters and frame headers split across writes. Where it matters, a reply
//! read back in between proves the server consumed the first part on its own.

mod common;

use common::*;
use std::net::Shutdown;

common::backend_tests!(
    echo_answers_input_sent_one_byte_at_a_time,
    upper_answers_input_sent_one_byte_at_a_time,
    upper_joins_character_split_across_reads,
    upper_passes_through_split_sequence_that_turns_out_invalid,
    frame_answers_frames_sent_one_byte_at_a_time,
    frame_joins_header_and_body_split_across_reads,
    array_answers_request_sent_one_byte_at_a_time,
);

fn write_bytewise(s: &mut std::net::TcpStream, bytes: &[u8]) {
    for b in bytes {
        write_or_fail(s, std::slice::from_ref(b));
    }
}

fn echo_answers_input_sent_one_byte_at_a_time(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-echo"));
    // Each byte is read back before the next is sent: each is its own read.
    for b in (0u8..=255).chain(0..=44) {
        write_or_fail(&mut s, &[b]);
        expect_bytes(&mut s, &[b]);
    }
    // And a burst of single-byte writes.
    let burst: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
    write_bytewise(&mut s, &burst);
    expect_bytes(&mut s, &burst);
}

fn upper_answers_input_sent_one_byte_at_a_time(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    // Whole characters are read back as soon as they are complete.
    let text = "aßb\u{390}c€dﬁ😀e𐐨 ǆ";
    for ch in text.chars() {
        let mut utf8 = [0u8; 4];
        write_bytewise(&mut s, ch.encode_utf8(&mut utf8).as_bytes());
        expect_bytes(&mut s, ch.to_uppercase().to_string().as_bytes());
    }
    // And a burst of single-byte writes of mixed text.
    let burst = mixed_text(&mut Rng::new(10), 3000);
    write_bytewise(&mut s, &burst);
    expect_bytes(&mut s, &upper_model(&burst));
}

fn upper_joins_character_split_across_reads(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    for ch in ['ß', 'é', '€', 'ﬁ', 'ᾳ', '😀', '𐐨', '𝔞'] {
        let mut buf = [0u8; 4];
        let utf8 = ch.encode_utf8(&mut buf).as_bytes();
        for cut in 1..utf8.len() {
            // "x" + head: the "X" coming back proves the head was read alone.
            let mut first = b"x".to_vec();
            first.extend_from_slice(&utf8[..cut]);
            write_or_fail(&mut s, &first);
            expect_bytes(&mut s, b"X");
            let mut rest = utf8[cut..].to_vec();
            rest.push(b'y');
            write_or_fail(&mut s, &rest);
            let mut expected = ch.to_uppercase().to_string().into_bytes();
            expected.push(b'Y');
            expect_bytes(&mut s, &expected);
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"");
}

fn upper_passes_through_split_sequence_that_turns_out_invalid(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        (b"\xc3", b"y", b"\xc3Y"),
        (b"\xe2\x82", b"z", b"\xe2\x82Z"),
        (b"\xf0\x9f", b"\x98w", b"\xf0\x9f\x98W"),
        (b"\xf0\x9f\x98", "ß".as_bytes(), b"\xf0\x9f\x98SS"),
        (b"\xe2", b"\xff", b"\xe2\xff"),
    ];
    for (head, tail, expected) in cases {
        let mut first = b"x".to_vec();
        first.extend_from_slice(head);
        write_or_fail(&mut s, &first);
        expect_bytes(&mut s, b"X");
        write_or_fail(&mut s, tail);
        expect_bytes(&mut s, expected);
    }
}

fn frame_answers_frames_sent_one_byte_at_a_time(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-frame"));
    let payloads: Vec<Vec<u8>> = vec![
        b"one".to_vec(),
        Vec::new(),
        "straße".as_bytes().to_vec(),
        mixed_text(&mut Rng::new(11), 300),
        b"\xff\x00\x01".to_vec(),
    ];
    for p in &payloads {
        write_bytewise(&mut s, &frame(p));
    }
    for p in &payloads {
        expect_frame(&mut s, &upper_model(p));
    }
}

fn frame_joins_header_and_body_split_across_reads(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-frame"));
    let payload = "héllo wörld ß".as_bytes();
    let wire = frame(payload);
    for cut in 1..wire.len() {
        // A complete frame before the cut: its reply proves the server read
        // up to the cut before the rest was sent.
        let mut first = frame(b"sync");
        first.extend_from_slice(&wire[..cut]);
        write_or_fail(&mut s, &first);
        expect_frame(&mut s, b"SYNC");
        write_or_fail(&mut s, &wire[cut..]);
        expect_frame(&mut s, &upper_model(payload));
    }
}

fn array_answers_request_sent_one_byte_at_a_time(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "1000"]);
    let mut s = connect(srv.addr("tcp-array"));
    write_bytewise(&mut s, &array_request("10:20"));
    assert_values(read_array_reply(&mut s), 10, 20, "10:20");
    write_bytewise(&mut s, &array_request("x"));
    assert_error(read_array_reply(&mut s), "x");
    write_bytewise(&mut s, &array_request("990:10"));
    assert_values(read_array_reply(&mut s), 990, 10, "990:10");
}
