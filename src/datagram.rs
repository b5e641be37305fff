//! A UDP socket's turn: recvfrom, the loop guard, the answer, sendto, until EAGAIN or a budget.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use log::debug;
use nix::errno::Errno;

use crate::service::DatagramService;
use crate::stats::Stats;
use crate::sys::net;
use crate::udp_guard::UdpGuard;

/// Datagrams answered per UDP wake-up, so a flood cannot starve the rest.
const DATAGRAM_BUDGET: usize = 64;

/// What answering datagrams needs between turns.
#[derive(Debug)]
pub struct Datagrams {
    /// Which datagrams get an answer: the loop guard and `--udp-rate`.
    pub guard: UdpGuard,
    /// Where a reply is built.
    reply: Vec<u8>,
}

impl Datagrams {
    /// Answering under `guard`.
    pub fn new(guard: UdpGuard) -> Self {
        Datagrams { guard, reply: Vec::new() }
    }

    /// recvfrom and answer with sendto until EAGAIN or the budget runs out.
    /// A reply that cannot be sent at once is dropped and counted: UDP may
    /// drop, and the loop must never block.
    pub fn answer(
        &mut self,
        socket: BorrowedFd<'_>,
        service: DatagramService,
        buf: &mut [u8],
        stats: &mut Stats,
    ) {
        let is_ping = matches!(service, DatagramService::Ping);
        for _ in 0..DATAGRAM_BUDGET {
            stats.recvs += 1;
            let (len, from) = match net::recv_from(socket, buf) {
                Ok((len, Some(from))) => (len, from),
                Ok((_, None)) => continue,
                Err(Errno::EAGAIN) => return,
                Err(errno) => {
                    debug!("recvfrom: {errno}");
                    return;
                }
            };
            stats.datagrams_in += 1;
            stats.bytes_in += len as u64;
            let checked = net::ip_addr(&from)
                .map(|addr| self.guard.check(addr, &buf[..len], is_ping, Instant::now()));
            if let Some(Err(refusal)) = checked {
                stats.datagrams_refused += 1;
                debug!("not answering a datagram from {from}: {refusal:?}");
                continue;
            }
            service.answer(&buf[..len], &mut self.reply);
            stats.sends += 1;
            match net::send_to(socket, &self.reply, &from) {
                Ok(sent) => {
                    stats.datagrams_out += 1;
                    stats.bytes_out += sent as u64;
                }
                // the send buffer is full, or the reply grew past the largest datagram
                Err(errno) => {
                    stats.datagrams_dropped += 1;
                    debug!("sendto {from}: {errno}; reply of {} bytes dropped", self.reply.len());
                }
            }
        }
    }
}
