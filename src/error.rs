//! The errors that stop the server from starting or running.

use std::net::SocketAddr;

use crate::sys::SysError;

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--host` did not resolve.
    #[error("cannot resolve host {host:?}: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A socket could not be created or bound (an address in use, a privileged port).
    #[error("cannot bind {service} to {addr}: {source}")]
    Bind {
        /// The service that wanted the address.
        service: &'static str,
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// `--array-len` values could not be allocated.
    #[error("--array-len {0} is too large: cannot allocate {0} float64 values (8 bytes each)")]
    ArrayTooLarge(usize),
    /// A baseline was asked to serve a service it does not serve.
    #[error("--model {model} serves tcp-echo and tcp-upper only, not {service}")]
    NotServed {
        /// The baseline's name.
        model: &'static str,
        /// The service asked for.
        service: &'static str,
    },
    /// A syscall of the event loop failed.
    #[error(transparent)]
    Sys(#[from] SysError),
}
