//! What a run measured: latencies in an HDR histogram, the human-readable
//! summary, and the machine-readable `RESULT` line.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::Pace;
use crate::client::format_us;

/// The largest latency the histogram holds: an hour, in nanoseconds.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;
/// The latency above which `over_1ms` counts a message.
const OVER_NS: u64 = 1_000_000;
/// The percentiles reported: label, RESULT key, quantile.
const PERCENTILES: [(&str, &str, f64); 4] = [
    ("p50", "p50_us", 0.50),
    ("p90", "p90_us", 0.90),
    ("p99", "p99_us", 0.99),
    ("p99.9", "p999_us", 0.999),
];

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Connections asked for (churn: connections open at once).
    pub conns: usize,
    /// Measured messages per connection asked for.
    pub msgs: u64,
    /// Bytes per message.
    pub size: usize,
    /// How the messages were paced.
    pub pace: Pace,
    /// Client threads used.
    pub threads: usize,
    /// Idle connections asked for.
    pub idle: usize,
    /// Measured messages answered.
    pub messages: u64,
    /// From the first measured message's start (closed loop: its send; open
    /// loop: when it was due) to the last measured reply.
    pub elapsed: Duration,
    /// Failed connects, mismatches, closed connections, timeouts.
    pub errors: u64,
    /// Idle connections the server closed (select's FD_SETSIZE, `--max-conns`).
    pub idle_closed: u64,
    /// Latencies of the measured messages, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Open loop: how late the client queued each measured message after it
    /// was due, in nanoseconds (its own share of the latencies; empty otherwise).
    pub lag: Histogram<u64>,
}

impl Report {
    /// Measured messages answered per second.
    pub fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.messages as f64 / secs } else { 0.0 }
    }

    /// (label, RESULT key, nanoseconds) for p50, p90, p99, p99.9 and max.
    pub fn percentiles(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out: Vec<_> = PERCENTILES
            .iter()
            .map(|&(label, key, q)| (label, key, self.histogram.value_at_quantile(q)))
            .collect();
        out.push(("max", "max_us", self.histogram.max()));
        out
    }

    /// Measured messages whose latency was over 1 ms.
    pub fn over_1ms(&self) -> u64 {
        self.histogram.count_between(OVER_NS + 1, HISTOGRAM_MAX_NS)
    }

    /// The human-readable summary.
    pub fn lines(&self) -> Vec<String> {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.msgs_per_sec();
        let times: Vec<String> = self
            .percentiles()
            .into_iter()
            .map(|(label, _, ns)| format!("{label} {}", format_us(ns)))
            .collect();
        let mut errors = format!("errors: {}", self.errors);
        if self.idle > 0 {
            errors += &format!(", idle connections closed by the server: {}", self.idle_closed);
        }
        let (done, what) = match self.pace {
            Pace::Closed => (
                format!("{} round trips in {secs:.3} s: {rate:.0} messages/s", self.messages),
                "round trip (us)",
            ),
            Pace::Open { rate: offered } => (
                format!(
                    "{} replies in {secs:.3} s: {rate:.0} messages/s achieved, {offered:.0} offered",
                    self.messages
                ),
                "latency (us), from when each message was due",
            ),
            Pace::Churn => (
                format!("{} connections in {secs:.3} s: {rate:.0} connections/s", self.messages),
                "connect to reply (us)",
            ),
        };
        let mut lines = vec![
            done,
            format!("{what}: {}", times.join("  ")),
            format!("over 1 ms: {} of {}", self.over_1ms(), self.messages),
        ];
        if let Pace::Open { .. } = self.pace {
            lines.push(format!(
                "client lateness (us), due to queued: p50 {}  p99 {}  max {}",
                format_us(self.lag.value_at_quantile(0.5)),
                format_us(self.lag.value_at_quantile(0.99)),
                format_us(self.lag.max())
            ));
        }
        lines.push(errors);
        lines.push(self.result_line());
        lines
    }

    /// The machine-readable last line: `RESULT key=value ...`, always the same keys
    /// in the same order, `offered_per_sec` only in open loop.
    pub fn result_line(&self) -> String {
        let mut line = format!(
            "RESULT conns={} msgs={} size={} threads={} idle={} messages={} secs={:.6} msgs_per_sec={:.0}",
            self.conns,
            self.msgs,
            self.size,
            self.threads,
            self.idle,
            self.messages,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec()
        );
        if let Pace::Open { rate } = self.pace {
            line += &format!(" offered_per_sec={rate:.0}");
        }
        for (_, key, ns) in self.percentiles() {
            line += &format!(" {key}={}", format_us(ns));
        }
        line += &format!(
            " errors={} idle_closed={} mode={} over_1ms={}",
            self.errors,
            self.idle_closed,
            self.pace.name(),
            self.over_1ms()
        );
        if let Pace::Open { .. } = self.pace {
            line += &format!(" lag_p99_us={}", format_us(self.lag.value_at_quantile(0.99)));
        }
        line
    }
}

/// An empty histogram of latencies in nanoseconds, 3 significant digits.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(values_us: &[u64]) -> Report {
        let mut histogram = new_histogram();
        for &us in values_us {
            histogram.record(us * 1000).unwrap();
        }
        Report {
            conns: 2,
            msgs: 5,
            size: 64,
            pace: Pace::Closed,
            threads: 1,
            idle: 0,
            messages: values_us.len() as u64,
            elapsed: Duration::from_millis(500),
            errors: 0,
            idle_closed: 0,
            histogram,
            lag: new_histogram(),
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let values: Vec<u64> = (1..=1000).collect();
        let r = report(&values);
        let p: Vec<(&str, u64)> =
            r.percentiles().iter().map(|&(l, _, ns)| (l, ns / 1000)).collect();
        assert_eq!(p, [("p50", 500), ("p90", 900), ("p99", 990), ("p99.9", 999), ("max", 1000)]);
    }

    #[test]
    fn result_line_has_every_key_in_order() {
        let r = report(&[10, 20, 30, 40]);
        assert_eq!(r.msgs_per_sec(), 8.0);
        assert_eq!(
            r.result_line(),
            "RESULT conns=2 msgs=5 size=64 threads=1 idle=0 messages=4 secs=0.500000 \
             msgs_per_sec=8 p50_us=20.0 p90_us=40.0 p99_us=40.0 p999_us=40.0 max_us=40.0 \
             errors=0 idle_closed=0 mode=closed over_1ms=0"
        );
        let lines = r.lines();
        assert_eq!(lines[0], "4 round trips in 0.500 s: 8 messages/s");
        assert_eq!(lines.last().unwrap(), &r.result_line());
    }

    #[test]
    fn open_loop_result_line_has_the_offered_rate_beside_the_achieved_one() {
        let mut r = report(&[10, 2000, 3000, 40]);
        r.pace = Pace::Open { rate: 10.0 };
        let line = r.result_line();
        assert!(line.contains(" msgs_per_sec=8 offered_per_sec=10 p50_us="), "{line}");
        assert!(line.ends_with(" mode=open over_1ms=2 lag_p99_us=0.0"), "{line}");
        assert_eq!(r.lines()[0], "4 replies in 0.500 s: 8 messages/s achieved, 10 offered");
    }

    #[test]
    fn empty_report_prints_zeros() {
        let mut r = report(&[]);
        r.elapsed = Duration::ZERO;
        r.errors = 3;
        assert!(r.result_line().contains("msgs_per_sec=0 p50_us=0.0"), "{}", r.result_line());
        assert!(r.result_line().ends_with("errors=3 idle_closed=0 mode=closed over_1ms=0"));
    }
}
