//! A pool of four threads sharing the listener: each blocks in accept, then serves that client until EOF.
//!
//! Each thread is the sequential server; four of them on one listener serve
//! four clients at once. The kernel wakes one blocked accept per incoming
//! connection, and further clients wait in the backlog.

use std::net::TcpListener;
use std::thread;

use super::sequential;

/// Threads in the pool, as in the course's example.
pub const THREADS: usize = 4;

/// Starts three threads and makes the calling thread the fourth.
pub fn run(listener: &TcpListener) -> ! {
    thread::scope(|scope| {
        for _ in 1..THREADS {
            scope.spawn(|| sequential::run(listener));
        }
        sequential::run(listener)
    })
}
