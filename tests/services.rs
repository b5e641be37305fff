//! Each service's contract, one request or exchange at a time.

mod common;

use common::*;
use std::net::Shutdown;

common::backend_tests!(
    echo_returns_bytes_verbatim,
    echo_answers_each_message_of_a_conversation,
    upper_uppercases_ascii,
    upper_expands_sharp_s_to_double_s,
    upper_applies_full_unicode_mapping,
    upper_matches_model_on_long_mixed_text,
    upper_passes_invalid_utf8_through,
    upper_passes_truncated_sequence_at_eof_through,
    frame_answers_with_uppercased_payload,
    frame_answers_pipelined_frames_in_order,
    array_answers_a_slice,
    udp_upper_uppercases_each_datagram,
    udp_upper_passes_invalid_utf8_through,
    udp_upper_answers_empty_datagram_with_empty_datagram,
    udp_ping_answers_ping_with_pong_and_the_rest,
    udp_ping_answers_anything_else_with_bare_pong,
    udp_replies_go_to_each_sender,
);

/// (input, what Python's `str.upper` makes of it)
const UNICODE_CASES: &[(&str, &str)] = &[
    ("straße", "STRASSE"),
    ("ǆemal", "ǄEMAL"),
    ("ﬁne ﬀ", "FINE FF"),
    ("ŉ", "ʼN"),
    ("\u{390}", "\u{399}\u{308}\u{301}"),
    ("\u{1f0}", "J\u{30c}"),
    ("ᾳ", "ΑΙ"),
    ("ı i", "I I"),
    ("µ", "Μ"),
    ("ÿ", "Ÿ"),
    ("привет, мир", "ПРИВЕТ, МИР"),
    ("ὀδυσσεύς", "ὈΔΥΣΣΕΎΣ"),
    ("𐐨𐐩", "𐐀𐐁"),
    ("日本語 €5 😀", "日本語 €5 😀"),
];

fn echo_returns_bytes_verbatim(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-echo"));
    let input: Vec<u8> = (0..4).flat_map(|_| 0u8..=255).collect();
    write_or_fail(&mut s, &input);
    expect_bytes(&mut s, &input);
}

fn echo_answers_each_message_of_a_conversation(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-echo"));
    for i in 0..20 {
        let msg = format!("message {i}\r\n\0");
        write_or_fail(&mut s, msg.as_bytes());
        expect_bytes(&mut s, msg.as_bytes());
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"");
}

fn upper_uppercases_ascii(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut s, b"hello, World! 123 {x|y}~\n");
    expect_bytes(&mut s, b"HELLO, WORLD! 123 {X|Y}~\n");
}

fn upper_expands_sharp_s_to_double_s(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut s, "straße".as_bytes());
    expect_bytes(&mut s, b"STRASSE");
}

fn upper_applies_full_unicode_mapping(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    for (input, expected) in UNICODE_CASES {
        write_or_fail(&mut s, input.as_bytes());
        let got = read_exact_or_fail(&mut s, expected.len());
        assert_eq!(String::from_utf8_lossy(&got), *expected, "tcp-upper of {input:?}");
    }
}

fn upper_matches_model_on_long_mixed_text(backend: &str) {
    let srv = Server::start(backend, &[]);
    let input = mixed_text(&mut Rng::new(1), 200_000);
    let got = exchange(srv.addr("tcp-upper"), input.clone());
    assert_bytes_eq(&got, &upper_model(&input));
}

fn upper_passes_invalid_utf8_through(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-upper"));
    let cases: &[(&[u8], &[u8])] = &[
        (b"ab\xffcd\xfe", b"AB\xffCD\xfe"),
        (b"\x80a", b"\x80A"),
        (b"\xc3(x", b"\xc3(X"),
        (b"\xc0\xafq", b"\xc0\xafQ"),
        (b"\xed\xa0\x80s", b"\xed\xa0\x80S"),
        (b"\xf4\x90\x80\x80t", b"\xf4\x90\x80\x80T"),
        (b"\xe2\x82u\xf0\x9f\x98v", b"\xe2\x82U\xf0\x9f\x98V"),
        ("\u{ff}\u{df}".as_bytes(), "\u{178}SS".as_bytes()),
    ];
    for (input, expected) in cases {
        write_or_fail(&mut s, input);
        let got = read_exact_or_fail(&mut s, expected.len());
        assert_bytes_eq(&got, expected);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut s), b"");
}

