//! Unit tests of the tcp-array service: framed requests, replies in any reads, errors and violations.

use super::super::frame::encode;
use super::*;
use proptest::prelude::*;

/// The array of `len` values, leaked as the server leaks it.
fn leaked(len: usize) -> &'static [u8] {
    build(len).unwrap().leak()
}

/// The request frames for `requests`, back to back.
fn frames(requests: &[&[u8]]) -> Vec<u8> {
    let mut input = Vec::new();
    for request in requests {
        encode(request, &mut input).unwrap();
    }
    input
}

/// The replies to `input` from a fresh connection to `array`, read in pieces cut at `cuts`.
fn replies_in_reads(
    array: &'static [u8],
    max_frame: u32,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Result<(), Violation>) {
    let service = ArrayRequests::new(array, max_frame);
    let (out, result, _) = feed(service, input, cuts);
    (out, result)
}

/// What `service` queues on connect and for `input` in reads cut at
/// `cuts` (stopping at a violation), its outcome, and whether it finished.
fn feed(
    mut service: ArrayRequests,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Result<(), Violation>, bool) {
    let mut out = Output::default();
    service.on_connect(&mut out);
    let mut start = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain([&input.len()]) {
        result = service.on_data(&input[start..cut], &mut out);
        if result.is_err() {
            break;
        }
        start = cut;
    }
    (out.to_vec(), result, service.finished())
}

/// Splits replies into (status, body) pairs, checking each is a whole frame.
fn parse_replies(mut out: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut reader = FrameReader::new(u32::MAX);
    let mut replies = Vec::new();
    while let Some(reply) = reader.next_frame(&mut out).unwrap() {
        let (&status, body) = reply.split_first().expect("a reply has a status byte");
        replies.push((status, body.to_vec()));
    }
    replies
}

/// The one reply to `request` against an array of `len` values.
fn reply_to(len: usize, request: &[u8]) -> (u8, Vec<u8>) {
    let array = leaked(len);
    let (out, result) = replies_in_reads(array, 1000, &frames(&[request]), &[]);
    assert_eq!(result, Ok(()));
    let mut replies = parse_replies(&out);
    assert_eq!(replies.len(), 1);
    replies.remove(0)
}

/// The error message answering `request` against an array of `len` values.
fn error_for(len: usize, request: &[u8]) -> String {
    let (status, body) = reply_to(len, request);
    assert_eq!(status, STATUS_ERROR, "{:?}", String::from_utf8_lossy(request));
    String::from_utf8(body).unwrap()
}

