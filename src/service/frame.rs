//! Length-prefixed frames (4-byte big-endian length, then the payload) and tcp-frame.

use std::borrow::Cow;

use super::upper::uppercase_into;
use super::{ServiceKind, Violation};
use crate::output::Output;

/// Bytes in a frame header.
const HEADER: usize = 4;

/// A frame header that cannot be a length the reader accepts: the service
/// that owns the reader turns it into [`Violation::FrameHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHeader {
    /// The four bytes where a length belonged.
    pub header: [u8; HEADER],
    /// The reader's `--max-frame`.
    pub limit: u32,
}

impl BadHeader {
    /// The violation of `service`, which read this header.
    pub fn violation(self, service: ServiceKind) -> Violation {
        Violation::FrameHeader { service, header: self.header, limit: self.limit }
    }
}

/// True when every byte of `header` is printable ASCII (space to `~`): text
/// from a client that does not frame what it sends (`5000`, `GET `, `hell`).
/// As a length that is at least 0x20202020, 538,976,288 bytes.
pub fn is_text(header: &[u8; HEADER]) -> bool {
    header.iter().all(|&b| (b' '..=b'~').contains(&b))
}

/// The message of [`Violation::FrameHeader`]: what arrived (as text when it
/// is printable, else in hex), why it is no header, what `service` expects,
/// and for tcp-array text like `5000:10000`, the flag that serves it.
pub fn header_message(kind: &ServiceKind, header: &[u8; HEADER], limit: &u32) -> String {
    let (service, limit) = (kind.name(), *limit);
    let announced = u32::from_be_bytes(*header);
    let over =
        if announced > limit { format!(", over --max-frame {limit}") } else { String::new() };
    let mut message = if is_text(header) {
        let text = std::str::from_utf8(header).expect("printable ASCII is UTF-8");
        format!(
            "{service} read {text:?} where a frame header belongs: text, not a length \
             (read as a length it announces {announced} bytes{over})"
        )
    } else {
        let [a, b, c, d] = *header;
        format!(
            "{service} read the frame header {a:02x} {b:02x} {c:02x} {d:02x}, \
             a length of {announced} bytes{over}"
        )
    };
    message.push_str(&format!(
        "; {service} expects each frame to start with a 4-byte big-endian length of at most \
         {limit} bytes"
    ));
    let offset_count = header.iter().all(|&b| b.is_ascii_digit() || b == b':')
        && header.iter().filter(|&&b| b == b':').count() <= 1
        && header[0] != b':';
    if *kind == ServiceKind::TcpArray && offset_count {
        message.push_str(
            "; this looks like an unframed OFFSET:COUNT request, as the lessons' client sends: \
             start the server with --array-wire fixed to serve those",
        );
    }
    message
}

/// Incremental frame decoder: takes reads of any size, yields whole payloads.
#[derive(Debug)]
pub struct FrameReader {
    /// The longest payload accepted (`--max-frame`).
    max_frame: u32,
    /// The header of the frame being read.
    header: [u8; HEADER],
    /// How many header bytes have arrived; `HEADER` once the body is being read.
    header_len: usize,
    /// Body bytes received so far, when the frame spans reads.
    body: Vec<u8>,
}

impl FrameReader {
    /// A decoder rejecting payloads longer than `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        FrameReader { max_frame, header: [0; HEADER], header_len: 0, body: Vec::new() }
    }

    /// Takes bytes from the front of `input` until a frame is complete and
    /// returns its payload, borrowed from `input` when the whole body is there,
    /// or `Ok(None)` once `input` is used up (the rest is kept for the next read).
    /// A header announcing more than the limit, or made of printable text
    /// ([`is_text`]), is an error before any body byte is kept.
    pub fn next_frame<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<Cow<'a, [u8]>>, BadHeader> {
        let take = (HEADER - self.header_len).min(input.len());
        self.header[self.header_len..][..take].copy_from_slice(&input[..take]);
        self.header_len += take;
        *input = &input[take..];
        if self.header_len < HEADER {
            return Ok(None);
        }
        let announced = u32::from_be_bytes(self.header);
        if announced > self.max_frame || is_text(&self.header) {
            return Err(BadHeader { header: self.header, limit: self.max_frame });
        }
        let len = announced as usize;
        if self.body.is_empty() && input.len() >= len {
            // The whole body is in this read: no copy.
            let (payload, rest) = input.split_at(len);
            *input = rest;
            self.header_len = 0;
            return Ok(Some(Cow::Borrowed(payload)));
        }
        // Grow with what arrives, never by what the header claims.
        let take = (len - self.body.len()).min(input.len());
        self.body.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.body.len() < len {
            return Ok(None);
        }
        self.header_len = 0;
        Ok(Some(Cow::Owned(std::mem::take(&mut self.body))))
    }

    /// Heap bytes held for a frame that spans reads.
    pub fn buffered(&self) -> usize {
        self.body.capacity()
    }
}