fn upper_passes_truncated_sequence_at_eof_through(backend: &str) {
    let srv = Server::start(backend, &[]);
    let cases: &[(&[u8], &[u8])] = &[
        (b"abc\xe2\x82", b"ABC\xe2\x82"),
        (b"x\xf0\x9f\x98", b"X\xf0\x9f\x98"),
        (b"\xc3", b"\xc3"),
        ("straße\u{df}".as_bytes(), b"STRASSESS"),
    ];
    for (input, expected) in cases {
        let got = exchange(srv.addr("tcp-upper"), input.to_vec());
        assert_bytes_eq(&got, expected);
    }
}

fn frame_answers_with_uppercased_payload(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-frame"));
    let cases: &[(&[u8], &[u8])] = &[
        (b"hello", b"HELLO"),
        ("straße".as_bytes(), b"STRASSE"),
        ("ǆ ﬁ привет".as_bytes(), "Ǆ FI ПРИВЕТ".as_bytes()),
        (b"bin\xff\x00ary", b"BIN\xff\x00ARY"),
        (b"", b""),
    ];
    for (payload, expected) in cases {
        write_or_fail(&mut s, &frame(payload));
        expect_frame(&mut s, expected);
    }
}

fn frame_answers_pipelined_frames_in_order(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut s = connect(srv.addr("tcp-frame"));
    let mut rng = Rng::new(2);
    let payloads: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let mut p = format!("frame {i}: ").into_bytes();
            p.extend(mixed_text(&mut rng, i * 7));
            p
        })
        .collect();
    let wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    write_or_fail(&mut s, &wire);
    for p in &payloads {
        expect_frame(&mut s, &upper_model(p));
    }
}

fn array_answers_a_slice(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "100"]);
    let mut s = connect(srv.addr("tcp-array"));
    assert_values(ask_array(&mut s, "3:5"), 3, 5, "3:5");
    assert_values(ask_array(&mut s, "0:100"), 0, 100, "0:100");
    assert_error(ask_array(&mut s, "100:1"), "100:1");
    assert_values(ask_array(&mut s, "99:1"), 99, 1, "99:1");
}

fn udp_upper_uppercases_each_datagram(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-upper");
    assert_bytes_eq(&udp_roundtrip(addr, b"hello, world 1"), b"HELLO, WORLD 1");
    for (input, expected) in UNICODE_CASES {
        let got = udp_roundtrip(addr, input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), *expected, "udp-upper of {input:?}");
    }
    let big = mixed_text(&mut Rng::new(3), 8000);
    assert_bytes_eq(&udp_roundtrip(addr, &big), &upper_model(&big));
}

fn udp_upper_passes_invalid_utf8_through(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-upper");
    assert_bytes_eq(&udp_roundtrip(addr, b"ab\xffc\xe2\x82"), b"AB\xffC\xe2\x82");
}

fn udp_upper_answers_empty_datagram_with_empty_datagram(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-upper");
    assert_bytes_eq(&udp_roundtrip(addr, b""), b"");
    assert_bytes_eq(&udp_roundtrip(addr, b"still here"), b"STILL HERE");
}

fn udp_ping_answers_ping_with_pong_and_the_rest(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-ping");
    let cases: &[(&[u8], &[u8])] = &[
        (b"PING", b"PONG"),
        (b"PING 7", b"PONG 7"),
        (b"PING 123456789", b"PONG 123456789"),
        (b"PINGPONG", b"PONGPONG"),
        (b"PING\xff\x00 x", b"PONG\xff\x00 x"),
    ];
    for (input, expected) in cases {
        assert_bytes_eq(&udp_roundtrip(addr, input), expected);
    }
}

fn udp_ping_answers_anything_else_with_bare_pong(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addr = srv.addr("udp-ping");
    let others: &[&[u8]] = &[b"", b"hello", b"ping 7", b"PIN", b" PING", b"\xff"];
    for input in others {
        assert_bytes_eq(&udp_roundtrip(addr, input), b"PONG");
    }
}

fn udp_replies_go_to_each_sender(backend: &str) {
    let srv = Server::start(backend, &[]);
    for service in ["udp-ping", "udp-upper"] {
        let addr = srv.addr(service);
        let a = udp_socket_for(addr);
        let b = udp_socket_for(addr);
        a.send_to(b"PING a", addr).unwrap();
        b.send_to(b"PING b", addr).unwrap();
        let mut buf = [0u8; 64];
        for (socket, name) in [(&a, "a"), (&b, "b")] {
            let (n, from) = socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{service}: no reply to {name}: {e}"));
            assert_eq!(from, addr, "{service}: reply from another address");
            let expected = if service == "udp-ping" {
                format!("PONG {name}")
            } else {
                format!("PING {}", name.to_uppercase())
            };
            assert_bytes_eq(&buf[..n], expected.as_bytes());
        }
    }
}
