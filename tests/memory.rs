//! Memory bounds measured against the server's resident memory (VmHWM, the
//! peak, so whatever it held between two looks counts): a client that never
//! reads costs at most `--max-pending` plus what one read can expand to,
//! whatever the service; all connections together stay within `--max-buffered`.

mod common;

use common::*;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;

common::backend_tests!(
    a_never_read_tripling_frame_costs_its_frame_and_max_pending,
    a_never_read_stream_of_tiny_array_requests_costs_max_pending,
    connections_holding_partial_frames_stay_within_max_buffered,
);

const MIB: usize = 1 << 20;

/// The server's fd table, asked for now with SIGUSR1 and read from its stderr.
fn table_now(srv: &Server) -> String {
    let printed = srv.stderr().matches("fd table").count();
    srv.signal(libc::SIGUSR1);
    let stderr = srv.wait_for_stderr_until("an fd table", |t| {
        t.matches("fd table").count() > printed && t.rfind("summary:") > t.rfind("fd table")
    });
    stderr[stderr.rfind("fd table").unwrap()..].to_string()
}

/// True when the table shows `client`'s connection `paused`: its output
/// passed `--max-pending`, and the server reads from it no more.
fn paused(table: &str, client: &TcpStream) -> bool {
    let peer = client.local_addr().unwrap().to_string();
    table.lines().any(|l| l.contains(&peer) && l.contains(" paused "))
}

/// Asks for tables until `client`'s connection is paused (no sleeping: each
/// look waits for the server to print).
fn wait_until_paused(srv: &Server, client: &TcpStream) {
    for _ in 0..100_000 {
        if paused(&table_now(srv), client) {
            return;
        }
    }
    panic!("the connection never paused:\n{}", srv.stderr());
}

fn a_never_read_tripling_frame_costs_its_frame_and_max_pending(backend: &str) {
    let srv = Server::start(backend, &["--max-pending", "1MiB", "--max-frame", "16MiB"]);
    let before = peak_rss(&srv);
    // 16 MiB of 'ΐ' (2 bytes), which uppercases to 6: a 48 MiB reply, never read.
    let payload = "ΐ".repeat(8 * MIB).into_bytes();
    let mut client = connect(srv.addr("tcp-frame"));
    client.write_all(&frame(&payload)).unwrap();
    wait_until_paused(&srv, &client);
    let grew = peak_rss(&srv).saturating_sub(before);
    let bound = MIB + 16 * MIB + 8 * MIB;
    eprintln!("{backend}: a never-read 48 MiB reply grew the server by {} KiB", grew / 1024);
    assert!(grew < bound, "{backend}: grew {} MiB, bound {} MiB", grew / MIB, bound / MIB);
    // The reply is owed still, in full and in order, once the client reads.
    let expected = frame(&"ΐ".to_uppercase().repeat(8 * MIB).into_bytes());
    expect_bytes(&mut client, &expected);
}

fn a_never_read_stream_of_tiny_array_requests_costs_max_pending(backend: &str) {
    let srv = Server::start(backend, &["--max-pending", "4MiB", "--array-len", "10"]);
    let before = peak_rss(&srv);
    let mut client = connect(srv.addr("tcp-array"));
    client.set_nonblocking(true).unwrap();
    // `0:1` again and again: 11 bytes each, answered by 13 bytes and two queue entries.
    let requests = array_request("0:1").repeat(10_000);
    let mut sent = 0usize;
    loop {
        match client.write(&requests) {
            Ok(n) => sent += n,
            // The server stopped reading (or has not caught up): is it paused?
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let peer = client.local_addr().unwrap().to_string();
                srv.signal(libc::SIGUSR1);
                let tables = srv.stderr().matches("fd table").count();
                let table = srv
                    .wait_for_stderr_until("a table", |t| t.matches("fd table").count() > tables);
                let last = &table[table.rfind("fd table").unwrap()..];
                if last.lines().any(|l| l.contains(&peer) && l.contains(" paused ")) {
                    break;
                }
                let mut probe = [0u8; 0];
                let _ = std::io::Read::read(&mut client, &mut probe);
            }
            Err(e) => panic!("{backend}: write: {e}"),
        }
        assert!(sent < 512 * MIB, "{backend}: the server never stopped reading");
    }
    let grew = peak_rss(&srv).saturating_sub(before);
    // --max-pending, plus what one 64 KiB read of requests queues, plus slack.
    let bound = 4 * MIB + 4 * MIB;
    eprintln!("{backend}: {sent} bytes of tiny requests grew the server by {} KiB", grew / 1024);
    assert!(grew < bound, "{backend}: grew {} MiB, bound {} MiB", grew / MIB, bound / MIB);
}

fn connections_holding_partial_frames_stay_within_max_buffered(backend: &str) {
    let srv = Server::start(backend, &["--max-buffered", "64MiB", "--max-frame", "16MiB"]);
    let before = peak_rss(&srv);
    // 40 clients each send all of a 15 MiB frame but its last byte, and wait.
    let body = vec![b'x'; 15 * MIB - 1];
    let mut kept = Vec::new();
    let mut cut = 0;
    for _ in 0..40 {
        let mut client = connect(srv.addr("tcp-frame"));
        let sent =
            client.write_all(&frame_header(15 * MIB as u32)).and_then(|()| client.write_all(&body));
        match sent {
            Ok(()) => kept.push(client),
            Err(_) => cut += 1,
        }
    }
    // Whatever the kernel still holds for the last ones, an echo on a new
    // connection is served, and the server's memory is within the bound.
    let mut neighbour = connect(srv.addr("tcp-echo"));
    echo_roundtrip(&mut neighbour, b"still served");
    let grew = peak_rss(&srv).saturating_sub(before);
    let bound = 64 * MIB + 24 * MIB;
    eprintln!("{backend}: {} clients kept, {cut} cut; grew {} MiB", kept.len(), grew / MIB);
    assert!(grew < bound, "{backend}: grew {} MiB, bound {} MiB", grew / MIB, bound / MIB);
    let stderr = srv.stderr();
    assert!(stderr.contains("of --max-buffered"), "no connection was closed for it:\n{stderr}");
    // A kept one completes its frame and is answered in full.
    let mut first = kept.remove(0);
    first.write_all(b"x").unwrap();
    let reply = read_frame(&mut first);
    assert_eq!(reply.len(), 15 * MIB);
    assert!(reply.iter().all(|&b| b == b'X'));
}
