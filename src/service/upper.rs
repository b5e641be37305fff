//! Uppercasing as UTF-8: for whole units (datagrams, frame payloads) and for the tcp-upper stream.

use super::Violation;
use crate::output::Output;

/// Appends `bytes` to `out` uppercased with the full Unicode mapping of Python's
/// `str.upper` (`straße` -> `STRASSE`). Bytes that are not valid UTF-8, an
/// incomplete sequence at the very end included, pass through unchanged.
pub fn uppercase_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len());
    for chunk in bytes.utf8_chunks() {
        uppercase_str_into(chunk.valid(), out);
        out.extend_from_slice(chunk.invalid());
    }
}

/// How many bytes `uppercase_into(bytes)` appends, without appending them:
/// a frame's length is known before its uppercased payload is built.
pub fn uppercase_len(bytes: &[u8]) -> usize {
    bytes
        .utf8_chunks()
        .map(|chunk| {
            let text = chunk.valid();
            let ascii = text.bytes().filter(u8::is_ascii).count();
            let other: usize = text
                .chars()
                .filter(|c| !c.is_ascii())
                .map(|c| c.to_uppercase().map(char::len_utf8).sum::<usize>())
                .sum();
            ascii + other + chunk.invalid().len()
        })
        .sum()
}

/// Where to end a piece of `bytes` of at most `max` bytes so that
/// uppercasing the pieces one by one gives what uppercasing the whole does:
/// never inside a character (invalid bytes pass through alone, so any cut
/// among them is safe). A character longer than `max` makes a piece of its own.
pub fn piece_end(bytes: &[u8], max: usize) -> usize {
    let mut end = 0;
    for chunk in bytes.utf8_chunks() {
        let units =
            chunk.valid().chars().map(char::len_utf8).chain(chunk.invalid().iter().map(|_| 1));
        for len in units {
            if end + len > max {
                return if end == 0 { len } else { end };
            }
            end += len;
        }
    }
    end
}

