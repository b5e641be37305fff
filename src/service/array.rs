//! tcp-array: slices of the float64 array `a[i] = i`, sent straight from its memory,
//! over one of three wires (`--array-wire`): framed requests and replies, the
//! lessons' 10-byte request answered by the raw slice, or the whole array pushed.

use std::ops::Range;

use super::frame::{BadHeader, FrameReader};
use super::{ServiceKind, Violation};
use crate::output::Output;

/// Status byte of a reply carrying values.
const STATUS_OK: u8 = 0;
/// Status byte of a reply carrying an error message.
const STATUS_ERROR: u8 = 1;
/// The most values one reply can carry: its length, 1 + 8 * COUNT, must fit in 4 bytes.
const MAX_COUNT: u64 = (u32::MAX as u64 - 1) / 8;
/// How many bytes of a bad request an error message quotes.
const QUOTE_LIMIT: usize = 64;
/// Bytes in an `--array-wire fixed` request: `OFFSET:COUNT`, zero-padded to fit.
pub const FIXED_REQUEST: usize = 10;

/// How tcp-array talks to its clients (`--array-wire`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrayWire {
    /// Requests are frames whose payload is `OFFSET:COUNT`; each is answered by
    /// a frame of a status byte and the values (or an error message); many per connection.
    #[default]
    Framed,
    /// The request is exactly 10 ASCII bytes `OFFSET:COUNT` (zero-padded:
    /// `5000:10000`, `0000:00010`); the reply is the raw slice, then the server
    /// closes. A malformed request is closed without a reply (and logged).
    Fixed,
    /// No request: on connect the server sends the whole array, then closes.
    Push,
}

/// The array of `len` values `a[i] = i` in wire form: `len * 8` bytes, each
/// value a little-endian float64, whatever the host's byte order.
/// Fails, rather than aborting, when `len * 8` bytes cannot be reserved.
pub fn build(len: usize) -> Result<Vec<u8>, std::collections::TryReserveError> {
    let mut values: Vec<[u8; 8]> = Vec::new();
    values.try_reserve_exact(len)?;
    // Extending from a range of fixed-size arrays vectorizes; flattening
    // reuses the one allocation.
    values.extend((0..len).map(|i| (i as f64).to_le_bytes()));
    Ok(values.into_flattened())
}

/// The tcp-array state of one connection.
#[derive(Debug)]
pub struct ArrayRequests {
    /// The wire and how far along it the connection is.
    wire: Wire,
    /// The array's bytes, built by [`build`] and leaked once at start, so
    /// that replies borrow from it for as long as they are queued.
    array: &'static [u8],
}

/// [`ArrayWire`] with each one's state.
#[derive(Debug)]
enum Wire {
    /// The request frame being read.
    Framed(FrameReader),
    /// The 10-byte request as it arrives.
    Fixed {
        /// The bytes so far.
        request: [u8; FIXED_REQUEST],
        /// How many of them arrived.
        len: usize,
    },
    /// Whether the array has been queued.
    Push {
        /// True once `on_connect` queued it.
        pushed: bool,
    },
}

impl ArrayRequests {
    /// A fresh framed connection to `array` (built by [`build`]), with
    /// requests of at most `max_frame` bytes.
    pub fn new(array: &'static [u8], max_frame: u32) -> Self {
        ArrayRequests::with_wire(ArrayWire::Framed, array, max_frame)
    }

    /// A fresh connection speaking `wire`; `max_frame` matters to `Framed` only.
    pub fn with_wire(wire: ArrayWire, array: &'static [u8], max_frame: u32) -> Self {
        let wire = match wire {
            ArrayWire::Framed => Wire::Framed(FrameReader::new(max_frame)),
            ArrayWire::Fixed => Wire::Fixed { request: [0; FIXED_REQUEST], len: 0 },
            ArrayWire::Push => Wire::Push { pushed: false },
        };
        ArrayRequests { wire, array }
    }

    /// Push: queues the whole array, as a range of its memory, never copied.
    pub fn on_connect(&mut self, out: &mut Output) {
        if let Wire::Push { pushed } = &mut self.wire {
            out.push_array(self.array);
            *pushed = true;
        }
    }

