//! Unit tests of the frame reader and tcp-frame: headers and their messages, any split, large replies in pieces.

use super::*;
use proptest::prelude::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(payload, &mut out).unwrap();
    out
}

/// Every payload `input` completes, read in pieces cut at `cuts` (ascending).
fn read_frames(
    reader: &mut FrameReader,
    input: &[u8],
    cuts: &[usize],
) -> Result<Vec<Vec<u8>>, BadHeader> {
    let mut frames = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain([&input.len()]) {
        let mut read = &input[start..cut];
        while let Some(payload) = reader.next_frame(&mut read)? {
            frames.push(payload.into_owned());
        }
        assert!(read.is_empty(), "a read is always used up");
        start = cut;
    }
    Ok(frames)
}

/// FrameUpper's output and outcome for `input` read in pieces cut at `cuts`.
fn upper_in_reads(
    max_frame: u32,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Result<(), Violation>) {
    let mut service = FrameUpper::new(max_frame);
    let mut out = Output::default();
    let mut start = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain([&input.len()]) {
        result = service.on_data(&input[start..cut], &mut out);
        // As the connection does: the rest of a large reply as the output drains.
        while result.is_ok() && service.has_more() {
            result = service.resume(&mut out);
        }
        if result.is_err() {
            break;
        }
        start = cut;
    }
    (out.to_vec(), result)
}

#[test]
fn a_large_reply_is_written_in_pieces_between_smaller_ones() {
    // 'ΐ' (2 bytes) uppercases to 6: a 100 KB payload owes 300 KB.
    let big = "ΐ".repeat(50_000).into_bytes();
    let input = [frame(b"a"), frame(&big), frame(b"b")].concat();
    let mut service = FrameUpper::new(1 << 20);
    let mut out = Output::default();
    service.on_data(&input, &mut out).unwrap();
    // The first reply, the large one's header and one piece: not all 300 KB.
    assert!(out.pending() <= 5 + 4 + 3 * PIECE, "{}", out.pending());
    assert!(service.has_more());
    let mut steps = 0;
    while service.has_more() {
        let before = out.pending();
        service.resume(&mut out).unwrap();
        assert!(out.pending() - before <= 3 * PIECE + 6);
        steps += 1;
    }
    assert!(steps >= 6, "{steps} pieces");
    let upper = "ΐ".to_uppercase().repeat(50_000).into_bytes();
    assert_eq!(out.to_vec(), [frame(b"A"), frame(&upper), frame(b"B")].concat());
    assert_eq!(service.buffered(), service.reader.buffered());
}

#[test]
fn encode_writes_big_endian_length() {
    assert_eq!(frame(b""), [0, 0, 0, 0]);
    assert_eq!(frame(b"abc"), b"\0\0\0\x03abc");
    assert_eq!(frame(&[7; 300])[..4], [0, 0, 1, 44]);
}

#[test]
fn whole_frame_in_one_read_is_borrowed() {
    let input = [frame(b"hello"), frame(b"")].concat();
    let mut reader = FrameReader::new(100);
    let mut read = &input[..];
    let first = reader.next_frame(&mut read).unwrap().unwrap();
    assert!(matches!(first, Cow::Borrowed(b"hello")));
    let second = reader.next_frame(&mut read).unwrap().unwrap();
    assert!(matches!(second, Cow::Borrowed(b"")));
    assert_eq!(reader.next_frame(&mut read), Ok(None));
}

#[test]
fn zero_length_frames_are_frames() {
    let input = [frame(b""), frame(b""), frame(b"x")].concat();
    let frames = read_frames(&mut FrameReader::new(0), &frame(b""), &[]).unwrap();
    assert_eq!(frames, [b""]);
    let frames = read_frames(&mut FrameReader::new(1), &input, &[]).unwrap();
    assert_eq!(frames, [&b""[..], b"", b"x"]);
}

#[test]
fn header_and_body_split_byte_by_byte() {
    let input = [frame(b"ab"), frame(b""), frame(b"cde")].concat();
    let cuts: Vec<usize> = (1..input.len()).collect();
    let frames = read_frames(&mut FrameReader::new(10), &input, &cuts).unwrap();
    assert_eq!(frames, [&b"ab"[..], b"", b"cde"]);
}

