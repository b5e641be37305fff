//! `--host ::1`: every service listens and answers on the IPv6 loopback.

mod common;

use common::*;
use std::net::{Ipv6Addr, TcpListener};

common::backend_tests!(every_service_answers_on_ipv6_loopback);

fn every_service_answers_on_ipv6_loopback(backend: &str) {
    let ipv6 = TcpListener::bind("[::1]:0").map(drop);
    if !tool_present(ipv6.map_err(|e| format!("cannot bind [::1] on this machine ({e})"))) {
        return;
    }
    let srv = Server::start(backend, &["--host", "::1", "--array-len", "10"]);
    assert_eq!(srv.addrs().len(), SERVICES.len());
    for (service, addr) in srv.addrs() {
        assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST, "{service} listens on {addr}");
        assert_ne!(addr.port(), 0, "{service} announced port 0");
    }
    smoke_every_service(&srv);
}
