//! What the server opens at start: the `--host` address, the array, a socket
//! per enabled service; and the connection limit the descriptors leave.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use log::{info, warn};

use crate::config::Config;
use crate::error::Error;
use crate::service::{self, ServiceKind, Transport};
use crate::sys::{BackendKind, Interest, limits, net};
use crate::table::{Entry, Table};

/// Descriptors kept back from the connection limit beyond those the server
/// already holds (stdio, the signalfd, epoll's own, listeners, UDP sockets):
/// a few for transient use, such as the resolver's.
const SPARE_FDS: usize = 4;

/// The services the server opened.
#[derive(Debug, Default)]
pub struct Opened {
    /// Each enabled service and the address it is bound to, in flag order.
    pub listening: Vec<(ServiceKind, SocketAddr)>,
    /// The listening TCP sockets.
    pub listeners: Vec<RawFd>,
    /// tcp-array's values in wire form (empty if tcp-array is off), leaked:
    /// built once, kept until the process ends, and borrowed by every reply.
    pub array: &'static [u8],
}

/// Resolves `--host`, builds the array, and binds every enabled service into
/// `table`, watched for input.
pub fn open_services(config: &Config, table: &mut Table) -> Result<Opened, Error> {
    let host = &config.host;
    let ip = net::first_addr((host.as_str(), 0))
        .map_err(|source| Error::Resolve { host: host.clone(), source })?
        .ip();
    let enabled: Vec<(ServiceKind, u16)> =
        config.ports.iter().filter_map(|&(k, p)| Some((k, p?))).collect();
    let mut opened = Opened::default();
    if enabled.iter().any(|&(k, _)| k == ServiceKind::TcpArray) {
        let len = config.services.array_len;
        opened.array = service::array::build(len).map_err(|_| Error::ArrayTooLarge(len))?.leak();
    }
    for (kind, port) in enabled {
        let addr = SocketAddr::new(ip, port);
        let bind_error = |source| Error::Bind { service: kind.name(), addr, source };
        let (fd, entry) = match kind.transport() {
            Transport::Stream(service) => {
                let fd = net::listen_tcp(addr, config.backlog).map_err(bind_error)?;
                (fd.as_raw_fd(), Entry::Listener { fd, service })
            }
            Transport::Datagram(service) => {
                let fd = net::bind_udp(addr).map_err(bind_error)?;
                (fd.as_raw_fd(), Entry::Datagram { fd, service })
            }
        };
        let bound = net::local_addr(entry.as_fd()).map_err(bind_error)?;
        table.insert(entry, Interest::READ).map_err(|(_, e)| e)?;
        if !kind.is_udp() {
            opened.listeners.push(fd);
        }
        opened.listening.push((kind, bound));
    }
    Ok(opened)
}

/// Every UDP port this server is configured for or bound to: a datagram from
/// one of them is from itself, or from another server on the same ports.
pub fn loop_ports(config: &Config, listening: &[(ServiceKind, SocketAddr)]) -> Vec<u16> {
    let configured = config.ports.iter().filter(|(k, _)| k.is_udp()).filter_map(|&(_, p)| p);
    let bound = listening.iter().filter(|(k, _)| k.is_udp()).map(|(_, a)| a.port());
    let mut ports: Vec<u16> = configured.chain(bound).filter(|&p| p != 0).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `asked` (`--max-conns`) lowered to what the descriptor limit (and, under
/// select, FD_SETSIZE) allows beside what `table` holds, as Redis lowers
/// `maxclients`; says what it decided.
pub fn reconcile_max_conns(asked: usize, table: &Table) -> usize {
    let nofile = limits::nofile().map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    // Descriptors are numbered from 0: those up to the highest the server
    // holds are taken, whatever they are.
    let held = table.fds().max().map_or(0, |fd| fd as usize + 1) + SPARE_FDS;
    let by_nofile = nofile.saturating_sub(held);
    let by_select = match table.backend() {
        BackendKind::Select => nix::sys::select::FD_SETSIZE.saturating_sub(held),
        _ => usize::MAX,
    };
    let limit = asked.min(by_nofile).min(by_select);
    let why = format!("{held} descriptors held or kept spare");
    if limit == asked {
        info!("serving at most {limit} connections (--max-conns; RLIMIT_NOFILE {nofile})");
    } else if limit == by_select {
        // select's bitmaps hold 1024 descriptors: expected, so not a warning.
        info!("--max-conns {asked} lowered to {limit}: select's FD_SETSIZE 1024, {why}");
    } else {
        warn!("--max-conns {asked} lowered to {limit}: RLIMIT_NOFILE {nofile}, {why}");
    }
    limit
}
