//! One client at a time: accept, serve until EOF, then accept the next; the others wait in the backlog.

use std::net::TcpListener;

use log::debug;

use super::{Serving, accept_failed, serve_client};

/// accept(2), serve that client to its end, repeat.
pub fn run(listener: &TcpListener, serving: Serving) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                debug!("{peer}: connected to {}", serving.service.name());
                serve_client(stream, serving);
                debug!("{peer}: done");
            }
            Err(e) => accept_failed(e),
        }
    }
}
