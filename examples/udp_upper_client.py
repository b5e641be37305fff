#!/usr/bin/env python3
"""udp-upper client: each datagram is answered by one datagram, its
uppercased form (UTF-8, full Unicode mapping; bytes that are not UTF-8 pass).

No connection, no stream: a datagram arrives whole or not at all, so there is
nothing to reassemble - but it may be lost, so every wait has a timeout and a
lost datagram is sent again (a few times) before giving up.

usage: python3 udp_upper_client.py [HOST [PORT]]     (default 127.0.0.1 1235)
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import sys

TIMEOUT = 1.0
TRIES = 3


def ask(sock, datagram):
    """Sends datagram and returns the reply, retrying on timeouts."""
    for _ in range(TRIES):
        sock.send(datagram)
        try:
            return sock.recv(65536)
        except socket.timeout:
            print(f"  no reply within {TIMEOUT} s, sending again")
    raise TimeoutError(f"no reply to {datagram!r} after {TRIES} tries")


def show(data):
    """The text, if the bytes are UTF-8 (easier to read), else the bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return repr(text) if len(text) <= 40 else f"{text[:30]!r}... ({len(data)} bytes)"


def main():
    parser = argparse.ArgumentParser(description="udp-upper client")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=1235)
    args = parser.parse_args()

    cases = [(text.encode("utf-8"), text.upper().encode("utf-8"))
             for text in ["hello", "straße", "ﬁx ǆ привет", "日本 😀 𐐨", ""]]
    cases.append((b"a\xffb", b"A\xffB"))
    wrong = 0
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(TIMEOUT)
            # connect() on UDP sends nothing: it fixes the peer, so send() needs
            # no address, replies from anyone else are ignored, and "port
            # unreachable" comes back as ConnectionRefusedError.
            sock.connect(address)
            for datagram, expected in cases:
                reply = ask(sock, datagram)
                ok = reply == expected
                print(f"sent {show(datagram)}, got {show(reply)}  {'ok' if ok else f'WRONG, expected {show(expected)}'}")
                wrong += not ok
    except OSError as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if wrong:
        sys.exit(f"FAIL: {wrong} wrong replies")
    print("udp-upper: all replies right")


if __name__ == "__main__":
    main()
