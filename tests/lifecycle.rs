//! Starting, announcing, failing to start, and stopping on a signal.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};

common::backend_tests!(
    stdout_carries_one_listening_line_per_service,
    disabled_service_prints_no_listening_line,
    requested_ports_are_used,
    host_name_is_resolved,
    sigterm_finishes_owed_reply_then_exits_zero,
    sigterm_with_idle_connections_exits_zero,
    sigint_exits_zero,
    tcp_port_in_use_fails_naming_the_address,
    udp_port_in_use_fails_naming_the_address,
    invalid_port_value_fails,
    sighup_drains_like_sigterm,
    sigusr1_prints_the_fd_table_and_serving_goes_on,
);

fn stdout_carries_one_listening_line_per_service(backend: &str) {
    let srv = Server::start(backend, &[]);
    let addrs = srv.addrs().clone();
    assert_eq!(addrs.len(), SERVICES.len(), "{addrs:?}");
    for (service, addr) in &addrs {
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST), "{service}");
        assert_ne!(addr.port(), 0, "{service} announced port 0");
    }
    let tcp: HashSet<u16> =
        addrs.iter().filter(|(s, _)| s.starts_with("tcp-")).map(|(_, a)| a.port()).collect();
    let udp: HashSet<u16> =
        addrs.iter().filter(|(s, _)| s.starts_with("udp-")).map(|(_, a)| a.port()).collect();
    assert_eq!((tcp.len(), udp.len()), (4, 2), "ports shared: {addrs:?}");
    smoke_every_service(&srv);
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(
        done.later_stdout.is_empty(),
        "stdout carried more than the listening lines: {:?}\nstderr:\n{}",
        done.later_stdout,
        done.stderr
    );
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

