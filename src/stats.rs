//! Counts of wait calls, ready events, syscalls, bytes and connections, for `--stats`.

use std::fmt;

/// What the loop has done so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Wait calls (poll, select or epoll_wait).
    pub waits: u64,
    /// Ready descriptors those calls reported.
    pub ready: u64,
    /// recv and recvfrom calls, those that returned EAGAIN included.
    pub recvs: u64,
    /// send, sendmsg and sendto calls, those that failed included.
    pub sends: u64,
    /// Bytes received, TCP and UDP.
    pub bytes_in: u64,
    /// Bytes sent, TCP and UDP.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams answered.
    pub datagrams_out: u64,
    /// Replies dropped: a full send buffer, or larger than a datagram can be.
    pub datagrams_dropped: u64,
    /// Datagrams not answered: from a looping source, a reply, or over `--udp-rate`.
    pub datagrams_refused: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed on arrival: past `--max-conns`, or past select's FD_SETSIZE.
    pub refused: u64,
    /// Connections closed.
    pub closed: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waits {} ready {} recvs {} sends {} bytes-in {} bytes-out {} datagrams-in {} \
             datagrams-out {} datagrams-dropped {} datagrams-refused {} accepted {} refused {} closed {}",
            self.waits,
            self.ready,
            self.recvs,
            self.sends,
            self.bytes_in,
            self.bytes_out,
            self.datagrams_in,
            self.datagrams_out,
            self.datagrams_dropped,
            self.datagrams_refused,
            self.accepted,
            self.refused,
            self.closed
        )
    }
}
