//! Unit tests of tcp-array's other wires: `push` (the whole array on connect) and `fixed`
//! (unframed 10-byte OFFSET:COUNT requests, raw values back).

use super::*;

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
    for request in [&b"5000:10000"[..], b"0000:00010", b"0:00000010", b"000000:010", b"19999:0001"]
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
