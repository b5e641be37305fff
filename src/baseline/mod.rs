//! Comparison TCP servers on blocking std::net sockets: the course's steps before multiplexing.
//!
//! `sequential` serves one client at a time, `threads` one thread per
//! connection, `pool` a fixed number of threads sharing the listener. They
//! serve tcp-echo and tcp-upper (the event loop's uppercasing state machine,
//! so a character split across reads comes out the same), each service on its
//! own listener with its own server of the model, and exist to be measured and
//! strace'd beside the event loop. `--reply-delay` makes each reply wait in a
//! real sleep, as in the lessons' slow servers, so the models' difference shows.

pub mod pool;
pub mod sequential;
pub mod threads;

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use log::{debug, error, info, warn};
use nix::sys::signal::{SigSet, Signal};

use crate::error::Error;
use crate::output::Output;
use crate::service::ServiceKind;
use crate::service::upper::Upper;
use crate::sys::{SysError, failed, net};

/// How long to back off when accept fails for want of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Stack of a serving thread: its buffer is on the heap, so a small stack
/// lets thousands of threads fit (the default reserves 2 MiB each).
const STACK: usize = 256 * 1024;

/// The comparison servers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One client at a time: accept, serve until EOF, accept the next.
    Sequential,
    /// One thread per connection.
    Threads,
    /// A fixed number of threads, each accepting and then serving one client until EOF.
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

/// The services a baseline can serve.
pub const SERVICES: [ServiceKind; 2] = [ServiceKind::TcpEcho, ServiceKind::TcpUpper];

/// How a baseline serves, besides its model: plain data the CLI fills in.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Threads of `--model pool`, per service (at least 1).
    pub pool_size: usize,
    /// How long each reply waits, in a sleep, after its request was read.
    pub reply_delay: Duration,
    /// The listen(2) backlog of each listener.
    pub backlog: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: pool::DEFAULT_THREADS,
            reply_delay: Duration::ZERO,
            backlog: net::DEFAULT_BACKLOG,
        }
    }
}

/// What one listener's threads need to serve a client.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    /// tcp-echo or tcp-upper.
    pub service: ServiceKind,
    /// How long each reply waits after its request was read.
    pub reply_delay: Duration,
}

/// Bound listeners, one per service, ready to be served by one model.
#[derive(Debug)]
pub struct Baseline {
    /// Which server this is.
    model: Model,
    /// Each service's blocking listening socket.
    listeners: Vec<(ServiceKind, TcpListener)>,
    /// Pool size and reply delay.
    options: Options,
}

impl Baseline {
    /// Arranges for SIGINT and SIGTERM to exit the process with status 0,
    /// then binds each of `services` (tcp-echo, tcp-upper) on `host` and its port.
    pub fn bind(
        model: Model,
        host: &str,
        services: &[(ServiceKind, u16)],
        options: Options,
    ) -> Result<Baseline, Error> {
        if let Some(&(kind, _)) = services.iter().find(|(kind, _)| !SERVICES.contains(kind)) {
            return Err(Error::NotServed { model: model.name(), service: kind.name() });
        }
        exit_on_signal()?;
        let mut listeners = Vec::new();
        for &(kind, port) in services {
            let addr = net::first_addr((host, port))
                .map_err(|source| Error::Resolve { host: host.into(), source })?;
            let bind_error = |source| Error::Bind { service: kind.name(), addr, source };
            // The event loop's listener (SO_REUSEADDR, the same backlog), made blocking.
            let fd = net::listen_tcp(addr, options.backlog).map_err(bind_error)?;
            let listener = TcpListener::from(fd);
            listener.set_nonblocking(false).map_err(bind_error)?;
            listeners.push((kind, listener));
        }
        Ok(Baseline { model, listeners, options })
    }

    /// Each service and the address it is bound to.
    pub fn listening(&self) -> std::io::Result<Vec<(ServiceKind, SocketAddr)>> {
        self.listeners.iter().map(|(kind, l)| Ok((*kind, l.local_addr()?))).collect()
    }

    /// Serves every listener, each on a thread of its own (the last on this
    /// one), until a signal exits the process.
    pub fn run(self) -> ! {
        let Baseline { model, listeners, options } = self;
        let serve = move |service: ServiceKind, listener: &TcpListener| -> ! {
            let serving = Serving { service, reply_delay: options.reply_delay };
            info!(
                "model {}: serving {} with blocking sockets{}",
                model.name(),
                service.name(),
                match model {
                    Model::Pool => format!(", {} threads", options.pool_size),
                    _ => String::new(),
                }
            );
            match model {
                Model::Sequential => sequential::run(listener, serving),
                Model::Threads => threads::run(listener, serving),
                Model::Pool => pool::run(listener, serving, options.pool_size),
            }
        };
        let Some(((last_kind, last), others)) = listeners.split_last() else {
            error!("no service to serve");
            std::process::exit(1);
        };
        thread::scope(|scope| {
            for (kind, listener) in others {
                let spawned = thread::Builder::new()
                    .name(kind.name().into())
                    .spawn_scoped(scope, || serve(*kind, listener));
                if let Err(e) = spawned {
                    error!("cannot start a thread for {}: {e}", kind.name());
                    std::process::exit(1);
                }
            }
            serve(*last_kind, last)
        })
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

/// Serves one client until its EOF: read(2), sleep the reply delay if any,
/// then write(2) the reply until all is sent: every byte back (tcp-echo), or
/// uppercased by tcp-upper's state machine, which holds a character split
/// across reads and sends a truncated one back unchanged at EOF.
pub fn serve_client(mut stream: TcpStream, serving: Serving) {
    // Small replies leave at once rather than waiting on Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; net::READ_BUFFER];
    let mut upper = (serving.service == ServiceKind::TcpUpper).then(Upper::default);
    let mut out = Output::default();
    loop {
        let len = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("read: {e}");
                return;
            }
        };
        if !serving.reply_delay.is_zero() {
            // The lessons' slow server: this thread, and so whoever waits on it, waits too.
            thread::sleep(serving.reply_delay);
        }
        let written = match &mut upper {
            None => stream.write_all(&buf[..len]),
            Some(upper) => {
                // Uppercasing takes any input: it never reports a violation.
                let _ = upper.on_data(&buf[..len], &mut out);
                write_output(&mut stream, &mut out)
            }
        };
        if let Err(e) = written {
            debug!("write: {e}");
            return;
        }
    }
    if let Some(upper) = &mut upper {
        upper.on_eof(&mut out);
        if let Err(e) = write_output(&mut stream, &mut out) {
            debug!("write: {e}");
        }
    }
}

/// Writes everything `out` holds (owned bytes only: no array here), in as few writev(2) as the kernel allows.
fn write_output(stream: &mut TcpStream, out: &mut Output) -> std::io::Result<()> {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); 4];
        let count = out.io_slices(&mut slices);
        match stream.write_vectored(&slices[..count]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(sent) => out.consume(sent),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
