//! One thread per connection: the accepting thread hands each client to a new thread of its own.

use std::net::TcpListener;
use std::thread;

use log::{debug, warn};

use super::{STACK, Serving, accept_failed, serve_client};

/// accept(2), then clone(2) a thread that serves the client to its end.
pub fn run(listener: &TcpListener, serving: Serving) -> ! {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e);
                continue;
            }
        };
        debug!("{peer}: connected to {}", serving.service.name());
        let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
            serve_client(stream, serving);
            debug!("{peer}: done");
        });
        // The stream moved into the closure is dropped, so closed, with it.
        if let Err(e) = spawned {
            warn!("{peer}: cannot start a thread: {e}; connection closed");
        }
    }
}
