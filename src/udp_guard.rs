//! Which datagrams get an answer: the reflection-loop guard and a per-source reply budget.
//!
//! A UDP service that answers any source can be made to answer itself, or
//! another server like it, forever (the classic echo/chargen loop): one
//! spoofed datagram from udp-upper's port to udp-ping's, or between two
//! servers on their default ports. The guard refuses sources that can only be
//! such a loop; the budget bounds any loop it cannot recognise. No syscalls.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Sources the budget remembers at most; past this the stalest half is forgotten.
const MAX_SOURCES: usize = 4096;

/// Why a datagram is not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source port is one of this server's UDP ports (its own sockets, or
    /// a server like it on the default ports), or 0.
    LoopSource,
    /// It is itself a reply (`PONG...` to udp-ping).
    Reply,
    /// Its source address has used its replies for now (`--udp-rate`).
    OverBudget,
}

/// The guard and the budget.
#[derive(Debug)]
pub struct UdpGuard {
    /// Ports a datagram may not come from: every configured and bound UDP port.
    loop_ports: Vec<u16>,
    /// Replies per second per source address; 0: no budget.
    rate: u32,
    /// Each recent source address's token bucket.
    buckets: HashMap<IpAddr, Bucket>,
}

/// A token bucket: up to `rate` replies at once, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Replies it may still send.
    tokens: f64,
    /// When it was last refilled.
    refilled: Instant,
}

impl UdpGuard {
    /// A guard refusing sources on `loop_ports` (and port 0), with `rate`
    /// replies per second per source address (0: unlimited).
    pub fn new(loop_ports: Vec<u16>, rate: u32) -> Self {
        UdpGuard { loop_ports, rate, buckets: HashMap::new() }
    }

    /// Whether `datagram` from `from` may be answered at `now` by udp-ping
    /// (`is_ping`) or udp-upper; an answer takes one token of its source's budget.
    pub fn check(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        is_ping: bool,
        now: Instant,
    ) -> Result<(), Refusal> {
        if from.port() == 0 || self.loop_ports.contains(&from.port()) {
            return Err(Refusal::LoopSource);
        }
        if is_ping && datagram.starts_with(b"PONG") {
            return Err(Refusal::Reply);
        }
        if self.rate == 0 {
            return Ok(());
        }
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&from.ip()) {
            self.forget_stalest();
        }
        let rate = f64::from(self.rate);
        let bucket =
            self.buckets.entry(from.ip()).or_insert(Bucket { tokens: rate, refilled: now });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            return Err(Refusal::OverBudget);
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Forgets the half of the sources refilled longest ago: a flood of
    /// spoofed sources cannot grow the table past `MAX_SOURCES`.
    fn forget_stalest(&mut self) {
        let mut times: Vec<Instant> = self.buckets.values().map(|b| b.refilled).collect();
        let (_, &mut median, _) = times.select_nth_unstable(self.buckets.len() / 2);
        self.buckets.retain(|_, b| b.refilled > median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn from(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn refuses_its_own_ports_port_zero_and_replies() {
        let mut guard = UdpGuard::new(vec![1234, 1235], 0);
        let now = Instant::now();
        assert_eq!(guard.check(from(1235), b"x", true, now), Err(Refusal::LoopSource));
        assert_eq!(guard.check(from(1234), b"x", false, now), Err(Refusal::LoopSource));
        assert_eq!(guard.check(from(0), b"x", false, now), Err(Refusal::LoopSource));
        assert_eq!(guard.check(from(40000), b"PONG 1", true, now), Err(Refusal::Reply));
        assert_eq!(guard.check(from(40000), b"PONG 1", false, now), Ok(()), "upper answers PONG");
        assert_eq!(guard.check(from(40000), b"PING 1", true, now), Ok(()));
    }

    #[test]
    fn budget_allows_rate_per_second_per_address() {
        let mut guard = UdpGuard::new(vec![], 10);
        let t0 = Instant::now();
        let answered = (0..100).filter(|_| guard.check(from(40000), b"", true, t0).is_ok()).count();
        assert_eq!(answered, 10, "a burst of up to the rate");
        assert_eq!(
            guard.check(SocketAddr::from(([127, 0, 0, 2], 40000)), b"", true, t0),
            Ok(()),
            "another address has its own budget"
        );
        let t1 = t0 + Duration::from_millis(500);
        let answered = (0..100).filter(|_| guard.check(from(40001), b"", true, t1).is_ok()).count();
        assert_eq!(answered, 5, "refilled at the rate, whatever the source port");
    }

    #[test]
    fn the_table_of_sources_stays_bounded() {
        let mut guard = UdpGuard::new(vec![], 1);
        let t0 = Instant::now();
        for i in 0..(3 * MAX_SOURCES as u32) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let now = t0 + Duration::from_micros(u64::from(i));
            assert_eq!(guard.check(SocketAddr::new(ip, 40000), b"", true, now), Ok(()));
            assert!(guard.buckets.len() <= MAX_SOURCES);
        }
    }
}
