//! `pollmux ping`: UDP `PING <seq>` datagrams answered `PONG <seq>`, reported like ping(8).
//!
//! One connected UDP socket and one poll(2) loop: send when the next packet is
//! due, otherwise wait for a reply until the next send or the oldest
//! outstanding packet's deadline. Replies are matched by sequence number, so a
//! late or duplicate one is ignored rather than credited to another packet.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use log::debug;

use super::{format_ms, resolve};
use crate::fd_map::FdMap;
use crate::sys::{BackendKind, Interest};

/// The largest UDP payload over IPv4 (65,535 - 20 IP - 8 UDP header bytes).
pub const MAX_SIZE: usize = 65_507;

/// What `pollmux ping` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` of the udp-ping service.
    pub target: String,
    /// Packets to send (at least 1).
    pub count: u64,
    /// Time between sends; zero sends the next as soon as the previous is answered or lost.
    pub interval: Duration,
    /// Bytes per datagram: `PING <seq> ` padded with letters (never shorter than `PING <seq>`).
    pub size: usize,
    /// How long a packet may wait for its reply before it counts as lost.
    pub timeout: Duration,
    /// The wait syscall to use.
    pub backend: BackendKind,
}

/// What a run of `pollmux ping` measured.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Packets sent.
    pub transmitted: u64,
    /// Packets answered in time.
    pub received: u64,
    /// ICMP errors reported on the socket (port unreachable).
    pub errors: u64,
    /// Round-trip times of the answered packets.
    pub rtt: RttStats,
    /// From the first send to the end.
    pub elapsed: Duration,
}

/// Running min/avg/max/mdev of round-trip times, as ping(8) prints them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RttStats {
    /// Samples so far.
    pub count: u64,
    /// Smallest, in nanoseconds.
    pub min: f64,
    /// Largest, in nanoseconds.
    pub max: f64,
    /// Sum, in nanoseconds.
    pub sum: f64,
    /// Sum of squares, in square nanoseconds.
    pub sum_sq: f64,
}

impl RttStats {
    /// Adds one round trip.
    pub fn add(&mut self, rtt: Duration) {
        let ns = rtt.as_nanos() as f64;
        self.min = if self.count == 0 { ns } else { self.min.min(ns) };
        self.max = self.max.max(ns);
        self.sum += ns;
        self.sum_sq += ns * ns;
        self.count += 1;
    }

    /// The mean, in nanoseconds.
    pub fn avg(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }

    /// ping(8)'s mdev: the standard deviation, `sqrt(E[x²] - E[x]²)`, in nanoseconds.
    pub fn mdev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let avg = self.avg();
        (self.sum_sq / self.count as f64 - avg * avg).max(0.0).sqrt()
    }
}

impl Summary {
    /// ping(8)'s closing lines: counts and loss, then the round trips if any came back.
    pub fn lines(&self) -> Vec<String> {
        let errors =
            if self.errors > 0 { format!(", +{} errors", self.errors) } else { String::new() };
        let mut lines = vec![format!(
            "{} packets transmitted, {} received{errors}, {} packet loss, time {}ms",
            self.transmitted,
            self.received,
            loss_percent(self.transmitted, self.received),
            self.elapsed.as_millis()
        )];
        if self.received > 0 {
            let r = &self.rtt;
            lines.push(format!(
                "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
                format_ms(r.min),
                format_ms(r.avg()),
                format_ms(r.max),
                format_ms(r.mdev())
            ));
        }
        lines
    }
}

/// `0%`, `20%`, `33.3333%`: whole numbers bare, others with ping(8)'s precision.
pub fn loss_percent(transmitted: u64, received: u64) -> String {
    if transmitted == 0 {
        return "0%".into();
    }
    let lost = transmitted.saturating_sub(received);
    if (lost * 100).is_multiple_of(transmitted) {
        format!("{}%", lost * 100 / transmitted)
    } else {
        format!("{:.4}%", lost as f64 * 100.0 / transmitted as f64)
    }
}

/// The datagram for `seq`: `PING <seq>`, then a space and letters up to `size` bytes.
pub fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut datagram = format!("PING {seq}").into_bytes();
    if datagram.len() < size {
        datagram.push(b' ');
        let pad = size - datagram.len();
        datagram.extend((b'a'..=b'z').cycle().take(pad));
    }
    datagram
}

