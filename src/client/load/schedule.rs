//! The open loop's schedule: message `k` is due `k / rate` seconds after the
//! start, on connection `k mod conns`, whether or not earlier replies came back.

use std::time::Duration;

/// Open loop: the thread's timer fires this long before the next message is
/// due, and it polls without blocking from then on (a sleeping CPU takes tens
/// of microseconds to wake, more on a VM).
pub const EARLY: Duration = Duration::from_micros(30);

/// Open loop: measured messages per connection for `rate` messages/s over
/// `duration` seconds on `conns` connections, at least 1. Every connection
/// gets as many, so the rate is spread evenly.
pub fn open_loop_msgs(rate: f64, duration: Duration, conns: usize) -> u64 {
    let total = rate * duration.as_secs_f64();
    ((total / conns.max(1) as f64).round() as u64).max(1)
}

/// The open-loop schedule: message `k` (0, 1, 2, ... over all connections,
/// warm-up first) is due `k / rate` seconds after the start, on connection
/// `k mod conns`; each connection gets `per_conn` messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second, all connections together.
    pub rate: f64,
    /// Connections the messages are spread over.
    pub conns: usize,
    /// Messages per connection, warm-up included.
    pub per_conn: u64,
}

impl Schedule {
    /// Every message of the run.
    pub fn total(&self) -> u64 {
        self.per_conn * self.conns as u64
    }

    /// When message `k` is due, after the start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// The connection message `k` goes on.
    pub fn conn(&self, k: u64) -> usize {
        (k % self.conns as u64) as usize
    }

    /// Message `k`'s number on its connection (0 for its first).
    pub fn index_on_conn(&self, k: u64) -> u64 {
        k / self.conns as u64
    }

    /// The messages of connections `ids` (ascending), in the order they are due.
    pub fn of(&self, ids: &[usize]) -> impl Iterator<Item = u64> + use<> {
        let (ids, conns) = (ids.to_vec(), self.conns as u64);
        (0..self.per_conn).flat_map(move |round| {
            let ids = ids.clone();
            ids.into_iter().map(move |id| round * conns + id as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_messages_per_connection_cover_rate_times_duration() {
        assert_eq!(open_loop_msgs(1000.0, Duration::from_secs(2), 4), 500);
        assert_eq!(open_loop_msgs(1000.0, Duration::from_millis(500), 3), 167, "rounded");
        assert_eq!(open_loop_msgs(1.0, Duration::from_millis(10), 100), 1, "at least one");
    }

    #[test]
    fn schedule_is_evenly_spaced_and_round_robin() {
        let s = Schedule { rate: 1000.0, conns: 4, per_conn: 3 };
        assert_eq!(s.total(), 12);
        for k in 0..s.total() {
            assert_eq!(s.due(k), Duration::from_millis(k), "message {k} is due at k / rate");
            assert_eq!(s.conn(k), (k % 4) as usize);
            assert_eq!(s.index_on_conn(k), k / 4);
        }
    }

    #[test]
    fn schedule_split_over_threads_covers_every_message_once_in_order() {
        for (conns, threads) in [(1, 1), (4, 1), (4, 3), (10, 3), (7, 7)] {
            let s = Schedule { rate: 250.0, conns, per_conn: 5 };
            let mut all = Vec::new();
            for t in 0..threads {
                let ids: Vec<usize> = (t..conns).step_by(threads).collect();
                let mine: Vec<u64> = s.of(&ids).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "in due order: {mine:?}");
                assert!(mine.iter().all(|&k| ids.contains(&s.conn(k))), "its own connections");
                for &id in &ids {
                    let on_id: Vec<u64> =
                        mine.iter().copied().filter(|&k| s.conn(k) == id).collect();
                    let numbers: Vec<u64> = on_id.iter().map(|&k| s.index_on_conn(k)).collect();
                    assert_eq!(
                        numbers,
                        [0, 1, 2, 3, 4],
                        "connection {id}: every message, in order"
                    );
                }
                all.extend(mine);
            }
            all.sort_unstable();
            assert_eq!(
                all,
                (0..s.total()).collect::<Vec<u64>>(),
                "{conns} conns, {threads} threads"
            );
        }
    }

    #[test]
    fn a_connection_is_due_every_conns_over_rate_seconds() {
        let s = Schedule { rate: 100.0, conns: 10, per_conn: 4 };
        let on_3: Vec<Duration> = s.of(&[3]).map(|k| s.due(k)).collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(on_3, [ms(30), ms(130), ms(230), ms(330)]);
    }
}
