//! A pool of threads sharing the listener: each blocks in accept, then serves that client until EOF.
//!
//! Each thread is the sequential server; N of them on one listener serve N
//! clients at once. The kernel wakes one blocked accept per incoming
//! connection, and further clients wait in the backlog.

use std::net::TcpListener;
use std::thread;

use log::warn;

use super::{STACK, Serving, sequential};

/// Threads in the pool unless `--pool-size` says otherwise, as in the course's example.
pub const DEFAULT_THREADS: usize = 4;

/// Starts `size - 1` threads and makes the calling thread the last one.
/// If the system refuses a thread, the pool serves with those it has.
pub fn run(listener: &TcpListener, serving: Serving, size: usize) -> ! {
    thread::scope(|scope| {
        for started in 1..size {
            let spawned = thread::Builder::new()
                .stack_size(STACK)
                .spawn_scoped(scope, || sequential::run(listener, serving));
            if let Err(e) = spawned {
                warn!("cannot start pool thread {}: {e}; serving with {started}", started + 1);
                break;
            }
        }
        sequential::run(listener, serving)
    })
}
