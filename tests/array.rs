//! tcp-array with `--array-len 1000`: slices value by value, and every kind of
//! bad request answered with status 1 on a connection that stays usable.

mod common;

use common::*;
use std::net::{Shutdown, TcpStream};

common::backend_tests!(
    good_slices_carry_exact_values,
    count_zero_is_an_empty_success,
    malformed_requests_get_errors_and_connection_stays_usable,
    overflowing_requests_get_errors,
    out_of_range_requests_get_errors,
    pipelined_requests_are_answered_in_order,
);

const LEN: &str = "1000";

fn start(backend: &str) -> (Server, TcpStream) {
    let srv = Server::start(backend, &["--array-len", LEN]);
    let s = connect(srv.addr("tcp-array"));
    (srv, s)
}

/// Asserts `request` fails, then that the connection still serves a good one.
fn assert_rejected(s: &mut TcpStream, request: &str) {
    assert_error(ask_array(s, request), request);
    assert_values(ask_array(s, "7:3"), 7, 3, "7:3 after an error");
}

fn good_slices_carry_exact_values(backend: &str) {
    let (_srv, mut s) = start(backend);
    for (offset, count) in [(0, 1), (0, 10), (1, 1), (500, 37), (990, 10), (999, 1)] {
        let request = format!("{offset}:{count}");
        assert_values(ask_array(&mut s, &request), offset, count, &request);
    }
    assert_values(ask_array(&mut s, "0:1000"), 0, 1000, "0:1000");
}

fn count_zero_is_an_empty_success(backend: &str) {
    let (_srv, mut s) = start(backend);
    for request in ["0:0", "5:0", "999:0"] {
        assert_eq!(
            ask_array(&mut s, request),
            ArrayReply::Values(Vec::new()),
            "request {request:?}"
        );
    }
    // On the wire: length 1, status 0, nothing else.
    write_or_fail(&mut s, &array_request("3:0"));
    expect_bytes(&mut s, &[0, 0, 0, 1, 0]);
}

fn malformed_requests_get_errors_and_connection_stays_usable(backend: &str) {
    let (_srv, mut s) = start(backend);
    for request in [
        "abc", "1:", ":1", "1:2:3", "-1:2", " 1:2", "1:2 ", "1 :2", "", ":", "1", "1;2", "0x1:2",
        "1:-2", "1.0:2", "١:٢",
    ] {
        assert_rejected(&mut s, request);
    }
    // Not UTF-8 at all.
    write_or_fail(&mut s, &frame(b"\xff\xfe:1"));
    assert_error(read_array_reply(&mut s), "\\xff\\xfe:1");
    assert_values(ask_array(&mut s, "7:3"), 7, 3, "7:3 after an error");
}

fn overflowing_requests_get_errors(backend: &str) {
    let (_srv, mut s) = start(backend);
    for request in [
        "18446744073709551616:1",
        "1:18446744073709551616",
        "18446744073709551615:2",
        "18446744073709551615:1",
        "2:18446744073709551615",
        "99999999999999999999999999999999:1",
    ] {
        assert_rejected(&mut s, request);
    }
}

fn out_of_range_requests_get_errors(backend: &str) {
    let (_srv, mut s) = start(backend);
    for request in ["999:2", "1000:1", "0:1001", "5000:3", "1:1000"] {
        assert_rejected(&mut s, request);
    }
}

fn pipelined_requests_are_answered_in_order(backend: &str) {
    let (_srv, mut s) = start(backend);
    let requests: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("{}:{}", i, i % 17),
            1 => "bad".to_string(),
            2 => format!("{}:1", 1000 + i),
            _ => format!("{}:{}", 999 - i, 1 + i % 5),
        })
        .collect();
    let wire: Vec<u8> = requests.iter().flat_map(|r| array_request(r)).collect();
    write_or_fail(&mut s, &wire);
    for (i, request) in requests.iter().enumerate() {
        let reply = read_array_reply(&mut s);
        match i % 4 {
            0 => assert_values(reply, i as u64, (i % 17) as u64, request),
            1 | 2 => {
                assert_error(reply, request);
            }
            _ => assert_values(reply, 999 - i as u64, (1 + i % 5) as u64, request),
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"");
}
