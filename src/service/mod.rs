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

    /// Whether it is served over a listening TCP socket or a UDP socket, and as what.
    pub fn transport(self) -> Transport {
        match self {
            ServiceKind::TcpEcho => Transport::Stream(StreamKind::Echo),
            ServiceKind::TcpUpper => Transport::Stream(StreamKind::Upper),
            ServiceKind::TcpFrame => Transport::Stream(StreamKind::Frame),
            ServiceKind::TcpArray => Transport::Stream(StreamKind::Array),
            ServiceKind::UdpUpper => Transport::Datagram(DatagramService::Upper),
            ServiceKind::UdpPing => Transport::Datagram(DatagramService::Ping),
        }
    }

    /// True for the datagram services.
    pub fn is_udp(self) -> bool {
        matches!(self.transport(), Transport::Datagram(_))
    }
}

/// A service by the socket it needs: decided once, from its [`ServiceKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP service: a listener whose connections each get a [`StreamService`].
    Stream(StreamKind),
    /// A UDP service: one socket, each datagram answered on its own.
    Datagram(DatagramService),
}

/// The TCP services: what a listener can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// tcp-echo.
    Echo,
    /// tcp-upper.
    Upper,
    /// tcp-frame.
    Frame,
    /// tcp-array.
    Array,
}

impl StreamKind {
    /// The service's name, as in its flag.
    pub fn name(self) -> &'static str {
        let kind = match self {
            StreamKind::Echo => ServiceKind::TcpEcho,
            StreamKind::Upper => ServiceKind::TcpUpper,
            StreamKind::Frame => ServiceKind::TcpFrame,
            StreamKind::Array => ServiceKind::TcpArray,
        };
        kind.name()
    }
}

/// What the stream services are configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How many float64 values tcp-array serves.
    pub array_len: usize,
    /// How tcp-array talks (`--array-wire`).
    pub array_wire: array::ArrayWire,
    /// The largest frame body either framed service accepts, in bytes.
    pub max_frame: u32,
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
    pub fn new(kind: StreamKind, settings: &Settings, array: &'static [u8]) -> Self {
        match kind {
            StreamKind::Echo => StreamService::Echo(echo::Echo),
            StreamKind::Upper => StreamService::Upper(upper::Upper::default()),
            StreamKind::Frame => StreamService::Frame(frame::FrameUpper::new(settings.max_frame)),
            StreamKind::Array => StreamService::Array(array::ArrayRequests::with_wire(
                settings.array_wire,
                array,
                settings.max_frame,
            )),
        }
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

    /// Heap bytes held for input not yet complete (a frame that spans reads),
    /// for `--max-buffered`.
    pub fn buffered(&self) -> usize {
        match self {
            StreamService::Echo(_) | StreamService::Upper(_) => 0,
            StreamService::Frame(s) => s.buffered(),
            StreamService::Array(s) => s.buffered(),
        }
    }

    /// True while replies are owed that `resume` has yet to write (a large
    /// tcp-frame reply, built as the output drains, and the input behind it).
    pub fn has_more(&self) -> bool {
        match self {
            StreamService::Frame(s) => s.has_more(),
            StreamService::Echo(_) | StreamService::Upper(_) | StreamService::Array(_) => false,
        }
    }

    /// Writes the next part of what `has_more` says is owed.
    pub fn resume(&mut self, out: &mut Output) -> Result<(), Violation> {
        match self {
            StreamService::Frame(s) => s.resume(out),
            StreamService::Echo(_) | StreamService::Upper(_) | StreamService::Array(_) => Ok(()),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramService {
    /// udp-upper.
    Upper,
    /// udp-ping.
    Ping,
}

impl DatagramService {
    /// The name used in flags and in `listening` lines.
    pub fn name(self) -> &'static str {
        match self {
            DatagramService::Upper => ServiceKind::UdpUpper.name(),
            DatagramService::Ping => ServiceKind::UdpPing.name(),
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

    fn settings(array_len: usize, array_wire: ArrayWire) -> Settings {
        Settings { array_len, array_wire, max_frame: 1 << 20 }
    }

    #[test]
    fn only_tcp_array_push_speaks_first_and_finishes_on_connect() {
        let streams = [StreamKind::Echo, StreamKind::Upper, StreamKind::Frame, StreamKind::Array];
        for kind in streams {
            for wire in [ArrayWire::Framed, ArrayWire::Fixed, ArrayWire::Push] {
                let array = array::build(3).unwrap().leak();
                let mut service = StreamService::new(kind, &settings(3, wire), array);
                let mut out = Output::default();
                assert!(!service.finished());
                service.on_connect(&mut out);
                let push = kind == StreamKind::Array && wire == ArrayWire::Push;
                assert_eq!(out.pending(), if push { 24 } else { 0 }, "{kind:?} {wire:?}");
                assert_eq!(service.finished(), push, "{kind:?} {wire:?}");
            }
        }
    }

    #[test]
    fn every_service_has_one_transport() {
        let streams = ServiceKind::ALL.iter().filter(|k| !k.is_udp()).count();
        assert_eq!(streams, 4);
        assert_eq!(ServiceKind::UdpPing.transport(), Transport::Datagram(DatagramService::Ping));
        assert_eq!(StreamKind::Frame.name(), "tcp-frame");
    }

    #[test]
    fn a_fixed_request_finishes_the_connection() {
        let array = array::build(10).unwrap().leak();
        let mut service =
            StreamService::new(StreamKind::Array, &settings(10, ArrayWire::Fixed), array);
        let mut out = Output::default();
        service.on_data(b"0002:", &mut out).unwrap();
        assert!(!service.finished());
        service.on_data(b"00003", &mut out).unwrap();
        assert!(service.finished());
        assert_eq!(out.pending(), 24);
    }
}
