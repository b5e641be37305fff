//! One active connection's messages: numbered lowercase text, queued
//! (pipelined in open loop), sent as the socket takes them, and every byte
//! that comes back checked against what was sent, in order.

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Instant;

use nix::errno::Errno;

use super::Expect;
use crate::sys::{Event, Interest, net};

/// Fills `message` with message `index` of connection `conn`: `<conn>.<index> `
/// then lowercase letters, `size` bytes in all. Lowercase ASCII so that both
/// an echo and an uppercasing server can be checked; numbered so that a reply
/// to another message shows, and so that strace output says which is which.
pub fn fill_message(message: &mut Vec<u8>, conn: usize, index: u64, size: usize) {
    message.clear();
    let _ = write!(message, "{conn}.{index} "); // writing to a Vec cannot fail
    message.truncate(size);
    let mut x = ((conn as u64) << 32) ^ index ^ 0x9E37_79B9_7F4A_7C15;
    while message.len() < size {
        // A linear congruential step: cheap, and letters that differ per message.
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        message.push(b'a' + ((x >> 33) % 26) as u8);
    }
}

/// The offset of the first byte of `got` that is not what `sent` must come back as.
pub fn first_mismatch(expect: Expect, sent: &[u8], got: &[u8]) -> Option<usize> {
    sent.iter().zip(got).position(|(&s, &g)| expect.reply_byte(s) != g)
}

/// A message sent (or to be sent) and not yet answered in full.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// Its number on its connection, warm-up included.
    pub(super) index: u64,
    /// Its length in bytes.
    pub(super) len: usize,
    /// When its latency starts: when it was due (open loop), or sent.
    pub(super) due: Instant,
}

/// One active connection.
pub(super) struct Conn {
    /// Its number, 0 to conns - 1, as written in its messages.
    pub(super) id: usize,
    /// The non-blocking socket.
    pub(super) stream: TcpStream,
    /// The bytes of the messages in `queue`, oldest first: what is still owed back.
    pub(super) out: Vec<u8>,
    /// Bytes of `out` sent so far.
    pub(super) sent: usize,
    /// Bytes of `out` received back and checked so far.
    pub(super) received: usize,
    /// The messages outstanding, oldest first.
    pub(super) queue: VecDeque<Pending>,
    /// Messages queued so far, warm-up included: the next one's number.
    pub(super) queued: u64,
    /// Messages answered, warm-up included.
    pub(super) done: u64,
    /// Churn: the connect is still in progress (nothing is sent until it completes).
    pub(super) connecting: bool,
}

impl Conn {
    /// A connection with nothing outstanding.
    pub(super) fn new(id: usize, stream: TcpStream, connecting: bool, size: usize) -> Conn {
        Conn {
            id,
            stream,
            out: Vec::with_capacity(size),
            sent: 0,
            received: 0,
            queue: VecDeque::new(),
            queued: 0,
            done: 0,
            connecting,
        }
    }

    /// Appends message number `queued` (`size` bytes), its latency timed from `due`.
    pub(super) fn enqueue(&mut self, size: usize, due: Instant, scratch: &mut Vec<u8>) {
        fill_message(scratch, self.id, self.queued, size);
        self.out.extend_from_slice(scratch);
        self.queue.push_back(Pending { index: self.queued, len: size, due });
        self.queued += 1;
    }

    /// Input always; output while a connect is in progress or bytes are unsent.
    pub(super) fn wants(&self) -> Interest {
        Interest { readable: true, writable: self.connecting || self.sent < self.out.len() }
    }
}

/// What one turn of an active connection came to.
pub(super) enum Turn {
    /// No reply completed.
    Waiting,
    /// This many replies (the oldest outstanding) are complete and correct, at this instant.
    Replied(usize, Instant),
    /// It failed; the connection must be closed.
    Failed(String),
}

/// send(2) what is left of the queued bytes, until all are sent or the buffer is full.
pub(super) fn send_more(conn: &mut Conn) -> Result<(), String> {
    while conn.sent < conn.out.len() {
        match net::send(conn.stream.as_fd(), &[IoSlice::new(&conn.out[conn.sent..])]) {
            Ok(n) => conn.sent += n,
            Err(Errno::EAGAIN) => break,
            Err(errno) => return Err(format!("send: {errno}")),
        }
    }
    Ok(())
}

/// The outstanding message that byte `offset` of `out` belongs to, and the
/// offset of that message's first byte.
fn message_at(queue: &VecDeque<Pending>, offset: usize) -> (u64, usize) {
    let mut start = 0;
    for message in queue {
        if offset < start + message.len {
            return (message.index, start);
        }
        start += message.len;
    }
    (queue.back().map_or(0, |m| m.index), start)
}