#[test]
fn header_over_the_limit_is_rejected_before_its_body() {
    let mut reader = FrameReader::new(4);
    let mut read = &[0, 0, 0, 5, b'a'][..];
    let too_large = BadHeader { header: [0, 0, 0, 5], limit: 4 };
    assert_eq!(reader.next_frame(&mut read), Err(too_large));
    assert_eq!(read, b"a", "no body byte is taken");
    assert!(reader.body.capacity() == 0);
    // Also when the header arrives in pieces, and at the maximum.
    let input = [0xff, 0xff, 0xff, 0xff];
    let result = read_frames(&mut FrameReader::new(4), &input, &[1, 2, 3]);
    assert_eq!(result, Err(BadHeader { header: input, limit: 4 }));
    // Exactly the limit is fine.
    let frames = read_frames(&mut FrameReader::new(4), &frame(b"abcd"), &[]).unwrap();
    assert_eq!(frames, [b"abcd"]);
}

#[test]
fn text_header_is_rejected_whatever_the_limit() {
    // "5000" announces 892,350,512 bytes: within a raised limit, yet text.
    let mut reader = FrameReader::new(u32::MAX);
    let mut read = &b"5000:10000"[..];
    assert_eq!(reader.next_frame(&mut read), Err(BadHeader { header: *b"5000", limit: u32::MAX }));
    assert_eq!(read, b":10000", "no body byte is taken");
    // A header with one byte outside printable ASCII is a length like any other.
    let mut reader = FrameReader::new(u32::MAX);
    assert_eq!(reader.next_frame(&mut &b"500\n"[..]), Ok(None));
    assert!(is_text(b" ~ ~") && is_text(b"GET ") && is_text(b"0000"));
    assert!(!is_text(b"\x1f   ") && !is_text(b"abc\x7f") && !is_text(&[0, 0, 0, 5]));
}

fn message(service: ServiceKind, header: &[u8; 4], limit: u32) -> String {
    Violation::FrameHeader { service, header: *header, limit }.to_string()
}

