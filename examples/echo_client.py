#!/usr/bin/env python3
"""tcp-echo client: sends a few messages on one connection and checks that
each comes back byte for byte, then half-closes and checks the server closes
too without sending anything more.

usage: python3 echo_client.py [HOST [PORT]]      (default 127.0.0.1 20000)
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import sys

TIMEOUT = 10.0      # seconds; a server that never answers is a failure, not a hang


def recv_exactly(sock, n):
    """recv() returns whatever has arrived, maybe less than asked: loop.
    Returns fewer than n bytes only if the server closed the connection."""
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def show(data):
    return repr(data) if len(data) <= 40 else f"{data[:30]!r}... ({len(data)} bytes)"


def main():
    parser = argparse.ArgumentParser(description="tcp-echo client")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=20000)
    args = parser.parse_args()

    messages = [
        b"hello",
        "caf\u00e9 \u2615 na\u00efve".encode("utf-8"),  # any bytes at all: echo does not decode
        bytes(range(256)),
        b"0123456789" * 10000,                          # more than one recv() can carry
    ]
    wrong = 0
    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            for message in messages:
                sock.sendall(message)
                print(f"sent {show(message)}")
                reply = recv_exactly(sock, len(message))
                verdict = "ok" if reply == message else "WRONG"
                print(f"got  {show(reply)}  {verdict}")
                wrong += reply != message
            # Half-close: we send no more, but can still read. The server must
            # answer everything owed (nothing here), then close its side.
            sock.shutdown(socket.SHUT_WR)
            rest = recv_exactly(sock, 1)
            print(f"after our EOF: {'server closed, ok' if not rest else 'WRONG, got more'}")
            wrong += rest != b""
    except OSError as e:    # refused, reset, timed out
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if wrong:
        sys.exit(f"FAIL: {wrong} wrong replies")
    print("echo: all replies right")


if __name__ == "__main__":
    main()
