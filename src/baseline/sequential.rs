//! One client at a time: accept, echo until EOF, then accept the next; the others wait in the backlog.

use std::net::TcpListener;

use log::debug;

use super::{accept_failed, serve_client};

/// accept(2), serve that client to its end, repeat.
pub fn run(listener: &TcpListener) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                debug!("{peer}: connected");
                serve_client(stream);
                debug!("{peer}: done");
            }
            Err(e) => accept_failed(e),
        }
    }
}