/// The sequence number a reply answers, if it is exactly udp-ping's answer
/// to `payload(seq, size)` (`PONG` and the rest of the PING); `None` otherwise.
pub fn reply_seq(reply: &[u8], size: usize) -> Option<u64> {
    let rest = reply.strip_prefix(b"PONG ")?;
    let digits = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    let seq: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    (reply[4..] == payload(seq, size)[4..]).then_some(seq)
}

/// Sends `count` PINGs and prints one line per reply and ping(8)'s summary to `out`.
pub fn run(options: &Options, out: &mut impl Write) -> io::Result<Summary> {
    if options.size > MAX_SIZE {
        let message = format!("-s {} is larger than a UDP datagram ({MAX_SIZE})", options.size);
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let addr = resolve(&options.target)?;
    let local: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
    let socket = UdpSocket::bind(local)?;
    // connect(2) on UDP: send needs no address, only the server's datagrams
    // are received, and an ICMP port unreachable comes back as ECONNREFUSED.
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    let shown_size = payload(options.count, options.size).len();
    writeln!(out, "PING {} ({addr}): {shown_size} bytes per datagram", options.target)?;

    // The one socket, in the crate's fd table: registered once, then waited on.
    let mut watched = FdMap::new(options.backend).map_err(io::Error::other)?;
    watched.insert(socket.as_fd(), Interest::READ).map_err(|(_, e)| io::Error::other(e))?;
    let mut events = Vec::new();
    let start = Instant::now();
    let mut pinger = Pinger {
        options,
        socket: &socket,
        addr,
        out,
        buf: vec![0u8; MAX_SIZE + 1],
        summary: Summary::default(),
        outstanding: VecDeque::new(),
        next_seq: 1,
        next_send: start,
    };
    loop {
        let now = Instant::now();
        let timeout = match pinger.step(now)? {
            Step::Sent => continue,
            Step::Done => break,
            Step::Wait(timeout) => timeout,
        };
        watched.wait(timeout, &mut events).map_err(io::Error::other)?;
        if !events.is_empty() {
            pinger.receive()?;
        }
    }
    let Pinger { mut summary, out, .. } = pinger;
    summary.elapsed = start.elapsed();
    writeln!(out, "\n--- {} ping statistics ---", options.target)?;
    for line in summary.lines() {
        writeln!(out, "{line}")?;
    }
    Ok(summary)
}

/// What `Pinger::step` came to.
enum Step {
    /// A packet went out; step again.
    Sent,
    /// Every packet is answered or lost.
    Done,
    /// Wait for a reply this long (`None`: no deadline).
    Wait(Option<Duration>),
}

/// One ping run's state.
struct Pinger<'a, W: Write> {
    /// What was asked.
    options: &'a Options,
    /// The connected UDP socket.
    socket: &'a UdpSocket,
    /// The server's address, as printed.
    addr: SocketAddr,
    /// Where lines are printed.
    out: &'a mut W,
    /// The receive buffer: one byte more than the largest datagram, to see a too-long reply.
    buf: Vec<u8>,
    /// The counts so far.
    summary: Summary,
    /// Packets sent and not yet answered, oldest first: (seq, sent at).
    outstanding: VecDeque<(u64, Instant)>,
    /// The next packet's sequence number.
    next_seq: u64,
    /// When the next packet is due.
    next_send: Instant,
}