    /// Heap bytes held for a framed request that spans reads.
    pub fn buffered(&self) -> usize {
        match &self.wire {
            Wire::Framed(reader) => reader.buffered(),
            Wire::Fixed { .. } | Wire::Push { .. } => 0,
        }
    }

    /// True once the one reply of push or fixed is queued (or refused).
    pub fn finished(&self) -> bool {
        match self.wire {
            Wire::Framed(_) => false,
            Wire::Fixed { len, .. } => len == FIXED_REQUEST,
            Wire::Push { pushed } => pushed,
        }
    }

    /// Framed: answers each `OFFSET:COUNT` request that `input` completes, in
    /// order: status 0 and the values, or status 1 and why not. A bad request
    /// is answered and the connection goes on; only a bad frame header is a violation.
    ///
    /// Fixed: once 10 bytes have arrived, queues the slice they ask for, or
    /// is a violation if they ask for none; bytes after them are ignored.
    /// Push: input is ignored.
    pub fn on_data(&mut self, mut input: &[u8], out: &mut Output) -> Result<(), Violation> {
        let (array, array_len) = (self.array, self.array.len() / 8);
        match &mut self.wire {
            Wire::Framed(reader) => {
                let bad_header = |bad: BadHeader| bad.violation(ServiceKind::TcpArray);
                while let Some(request) = reader.next_frame(&mut input).map_err(bad_header)? {
                    answer_framed(array, &request, out);
                }
            }
            Wire::Fixed { request, len } if *len < FIXED_REQUEST => {
                let take = (FIXED_REQUEST - *len).min(input.len());
                request[*len..*len + take].copy_from_slice(&input[..take]);
                *len += take;
                if *len == FIXED_REQUEST {
                    let range = fixed_range(array_len, request).map_err(|problem| {
                        Violation::FixedRequest { request: request.to_vec(), problem, array_len }
                    })?;
                    out.push_array(&array[range]);
                }
            }
            Wire::Fixed { .. } | Wire::Push { .. } => {}
        }
        Ok(())
    }
}

/// Queues the framed reply to one request: status 0 and the values, or status 1 and why not.
fn answer_framed(array: &'static [u8], request: &[u8], out: &mut Output) {
    match requested_bytes(array.len() / 8, request) {
        Ok(bytes) => {
            // At most MAX_COUNT values, so the length fits.
            queue_head(out, (1 + bytes.len()) as u32, STATUS_OK);
            out.push_array(&array[bytes]);
        }
        Err(message) => {
            // Messages quote at most QUOTE_LIMIT bytes, so the length fits.
            queue_head(out, (1 + message.len()) as u32, STATUS_ERROR);
            out.push_bytes(message.as_bytes());
        }
    }
}

/// The byte range of an array of `array_len` values that the framed `request`
/// asks for, or the error message.
fn requested_bytes(array_len: usize, request: &[u8]) -> Result<Range<usize>, String> {
    let (offset, count) = parse(request)?;
    let end = offset
        .checked_add(count)
        .ok_or_else(|| format!("OFFSET {offset} + COUNT {count} overflows"))?;
    if end > array_len as u64 {
        return Err(format!(
            "values {offset}..{end} out of range: the array holds {array_len} values"
        ));
    }
    if count > MAX_COUNT {
        return Err(format!("COUNT {count} too large: one reply holds at most {MAX_COUNT} values"));
    }
    // Both ends are within the array, whose bytes fit in memory.
    Ok(offset as usize * 8..end as usize * 8)
}

/// The byte range of an array of `array_len` values that the 10-byte fixed
/// `request` asks for, or what is wrong with it (for [`Violation::FixedRequest`]).
fn fixed_range(array_len: usize, request: &[u8; FIXED_REQUEST]) -> Result<Range<usize>, String> {
    let (offset, count) = parse(request)
        .map_err(|_| "not two unsigned decimal integers around one colon".to_string())?;
    // Nine digits at most each: the sum cannot overflow.
    let end = offset + count;
    if end > array_len as u64 {
        return Err(format!("it asks for values {offset}..{end}, past the end"));
    }
    // Both ends are within the array, whose bytes fit in memory.
    Ok(offset as usize * 8..end as usize * 8)
}

