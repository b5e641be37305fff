//! The servers the harness runs as children of itself (`bench --tokio-echo-server ADDR`, ...):
//! the tokio peer and two blocking floors. Each prints `listening <service> <address>`
//! like `pollmux serve`, so the harness starts every server the same way.

use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use pollmux::output::Output;
use pollmux::service::DatagramService;
use pollmux::service::array::ArrayRequests;

/// Prints the `listening` line and flushes: the harness waits for it.
fn announce(service: &str, addr: std::net::SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "listening {service} {addr}");
    let _ = out.flush();
}

/// The peer a Rust user would pick instead: a tokio `current_thread` TCP echo
/// server, one task per connection, the shape of tokio's own echo example,
/// with TCP_NODELAY on every accepted socket.
pub fn tokio_echo(addr: &str) -> ExitCode {
    let Some(runtime) = current_thread() else { return ExitCode::FAILURE };
    runtime.block_on(async move {
        let listener = match tokio_listener(addr) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(local) => announce("tcp-echo", local),
            Err(e) => {
                eprintln!("getsockname: {e}");
                return ExitCode::FAILURE;
            }
        }
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(tokio_echo_connection(stream));
                }
                // EMFILE and friends: the connection stays queued; try again.
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}

/// The listening socket, with pollmux's backlog of 4096 (tokio's `TcpListener::bind`
/// asks for 128, which overflows, and stalls connects for a second, when thousands
/// of connections arrive at once).
fn tokio_listener(addr: &str) -> io::Result<tokio::net::TcpListener> {
    let addr: std::net::SocketAddr =
        addr.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Reads whatever arrived and writes it all back, until EOF or an error.
async fn tokio_echo_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The floor for the array: a blocking server that answers tcp-array's
/// `OFFSET:COUNT` frames with one plain blocking `send(2)` of the slice,
/// straight from the same buffer. One connection at a time.
pub fn blocking_array(addr: &str, len: usize) -> ExitCode {
    // Byte for byte what `pollmux serve --tcp-array` holds.
    let Ok(data) = pollmux::service::array::build(len).map(Vec::leak) else {
        eprintln!("cannot allocate {len} float64 values");
        return ExitCode::FAILURE;
    };
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    announce("tcp-array", listener.local_addr().expect("getsockname"));
    for stream in listener.incoming() {
        match stream {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                if let Err(e) = serve_array(&mut stream, data) {
                    eprintln!("array connection: {e}");
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// Answers requests on one connection until EOF, with pollmux's own tcp-array
/// state machine: only the sending differs, each reply's header and then its
/// slice of `data` in one blocking send(2) each.
fn serve_array(stream: &mut TcpStream, data: &'static [u8]) -> io::Result<()> {
    let mut requests = ArrayRequests::new(data, u32::MAX);
    let mut out = Output::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = stream.read(&mut buf)?;
        if len == 0 {
            return Ok(());
        }
        requests.on_data(&buf[..len], &mut out).map_err(io::Error::other)?;
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); 16];
            let count = out.io_slices(&mut slices);
            let mut sent = 0;
            for slice in &slices[..count] {
                send_all(stream, slice)?;
                sent += slice.len();
            }
            out.consume(sent);
        }
    }
}

/// send(2) on a blocking socket until every byte is taken (for a large buffer
/// the kernel normally takes it all in one call, sleeping while the peer drains).
fn send_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, send};
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(sent) => bytes = &bytes[sent..],
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// The floor for UDP ping: a blocking recvfrom/sendto loop answering
/// `PING...` with `PONG...` through pollmux's own udp-ping answer.
pub fn blocking_udp_pong(addr: &str) -> ExitCode {
    let socket = match UdpSocket::bind(addr) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    announce("udp-ping", socket.local_addr().expect("getsockname"));
    let mut buf = vec![0u8; 65536];
    let mut reply = Vec::with_capacity(65536);
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) => {
                eprintln!("recvfrom: {e}");
                continue;
            }
        };
        DatagramService::Ping.answer(&buf[..len], &mut reply);
        if let Err(e) = socket.send_to(&reply, from) {
            eprintln!("sendto {from}: {e}");
        }
    }
}

/// The peer a Rust user would pick for UDP: a tokio `current_thread` loop of
/// `recv_from` and `send_to` on one socket, answering `PING...` with
/// `PONG...` through pollmux's own udp-ping answer.
pub fn tokio_udp_pong(addr: &str) -> ExitCode {
    let Some(runtime) = current_thread() else { return ExitCode::FAILURE };
    runtime.block_on(async move {
        let socket = match tokio::net::UdpSocket::bind(addr).await {
            Ok(socket) => socket,
            Err(e) => {
                eprintln!("bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match socket.local_addr() {
            Ok(local) => announce("udp-ping", local),
            Err(e) => {
                eprintln!("getsockname: {e}");
                return ExitCode::FAILURE;
            }
        }
        let mut buf = vec![0u8; 65536];
        let mut reply = Vec::with_capacity(65536);
        loop {
            let (len, from) = match socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    eprintln!("recvfrom: {e}");
                    continue;
                }
            };
            DatagramService::Ping.answer(&buf[..len], &mut reply);
            if let Err(e) = socket.send_to(&reply, from).await {
                eprintln!("sendto {from}: {e}");
            }
        }
    })
}

/// A tokio `current_thread` runtime with I/O, or `None` (said on stderr).
fn current_thread() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| eprintln!("tokio runtime: {e}"))
        .ok()
}