impl<W: Write> Pinger<'_, W> {
    /// Forgets packets past their timeout, sends the next packet if it is
    /// due, or says how long to wait.
    fn step(&mut self, now: Instant) -> io::Result<Step> {
        let (count, interval, timeout) =
            (self.options.count, self.options.interval, self.options.timeout);
        while self.outstanding.front().is_some_and(|&(_, sent)| now >= sent + timeout) {
            self.outstanding.pop_front(); // lost
        }
        // With -i 0, one packet at a time: the next goes once this one is settled.
        let may_send =
            self.next_seq <= count && (!interval.is_zero() || self.outstanding.is_empty());
        if may_send && now >= self.next_send {
            // A pending ICMP error of an earlier packet fails this send instead
            // of a recv: count it and send again.
            if let Err(e) = self.socket.send(&payload(self.next_seq, self.options.size)) {
                if e.kind() != io::ErrorKind::ConnectionRefused {
                    return Err(e);
                }
                self.unreachable()?;
                return Ok(Step::Sent);
            }
            self.outstanding.push_back((self.next_seq, now));
            self.summary.transmitted += 1;
            self.next_seq += 1;
            self.next_send = now + interval;
            return Ok(Step::Sent);
        }
        if self.next_seq > count && self.outstanding.is_empty() {
            return Ok(Step::Done);
        }
        let deadline = self.outstanding.front().map(|&(_, sent)| sent + timeout);
        let due = [deadline, may_send.then_some(self.next_send)].into_iter().flatten().min();
        Ok(Step::Wait(due.map(|due| due.saturating_duration_since(now))))
    }

    /// Every datagram waiting, until EAGAIN: each matched to its packet by sequence number.
    fn receive(&mut self) -> io::Result<()> {
        loop {
            let len = match self.socket.recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.unreachable()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            let matched = reply_seq(&self.buf[..len], self.options.size)
                .and_then(|seq| self.outstanding.iter().position(|&(s, _)| s == seq));
            let Some(index) = matched else {
                debug!("ignoring a late, duplicate or foreign reply of {len} bytes");
                continue;
            };
            let (seq, sent) = self.outstanding.remove(index).expect("position is in range");
            let rtt = now - sent;
            self.summary.received += 1;
            self.summary.rtt.add(rtt);
            let time = format_ms(rtt.as_nanos() as f64);
            writeln!(self.out, "{len} bytes from {}: seq={seq} time={time} ms", self.addr)?;
        }
    }

    /// An ICMP port unreachable came back. It names no packet: the oldest
    /// outstanding one is taken as lost, and the error is counted and printed.
    fn unreachable(&mut self) -> io::Result<()> {
        self.summary.errors += 1;
        let seq =
            self.outstanding.pop_front().map_or(String::new(), |(seq, _)| format!(" seq={seq}"));
        writeln!(self.out, "From {}:{seq} Destination port unreachable", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_padded_to_size_with_its_sequence_first() {
        assert_eq!(payload(7, 16), b"PING 7 abcdefghi");
        assert_eq!(payload(7, 0), b"PING 7");
        assert_eq!(payload(7, 6), b"PING 7");
        assert_eq!(payload(7, 7), b"PING 7 ");
        assert_eq!(payload(123, 1000).len(), 1000);
    }

    #[test]
    fn reply_is_matched_by_sequence_and_content() {
        let pong = |seq, size| {
            let mut p = payload(seq, size);
            p[..4].copy_from_slice(b"PONG");
            p
        };
        assert_eq!(reply_seq(&pong(42, 64), 64), Some(42));
        assert_eq!(reply_seq(&pong(42, 3), 3), Some(42));
        assert_eq!(reply_seq(&pong(42, 64), 63), None, "wrong length");
        assert_eq!(reply_seq(b"PONG", 64), None, "a bare PONG carries no sequence");
        assert_eq!(reply_seq(b"PING 42", 7), None);
        let mut corrupt = pong(42, 64);
        corrupt[40] = b'!';
        assert_eq!(reply_seq(&corrupt, 64), None);
    }

    #[test]
    fn rtt_stats_match_ping() {
        let mut stats = RttStats::default();
        for us in [100, 200, 300] {
            stats.add(Duration::from_micros(us));
        }
        assert_eq!((stats.min, stats.max, stats.avg()), (100e3, 300e3, 200e3));
        // population standard deviation of 100, 200, 300
        assert!((stats.mdev() - 81_649.658).abs() < 0.01, "{}", stats.mdev());
        assert_eq!(RttStats::default().mdev(), 0.0);
    }

    #[test]
    fn loss_is_printed_like_ping() {
        assert_eq!(loss_percent(5, 5), "0%");
        assert_eq!(loss_percent(5, 4), "20%");
        assert_eq!(loss_percent(3, 2), "33.3333%");
        assert_eq!(loss_percent(3, 0), "100%");
        assert_eq!(loss_percent(0, 0), "0%");
    }

    #[test]
    fn summary_lines() {
        let mut summary = Summary { transmitted: 2, received: 2, ..Summary::default() };
        summary.rtt.add(Duration::from_micros(100));
        summary.rtt.add(Duration::from_micros(300));
        summary.elapsed = Duration::from_millis(1001);
        assert_eq!(
            summary.lines(),
            [
                "2 packets transmitted, 2 received, 0% packet loss, time 1001ms",
                "rtt min/avg/max/mdev = 0.100/0.200/0.300/0.100 ms"
            ]
        );
        let lost = Summary { transmitted: 2, errors: 2, ..Summary::default() };
        assert_eq!(
            lost.lines(),
            ["2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 0ms"]
        );
    }
}
