//! Comparison TCP echo servers on blocking std::net sockets: the course's steps before multiplexing.
//!
//! `sequential` serves one client at a time, `threads` one thread per
//! connection, `pool` four threads sharing the listener. They serve tcp-echo
//! only, and exist to be measured and strace'd beside the event loop.

pub mod pool;
pub mod sequential;
pub mod threads;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use log::{debug, info, warn};
use nix::sys::signal::{SigSet, Signal};

use crate::error::Error;
use crate::sys::{SysError, failed, net};

/// Bytes one read(2) may return: the same as the event loop's read buffer.
const READ_BUFFER: usize = 64 * 1024;
/// How long to back off when accept fails for want of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The comparison servers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One client at a time: accept, echo until EOF, accept the next.
    Sequential,
    /// One thread per connection.
    Threads,
    /// Four threads, each accepting and then serving one client until EOF.
    Pool,
}

impl Model {
    /// The name used by `--model`.
    pub fn name(self) -> &'static str {
        match self {
            Model::Sequential => "sequential",
            Model::Threads => "threads",
            Model::Pool => "pool",
        }
    }
}

/// A bound tcp-echo listener, ready to be served by one model.
#[derive(Debug)]
pub struct Baseline {
    /// Which server this is.
    model: Model,
    /// The blocking listening socket.
    listener: TcpListener,
}

impl Baseline {
    /// Arranges for SIGINT and SIGTERM to exit the process with status 0,
    /// then binds tcp-echo on `host:port` with a listen(2) backlog of `backlog`.
    pub fn bind(model: Model, host: &str, port: u16, backlog: u32) -> Result<Baseline, Error> {
        exit_on_signal()?;
        let addr = net::first_addr((host, port))
            .map_err(|source| Error::Resolve { host: host.into(), source })?;
        let bind_error = |source| Error::Bind { service: "tcp-echo", addr, source };
        // The event loop's listener (SO_REUSEADDR, the same backlog), made blocking.
        let listener = TcpListener::from(net::listen_tcp(addr, backlog).map_err(bind_error)?);
        listener.set_nonblocking(false).map_err(bind_error)?;
        Ok(Baseline { model, listener })
    }

    /// The address tcp-echo is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until a signal exits the process.
    pub fn run(self) -> ! {
        info!("model {}: serving tcp-echo with blocking sockets", self.model.name());
        match self.model {
            Model::Sequential => sequential::run(&self.listener),
            Model::Threads => threads::run(&self.listener),
            Model::Pool => pool::run(&self.listener),
        }
    }
}

/// Blocks SIGINT and SIGTERM in this thread, so that every thread started
/// later inherits the mask, and starts a thread that waits for one of them
/// in sigwait(2) and exits with status 0. Blocking threads cannot be
/// interrupted cleanly; exiting the process is the short way out.
fn exit_on_signal() -> Result<(), SysError> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().map_err(failed("rt_sigprocmask"))?;
    let waiter = move || match mask.wait() {
        Ok(signal) => {
            info!("{signal}: exiting");
            std::process::exit(0);
        }
        Err(errno) => warn!("sigwait: {errno}; signals now stay blocked"),
    };
    std::thread::Builder::new().name("signals".into()).spawn(waiter).expect("spawn a thread");
    Ok(())
}

/// Echoes every byte back until the client's EOF: read(2), then write(2) until all is sent.
pub fn serve_client(mut stream: TcpStream) {
    // Small replies leave at once rather than waiting on Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let len = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("read: {e}");
                return;
            }
        };
        if let Err(e) = stream.write_all(&buf[..len]) {
            debug!("write: {e}");
            return;
        }
    }
}

/// Logs a failed accept(2); backs off when it failed for want of descriptors
/// or memory, which no retry at once would find.
fn accept_failed(error: std::io::Error) {
    warn!("accept: {error}");
    let errno = error.raw_os_error().unwrap_or(0);
    if [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&errno) {
        std::thread::sleep(ACCEPT_BACKOFF);
    }
}
