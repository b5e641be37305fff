//! What to serve and within which limits: plain data, filled in by the CLI (whose flags hold every default).

use std::time::Duration;

use crate::service::ServiceKind;
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
    /// How many float64 values tcp-array serves.
    pub array_len: usize,
    /// The largest frame body either framed service accepts, in bytes.
    pub max_frame: u32,
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
}
