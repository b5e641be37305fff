//! One timer heap: every deadline of the loop, nearest first; the wait's timeout is the nearest.
//!
//! Like Redis' time events beside its file events, but a min-heap: scheduling
//! and taking the nearest are O(log n). Nothing is cancelled: whoever receives
//! a due timer checks that it still applies (a connection's id, a phase), so a
//! stale entry costs one pop.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A deadline and what it is for.
#[derive(Debug)]
struct Entry<K> {
    /// When it is due.
    due: Instant,
    /// Scheduling order, so that equal deadlines fire first-in first-out.
    seq: u64,
    /// What it is for.
    what: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Deadlines, nearest first.
#[derive(Debug)]
pub struct Timers<K> {
    /// The heap, reversed into a min-heap.
    heap: BinaryHeap<Reverse<Entry<K>>>,
    /// The next scheduling order number.
    seq: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<K> Timers<K> {
    /// Adds a deadline.
    pub fn schedule(&mut self, due: Instant, what: K) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { due, seq: self.seq, what }));
    }

    /// Takes the nearest deadline out if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        if self.heap.peek()?.0.due > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| (entry.due, entry.what))
    }

    /// How long a wait starting at `now` may sleep: until the nearest deadline, or forever.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap.peek().map(|entry| entry.0.due.saturating_duration_since(now))
    }

    /// How many deadlines are scheduled (stale ones included).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first_and_fifo_on_ties() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(t0 + Duration::from_secs(3), "c");
        timers.schedule(t0 + Duration::from_secs(1), "a");
        timers.schedule(t0 + Duration::from_secs(1), "b");
        assert_eq!(timers.timeout(t0), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None, "nothing is due yet");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(timers.pop_due(later).map(|(_, w)| w), Some("a"));
        assert_eq!(timers.pop_due(later).map(|(_, w)| w), Some("b"));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.timeout(later), Some(Duration::from_secs(1)));
        assert_eq!(timers.timeout(t0 + Duration::from_secs(9)), Some(Duration::ZERO));
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn no_deadline_means_wait_forever() {
        let timers: Timers<()> = Timers::default();
        assert_eq!(timers.timeout(Instant::now()), None);
        assert!(timers.is_empty());
    }
}