fn disabled_service_prints_no_listening_line(backend: &str) {
    let srv =
        Server::start(backend, &["--tcp-echo", "off", "--udp-ping", "off", "--array-len", "10"]);
    let names: HashSet<&str> = srv.addrs().keys().map(String::as_str).collect();
    assert_eq!(names, HashSet::from(["tcp-upper", "tcp-frame", "tcp-array", "udp-upper"]));
    smoke_every_service(&srv);
    srv.signal(libc::SIGTERM);
    let done = srv.wait();
    assert!(done.later_stdout.is_empty(), "more on stdout: {:?}", done.later_stdout);
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

fn requested_ports_are_used(backend: &str) {
    // Ports the kernel just handed out and took back: free, barring a race.
    let tcp_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let udp_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (tcp, udp) = (tcp_port.to_string(), udp_port.to_string());
    let srv = Server::start(backend, &["--tcp-upper", &tcp, "--udp-ping", &udp]);
    assert_eq!(srv.addr("tcp-upper").port(), tcp_port);
    assert_eq!(srv.addr("udp-ping").port(), udp_port);
    smoke_every_service(&srv);
}

fn host_name_is_resolved(backend: &str) {
    let srv = Server::start(backend, &["--host", "localhost", "--array-len", "10"]);
    for (service, addr) in srv.addrs() {
        assert!(addr.ip().is_loopback(), "{service} listens on {addr}");
    }
    smoke_every_service(&srv);
}

fn sigterm_finishes_owed_reply_then_exits_zero(backend: &str) {
    // A 12 MB reply (under the default --max-frame): far more than the
    // socket buffers hold while it is not read.
    const COUNT: u64 = 1_500_000;
    let srv = Server::start(backend, &["--array-len", &COUNT.to_string()]);
    let mut s = connect(srv.addr("tcp-array"));
    write_or_fail(&mut s, &array_request(&format!("0:{COUNT}")));
    // The reply has begun: the request was read and the rest is owed.
    expect_bytes(&mut s, &(1 + 8 * COUNT as u32).to_be_bytes());
    srv.signal(libc::SIGTERM);
    let body = read_exact_or_fail(&mut s, 1 + 8 * COUNT as usize);
    assert_eq!(body[0], 0, "status");
    for (i, v) in body[1..].chunks_exact(8).enumerate() {
        let v = f64::from_le_bytes(v.try_into().unwrap());
        assert_eq!(v, i as f64, "value {i}");
    }
    assert_bytes_eq(&read_to_eof(&mut s), b"");
    drop(s);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

fn sigterm_with_idle_connections_exits_zero(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut used = connect(srv.addr("tcp-echo"));
    write_or_fail(&mut used, b"hi");
    expect_bytes(&mut used, b"hi");
    let mut idle: Vec<_> =
        ["tcp-upper", "tcp-frame", "tcp-array"].iter().map(|s| connect(srv.addr(s))).collect();
    // Half a frame is not a reply owed.
    write_or_fail(&mut idle[1], &[0, 0]);
    srv.signal(libc::SIGTERM);
    // Nothing owed: each connection is closed without another byte; then the
    // clients close theirs, and the server has nothing left to wait for.
    idle.push(used);
    for mut s in idle {
        let (rest, _) = read_until_closed(&mut s);
        assert!(rest.is_empty(), "bytes nobody was owed: {:?}", Shown(&rest));
    }
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

fn sigint_exits_zero(backend: &str) {
    let srv = Server::start(backend, &[]);
    smoke_every_service(&srv);
    srv.signal(libc::SIGINT);
    let done = srv.wait();
    assert!(done.status.success(), "{}\nstderr:\n{}", done.status, done.stderr);
}

/// Runs `serve` with every port 0 but `flag port`, which is taken.
fn assert_port_in_use_fails(backend: &str, flag: &str, port: u16) {
    let mut args: Vec<String> = vec!["serve".into(), "--backend".into(), backend.into()];
    args.extend(["--array-len".into(), DEFAULT_ARRAY_LEN.to_string()]);
    for service in SERVICES {
        let f = format!("--{service}");
        if f != flag {
            args.extend([f, "0".into()]);
        }
    }
    args.extend([flag.to_string(), port.to_string()]);
    let run = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !run.status.success(),
        "{flag} {port} in use, yet exit {}\nstderr:\n{}",
        run.status,
        run.stderr
    );
    let taken = format!("127.0.0.1:{port}");
    assert!(run.stderr.contains(&taken), "stderr does not name {taken}:\n{}", run.stderr);
}

fn tcp_port_in_use_fails_naming_the_address(backend: &str) {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    assert_port_in_use_fails(backend, "--tcp-frame", port);
}

fn udp_port_in_use_fails_naming_the_address(backend: &str) {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    assert_port_in_use_fails(backend, "--udp-upper", port);
}

fn invalid_port_value_fails(backend: &str) {
    for bad in ["notaport", "65536", "-1"] {
        let run = run_to_exit(&["serve", "--backend", backend, "--tcp-echo", bad]);
        assert!(!run.status.success(), "--tcp-echo {bad} accepted\nstderr:\n{}", run.stderr);
        assert!(!run.stderr.trim().is_empty(), "--tcp-echo {bad}: no message");
        assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    }
}

// Backend-independent: the command line itself.

#[test]
fn unknown_backend_fails_naming_the_choices() {
    let run = run_to_exit(&["serve", "--backend", "kqueue", "--tcp-echo", "0"]);
    assert!(!run.status.success(), "exit {}", run.status);
    for choice in BACKENDS {
        assert!(run.stderr.contains(choice), "stderr does not name {choice}:\n{}", run.stderr);
    }
}

#[test]
fn impossible_settings_fail_with_a_message_naming_the_flag() {
    let cases: [(&[&str], &str); 5] = [
        (&["--array-len", "1000000000000000000"], "--array-len"),
        (&["--idle-timeout", "1e30"], "--idle-timeout"),
        (&["--drain-timeout=-1"], "--drain-timeout"),
        (&["--tcp-array", "65536"], "expected a port number"),
        (&["--host", "no.such.host.invalid"], "no.such.host.invalid"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["serve", "--tcp-echo", "0", "--tcp-upper", "off", "--tcp-frame", "off"];
        args.extend_from_slice(&["--udp-upper", "off", "--udp-ping", "off"]);
        args.extend_from_slice(flags);
        let run = run_to_exit(&args);
        assert!(!run.status.success(), "{flags:?}: exit {}", run.status);
        assert!(
            run.stderr.contains(named),
            "{flags:?}: stderr does not name {named}:\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{flags:?} panicked:\n{}", run.stderr);
    }
}

#[test]
fn help_exits_zero_and_mentions_serve() {
    let run = run_to_exit(&["--help"]);
    run.assert_success();
    assert!(run.stdout.contains("serve"), "help:\n{}", run.stdout);
    let run = run_to_exit(&["serve", "--help"]);
    run.assert_success();
    for flag in ["--host", "--backend", "--max-frame", "--array-len"] {
        assert!(run.stdout.contains(flag), "serve --help lacks {flag}:\n{}", run.stdout);
    }
    for service in SERVICES {
        let flag = format!("--{service}");
        assert!(run.stdout.contains(&flag), "serve --help lacks {flag}:\n{}", run.stdout);
    }
}

fn sighup_drains_like_sigterm(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut client = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut client, b"before");
    srv.signal(libc::SIGHUP);
    srv.wait_for_stderr("no longer accepting");
    close_cleanly(client);
    let done = srv.wait();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert!(done.stderr.contains("SIGHUP: no longer accepting"), "{}", done.stderr);
}

fn sigusr1_prints_the_fd_table_and_serving_goes_on(backend: &str) {
    let srv = Server::start(backend, &[]);
    let mut client = connect(srv.addr("tcp-upper"));
    upper_exchange(&mut client);
    let peer = client.local_addr().unwrap().to_string();
    srv.signal(libc::SIGUSR1);
    let stderr = srv.wait_for_stderr("summary: 1 connections");
    let row = stderr
        .lines()
        .find(|l| l.contains(&peer))
        .unwrap_or_else(|| panic!("no row for {peer}:\n{stderr}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["connection", "tcp-upper", peer.as_str(), "serving"], "{row}");
    assert_eq!(&cells[5..9], ["5", "5", "0", "IN"], "bytes in, out, unsent, wait: {row}");
    for service in SERVICES {
        assert!(stderr.contains(service), "{service} is not in the table:\n{stderr}");
    }
    assert!(stderr.contains("signalfd"), "{stderr}");
    // The server goes on: the same connection is served, a new one too.
    upper_exchange(&mut client);
    upper_exchange(&mut connect(srv.addr("tcp-upper")));
    close_cleanly(client);
    assert!(srv.terminate().success());
}

/// One exchange on a tcp-upper connection.
fn upper_exchange(client: &mut std::net::TcpStream) {
    write_or_fail(client, b"hello");
    expect_bytes(client, b"HELLO");
}

#[test]
fn help_says_what_each_lesson_flag_does_and_its_default() {
    let run = run_to_exit(&["serve", "--help"]);
    run.assert_success();
    let help = &run.stdout;
    for (flag, says, default) in [
        ("--array-wire <WIRE>", "How tcp-array talks", "[default: framed]"),
        ("--backlog <N>", "listen(2) backlog of every TCP listener", "[default: 4096]"),
        ("--reply-delay <MS>", "between reading a request and writing its reply", "[default: 0]"),
        ("--pool-size <N>", "Threads of --model pool", "[default: 4]"),
    ] {
        // Long help: the flag, its text, then its default, before the next flag.
        let at = help.find(flag).unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
        let entry = &help[at..];
        let entry = &entry
            [..entry[flag.len()..].find("\n      --").map_or(entry.len(), |e| e + flag.len())];
        assert!(entry.contains(says), "{flag}: {entry}");
        assert!(entry.contains(default), "{flag}: {entry}");
    }
    for wire in ["framed:", "fixed:", "push:"] {
        assert!(help.contains(wire), "--array-wire values undescribed:\n{help}");
    }
}
