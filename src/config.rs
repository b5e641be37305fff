//! What to serve and within which limits: plain data, filled in by the CLI.

use std::time::Duration;

use crate::service::ServiceKind;
use crate::service::array::ArrayWire;
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
    /// How tcp-array talks: framed requests, the 10-byte fixed request, or push on connect.
    pub array_wire: ArrayWire,
    /// The largest frame body either framed service accepts, in bytes.
    pub max_frame: u32,
    /// Unsent bytes per connection past which reading from it pauses.
    pub max_pending: usize,
    /// Connections past which new ones are accepted and closed at once.
    pub max_conns: usize,
    /// A connection silent this long is closed; `None` never closes one for silence.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown may spend finishing what is owed.
    pub drain_timeout: Duration,
    /// Print syscall and traffic counts every second and at exit.
    pub stats: bool,
    /// The listen(2) backlog of every TCP listener (the kernel caps it at net.core.somaxconn).
    pub backlog: u32,
    /// How long after reading a request its reply is written. Stored for the
    /// event loop's tcp-upper, which does not delay replies yet; the baselines sleep it.
    pub reply_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            backend: BackendKind::Poll,
            ports: ServiceKind::ALL.iter().map(|&k| (k, Some(k.default_port()))).collect(),
            array_len: 50_000_000,
            array_wire: ArrayWire::Framed,
            max_frame: 16 << 20,
            max_pending: 1 << 20,
            max_conns: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            drain_timeout: Duration::from_secs(5),
            stats: false,
            backlog: crate::sys::net::DEFAULT_BACKLOG,
            reply_delay: Duration::ZERO,
        }
    }
}
