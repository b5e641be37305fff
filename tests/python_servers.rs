//! The Python reference servers in examples/servers/ keep pollmux's tcp-echo and
//! tcp-upper contract: pollmux's own load client checks every reply byte under
//! ten connections at once; a half-close gets every byte owed, then EOF; the
//! uppercasing matches the harness's model of pollmux's, a character split
//! across reads and bytes that are not UTF-8 included; --reply-delay delays but
//! loses nothing; SIGTERM exits 0.

// These servers have no --backend, so common's backend_tests! goes unused here.
#[allow(unused_macros, unused_imports)]
mod common;

use common::*;
use std::net::SocketAddr;
use std::process::Command;

/// Runs each listed `fn name(script: &str)` once per Python reference server,
/// as `sequential::name`, `threaded::name` and `poll_server::name`.
macro_rules! server_tests {
    ($($name:ident),+ $(,)?) => {
        mod sequential {
            $(#[test]
            fn $name() {
                super::$name("sequential.py")
            })+
        }
        mod threaded {
            $(#[test]
            fn $name() {
                super::$name("threaded.py")
            })+
        }
        mod poll_server {
            $(#[test]
            fn $name() {
                super::$name("poll_server.py")
            })+
        }
    };
}

server_tests!(
    load_client_checks_echo_and_upper,
    half_close_gets_every_byte_then_eof,
    delayed_replies_lose_nothing,
    sigterm_exits_zero,
);

/// `python3 examples/servers/SCRIPT --tcp-echo 0 --tcp-upper 0 EXTRA...`, once
/// it has printed both listening lines.
fn start_python_server(script: &str, extra: &[&str]) -> Server {
    let mut command = Command::new("python3");
    command.arg(format!("{}/examples/servers/{script}", env!("CARGO_MANIFEST_DIR")));
    command.args(["--tcp-echo", "0", "--tcp-upper", "0"]).args(extra);
    Server::start_command(command, &["tcp-echo", "tcp-upper"])
}

fn run_load(addr: SocketAddr, expect: &str) {
    let addr = addr.to_string();
    let args =
        ["load", &addr, "--conns", "10", "--msgs", "200", "--size", "64", "--expect", expect];
    run_to_exit(&args).assert_success();
}

fn load_client_checks_echo_and_upper(script: &str) {
    if !python3_present() {
        return;
    }
    let srv = start_python_server(script, &[]);
    run_load(srv.addr("tcp-echo"), "echo");
    run_load(srv.addr("tcp-upper"), "upper");
}

/// Mixed 1- to 4-byte characters, bytes that are not UTF-8 here and there, and
/// a character cut short by the end of the stream.
fn upper_input(len: usize) -> Vec<u8> {
    let mut rng = Rng::new(len as u64);
    let mut input = mixed_text(&mut rng, len);
    for _ in 0..len / 1000 {
        let at = rng.below(input.len());
        input.insert(at, [0xff, 0x80, 0xc3, 0xed][rng.below(4)]);
    }
    input.extend_from_slice(&"€".as_bytes()[..2]);
    input
}

/// Every byte back before EOF, on both services: a writer thread sends and
/// shuts its side while this one reads to the server's EOF.
fn check_exchanges(srv: &Server, len: usize) {
    let echo_input: Vec<u8> = (0..=255u8).cycle().take(len).collect();
    assert_bytes_eq(&exchange(srv.addr("tcp-echo"), echo_input.clone()), &echo_input);
    let input = upper_input(len);
    assert_bytes_eq(&exchange(srv.addr("tcp-upper"), input.clone()), &upper_model(&input));
}

/// 'ß' (C3 9F) sent in two writes: the first part is answered on its own
/// (which proves the server read it alone), the held byte completed later.
fn check_split_character(srv: &Server) {
    let mut stream = connect(srv.addr("tcp-upper"));
    write_or_fail(&mut stream, b"stra\xc3");
    expect_bytes(&mut stream, b"STRA");
    write_or_fail(&mut stream, b"\x9fe");
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_bytes_eq(&read_to_eof(&mut stream), b"SSE");
}

fn half_close_gets_every_byte_then_eof(script: &str) {
    if !python3_present() {
        return;
    }
    let srv = start_python_server(script, &[]);
    check_exchanges(&srv, 300_000);
    check_split_character(&srv);
    for stream in [connect(srv.addr("tcp-echo")), connect(srv.addr("tcp-upper"))] {
        close_cleanly(stream);
    }
}

fn delayed_replies_lose_nothing(script: &str) {
    if !python3_present() {
        return;
    }
    let srv = start_python_server(script, &["--reply-delay", "20"]);
    check_exchanges(&srv, 20_000);
    check_split_character(&srv);
}

fn sigterm_exits_zero(script: &str) {
    if !python3_present() {
        return;
    }
    let srv = start_python_server(script, &[]);
    // A client being served, and one still waiting (for sequential.py).
    let mut served = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut served, b"hello");
    let _waiting = connect(srv.addr("tcp-upper"));
    let status = srv.terminate();
    assert!(status.success(), "{script} after SIGTERM: {status}");
}