/// Appends one frame to `out`: a header placeholder, then whatever `fill`
/// appends as the payload, then the real length patched in. A payload too long
/// for 4 bytes is removed again and reported, so no corrupt frame is left.
fn write_frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) -> Result<(), Violation> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    fill(out);
    let len = out.len() - start - HEADER;
    match u32::try_from(len) {
        Ok(len) => {
            out[start..start + HEADER].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(Violation::ReplyTooLarge(len as u64))
        }
    }
}

/// Appends `payload` to `out` as one frame; fails only past 4 GiB.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), Violation> {
    write_frame(out, |buf| buf.extend_from_slice(payload))
}

/// Payload bytes uppercased at a time for a large reply: at most 48 KiB of
/// output (uppercasing can triple a byte count) per step.
const PIECE: usize = 16 * 1024;

/// The tcp-frame state: answers each frame with its payload uppercased.
///
/// A small payload's reply is written at once. A large one's is written in
/// pieces as the output drains (its length is counted first, for the
/// header), so a peer that never reads costs `--max-pending` plus one piece,
/// not three times its largest frame. While a reply is in pieces, the input
/// that came after its frame waits, and the connection reads no more.
#[derive(Debug)]
pub struct FrameUpper {
    /// The frame being read.
    reader: FrameReader,
    /// A payload whose uppercased reply is being written, and how much of it is written.
    reply: Option<(Vec<u8>, usize)>,
    /// Input that came after that payload (at most one read's worth).
    held: Vec<u8>,
}

impl FrameUpper {
    /// A fresh connection accepting payloads of up to `max_frame` bytes.
    pub fn new(max_frame: u32) -> Self {
        FrameUpper { reader: FrameReader::new(max_frame), reply: None, held: Vec::new() }
    }

    /// Heap bytes held: a frame that spans reads, a reply in pieces, waiting input.
    pub fn buffered(&self) -> usize {
        let reply = self.reply.as_ref().map_or(0, |(payload, _)| payload.capacity());
        self.reader.buffered() + reply + self.held.capacity()
    }

    /// True while replies are owed that are not in the output yet: `resume` writes them.
    pub fn has_more(&self) -> bool {
        self.reply.is_some() || !self.held.is_empty()
    }

    /// Queues one uppercased frame per frame that `input` completes, in order
    /// (a large one's first piece only; see `resume`). On a violation, the
    /// replies to the frames before it are already queued.
    pub fn on_data(&mut self, input: &[u8], out: &mut Output) -> Result<(), Violation> {
        if self.has_more() {
            self.held.extend_from_slice(input);
            return Ok(());
        }
        self.answer(input, out)
    }

    /// Writes the next piece of the reply in pieces, or once that is done,
    /// serves the input that waited behind it.
    pub fn resume(&mut self, out: &mut Output) -> Result<(), Violation> {
        if let Some((payload, written)) = &mut self.reply {
            let end = *written + super::upper::piece_end(&payload[*written..], PIECE);
            out.write_bytes(|buf| uppercase_into(&payload[*written..end], buf));
            *written = end;
            if end == payload.len() {
                self.reply = None;
            }
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        self.answer(&held, out)
    }

    /// Answers the frames `input` completes, until one needs its reply in pieces.
    fn answer(&mut self, mut input: &[u8], out: &mut Output) -> Result<(), Violation> {
        let bad_header = |bad: BadHeader| bad.violation(ServiceKind::TcpFrame);
        while let Some(payload) = self.reader.next_frame(&mut input).map_err(bad_header)? {
            if payload.len() <= PIECE {
                out.write_bytes(|buf| write_frame(buf, |buf| uppercase_into(&payload, buf)))?;
                continue;
            }
            let len = super::upper::uppercase_len(&payload);
            let len = u32::try_from(len).map_err(|_| Violation::ReplyTooLarge(len as u64))?;
            out.push_bytes(&len.to_be_bytes());
            self.reply = Some((payload.into_owned(), 0));
            self.held.extend_from_slice(input);
            return self.resume(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