/// Appends `text` uppercased to `out`.
fn uppercase_str_into(mut text: &str, out: &mut Vec<u8>) {
    while !text.is_empty() {
        // Runs of ASCII, the common case, are copied and uppercased in bulk.
        let ascii = text.bytes().position(|b| !b.is_ascii()).unwrap_or(text.len());
        let start = out.len();
        out.extend_from_slice(&text.as_bytes()[..ascii]);
        out[start..].make_ascii_uppercase();
        // Then one other character, whose uppercase may be several (ß -> SS).
        let mut chars = text[ascii..].chars();
        if let Some(c) = chars.next() {
            for upper in c.to_uppercase() {
                out.extend_from_slice(upper.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        text = chars.as_str();
    }
}

/// Length of the incomplete but possibly valid UTF-8 sequence ending `bytes` (0 to 3):
/// the bytes a stream must wait on before it can tell what they are.
fn incomplete_tail(bytes: &[u8]) -> usize {
    let from = bytes.len().saturating_sub(3);
    (from..bytes.len())
        .find(|&start| {
            matches!(std::str::from_utf8(&bytes[start..]),
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
        })
        .map_or(0, |start| bytes.len() - start)
}

/// The tcp-upper state: the start of a character split across reads.
#[derive(Debug, Default)]
pub struct Upper {
    /// The held bytes: a lead byte and its continuations so far, a valid prefix.
    held: [u8; 3],
    /// How many bytes of `held` are in use.
    held_len: usize,
}

impl Upper {
    /// Queues `input` uppercased, holding back a character cut off at its end
    /// until the next read completes it. Never fails.
    pub fn on_data(&mut self, mut input: &[u8], out: &mut Output) -> Result<(), Violation> {
        if self.held_len > 0 {
            match self.settle_held(input, out) {
                Some(used) => input = &input[used..],
                None => return Ok(()),
            }
        }
        let (whole, tail) = input.split_at(input.len() - incomplete_tail(input));
        out.write_bytes(|buf| uppercase_into(whole, buf));
        self.hold(tail);
        Ok(())
    }

    /// The peer is done: a character it never finished goes back unchanged.
    pub fn on_eof(&mut self, out: &mut Output) {
        out.push_bytes(&self.held[..self.held_len]);
        self.held_len = 0;
    }

    /// Completes the held bytes with the first bytes of `input` and queues the
    /// result; returns how many input bytes that used, or `None` if `input`
    /// ran out first (then everything is held).
    fn settle_held(&mut self, input: &[u8], out: &mut Output) -> Option<usize> {
        let held = self.held_len;
        // No character is longer than 4 bytes, so 4 bytes settle what the held ones are.
        let take = input.len().min(4 - held);
        let mut joined = [0; 4];
        joined[..held].copy_from_slice(&self.held[..held]);
        joined[held..held + take].copy_from_slice(&input[..take]);
        let joined = &joined[..held + take];
        if incomplete_tail(joined) == joined.len() {
            self.hold(joined);
            return None;
        }
        // The first unit of `joined` is the held character, now complete, or an
        // invalid sequence; either way it covers the held bytes, a valid prefix.
        let first = joined.utf8_chunks().next();
        let unit = first.map_or(0, |chunk| {
            chunk.valid().chars().next().map_or(chunk.invalid().len(), char::len_utf8)
        });
        out.write_bytes(|buf| uppercase_into(&joined[..unit], buf));
        self.held_len = 0;
        Some(unit - held)
    }

    /// Holds `bytes`, at most 3 (an incomplete sequence), until the next read.
    fn hold(&mut self, bytes: &[u8]) {
        self.held[..bytes.len()].copy_from_slice(bytes);
        self.held_len = bytes.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn upper(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        uppercase_into(bytes, &mut out);
        out
    }

    /// Feeds `input` to a fresh Upper in reads cut at `cuts` (ascending), then EOF.
    fn upper_in_reads(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut upper = Upper::default();
        let mut out = Output::default();
        let mut start = 0;
        for &cut in cuts.iter().chain([&input.len()]) {
            upper.on_data(&input[start..cut], &mut out).unwrap();
            start = cut;
        }
        upper.on_eof(&mut out);
        out.to_vec()
    }

    /// Feeds `input` one byte per read.
    fn upper_byte_by_byte(input: &[u8]) -> Vec<u8> {
        let cuts: Vec<usize> = (1..input.len()).collect();
        upper_in_reads(input, &cuts)
    }

    #[test]
    fn uppercases_ascii_and_unicode_like_python() {
        assert_eq!(upper(b"hello, World 42!"), b"HELLO, WORLD 42!");
        assert_eq!(upper("straße".as_bytes()), b"STRASSE");
        assert_eq!(upper("ﬀ ŉ ǆ é".as_bytes()), "FF ʼN Ǆ É".as_bytes());
        assert_eq!(upper("ΐ".as_bytes()), "\u{399}\u{308}\u{301}".as_bytes());
        assert_eq!(upper("𐐨€".as_bytes()), "𐐀€".as_bytes());
        assert_eq!(upper(b""), b"");
    }

    #[test]
    fn invalid_bytes_pass_through() {
        assert_eq!(upper(b"a\xffb"), b"A\xffB");
        assert_eq!(upper(b"\xc3\x28a"), b"\xc3(A");
        assert_eq!(upper(b"\x80\xbfx\x80"), b"\x80\xbfX\x80");
        assert_eq!(upper(b"\xf0\x90a"), b"\xf0\x90A");
        assert_eq!(upper(b"\xed\xa0\x80s"), b"\xed\xa0\x80S");
        // A sequence cut short at the end of a unit.
        assert_eq!(upper(b"ab\xe2\x82"), b"AB\xe2\x82");
        assert_eq!(upper(b"\xf0\x9f\x98"), b"\xf0\x9f\x98");
    }

    #[test]
    fn stream_invalid_bytes_pass_through_in_any_reads() {
        for input in [
            &b"a\xffb"[..],
            b"\xc3\x28a",
            b"\x80\xbfx\x80",
            b"\xf0\x90a\xe2\x82\xacb",
            b"\xe2\xe2\x82\xac",
        ] {
            assert_eq!(upper_in_reads(input, &[]), upper(input));
            assert_eq!(upper_byte_by_byte(input), upper(input));
        }
    }

    #[test]
    fn characters_split_at_every_position() {
        // 2-, 3- and 4-byte characters with uppercase forms, then ß which grows.
        for c in ["é", "€", "𐐨", "ß"] {
            let input = format!("x{c}y{c}");
            let expected = input.to_uppercase().into_bytes();
            let input = input.as_bytes();
            for cut in 0..=input.len() {
                assert_eq!(upper_in_reads(input, &[cut]), expected, "{c} cut at {cut}");
                for second in cut..=input.len() {
                    assert_eq!(upper_in_reads(input, &[cut, second]), expected);
                }
            }
            assert_eq!(upper_byte_by_byte(input), expected);
        }
    }

    #[test]
    fn truncated_sequence_is_flushed_at_eof() {
        for input in [&b"ab\xe2\x82"[..], b"\xf0", b"\xf0\x9f\x98"] {
            assert_eq!(upper_in_reads(input, &[]), upper(input));
            assert_eq!(upper_byte_by_byte(input), upper(input));
        }
        let mut upper = Upper::default();
        let mut out = Output::default();
        upper.on_data(b"a\xc3", &mut out).unwrap();
        assert_eq!(out.to_vec(), b"A");
        upper.on_eof(&mut out);
        assert_eq!(out.to_vec(), b"A\xc3");
    }

    #[test]
    fn incomplete_tail_finds_only_valid_prefixes() {
        assert_eq!(incomplete_tail(b""), 0);
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(b"a\xe2\x82"), 2);
        assert_eq!(incomplete_tail(b"\xf0\x9f\x98"), 3);
        assert_eq!(incomplete_tail("€".as_bytes()), 0);
        assert_eq!(incomplete_tail(b"\x80\x80\x80"), 0);
        assert_eq!(incomplete_tail(b"\xf0\x41"), 0);
        assert_eq!(incomplete_tail(b"\xed\xa0"), 0);
    }

    /// Bytes that are mostly UTF-8, with special cases and stray bytes mixed in.
    fn mostly_utf8() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            prop::sample::select(vec!["ß", "ﬀ", "ΐ", "é", "€", "𐐨", "a", "Z "])
                .prop_map(|s| s.as_bytes().to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn valid_text_matches_str_to_uppercase(text in any::<String>()) {
            prop_assert_eq!(upper(text.as_bytes()), text.to_uppercase().into_bytes());
        }

        #[test]
        fn any_split_gives_the_whole(
            input in mostly_utf8(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(upper_in_reads(&input, &cuts), upper(&input));
        }

        #[test]
        fn length_is_known_before_uppercasing(input in mostly_utf8()) {
            prop_assert_eq!(uppercase_len(&input), upper(&input).len());
        }

        #[test]
        fn pieces_uppercase_to_the_whole(input in mostly_utf8(), max in 1usize..12) {
            let mut out = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let end = piece_end(rest, max);
                prop_assert!(end > 0 && end <= max.max(4));
                uppercase_into(&rest[..end], &mut out);
                rest = &rest[end..];
            }
            prop_assert_eq!(out, upper(&input));
        }

        #[test]
        fn byte_by_byte_gives_the_whole(input in mostly_utf8()) {
            prop_assert_eq!(upper_byte_by_byte(&input), upper(&input));
        }
    }
}
