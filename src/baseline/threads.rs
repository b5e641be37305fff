//! One thread per connection: the accepting thread hands each client to a new thread of its own.

use std::net::TcpListener;
use std::thread;

use log::{debug, warn};

use super::{accept_failed, serve_client};

/// Stack of a connection's thread: its buffer is on the heap, so a small
/// stack lets thousands of threads fit (the default reserves 2 MiB each).
const STACK: usize = 256 * 1024;

/// accept(2), then clone(2) a thread that serves the client to its end.
pub fn run(listener: &TcpListener) -> ! {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e);
                continue;
            }
        };
        debug!("{peer}: connected");
        let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
            serve_client(stream);
            debug!("{peer}: done");
        });
        // The stream moved into the closure is dropped, so closed, with it.
        if let Err(e) = spawned {
            warn!("{peer}: cannot start a thread: {e}; connection closed");
        }
    }
}
