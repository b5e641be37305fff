//! The UDP fan-in client (`bench --udp-fan-in ADDR SOCKETS SECS`, a process of
//! its own like every client): SOCKETS sockets each keep one `PING` datagram
//! outstanding against a udp-ping server for SECS seconds, in one thread over
//! epoll (pollmux's own FdMap). Prints
//! `RESULT sockets=N sent=S received=R lost=L secs=T datagrams_per_sec=D`.
//!
//! It lives in the harness, not in `pollmux ping`: it measures how many
//! datagrams a server answers, not round trips, and only the bench needs that.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pollmux::fd_map::FdMap;
use pollmux::sys::{BackendKind, Interest};

/// A datagram unanswered for this long is counted lost and the socket sends the next.
const LOST_AFTER: Duration = Duration::from_millis(50);
/// Bytes per datagram, as `pollmux ping -s 64`.
const SIZE: usize = 64;

/// One sender socket.
struct Sender {
    /// Connected to the server, non-blocking.
    socket: UdpSocket,
    /// Its number, written in its datagrams.
    id: usize,
    /// Datagrams it sent.
    seq: u64,
    /// When its outstanding datagram left.
    sent_at: Instant,
}

impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// What a fan-in run counted.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct FanIn {
    /// Sender sockets.
    pub sockets: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Replies received (each a `PONG`).
    pub received: u64,
    /// Datagrams given up on after `LOST_AFTER`.
    pub lost: u64,
    /// The run's length.
    pub secs: f64,
}

impl FanIn {
    /// Replies per second.
    pub fn per_sec(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }

    /// The RESULT line.
    pub fn line(&self) -> String {
        format!(
            "RESULT sockets={} sent={} received={} lost={} secs={:.6} datagrams_per_sec={:.0}",
            self.sockets,
            self.sent,
            self.received,
            self.lost,
            self.secs,
            self.per_sec()
        )
    }

    /// Parses the RESULT line.
    pub fn parse(line: &str) -> Option<FanIn> {
        let rest = line.trim().strip_prefix("RESULT ")?;
        let get = |key: &str| -> Option<f64> {
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        };
        Some(FanIn {
            sockets: get("sockets")? as u64,
            sent: get("sent")? as u64,
            received: get("received")? as u64,
            lost: get("lost")? as u64,
            secs: get("secs")?,
        })
    }
}

/// Sends the next datagram of `sender`.
fn send_next(sender: &mut Sender, datagram: &mut Vec<u8>) -> std::io::Result<()> {
    datagram.clear();
    let _ = write!(datagram, "PING {}.{} ", sender.id, sender.seq);
    datagram.resize(SIZE, b'x');
    sender.seq += 1;
    sender.sent_at = Instant::now();
    sender.socket.send(datagram).map(|_| ())
}

/// Runs the fan-in and prints its RESULT line.
pub fn run(addr: &str, sockets: &str, secs: &str) -> ExitCode {
    let (Ok(addr), Ok(sockets), Ok(secs)) =
        (addr.parse::<SocketAddr>(), sockets.parse::<usize>(), secs.parse::<f64>())
    else {
        eprintln!("--udp-fan-in ADDR SOCKETS SECS");
        return ExitCode::from(2);
    };
    match fan_in(addr, sockets.max(1), Duration::from_secs_f64(secs)) {
        Ok(result) => {
            println!("{}", result.line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp fan-in to {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sockets` senders, one datagram outstanding each, for `length`.
fn fan_in(addr: SocketAddr, sockets: usize, length: Duration) -> Result<FanIn, String> {
    let mut map: FdMap<Sender> = FdMap::new(BackendKind::Epoll).map_err(|e| e.to_string())?;
    let local: SocketAddr = if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().unwrap();
    let mut datagram = Vec::with_capacity(SIZE);
    let mut result = FanIn { sockets: sockets as u64, ..FanIn::default() };
    let mut fds: Vec<RawFd> = Vec::new();
    for id in 0..sockets {
        let socket = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
        socket.connect(addr).map_err(|e| format!("connect: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sender = Sender { socket, id, seq: 0, sent_at: Instant::now() };
        fds.push(map.insert(sender, Interest::READ).map_err(|(_, e)| e.to_string())?);
    }
    let started = Instant::now();
    for &fd in &fds {
        if let Some(sender) = map.get_mut(fd) {
            send_next(sender, &mut datagram).map_err(|e| format!("send: {e}"))?;
            result.sent += 1;
        }
    }
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut last_sweep = Instant::now();
    while started.elapsed() < length {
        map.wait(Some(Duration::from_millis(10)), &mut events).map_err(|e| e.to_string())?;
        for event in &events {
            let Some(sender) = map.get_mut(event.fd) else { continue };
            // Every reply waiting on this socket (normally the one).
            loop {
                match sender.socket.recv(&mut buf) {
                    Ok(n) if buf[..n].starts_with(b"PONG") => {
                        result.received += 1;
                        if send_next(sender, &mut datagram).is_ok() {
                            result.sent += 1;
                        }
                    }
                    Ok(n) => {
                        return Err(format!("a reply that is not PONG: {:?}", &buf[..n.min(16)]));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // A pending ICMP error (the server is gone): counted as a loss below.
                    Err(_) => break,
                }
            }
        }
        // Senders whose datagram went unanswered: counted lost, next one sent.
        let now = Instant::now();
        if now.duration_since(last_sweep) >= LOST_AFTER / 5 {
            last_sweep = now;
            for &fd in &fds {
                let Some(sender) = map.get_mut(fd) else { continue };
                if now.duration_since(sender.sent_at) >= LOST_AFTER {
                    result.lost += 1;
                    if send_next(sender, &mut datagram).is_ok() {
                        result.sent += 1;
                    }
                }
            }
        }
    }
    result.secs = started.elapsed().as_secs_f64();
    Ok(result)
}
