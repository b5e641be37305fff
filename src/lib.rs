//! pollmux: one single-threaded process serving UDP and TCP over poll(2), select(2) or epoll(7).
//!
//! The crate map (the layers, from the kernel up: sys, table and output, event_loop, service; beside them the clients and the baselines):
#![warn(missing_docs)]
// One `unsafe` in the crate, in `sys::kept`, allowed there with its SAFETY note.
#![deny(unsafe_code)]

/// Comparison TCP echo servers on blocking sockets: sequential, thread per connection, pool.
pub mod baseline;
/// The clients: `ping` (UDP round trips) and `load` (TCP load: closed loop, open loop at a rate, churn).
pub mod client;
/// What to serve and within which limits.
pub mod config;
/// One TCP connection: read -> service -> write, its phases and deadlines.
pub mod connection;
/// Why the server could not start or run.
pub mod error;
/// The event loop: wait -> dispatch -> accept / answer / serve / close, and the deadlines.
pub mod event_loop;
/// fd -> value with each descriptor's interest, kept in step with the poller.
pub mod fd_map;
/// The bytes a connection still owes its peer.
pub mod output;
/// The services: sans-I/O state machines, bytes in, replies out.
pub mod service;
/// Counts of syscalls, bytes and connections.
pub mod stats;
/// The syscall layer: the wait interface and one file per backend, the socket calls, the signalfd.
pub mod sys;
/// The server's fd table: descriptor -> listener, connection, UDP socket or signalfd.
pub mod table;
/// The timer heap: every deadline, nearest first.
pub mod timers;

pub use config::Config;
pub use error::Error;
pub use event_loop::{Server, Shutdown};
