//! The bytes a connection still owes its peer: owned buffers and borrowed ranges of the array.

use std::collections::VecDeque;
use std::io::IoSlice;

/// One piece of pending output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes the service produced (replies are coalesced into the last one).
    Bytes(Vec<u8>),
    /// Bytes of the served array, sent straight from its memory, never copied.
    Array(&'static [u8]),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Bytes(bytes) => bytes.len(),
            Chunk::Array(bytes) => bytes.len(),
        }
    }
}

/// A connection's output queue, in the order the bytes must reach the wire.
#[derive(Debug, Default)]
pub struct Output {
    /// Chunks not yet fully sent; the front one may be partly sent.
    chunks: VecDeque<Chunk>,
    /// How many bytes of the front chunk the kernel has already taken.
    front_sent: usize,
    /// Bytes still to send, over all chunks.
    pending: usize,
    /// Heap bytes of the owned buffers (their capacity, sent prefixes included).
    owned: usize,
}

impl Output {
    /// Bytes still to send, borrowed array ranges counted by their length.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Heap bytes this queue holds: its owned buffers and its chunk entries
    /// (the entries' room is given back once the queue drains). Array ranges
    /// are borrowed, not copies, and count only as an entry.
    pub fn memory(&self) -> usize {
        self.owned + self.chunks.len() * std::mem::size_of::<Chunk>()
    }

    /// What backpressure weighs: the bytes still to send, or the memory held
    /// if that is more (many tiny replies cost more in entries than in bytes).
    pub fn weight(&self) -> usize {
        self.pending.max(self.memory())
    }

    /// True when nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Queues a copy of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.write_bytes(|buf| buf.extend_from_slice(bytes));
        }
    }

    /// Lets `fill` append to the owned buffer at the back of the queue, so a
    /// service can write a reply in place (uppercasing, patching a frame length).
    /// Returns what `fill` returns.
    pub fn write_bytes<R>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        // Append to the last buffer only while none of it has been sent:
        // growing a partly sent buffer would keep its sent prefix alive, so a
        // peer that reads slowly would grow it without bound.
        let partly_sent = self.chunks.len() == 1 && self.front_sent > 0;
        if partly_sent || !matches!(self.chunks.back(), Some(Chunk::Bytes(_))) {
            self.chunks.push_back(Chunk::Bytes(Vec::new()));
        }
        let Some(Chunk::Bytes(buf)) = self.chunks.back_mut() else {
            unreachable!("a Bytes chunk was just ensured at the back")
        };
        let (before, capacity) = (buf.len(), buf.capacity());
        let result = fill(buf);
        assert!(buf.len() >= before, "write_bytes may only append");
        self.pending += buf.len() - before;
        self.owned = self.owned + buf.capacity() - capacity;
        if buf.is_empty() {
            self.chunks.pop_back();
        }
        result
    }

    /// Queues bytes of the array (which lives as long as the server), by reference.
    pub fn push_array(&mut self, bytes: &'static [u8]) {
        if !bytes.is_empty() {
            self.pending += bytes.len();
            self.chunks.push_back(Chunk::Array(bytes));
        }
    }

    /// Fills `slices` with what is owed, front first, and returns how many it
    /// filled: the iovec of one vectored send.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (i, (chunk, slot)) in self.chunks.iter().zip(slices.iter_mut()).enumerate() {
            let skip = if i == 0 { self.front_sent } else { 0 };
            *slot = IoSlice::new(match chunk {
                Chunk::Bytes(bytes) => &bytes[skip..],
                Chunk::Array(bytes) => &bytes[skip..],
            });
            filled += 1;
        }
        filled
    }

    /// Forgets the first `n` bytes, which the kernel has taken.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.pending, "consumed more than was pending");
        self.pending -= n;
        while n > 0 {
            let front_left = self.chunks[0].len() - self.front_sent;
            if n < front_left {
                self.front_sent += n;
                return;
            }
            n -= front_left;
            if let Some(Chunk::Bytes(bytes)) = self.chunks.pop_front() {
                self.owned -= bytes.capacity();
            }
            self.front_sent = 0;
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
    }

    /// Copies everything owed into one vector (for tests and small replies).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); self.chunks.len()];
        let filled = self.io_slices(&mut slices);
        slices[..filled].iter().flat_map(|s| s.iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_bytes_and_consumes_across_chunks() {
        let array: &'static [u8] = Vec::leak((0..100).collect());
        let mut out = Output::default();
        out.push_bytes(b"ab");
        out.push_bytes(b"cd");
        out.push_array(&array[10..14]);
        out.push_bytes(b"ef");
        assert_eq!(out.pending(), 10);
        assert_eq!(out.to_vec(), b"abcd\x0a\x0b\x0c\x0def");
        out.consume(5);
        assert_eq!(out.to_vec(), b"\x0b\x0c\x0def");
        out.consume(5);
        assert!(out.is_empty());
    }

    #[test]
    fn a_partly_sent_buffer_is_not_grown() {
        let mut out = Output::default();
        out.push_bytes(&[1; 100]);
        out.consume(60);
        out.push_bytes(&[2; 100]);
        assert_eq!(out.chunks.len(), 2, "new bytes go to a new buffer");
        assert_eq!(out.pending(), 140);
        out.consume(40);
        out.push_bytes(&[3; 10]);
        assert_eq!(out.chunks.len(), 1, "the back buffer is whole: appended to");
        assert_eq!(out.to_vec(), [[2; 100].as_slice(), &[3; 10]].concat());
    }

    #[test]
    fn memory_counts_owned_buffers_and_entries_but_not_array_ranges() {
        let mut out = Output::default();
        out.push_array(Vec::leak(vec![0; 1_000_000]));
        assert_eq!(out.pending(), 1_000_000);
        assert!(out.memory() < 1000, "a range is borrowed: {}", out.memory());
        assert_eq!(out.weight(), 1_000_000);
        out.push_bytes(&[7; 5000]);
        assert!(out.memory() >= 5000);
        out.consume(1_000_000);
        out.consume(5000);
        assert!(out.memory() < 1000, "sent buffers are freed: {}", out.memory());
        // Many tiny replies weigh by their entries, not their bytes.
        for _ in 0..1000 {
            out.push_bytes(b"h");
            out.push_array(b"01234567");
        }
        assert_eq!(out.pending(), 9000);
        assert!(out.weight() > 9000 * 2, "{}", out.weight());
    }

    #[test]
    fn empty_pushes_queue_nothing() {
        let mut out = Output::default();
        out.push_bytes(b"");
        out.push_array(&[]);
        out.write_bytes(|_| {});
        assert!(out.is_empty());
        assert_eq!(out.chunks.len(), 0);
    }
}