/// One ready event of an active connection: completes a connect in progress,
/// sends more if it is writable, then one recv(2) if readable, its bytes
/// checked against what was sent.
pub(super) fn turn(conn: &mut Conn, event: Event, buf: &mut [u8], expect: Expect) -> Turn {
    if conn.connecting {
        match conn.stream.take_error() {
            Ok(None) => conn.connecting = false,
            Ok(Some(e)) | Err(e) => return Turn::Failed(format!("connect: {e}")),
        }
    }
    if event.writable
        && let Err(why) = send_more(conn)
    {
        return Turn::Failed(why);
    }
    if !event.readable {
        return Turn::Waiting;
    }
    let len = match net::recv(conn.stream.as_fd(), buf) {
        Ok(0) => {
            let (index, start) = message_at(&conn.queue, conn.received);
            return Turn::Failed(format!(
                "the server closed the connection ({} of {} bytes of message {index} back)",
                conn.received - start,
                conn.queue.front().map_or(0, |m| m.len),
            ));
        }
        Ok(len) => len,
        Err(Errno::EAGAIN) => return Turn::Waiting,
        Err(errno) => return Turn::Failed(format!("recv: {errno}")),
    };
    if let Err(why) = check_reply(conn, &buf[..len], expect) {
        return Turn::Failed(why);
    }
    conn.received += len;
    let mut complete = 0;
    let mut end = 0;
    for message in &conn.queue {
        if end + message.len > conn.received {
            break;
        }
        end += message.len;
        complete += 1;
    }
    if complete > 0 { Turn::Replied(complete, Instant::now()) } else { Turn::Waiting }
}

/// Checks `got`, the bytes just received, against what the bytes of `out`
/// from `received` on must come back as: no more than was sent, each one right.
fn check_reply(conn: &Conn, got: &[u8], expect: Expect) -> Result<(), String> {
    let (from, to) = (conn.received, conn.received + got.len());
    if to > conn.sent {
        let (index, _) = message_at(&conn.queue, from);
        return Err(format!(
            "{} bytes back for {} sent, from message {index} on",
            to - from,
            conn.sent - from
        ));
    }
    if let Some(at) = first_mismatch(expect, &conn.out[from..to], got) {
        let end = got.len().min(at + 16);
        let wanted: Vec<u8> =
            conn.out[from + at..from + end].iter().map(|&b| expect.reply_byte(b)).collect();
        let (index, start) = message_at(&conn.queue, from + at);
        return Err(format!(
            "reply to message {index} differs at byte {}: got \"{}\", expected \"{}\" (--expect {})",
            from + at - start,
            got[at..end].escape_ascii(),
            wanted.escape_ascii(),
            expect.name()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conn: usize, index: u64, size: usize) -> Vec<u8> {
        let mut m = Vec::new();
        fill_message(&mut m, conn, index, size);
        m
    }

    #[test]
    fn messages_are_numbered_lowercase_ascii_of_the_asked_size() {
        for size in [1, 5, 8, 64, 1000] {
            let m = message(17, 42, size);
            assert_eq!(m.len(), size);
            assert!(m.iter().all(|b| b.is_ascii() && !b.is_ascii_uppercase()), "{m:?}");
        }
        assert!(message(17, 42, 64).starts_with(b"17.42 "));
        assert_eq!(message(17, 42, 3), b"17.");
        assert_ne!(message(1, 2, 64), message(2, 1, 64));
        assert_ne!(message(1, 2, 64)[8..], message(1, 3, 64)[8..], "letters differ too");
        assert_eq!(message(1, 2, 64), message(1, 2, 64), "deterministic");
    }

    #[test]
    fn fill_reuses_the_buffer() {
        let mut m = b"left over from before".to_vec();
        fill_message(&mut m, 0, 0, 4);
        assert_eq!(m, b"0.0 ");
    }

    #[test]
    fn echo_and_upper_replies_are_checked_byte_by_byte() {
        let sent = b"3.7 abcxyz";
        assert_eq!(first_mismatch(Expect::Echo, sent, b"3.7 abcxyz"), None);
        assert_eq!(first_mismatch(Expect::Echo, sent, b"3.7 abCxyz"), Some(6));
        assert_eq!(first_mismatch(Expect::Upper, sent, b"3.7 ABCXYZ"), None);
        assert_eq!(first_mismatch(Expect::Upper, sent, b"3.7 abcxyz"), Some(4));
        assert_eq!(first_mismatch(Expect::Upper, &sent[4..], b"ABC"), None, "a prefix");
    }

    #[test]
    fn a_reply_byte_is_traced_to_its_message() {
        let queue: VecDeque<Pending> =
            (0..3).map(|i| Pending { index: 10 + i, len: 4, due: Instant::now() }).collect();
        assert_eq!(message_at(&queue, 0), (10, 0));
        assert_eq!(message_at(&queue, 5), (11, 4));
        assert_eq!(message_at(&queue, 11), (12, 8));
    }
}
