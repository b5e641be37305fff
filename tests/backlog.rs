//! `--backlog N` reaches listen(2) for every TCP listener of every model: `ss -ltn`
//! shows a listening socket's backlog in its Send-Q column.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;

common::backend_tests!(every_mux_listener_has_the_backlog, default_backlog_is_4096);

/// True when `ss` runs. Otherwise the test cannot look: under CI (env CI set)
/// that fails it, since .ci/run installs iproute2; elsewhere it says
/// `skipped: ss missing` on the real stderr, past the harness's capture, so a
/// skip is seen and never passes silently.
fn ss_found(test: &str) -> bool {
    let found = Command::new("ss").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: ss (iproute2) is missing, and CI must run this test"
        );
        let _ = writeln!(std::io::stderr(), "skipped: ss missing ({test})");
    }
    found
}

/// The Send-Q column of `ss -ltn` for the TCP listener on `addr`: its backlog.
fn ss_backlog(addr: SocketAddr) -> u32 {
    let out = Command::new("ss").args(["-ltn"]).output().expect("run ss -ltn");
    assert!(out.status.success(), "ss -ltn: {}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    // State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
    let row = table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|columns| columns.get(3) == Some(&addr.to_string().as_str()))
        .unwrap_or_else(|| panic!("no listener {addr} in ss -ltn:\n{table}"));
    assert_eq!(row[0], "LISTEN", "{row:?}");
    row[2].parse().unwrap_or_else(|_| panic!("Send-Q {:?} is not a number: {row:?}", row[2]))
}

/// Every TCP service of `srv` listens with `backlog`.
fn assert_tcp_backlogs(srv: &Server, backlog: u32) {
    let tcp: Vec<_> = srv.addrs().iter().filter(|(name, _)| name.starts_with("tcp-")).collect();
    assert!(!tcp.is_empty());
    for (name, addr) in tcp {
        assert_eq!(ss_backlog(*addr), backlog, "{name} on {addr}");
    }
}

fn every_mux_listener_has_the_backlog(backend: &str) {
    if !ss_found(&format!("{backend}::every_mux_listener_has_the_backlog")) {
        return;
    }
    let srv = Server::start(backend, &["--backlog", "7"]);
    assert_tcp_backlogs(&srv, 7);
    smoke_every_service(&srv);
}

fn default_backlog_is_4096(backend: &str) {
    if !ss_found(&format!("{backend}::default_backlog_is_4096")) {
        return;
    }
    let srv = Server::start(backend, &[]);
    // The kernel caps it at net.core.somaxconn.
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert_tcp_backlogs(&srv, somaxconn.min(4096));
}

/// A baseline's every listener (tcp-echo and tcp-upper) has the backlog.
fn baseline_listeners_have_the_backlog(model: &str) {
    if !ss_found(&format!("{model}_listeners_have_the_backlog")) {
        return;
    }
    let srv = Server::start_model_with(model, &["--tcp-upper", "0", "--backlog", "7"]);
    assert_eq!(srv.addrs().len(), 2, "{:?}", srv.addrs());
    assert_tcp_backlogs(&srv, 7);
}

#[test]
fn sequential_listeners_have_the_backlog() {
    baseline_listeners_have_the_backlog("sequential");
}

#[test]
fn threads_listeners_have_the_backlog() {
    baseline_listeners_have_the_backlog("threads");
}

#[test]
fn pool_listeners_have_the_backlog() {
    baseline_listeners_have_the_backlog("pool");
}

#[test]
fn backlog_out_of_range_is_refused() {
    for (value, model) in [("0", "mux"), ("65536", "mux"), ("-1", "threads"), ("lots", "pool")] {
        let run = run_to_exit(&["serve", "--model", model, "--backlog", value]);
        assert_eq!(run.status.code(), Some(2), "--backlog {value}\n{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        if value != "-1" {
            // clap reads -1 as an unknown flag, and says so.
            assert!(
                run.stderr.contains("expected a listen(2) backlog from 1 to 65535"),
                "{}",
                run.stderr
            );
        }
    }
}
