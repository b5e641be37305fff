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
mod tests;
