//! The clients, usable against any server: `pollmux ping` (UDP round trips) and `pollmux load`
//! (TCP load: closed loop, open loop at a fixed rate, or a new connection per message).

pub mod load;
pub mod ping;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// Resolves `HOST:PORT` (`127.0.0.1:1234`, `[::1]:20000`, `localhost:1236`) to its first address.
pub fn resolve(target: &str) -> io::Result<SocketAddr> {
    crate::sys::net::first_addr(target).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot resolve {target:?} (expected HOST:PORT): {e}"))
    })
}

/// connect(2) within `timeout`, then TCP_NODELAY (a message leaves at once,
/// not when Nagle's algorithm sees its predecessor acknowledged) and
/// O_NONBLOCK (the socket is then driven by a wait loop).
pub fn connect_nonblocking(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Starts a non-blocking connect(2) to `addr`, from `source` if given, with
/// TCP_NODELAY, and returns the socket at once: the connect completes (or
/// fails) later, when the socket turns writable, and SO_ERROR says how it went.
/// With a source the port is still chosen at connect time, for the
/// destination (IP_BIND_ADDRESS_NO_PORT), as for any connect.
pub fn connect_started(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    if let Some(ip) = source {
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        )
        .map_err(io::Error::from)?;
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from(socket);
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Microseconds with one decimal, from nanoseconds: `23456` -> `23.5`.
pub fn format_us(nanos: u64) -> String {
    format!("{:.1}", nanos as f64 / 1e3)
}

/// Milliseconds with three decimals, like ping(8): `123456` ns -> `0.123`.
pub fn format_ms(nanos: f64) -> String {
    format!("{:.3}", nanos / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_and_names() {
        assert_eq!(resolve("127.0.0.1:1234").unwrap(), "127.0.0.1:1234".parse().unwrap());
        assert_eq!(resolve("[::1]:20000").unwrap(), "[::1]:20000".parse().unwrap());
        assert_eq!(resolve("localhost:7").unwrap().port(), 7);
        assert!(resolve("127.0.0.1").is_err(), "no port");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_us(23_456), "23.5");
        assert_eq!(format_us(0), "0.0");
        assert_eq!(format_ms(123_456.0), "0.123");
        assert_eq!(format_ms(2_000_000.0), "2.000");
    }
}
