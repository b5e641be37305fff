//! pollmux: one single-threaded process serving UDP and TCP over poll(2), select(2) or epoll(7).
//!
//! The crate map, from the loop down to the kernel (`pub` where the binary,
//! the tests or the bench use it; the rest is read in the source, or with
//! `cargo doc --document-private-items`):
#![warn(missing_docs)]

// The loop and what it owns.
/// What the server opens at start, and the connection limit that leaves.
mod bind;
/// What to serve and within which limits.
mod config;
/// One TCP connection: read -> service -> write, its phases and deadlines.
mod connection;
/// A UDP socket's turn: recvfrom, the loop guard, the answer, sendto.
mod datagram;
/// Why the server could not start or run.
mod error;
/// The event loop: wait -> dispatch -> accept / answer / serve / close, and the timers.
mod event_loop;
/// Counts of syscalls, bytes and connections.
mod stats;
/// The server's fd table: descriptor -> listener, connection, UDP socket or signalfd.
mod table;
/// The timers: every deadline, nearest first.
mod timers;
/// Which datagrams get an answer: the reflection-loop guard and the per-source budget.
mod udp_guard;

// Below the loop, and beside it.
/// Comparison servers on blocking sockets: sequential, thread per connection, pool.
pub mod baseline;
/// The clients: `ping` (UDP round trips) and `load` (TCP load: closed loop, open loop at a rate, churn).
pub mod client;
/// fd -> value with each descriptor's interest, kept in step with the poller.
pub mod fd_map;
/// The bytes a connection still owes its peer.
pub mod output;
/// The services: sans-I/O state machines, bytes in, replies out.
pub mod service;
/// The syscall layer: the wait interface and one file per backend, the socket calls, the signalfd.
pub mod sys;

pub use config::Config;
pub use error::Error;
pub use event_loop::{Server, Shutdown};
pub use stats::Stats;
