//! After the client's FIN the server sends everything still owed, then closes:
//! not a byte lost, not a byte more.

mod common;

use common::*;
use std::net::Shutdown;

common::backend_tests!(
    echo_returns_whole_mebibyte_after_half_close,
    upper_returns_whole_mebibyte_uppercased_after_half_close,
    frame_answers_all_pipelined_frames_before_closing,
    array_answers_all_pipelined_requests_before_closing,
    half_close_with_nothing_owed_closes_at_once,
    half_close_after_reading_replies_closes_cleanly,
);

const MIB: usize = 1 << 20;

fn echo_returns_whole_mebibyte_after_half_close(backend: &str) {
    let srv = Server::start(backend, &[]);
    let input: Vec<u8> = (0..MIB as u64).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect();
    let got = exchange(srv.addr("tcp-echo"), input.clone());
    assert_bytes_eq(&got, &input);
}

fn upper_returns_whole_mebibyte_uppercased_after_half_close(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut input = mixed_text(&mut Rng::new(30), MIB - 2);
    // Ends with the head of a character that never completes.
    input.extend_from_slice(b"\xe2\x82");
    let got = exchange(srv.addr("tcp-upper"), input.clone());
    assert_bytes_eq(&got, &upper_model(&input));
}

fn frame_answers_all_pipelined_frames_before_closing(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut rng = Rng::new(31);
    let payloads: Vec<Vec<u8>> = (0..500).map(|i| mixed_text(&mut rng, (i * 37) % 4000)).collect();
    let wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    let got = exchange(srv.addr("tcp-frame"), wire);
    let expected: Vec<u8> = payloads.iter().flat_map(|p| frame(&upper_model(p))).collect();
    assert_bytes_eq(&got, &expected);
}

fn array_answers_all_pipelined_requests_before_closing(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "1000"]);
    let requests: Vec<(u64, u64)> = (0..300).map(|i| (i % 900, 1 + i % 100)).collect();
    let mut wire: Vec<u8> =
        requests.iter().flat_map(|(o, c)| array_request(&format!("{o}:{c}"))).collect();
    wire.extend(array_request("1000:1"));
    let got = exchange(srv.addr("tcp-array"), wire);
    let mut expected = Vec::new();
    for (o, c) in &requests {
        expected.extend_from_slice(&(1 + 8 * *c as u32).to_be_bytes());
        expected.push(0);
        for v in array_slice(*o, *c) {
            expected.extend_from_slice(&v.to_le_bytes());
        }
    }
    assert_bytes_eq(&got[..expected.len().min(got.len())], &expected);
    // Then exactly one error reply.
    let tail = &got[expected.len()..];
    assert!(tail.len() > 5, "error reply missing: {:?}", Shown(tail));
    let len = u32::from_be_bytes(tail[..4].try_into().unwrap()) as usize;
    assert_eq!(tail.len(), 4 + len, "trailing bytes: {:?}", Shown(tail));
    assert_eq!(tail[4], 1, "status of the error reply");
}

fn half_close_with_nothing_owed_closes_at_once(backend: &str) {
    let srv = Server::start(backend, &[]);
    for service in ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array"] {
        let mut s = connect(srv.addr(service));
        s.shutdown(Shutdown::Write).unwrap();
        assert_bytes_eq(&read_to_eof(&mut s), b"");
    }
}

fn half_close_after_reading_replies_closes_cleanly(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut s, b"abc");
    expect_bytes(&mut s, b"ABC");
    write_or_fail(&mut s, b"def");
    s.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"DEF");
}
