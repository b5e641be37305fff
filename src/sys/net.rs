//! The socket calls: socket/bind/listen (via socket2), accept4, recv, send, sendmsg, recvfrom, sendto (via nix).

use std::io::IoSlice;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

/// The default listen(2) backlog (`--backlog`): the kernel caps any backlog
/// at net.core.somaxconn (4096 on recent kernels).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Bytes one read may return into the read buffer, everywhere in the crate:
/// 64 KiB holds any UDP datagram (65,507 bytes over IPv4).
pub const READ_BUFFER: usize = 64 * 1024;

/// The first address `addrs` names: an IP literal as it is, a name through
/// getaddrinfo(3) (which may open sockets of its own to ask a DNS server).
pub fn first_addr(addrs: impl ToSocketAddrs) -> std::io::Result<SocketAddr> {
    addrs
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// socket + setsockopt(SO_REUSEADDR) + bind + listen(fd, backlog): a non-blocking TCP listener.
/// SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT.
/// The backlog bounds the connections the kernel queues until accept takes them.
pub fn listen_tcp(addr: SocketAddr, backlog: u32) -> std::io::Result<OwnedFd> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // The kernel caps it at somaxconn anyway; i32::MAX asks for the most.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// socket + bind: a non-blocking UDP socket.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// getsockname: the address actually bound (the port, when 0 was asked for).
pub fn local_addr(fd: BorrowedFd<'_>) -> std::io::Result<SocketAddr> {
    SockRef::from(&fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP socket"))
}

/// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC): a new connection and its peer's address.
/// `Ok(None)` means no connection was waiting (EAGAIN).
pub fn accept(listener: BorrowedFd<'_>) -> Result<Option<(OwnedFd, SocketAddr)>, Errno> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    match SockRef::from(&listener).accept4(flags) {
        Ok((socket, peer)) => {
            let peer = peer.as_socket().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            Ok(Some((socket.into(), peer)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

/// setsockopt TCP_NODELAY, so that small replies leave at once instead of
/// waiting on Nagle's algorithm, and with `keepalive` SO_KEEPALIVE and
/// TCP_KEEPIDLE, so a peer that vanished without a FIN or RST is found out.
/// For a connection the server keeps (one it refuses is closed untouched).
pub fn tune(fd: BorrowedFd<'_>, keepalive: Option<Duration>) {
    let socket = SockRef::from(&fd);
    // These only fail if the connection already died; recv will tell.
    let _ = socket.set_tcp_nodelay(true);
    if let Some(idle) = keepalive {
        let _ = socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle));
    }
}

/// recv(2): `Ok(0)` is the peer's FIN.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    socket::recv(fd.as_raw_fd(), buf, MsgFlags::empty())
}

/// send(2) for one slice, sendmsg(2) for several (one vectored write).
/// MSG_NOSIGNAL turns a write to a closed peer into EPIPE instead of SIGPIPE.
pub fn send(fd: BorrowedFd<'_>, slices: &[IoSlice<'_>]) -> Result<usize, Errno> {
    match slices {
        [] => Ok(0),
        [one] => socket::send(fd.as_raw_fd(), one, MsgFlags::MSG_NOSIGNAL),
        many => socket::sendmsg::<SockaddrStorage>(
            fd.as_raw_fd(),
            many,
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ),
    }
}

/// recvfrom(2): one datagram and its sender.
pub fn recv_from(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Option<SockaddrStorage>), Errno> {
    socket::recvfrom::<SockaddrStorage>(fd.as_raw_fd(), buf)
}

/// A sender's address as std's type, if it is an IP address.
pub fn ip_addr(from: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = from.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    from.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// sendto(2): one datagram to `to`. Never blocks: the socket is non-blocking,
/// so a full send buffer is EAGAIN and the reply is dropped by the caller.
pub fn send_to(fd: BorrowedFd<'_>, datagram: &[u8], to: &SockaddrStorage) -> Result<usize, Errno> {
    socket::sendto(fd.as_raw_fd(), datagram, to, MsgFlags::MSG_NOSIGNAL)
}

/// shutdown(SHUT_WR): send FIN after the queued bytes, keep reading.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Write)
}
