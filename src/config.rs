//! What to serve and within which limits: plain data, filled in by the CLI (whose flags hold every default).

use std::time::Duration;

use crate::service::{ServiceKind, Settings};
use crate::sys::BackendKind;

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address or name to bind every service on (`127.0.0.1`, `::1`, `localhost`).
    pub host: String,
    /// The wait syscall to use.
    pub backend: BackendKind,
    /// Each service with its port: `Some(0)` for a free port, `None` when off.
    pub ports: Vec<(ServiceKind, Option<u16>)>,
    /// What the stream services are built with: `--array-len`, `--array-wire`, `--max-frame`.
    pub services: Settings,
    /// Unsent bytes per connection past which reading from it pauses.
    pub max_pending: usize,
    /// Heap bytes all connections may hold together, input and output; a
    /// connection that needs more than is left is closed.
    pub max_buffered: usize,
    /// Connections past which new ones are accepted and closed at once.
    pub max_conns: usize,
    /// A connection silent this long is closed; `None` never closes one for silence.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown may spend finishing what is owed.
    pub drain_timeout: Duration,
    /// After a protocol violation, how long a connection may keep sending
    /// what is thrown away before it is closed whatever it does.
    pub linger_timeout: Duration,
    /// TCP keepalive idle time on every connection; `None`: off.
    pub keepalive: Option<Duration>,
    /// UDP replies per second per source address; 0: unlimited.
    pub udp_rate: u32,
    /// Print syscall and traffic counts every second and at exit.
    pub stats: bool,
    /// The listen(2) backlog of every TCP listener (the kernel caps it at net.core.somaxconn).
    pub backlog: u32,
    /// How long after reading a request its reply is written. Stored for the
    /// event loop's tcp-upper, which does not delay replies yet; the baselines sleep it.
    pub reply_delay: Duration,
}