#[test]
fn header_message_shows_text_as_text() {
    assert_eq!(
        message(ServiceKind::TcpFrame, b"GET ", 16 << 20),
        "tcp-frame read \"GET \" where a frame header belongs: text, not a length (read as a \
         length it announces 1195725856 bytes, over --max-frame 16777216); tcp-frame expects \
         each frame to start with a 4-byte big-endian length of at most 16777216 bytes"
    );
    // Within the limit, the limit is not blamed; quotes are escaped.
    let m = message(ServiceKind::TcpFrame, b"a\"b\\", u32::MAX);
    assert!(
        m.starts_with(r#"tcp-frame read "a\"b\\" where a frame header belongs: text, "#),
        "{m}"
    );
    assert!(m.contains("it announces 1629643356 bytes)"), "{m}");
    assert!(!m.contains("--array-wire"), "{m}");
}

#[test]
fn header_message_shows_other_bytes_in_hex() {
    assert_eq!(
        message(ServiceKind::TcpArray, &[0xff, 0, 0x0a, 0x7f], 100),
        "tcp-array read the frame header ff 00 0a 7f, a length of 4278192767 bytes, over \
         --max-frame 100; tcp-array expects each frame to start with a 4-byte big-endian \
         length of at most 100 bytes"
    );
    assert!(message(ServiceKind::TcpFrame, &[0, 0, 0, 5], 4).starts_with(
        "tcp-frame read the frame header 00 00 00 05, a length of 5 bytes, over --max-frame 4;"
    ));
}

#[test]
fn header_message_suggests_fixed_wire_for_offset_count_text() {
    let hint = "; this looks like an unframed OFFSET:COUNT request, as the lessons' client \
                sends: start the server with --array-wire fixed to serve those";
    for header in [b"5000", b"0000", b"12:3", b"1:20", b"999:"] {
        let m = message(ServiceKind::TcpArray, header, 16 << 20);
        assert!(m.ends_with(hint), "{m}");
    }
    // Not OFFSET:COUNT-like, or not tcp-array: no hint.
    for header in [b"GET ", b":123", b"1:2:", b"12 3", b"abcd"] {
        assert!(!message(ServiceKind::TcpArray, header, 16 << 20).contains("--array-wire"));
    }
    assert!(!message(ServiceKind::TcpFrame, b"5000", 16 << 20).contains("--array-wire"));
}

#[test]
fn body_is_not_preallocated() {
    let mut reader = FrameReader::new(u32::MAX);
    let mut read = &[0x7f, 0xff, 0xff, 0xff, b'a'][..];
    assert_eq!(reader.next_frame(&mut read), Ok(None));
    assert!(reader.body.capacity() < 1024);
}

#[test]
fn frame_upper_answers_pipelined_frames_in_order() {
    let input = [frame(b"hello"), frame(b""), frame("straße".as_bytes())].concat();
    let expected = [frame(b"HELLO"), frame(b""), frame(b"STRASSE")].concat();
    assert_eq!(upper_in_reads(100, &input, &[]), (expected.clone(), Ok(())));
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(upper_in_reads(100, &input, &cuts), (expected, Ok(())));
}

#[test]
fn frame_upper_keeps_invalid_utf8_and_reports_violations_after_earlier_replies() {
    let input = [frame(b"a\xff"), frame(b"toolong"), frame(b"b")].concat();
    let (out, result) = upper_in_reads(3, &input, &[]);
    assert_eq!(out, frame(b"A\xff"));
    let header = [0, 0, 0, 7];
    let service = ServiceKind::TcpFrame;
    assert_eq!(result, Err(Violation::FrameHeader { service, header, limit: 3 }));
}

/// Well-formed frames (some over a limit of 16), then maybe stray bytes.
fn frames_then_noise() -> impl Strategy<Value = Vec<u8>> {
    let payload = proptest::collection::vec(
        prop_oneof![any::<u8>(), Just(0xc3), Just(0x9f), Just(b'a')],
        0..24,
    );
    (proptest::collection::vec(payload, 0..6), proptest::collection::vec(any::<u8>(), 0..6))
        .prop_map(|(payloads, noise)| {
            let mut input = Vec::new();
            for payload in payloads {
                encode(&payload, &mut input).unwrap();
            }
            input.extend(noise);
            input
        })
}

fn sorted_cuts(cuts: &[prop::sample::Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn reader_any_split_gives_the_whole(
        input in frames_then_noise(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let cuts = sorted_cuts(&cuts, input.len());
        let whole = read_frames(&mut FrameReader::new(16), &input, &[]);
        prop_assert_eq!(read_frames(&mut FrameReader::new(16), &input, &cuts), whole);
    }

    #[test]
    fn frame_upper_any_split_gives_the_whole(
        input in frames_then_noise(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let cuts = sorted_cuts(&cuts, input.len());
        let whole = upper_in_reads(16, &input, &[]);
        prop_assert_eq!(upper_in_reads(16, &input, &cuts), whole);
    }

    #[test]
    fn frame_upper_answers_each_frame_or_rejects_it(
        input in prop_oneof![frames_then_noise(), proptest::collection::vec(any::<u8>(), 0..64)],
        max_frame in prop_oneof![Just(0), Just(16), Just(u32::MAX)],
    ) {
        let requests = read_frames(&mut FrameReader::new(max_frame), &input, &[]);
        let (out, result) = upper_in_reads(max_frame, &input, &[]);
        // Whatever is queued is a sequence of whole frames: one per request answered.
        let replies = read_frames(&mut FrameReader::new(u32::MAX), &out, &[]).unwrap();
        if let Err(Violation::FrameHeader { service, header, limit }) = &result {
            prop_assert_eq!(*service, ServiceKind::TcpFrame);
            prop_assert!(u32::from_be_bytes(*header) > *limit || is_text(header));
        }
        let mut reader = FrameReader::new(max_frame);
        let mut read = &input[..];
        let mut answered = 0;
        while let Ok(Some(payload)) = reader.next_frame(&mut read) {
            let mut expected = Vec::new();
            uppercase_into(&payload, &mut expected);
            prop_assert_eq!(&replies[answered], &expected);
            answered += 1;
        }
        prop_assert_eq!(replies.len(), answered);
        prop_assert_eq!(requests.is_err(), result.is_err());
    }
}
