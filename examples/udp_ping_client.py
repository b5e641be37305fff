#!/usr/bin/env python3
"""udp-ping client: sends 'PING <seq>' datagrams and expects 'PONG <seq>'.

UDP may lose, duplicate or delay datagrams, so each ping waits at most
--timeout seconds and then counts as lost. The sequence number tells a reply
to this ping from a late reply to an earlier one, which is counted as late
and not mistaken for the current answer. Prints a round-trip time per reply
and a summary like ping(8); also checks that a datagram not starting with
PING is answered with a bare 'PONG'.

usage: python3 udp_ping_client.py [HOST [PORT]] [--count N] [--timeout S] [--max-lost K]
       (default 127.0.0.1 1234, 10 pings, 1 s, no loss allowed)
Exits 0 if every reply was right and at most --max-lost were lost, 1 otherwise.
"""

import argparse
import socket
import sys
import time


def wait_for_pong(sock, seq, deadline):
    """Returns 'ok', 'lost' or a description of what was wrong. Late replies
    to earlier pings are skipped. seq None: expects a bare PONG."""
    expected = b"PONG" if seq is None else f"PONG {seq}".encode()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "lost"
        sock.settimeout(left)
        try:
            reply = sock.recv(65536)
        except socket.timeout:
            return "lost"
        if reply == expected:
            return "ok"
        late = reply.startswith(b"PONG ") and reply[5:].isdigit() and (seq is None or int(reply[5:]) < seq)
        if not late:
            return f"wrong reply {reply!r}, expected {expected!r}"
        print(f"  late reply {reply!r} to an earlier ping, skipped")


def main():
    parser = argparse.ArgumentParser(description="udp-ping client")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=1234)
    parser.add_argument("--count", type=int, default=10, help="pings to send (default 10)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each")
    parser.add_argument("--max-lost", type=int, default=0, help="losses tolerated (default 0)")
    args = parser.parse_args()

    lost = wrong = 0
    times = []
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.connect(address)           # replies from anyone else are ignored
            for seq in range(args.count):
                sent_at = time.monotonic()
                sock.send(f"PING {seq}".encode())
                result = wait_for_pong(sock, seq, sent_at + args.timeout)
                if result == "ok":
                    times.append((time.monotonic() - sent_at) * 1000)
                    print(f"PONG {seq} from {args.host}:{args.port} time={times[-1]:.3f} ms")
                elif result == "lost":
                    lost += 1
                    print(f"PING {seq}: no reply within {args.timeout} s (lost)")
                else:
                    wrong += 1
                    print(f"PING {seq}: WRONG: {result}")
            # Anything that does not start with PING is answered with PONG alone.
            sock.send(b"hello")
            result = wait_for_pong(sock, None, time.monotonic() + args.timeout)
            print(f"sent b'hello': {'got PONG  ok' if result == 'ok' else 'WRONG: ' + result}")
            wrong += result != "ok"
    except OSError as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")

    received = len(times)
    summary = f"{args.count} sent, {received} received, {lost} lost"
    if times:
        summary += f", rtt min/avg/max {min(times):.3f}/{sum(times) / len(times):.3f}/{max(times):.3f} ms"
    print(summary)
    if wrong or lost > args.max_lost:
        sys.exit(f"FAIL: {wrong} wrong replies, {lost} lost (at most {args.max_lost} allowed)")


if __name__ == "__main__":
    main()
