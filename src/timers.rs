//! The timers: every deadline of the loop, nearest first; the wait's timeout is the nearest.
//!
//! Like Redis' time events beside its file events, kept in an ordered map so
//! that scheduling, cancelling and taking the nearest are O(log n). A timer
//! whose deadline only moves later (a connection's idle timeout, pushed back
//! by every byte) is not rescheduled each time: it fires, and whoever
//! receives it checks what is due now and schedules the next one. A timer
//! whose owner goes away (a connection closes) is cancelled, so no wait
//! wakes for nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A scheduled timer, to cancel it or to recognise it when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    /// When it is due.
    pub due: Instant,
    /// Scheduling order: equal deadlines fire first-in first-out.
    seq: u64,
}

/// Deadlines, nearest first.
#[derive(Debug)]
pub struct Timers<K> {
    /// Every scheduled timer and what it is for.
    map: BTreeMap<TimerKey, K>,
    /// The next scheduling order number.
    seq: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers { map: BTreeMap::new(), seq: 0 }
    }
}

impl<K> Timers<K> {
    /// Adds a deadline.
    pub fn schedule(&mut self, due: Instant, what: K) -> TimerKey {
        self.seq += 1;
        let key = TimerKey { due, seq: self.seq };
        self.map.insert(key, what);
        key
    }

    /// Removes a timer that has not fired; nothing if it has.
    pub fn cancel(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    /// Takes the nearest timer out if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, K)> {
        if self.map.first_key_value()?.0.due > now {
            return None;
        }
        self.map.pop_first()
    }

    /// How long a wait starting at `now` may sleep: until the nearest deadline, or forever.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.map.first_key_value().map(|(key, _)| key.due.saturating_duration_since(now))
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
        assert_eq!(timers.map.len(), 1);
    }

    #[test]
    fn a_cancelled_timer_never_fires() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let key = timers.schedule(t0, "gone");
        timers.schedule(t0 + Duration::from_secs(1), "kept");
        timers.cancel(key);
        timers.cancel(key);
        assert_eq!(timers.timeout(t0), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(1)).map(|(_, w)| w), Some("kept"));
        assert!(timers.map.is_empty());
    }

    #[test]
    fn no_deadline_means_wait_forever() {
        let timers: Timers<()> = Timers::default();
        assert_eq!(timers.timeout(Instant::now()), None);
    }
}
