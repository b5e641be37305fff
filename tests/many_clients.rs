//! Hundreds of clients at once, each pipelining its messages, and clients that
//! stall or vanish without holding the others up.

mod common;

use common::*;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;

common::backend_tests!(
    many_tcp_clients_with_pipelined_messages_all_get_their_replies,
    many_udp_clients_each_get_their_own_replies,
    stalled_reader_does_not_block_other_clients,
    clients_that_vanish_mid_request_do_not_disturb_the_rest,
);

const TCP_CLIENTS: usize = 240;
const WORKERS: usize = 4;
const MESSAGES: usize = 20;
const STREAM_SERVICES: [&str; 4] = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array"];

/// What client `id` sends to `service` and must get back.
fn script(service: &str, id: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(id as u64 + 1000);
    let (mut wire, mut expected) = (Vec::new(), Vec::new());
    for m in 0..MESSAGES {
        let mut text = format!("client {id} message {m} ").into_bytes();
        let len = rng.below(40);
        text.extend(mixed_text(&mut rng, len));
        match service {
            "tcp-echo" => {
                wire.extend_from_slice(&text);
                expected.extend_from_slice(&text);
            }
            "tcp-upper" => {
                expected.extend(upper_model(&text));
                wire.extend(text);
            }
            "tcp-frame" => {
                wire.extend(frame(&text));
                expected.extend(frame(&upper_model(&text)));
            }
            _ => {
                let (offset, count) = ((id * 7 + m) % 900, (id + m) % 50);
                wire.extend(array_request(&format!("{offset}:{count}")));
                expected.extend_from_slice(&(1 + 8 * count as u32).to_be_bytes());
                expected.push(0);
                for v in array_slice(offset as u64, count as u64) {
                    expected.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    (wire, expected)
}

fn many_tcp_clients_with_pipelined_messages_all_get_their_replies(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "1000"]);
    // Every client is connected before any sends: all are open at once.
    let clients: Vec<(usize, &'static str, TcpStream)> = (0..TCP_CLIENTS)
        .map(|id| {
            let service = STREAM_SERVICES[id % STREAM_SERVICES.len()];
            (id, service, connect(srv.addr(service)))
        })
        .collect();
    let mut groups: Vec<Vec<_>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, (id, service, stream)) in clients.into_iter().enumerate() {
        let (wire, expected) = script(service, id);
        groups[i % WORKERS].push((id, service, stream, wire, expected));
    }
    let workers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            thread::spawn(move || {
                // All messages of every client go out before any reply is read.
                // Each client sends a few KiB: far below the socket buffers.
                for (_, _, stream, wire, _) in &mut group {
                    write_or_fail(stream, wire);
                }
                for (id, service, stream, _, expected) in &mut group {
                    let got = read_exact_or_fail(stream, expected.len());
                    if got != *expected {
                        eprintln!("client {id} of {service}:");
                        assert_bytes_eq(&got, expected);
                    }
                    stream.shutdown(Shutdown::Write).unwrap();
                    let rest = read_to_eof(stream);
                    assert!(
                        rest.is_empty(),
                        "client {id} of {service}: {} bytes after its replies",
                        rest.len()
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

fn many_udp_clients_each_get_their_own_replies(backend: &str) {
    let srv = Server::start(backend, &[]);
    let ping = srv.addr("udp-ping");
    let upper = srv.addr("udp-upper");
    let sockets: Vec<_> = (0..64).map(|_| udp_socket_for(ping)).collect();
    let send = |i: usize, socket: &std::net::UdpSocket| {
        socket.send_to(format!("PING {i}").as_bytes(), ping).unwrap();
        socket.send_to(format!("client {i} ß").as_bytes(), upper).unwrap();
    };
    for (i, socket) in sockets.iter().enumerate() {
        send(i, socket);
    }
    for (i, socket) in sockets.iter().enumerate() {
        let mut want: Vec<(SocketAddr, Vec<u8>)> = vec![
            (ping, format!("PONG {i}").into_bytes()),
            (upper, format!("CLIENT {i} SS").into_bytes()),
        ];
        let mut buf = [0u8; 256];
        let mut tries = 0;
        while !want.is_empty() {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let pos = want.iter().position(|(a, b)| *a == from && b == &buf[..n]);
                    match pos {
                        Some(p) => {
                            want.remove(p);
                        }
                        // A late duplicate of an answer already taken (after a resend).
                        None if !want.iter().any(|(a, _)| *a == from) => {}
                        None => panic!(
                            "client {i} got {:?} from {from}, wanted {want:?}",
                            Shown(&buf[..n])
                        ),
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    tries += 1;
                    assert!(tries < 5, "client {i}: no reply after 5 tries");
                    send(i, socket);
                }
                Err(e) => panic!("client {i}: {e}"),
            }
        }
    }
}

fn stalled_reader_does_not_block_other_clients(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "1000", "--max-pending", "1048576"]);
    // A client that pushes far more than the buffers hold and never reads.
    let stalled = connect(srv.addr("tcp-echo"));
    let mut writer = stalled.try_clone().unwrap();
    let flood = thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match std::io::Write::write(&mut writer, &chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    // Meanwhile every service answers others, repeatedly.
    for round in 0..3 {
        exchange_every_service(&srv, round);
    }
    // Ending the stalled client releases its writer; the server goes on.
    stalled.shutdown(Shutdown::Both).unwrap();
    let sent = flood.join().unwrap();
    assert!(sent < 64 << 20, "a client that never reads was sent {sent} bytes' worth of echo room");
    drop(stalled);
    exchange_every_service(&srv, 3);
}

fn exchange_every_service(srv: &Server, round: u64) {
    for (id, service) in STREAM_SERVICES.iter().enumerate() {
        let (wire, expected) = script(service, id + 10 * round as usize);
        assert_bytes_eq(&exchange(srv.addr(service), wire), &expected);
    }
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-ping"), b"PING r"), b"PONG r");
    assert_bytes_eq(&udp_roundtrip(srv.addr("udp-upper"), b"r"), b"R");
}

fn clients_that_vanish_mid_request_do_not_disturb_the_rest(backend: &str) {
    let srv = Server::start(backend, &["--array-len", "1000"]);
    for _ in 0..20 {
        // Half a frame, half a character, an unread reply, then gone.
        let mut s = connect(srv.addr("tcp-frame"));
        write_or_fail(&mut s, &[0, 0, 1]);
        drop(s);
        let mut s = connect(srv.addr("tcp-upper"));
        write_or_fail(&mut s, b"ab\xe2\x82");
        drop(s);
        let mut s = connect(srv.addr("tcp-array"));
        write_or_fail(&mut s, &array_request("0:1000"));
        drop(s);
        let mut s = connect(srv.addr("tcp-echo"));
        write_or_fail(&mut s, &[b'e'; 100_000]);
        // Reset rather than close, with the echo still owed.
        socket2::SockRef::from(&s).set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(s);
    }
    exchange_every_service(&srv, 0);
}
