//! The six services as sans-I/O state machines: bytes in, replies out, no syscalls.

pub mod array;
pub mod echo;
pub mod frame;
pub mod ping;
pub mod upper;

use crate::config::Config;
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
    /// A tcp-array `--array-wire fixed` request that cannot be answered.
    #[error(
        "tcp-array (--array-wire fixed) got the request \"{}\": {problem}; it expects exactly \
         {} ASCII bytes OFFSET:COUNT, two unsigned decimal integers zero-padded to fill them \
         (5000:10000, 0000:00010), within its {array_len} values",
        .request.escape_ascii(), array::FIXED_REQUEST
    )]
    FixedRequest {
        /// The bytes that arrived.
        request: Vec<u8>,
        /// What is wrong with them.
        problem: String,
        /// How many values the array holds.
        array_len: usize,
    },
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
    /// It takes `--array-len`, `--array-wire` and `--max-frame` from `config`.
    pub fn new(kind: ServiceKind, config: &Config) -> Option<Self> {
        Some(match kind {
            ServiceKind::TcpEcho => StreamService::Echo(echo::Echo),
            ServiceKind::TcpUpper => StreamService::Upper(upper::Upper::default()),
            ServiceKind::TcpFrame => StreamService::Frame(frame::FrameUpper::new(config.max_frame)),
            ServiceKind::TcpArray => StreamService::Array(array::ArrayRequests::with_wire(
                config.array_wire,
                config.array_len,
                config.max_frame,
            )),
            ServiceKind::UdpUpper | ServiceKind::UdpPing => return None,
        })
    }

    /// The connection was just accepted: queue whatever the service says
    /// first (tcp-array `--array-wire push`: the whole array). Others say nothing.
    pub fn on_connect(&mut self, out: &mut Output) {
        if let StreamService::Array(s) = self {
            s.on_connect(out);
        }
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

    /// True once the service will serve nothing more on this connection
    /// (tcp-array push or fixed, its one reply queued): what is owed is sent,
    /// then the connection ends as after a violation, whatever the peer sends.
    pub fn finished(&self) -> bool {
        match self {
            StreamService::Echo(_) | StreamService::Upper(_) | StreamService::Frame(_) => false,
            StreamService::Array(s) => s.finished(),
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

#[cfg(test)]
mod tests {
    use super::array::ArrayWire;
    use super::*;

    #[test]
    fn only_tcp_array_push_speaks_first_and_finishes_on_connect() {
        let config = |array_wire| Config { array_len: 3, array_wire, ..Config::default() };
        for kind in ServiceKind::ALL.into_iter().filter(|k| !k.is_udp()) {
            for wire in [ArrayWire::Framed, ArrayWire::Fixed, ArrayWire::Push] {
                let mut service = StreamService::new(kind, &config(wire)).unwrap();
                let mut out = Output::default();
                assert!(!service.finished());
                service.on_connect(&mut out);
                let push = kind == ServiceKind::TcpArray && wire == ArrayWire::Push;
                assert_eq!(out.pending(), if push { 24 } else { 0 }, "{kind:?} {wire:?}");
                assert_eq!(service.finished(), push, "{kind:?} {wire:?}");
            }
        }
        assert!(StreamService::new(ServiceKind::UdpPing, &Config::default()).is_none());
    }

    #[test]
    fn a_fixed_request_finishes_the_connection() {
        let config = Config { array_len: 10, array_wire: ArrayWire::Fixed, ..Config::default() };
        let mut service = StreamService::new(ServiceKind::TcpArray, &config).unwrap();
        let mut out = Output::default();
        service.on_data(b"0002:", &mut out).unwrap();
        assert!(!service.finished());
        service.on_data(b"00003", &mut out).unwrap();
        assert!(service.finished());
        assert_eq!(out.pending(), 24);
    }
}
