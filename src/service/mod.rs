//! The six services as sans-I/O state machines: bytes in, replies out, no syscalls.

pub mod array;
pub mod echo;
pub mod frame;
pub mod ping;
pub mod upper;

use crate::output::Output;

/// The services pollmux can serve, each on its own port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// TCP: every byte back, verbatim.
    TcpEcho,
    /// TCP: the stream uppercased as UTF-8.
    TcpUpper,
    /// TCP: length-prefixed frames answered with their uppercased payload.
    TcpFrame,
    /// TCP: slices of a float64 array.
    TcpArray,
    /// UDP: each datagram answered with its uppercased form.
    UdpUpper,
    /// UDP: PING answered with PONG.
    UdpPing,
}

impl ServiceKind {
    /// All services, in the order their listening lines are printed.
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::TcpEcho,
        ServiceKind::TcpUpper,
        ServiceKind::TcpFrame,
        ServiceKind::TcpArray,
        ServiceKind::UdpUpper,
        ServiceKind::UdpPing,
    ];

    /// The name used in flags and in `listening <service> <address>` lines.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::TcpEcho => "tcp-echo",
            ServiceKind::TcpUpper => "tcp-upper",
            ServiceKind::TcpFrame => "tcp-frame",
            ServiceKind::TcpArray => "tcp-array",
            ServiceKind::UdpUpper => "udp-upper",
            ServiceKind::UdpPing => "udp-ping",
        }
    }

    /// The port of the course example this service grew from.
    pub fn default_port(self) -> u16 {
        match self {
            ServiceKind::TcpEcho => 20000,
            ServiceKind::TcpUpper => 1236,
            ServiceKind::TcpFrame => 1241,
            ServiceKind::TcpArray => 25000,
            ServiceKind::UdpUpper => 1235,
            ServiceKind::UdpPing => 1234,
        }
    }

    /// True for the datagram services.
    pub fn is_udp(self) -> bool {
        matches!(self, ServiceKind::UdpUpper | ServiceKind::UdpPing)
    }
}

/// Why a stream service gives up on its peer: the connection is closed
/// once what is already owed has been sent. The message is logged (at info
/// level) for whoever runs the server, so it says what arrived and what the
/// service expected: a wrong-protocol client is the usual cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A frame header (tcp-frame, tcp-array framed) that cannot be a length
    /// this service accepts: over `--max-frame`, or four bytes of printable
    /// text, which no framing client sends but a line-based one does.
    #[error("{}", frame::header_message(.service, .header, .limit))]
    FrameHeader {
        /// The service that read it.
        service: ServiceKind,
        /// The four bytes where a length belonged.
        header: [u8; 4],
        /// The configured `--max-frame`.
        limit: u32,
    },
    /// An uppercased payload no longer fits a 4-byte length.
    #[error("reply of {0} bytes does not fit a 4-byte frame length")]
    ReplyTooLarge(u64),
}

/// A stream service's state for one connection: whatever input it still needs
/// (a partial frame, a split UTF-8 character) lives here.
#[derive(Debug)]
pub enum StreamService {
    /// tcp-echo.
    Echo(echo::Echo),
    /// tcp-upper.
    Upper(upper::Upper),
    /// tcp-frame.
    Frame(frame::FrameUpper),
    /// tcp-array.
    Array(array::ArrayRequests),
}

impl StreamService {
    /// A fresh state machine for a new connection of `kind`, or `None` for a UDP kind.
    /// `array_len` is the number of float64 values served; `max_frame` bounds any frame.
    pub fn new(kind: ServiceKind, array_len: usize, max_frame: u32) -> Option<Self> {
        Some(match kind {
            ServiceKind::TcpEcho => StreamService::Echo(echo::Echo),
            ServiceKind::TcpUpper => StreamService::Upper(upper::Upper::default()),
            ServiceKind::TcpFrame => StreamService::Frame(frame::FrameUpper::new(max_frame)),
            ServiceKind::TcpArray => {
                StreamService::Array(array::ArrayRequests::new(array_len, max_frame))
            }
            ServiceKind::UdpUpper | ServiceKind::UdpPing => return None,
        })
    }

    /// Takes bytes just read from the peer and queues every reply they complete.
    pub fn on_data(&mut self, input: &[u8], out: &mut Output) -> Result<(), Violation> {
        match self {
            StreamService::Echo(s) => s.on_data(input, out),
            StreamService::Upper(s) => s.on_data(input, out),
            StreamService::Frame(s) => s.on_data(input, out),
            StreamService::Array(s) => s.on_data(input, out),
        }
    }

    /// The peer sent FIN: queue whatever is still owed (a held partial UTF-8 sequence).
    pub fn on_eof(&mut self, out: &mut Output) {
        match self {
            StreamService::Echo(_) | StreamService::Frame(_) | StreamService::Array(_) => {}
            StreamService::Upper(s) => s.on_eof(out),
        }
    }
}

/// A datagram service: stateless, one reply per datagram.
#[derive(Debug, Clone, Copy)]
pub enum DatagramService {
    /// udp-upper.
    Upper,
    /// udp-ping.
    Ping,
}

impl DatagramService {
    /// The datagram service of `kind`, or `None` for a TCP kind.
    pub fn new(kind: ServiceKind) -> Option<Self> {
        match kind {
            ServiceKind::UdpUpper => Some(DatagramService::Upper),
            ServiceKind::UdpPing => Some(DatagramService::Ping),
            _ => None,
        }
    }

    /// Writes the reply to `datagram` into `reply` (cleared first).
    pub fn answer(self, datagram: &[u8], reply: &mut Vec<u8>) {
        reply.clear();
        match self {
            DatagramService::Upper => upper::uppercase_into(datagram, reply),
            DatagramService::Ping => ping::answer(datagram, reply),
        }
    }
}