/// Queues a reply's 4-byte big-endian length `len` (status byte included) and its status.
fn queue_head(out: &mut Output, len: u32, status: u8) {
    out.write_bytes(|buf| {
        buf.extend_from_slice(&len.to_be_bytes());
        buf.push(status);
    });
}

/// Parses `OFFSET:COUNT`, two unsigned decimal integers of digits only.
fn parse(request: &[u8]) -> Result<(u64, u64), String> {
    let malformed = || {
        format!(
            "malformed request {}: expected OFFSET:COUNT, two unsigned decimal integers",
            quote(request)
        )
    };
    let Some(colon) = request.iter().position(|&b| b == b':') else {
        return Err(malformed());
    };
    let (offset, count) = (&request[..colon], &request[colon + 1..]);
    // A second colon, a sign or a space is not a digit.
    for digits in [offset, count] {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
    }
    Ok((number("OFFSET", offset)?, number("COUNT", count)?))
}

/// The value of `digits` (ASCII digits only), or the error message if it exceeds u64.
fn number(name: &str, digits: &[u8]) -> Result<u64, String> {
    digits
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or_else(|| format!("{name} {} too large: the maximum is {}", quote(digits), u64::MAX))
}

/// `bytes` quoted for an error message: at most QUOTE_LIMIT bytes of it, read
/// lossily as UTF-8, with control characters escaped.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE_LIMIT)];
    let mut quoted = format!("{:?}", String::from_utf8_lossy(shown));
    if shown.len() < bytes.len() {
        quoted.push_str("...");
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode;
    use super::*;

    /// The array of `len` values, leaked as the server leaks it.
    fn leaked(len: usize) -> &'static [u8] {
        build(len).unwrap().leak()
    }
    use proptest::prelude::*;

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
        assert_eq!(
            error_for(15, b"10:10"),
            "values 10..20 out of range: the array holds 15 values"
        );
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
        assert_eq!(
            violation,
            Violation::FrameHeader { service, header: *b"5000", limit: u32::MAX }
        );
        assert!(violation.to_string().contains("start the server with --array-wire fixed"));
    }

    /// A connection speaking `wire`: what on_connect queues, then the outcome
    /// and output of `input` in reads cut at `cuts`, and whether it finished.
    fn wire_in_reads(
        wire: ArrayWire,
        array: &'static [u8],
        input: &[u8],
        cuts: &[usize],
    ) -> (Vec<u8>, Result<(), Violation>, bool) {
        feed(ArrayRequests::with_wire(wire, array, 100), input, cuts)
    }

    #[test]
    fn push_queues_the_whole_array_on_connect_as_a_range() {
        let array = leaked(1000);
        let mut service = ArrayRequests::with_wire(ArrayWire::Push, array, 100);
        assert!(!service.finished());
        let mut out = Output::default();
        service.on_connect(&mut out);
        assert!(service.finished());
        assert_eq!(out.to_vec(), array);
        // The array's own memory, not a copy.
        let mut slices = [std::io::IoSlice::new(&[]); 2];
        assert_eq!(out.io_slices(&mut slices), 1);
        assert_eq!(slices[0].as_ptr(), array.as_ptr());
        // Whatever the peer sends is ignored.
        service.on_data(&frames(&[b"0:1"]), &mut out).unwrap();
        service.on_data(b"anything", &mut out).unwrap();
        assert_eq!(out.pending(), 8000);
        // An empty array: nothing to send, and done.
        let (out, result, finished) = wire_in_reads(ArrayWire::Push, &[], b"", &[]);
        assert_eq!((out, result, finished), (Vec::new(), Ok(()), true));
    }

    #[test]
    fn framed_and_fixed_queue_nothing_on_connect() {
        for wire in [ArrayWire::Framed, ArrayWire::Fixed] {
            let mut service = ArrayRequests::with_wire(wire, leaked(10), 100);
            let mut out = Output::default();
            service.on_connect(&mut out);
            assert!(out.is_empty() && !service.finished());
        }
    }

    #[test]
    fn fixed_request_gets_the_raw_slice_in_any_reads() {
        let array = leaked(20_000);
        for request in
            [&b"5000:10000"[..], b"0000:00010", b"0:00000010", b"000000:010", b"19999:0001"]
        {
            let text = std::str::from_utf8(request).unwrap();
            let (offset, count) = text.split_once(':').unwrap();
            let (offset, count): (usize, usize) = (offset.parse().unwrap(), count.parse().unwrap());
            let expected = array[offset * 8..(offset + count) * 8].to_vec();
            let cuts: Vec<usize> = (1..request.len()).collect();
            for cuts in [&[][..], &[3], &[9], &cuts] {
                let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, request, cuts);
                assert_eq!((out, result, finished), (expected.clone(), Ok(()), true), "{text}");
            }
        }
        // COUNT 0: an empty reply, and done.
        let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, b"0000:00000", &[]);
        assert_eq!((out, result, finished), (Vec::new(), Ok(()), true));
    }

    #[test]
    fn fixed_waits_for_ten_bytes_and_ignores_what_follows() {
        let array = leaked(100);
        let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, b"0001:0002", &[]);
        assert_eq!(
            (out, result, finished),
            (Vec::new(), Ok(()), false),
            "nine bytes are not a request"
        );
        let input = b"0001:000020001:00010001:0001garbage";
        let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, input, &[12, 20]);
        assert_eq!((out, result, finished), (array[8..24].to_vec(), Ok(()), true));
        // Even bytes that would be malformed are ignored once the request is answered.
        let (out, result, _) = wire_in_reads(ArrayWire::Fixed, array, b"0001:00002\xff", &[]);
        assert_eq!((out, result), (array[8..24].to_vec(), Ok(())));
    }

    #[test]
    fn malformed_fixed_requests_are_violations_that_say_what_arrived() {
        let array = leaked(1000);
        for request in [
            &b"12345:1234"[..],
            b"1:2\n\n\n\n\n\n\n",
            b"     5:100",
            b"0005:0002 ",
            b"-005:00002",
            b"+005:00002",
            b"0005;00002",
            b"0050:02:00",
            b"0005:00:02",
            b"\0\0\0\x0a0005:0",
            b":000000001",
            b"000000001:",
            b"GET / HTTP",
        ] {
            let request = &request[..10];
            let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, request, &[]);
            assert!(out.is_empty(), "{}", request.escape_ascii());
            assert!(finished);
            let Err(violation @ Violation::FixedRequest { .. }) = result else {
                panic!("{} gave {result:?}", request.escape_ascii())
            };
            let message = violation.to_string();
            let shown = format!("got the request \"{}\": ", request.escape_ascii());
            assert!(message.contains(&shown), "{message}");
        }
        let (_, result, _) = wire_in_reads(ArrayWire::Fixed, array, b"0000:0001\xff", &[]);
        assert_eq!(
            result.unwrap_err().to_string(),
            "tcp-array (--array-wire fixed) got the request \"0000:0001\\xff\": not two unsigned \
             decimal integers around one colon; it expects exactly 10 ASCII bytes OFFSET:COUNT, two \
             unsigned decimal integers zero-padded to fill them (5000:10000, 0000:00010), within \
             its 1000 values"
        );
    }

    #[test]
    fn fixed_request_past_the_end_is_a_violation() {
        let array = leaked(1000);
        for (request, values) in [
            (b"0995:00010", "995..1005"),
            (b"1000:00001", "1000..1001"),
            (b"999999:999", "999999..1000998"),
        ] {
            let (out, result, finished) = wire_in_reads(ArrayWire::Fixed, array, request, &[]);
            assert!(out.is_empty() && finished);
            let message = result.unwrap_err().to_string();
            let text = std::str::from_utf8(request).unwrap();
            assert!(
                message.starts_with(&format!(
                    "tcp-array (--array-wire fixed) got the request \"{text}\": it asks for \
                     values {values}, past the end; it expects exactly 10 ASCII bytes"
                )),
                "{message}"
            );
            assert!(message.ends_with("within its 1000 values"), "{message}");
        }
        // The last value is in range.
        let (out, result, _) = wire_in_reads(ArrayWire::Fixed, array, b"0999:00001", &[]);
        assert_eq!((out, result), (array[7992..].to_vec(), Ok(())));
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
}