#[test]
fn build_holds_little_endian_indices() {
    assert_eq!(leaked(0), b"");
    assert!(build(usize::MAX / 8).is_err(), "an impossible size is an error, not an abort");
    let array = leaked(1000);
    assert_eq!(array.len(), 8000);
    for (i, value) in array.chunks_exact(8).enumerate() {
        assert_eq!(f64::from_le_bytes(value.try_into().unwrap()), i as f64);
    }
    assert_eq!(array[8..16], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
}

#[test]
fn good_request_gets_the_values() {
    let (status, body) = reply_to(100, b"10:5");
    assert_eq!(status, STATUS_OK);
    assert_eq!(body.len(), 5 * 8);
    for (i, value) in body.chunks_exact(8).enumerate() {
        assert_eq!(f64::from_le_bytes(value.try_into().unwrap()), (10 + i) as f64);
    }
    assert_eq!(body, leaked(100)[80..120]);
    // The whole array, and leading zeros.
    assert_eq!(reply_to(100, b"0:100"), (STATUS_OK, leaked(100).to_vec()));
    assert_eq!(reply_to(100, b"007:01"), (STATUS_OK, leaked(100)[56..64].to_vec()));
}

#[test]
fn reply_header_is_length_then_status() {
    let array = leaked(4);
    let (out, _) = replies_in_reads(array, 100, &frames(&[b"1:2"]), &[]);
    assert_eq!(out[..5], [0, 0, 0, 17, STATUS_OK]);
    assert_eq!(out[5..], array[8..24]);
}

#[test]
fn values_are_queued_as_a_range_not_copied() {
    let array = leaked(10);
    let mut service = ArrayRequests::new(array, 100);
    let mut out = Output::default();
    service.on_data(&frames(&[b"2:3"]), &mut out).unwrap();
    // The second slice of the iovec is the array's own memory.
    let mut slices = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(out.io_slices(&mut slices), 2);
    assert_eq!(slices[1].as_ptr(), array[16..].as_ptr());
    assert_eq!(slices[1].len(), 24);
}

#[test]
fn count_zero_is_an_empty_success() {
    let array = leaked(10);
    let (out, _) = replies_in_reads(array, 100, &frames(&[b"3:0", b"10:0"]), &[]);
    assert_eq!(out, [0, 0, 0, 1, STATUS_OK, 0, 0, 0, 1, STATUS_OK]);
    assert_eq!(reply_to(0, b"0:0"), (STATUS_OK, Vec::new()));
}

#[test]
fn malformed_requests_say_what_is_expected() {
    for request in [
        &b"abc"[..],
        b"",
        b":",
        b"1:",
        b":1",
        b"1:2:3",
        b"+1:2",
        b"-1:2",
        b"1:-2",
        b" 1:2",
        b"1: 2",
        b"1:2\n",
        b"1;2",
        b"0x1:2",
        b"\xff:1",
    ] {
        let message = error_for(10, request);
        assert!(message.starts_with("malformed request \""), "{message}");
        assert!(message.ends_with(": expected OFFSET:COUNT, two unsigned decimal integers"));
    }
    assert_eq!(
        error_for(10, b"abc"),
        "malformed request \"abc\": expected OFFSET:COUNT, two unsigned decimal integers"
    );
    assert!(error_for(10, b"1:2\n").starts_with(r#"malformed request "1:2\n": "#));
    assert!(error_for(10, b"\xff:1").starts_with("malformed request \"\u{fffd}:1\": "));
}

#[test]
fn malformed_request_is_quoted_truncated() {
    let message = error_for(10, &[b'x'; 500]);
    let quoted = format!("\"{}\"...", "x".repeat(QUOTE_LIMIT));
    assert!(message.starts_with(&format!("malformed request {quoted}: ")), "{message}");
}

#[test]
fn numbers_beyond_u64_are_too_large() {
    assert_eq!(
        error_for(10, b"18446744073709551616:1"),
        "OFFSET \"18446744073709551616\" too large: the maximum is 18446744073709551615"
    );
    assert_eq!(
        error_for(10, b"0:99999999999999999999"),
        "COUNT \"99999999999999999999\" too large: the maximum is 18446744073709551615"
    );
    // A long number is quoted truncated too.
    let long = [b"1:".as_slice(), &[b'9'; 200]].concat();
    let quoted = format!("\"{}\"...", "9".repeat(QUOTE_LIMIT));
    assert_eq!(
        error_for(10, &long),
        format!("COUNT {quoted} too large: the maximum is 18446744073709551615")
    );
}

#[test]
fn offset_plus_count_overflow() {
    assert_eq!(
        error_for(10, b"18446744073709551615:1"),
        "OFFSET 18446744073709551615 + COUNT 1 overflows"
    );
}

#[test]
fn out_of_range() {
    assert_eq!(error_for(15, b"10:10"), "values 10..20 out of range: the array holds 15 values");
    assert_eq!(error_for(15, b"16:0"), "values 16..16 out of range: the array holds 15 values");
    assert_eq!(error_for(0, b"0:1"), "values 0..1 out of range: the array holds 0 values");
    assert_eq!(
        error_for(15, b"18446744073709551615:0"),
        "values 18446744073709551615..18446744073709551615 out of range: the array holds 15 values"
    );
}

#[cfg(target_pointer_width = "64")]
#[test]
fn reply_too_large_for_a_4_byte_length() {
    // Against an array of 2^40 values (too large to build: the ranges are checked only).
    let message = "COUNT 536870912 too large: one reply holds at most 536870911 values";
    assert_eq!(requested_bytes(1 << 40, b"0:536870912"), Err(message.to_string()));
    // One value fewer fits: 1 + 8 * 536870911 = u32::MAX - 6.
    assert_eq!(requested_bytes(1 << 40, b"8:536870911"), Ok(64..64 + 8 * 536870911));
    assert_eq!(1 + 8 * MAX_COUNT, u64::from(u32::MAX) - 6);
}

#[test]
fn connection_goes_on_after_errors() {
    let array = leaked(20);
    let input = frames(&[b"x", b"1:1", b"30:1", b"19:1"]);
    let (out, result) = replies_in_reads(array, 100, &input, &[]);
    assert_eq!(result, Ok(()));
    let replies = parse_replies(&out);
    let statuses: Vec<u8> = replies.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [STATUS_ERROR, STATUS_OK, STATUS_ERROR, STATUS_OK]);
    assert_eq!(replies[3].1, array[152..160]);
}

#[test]
fn oversized_request_frame_is_a_violation_after_earlier_replies() {
    let array = leaked(20);
    let input = frames(&[b"1:1", b"123456789"]);
    let (out, result) = replies_in_reads(array, 8, &input, &[]);
    assert_eq!(parse_replies(&out), [(STATUS_OK, array[8..16].to_vec())]);
    let (service, header) = (ServiceKind::TcpArray, [0, 0, 0, 9]);
    assert_eq!(result, Err(Violation::FrameHeader { service, header, limit: 8 }));
}

#[test]
fn text_sent_unframed_is_a_violation_that_suggests_fixed() {
    let array = leaked(20_000);
    let (out, result) = replies_in_reads(array, u32::MAX, b"5000:10000", &[]);
    assert!(out.is_empty());
    let violation = result.unwrap_err();
    let service = ServiceKind::TcpArray;
    assert_eq!(violation, Violation::FrameHeader { service, header: *b"5000", limit: u32::MAX });
    assert!(violation.to_string().contains("start the server with --array-wire fixed"));
}

#[test]
fn requests_split_byte_by_byte() {
    let array = leaked(20);
    let input = frames(&[b"0:3", b"", b"5:15"]);
    let cuts: Vec<usize> = (1..input.len()).collect();
    let whole = replies_in_reads(array, 100, &input, &[]);
    assert_eq!(replies_in_reads(array, 100, &input, &cuts), whole);
    assert_eq!(parse_replies(&whole.0).len(), 3);
}

/// Request frames, good and bad, against a 20-value array, then maybe stray bytes.
fn requests_then_noise() -> impl Strategy<Value = Vec<u8>> {
    let request = prop_oneof![
        (0u64..25, 0u64..25).prop_map(|(o, c)| format!("{o}:{c}").into_bytes()),
        proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b':'), Just(b'1'), Just(b'9')],
            0..30
        ),
    ];
    (proptest::collection::vec(request, 0..6), proptest::collection::vec(any::<u8>(), 0..6))
        .prop_map(|(requests, noise)| {
            let requests: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
            [frames(&requests), noise].concat()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_split_gives_the_whole(
        input in requests_then_noise(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let array = leaked(20);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let whole = replies_in_reads(array, 24, &input, &[]);
        prop_assert_eq!(replies_in_reads(array, 24, &input, &cuts), whole);
    }

    #[test]
    fn every_reply_is_values_or_a_message(
        input in prop_oneof![requests_then_noise(), proptest::collection::vec(any::<u8>(), 0..64)],
        max_frame in prop_oneof![Just(0), Just(24), Just(u32::MAX)],
    ) {
        let array = leaked(20);
        let (out, result) = replies_in_reads(array, max_frame, &input, &[]);
        if let Err(Violation::FrameHeader { header, limit, .. }) = result {
            prop_assert!(u32::from_be_bytes(header) > limit || super::super::frame::is_text(&header));
        }
        for (status, body) in parse_replies(&out) {
            match status {
                STATUS_OK => {
                    prop_assert_eq!(body.len() % 8, 0);
                    let first = body.get(..8).map(|v| f64::from_le_bytes(v.try_into().unwrap()));
                    let start = first.map_or(0, |f| f as usize * 8);
                    prop_assert_eq!(&array[start..start + body.len()], &body[..]);
                }
                STATUS_ERROR => prop_assert!(String::from_utf8(body).is_ok()),
                other => prop_assert!(false, "status {}", other),
            }
        }
    }
}

/// `--array-wire push` and `--array-wire fixed`.
mod wire;
