#!/usr/bin/env python3
"""tcp-upper client: checks that the server uppercases a UTF-8 stream the way
Python's str.upper does, even when a character is cut in two by the network.

TCP carries bytes, not characters. 'straße' is 7 bytes, and 'ß' is two of them
(C3 9F). Here the first send() ends after C3, and we wait for the server's
answer to that part before sending the rest: a server that decodes each recv()
on its own either fails or answers garbage; a correct one answers 'STRA', holds
C3, and answers 'SSE' once 9F arrives.

usage: python3 upper_client.py [HOST [PORT]]     (default 127.0.0.1 1236)
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import sys

TIMEOUT = 10.0


def recv_exactly(sock, n):
    """Loops on recv() until n bytes came; fewer only if the server closed."""
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_until_closed(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def show(data):
    """The text, if the bytes are UTF-8 (easier to read), else the bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return repr(text) if len(text) <= 40 else f"{text[:30]!r}... ({len(data)} bytes)"


class Checker:
    def __init__(self):
        self.wrong = 0

    def check(self, what, got, expected):
        ok = got == expected
        print(f"  {what}: got {show(got)}  {'ok' if ok else f'WRONG, expected {show(expected)}'}")
        self.wrong += not ok


def split_character(address, checker):
    word = "straße".encode("utf-8")               # b'stra\xc3\x9fe'
    cut = word.index(b"\xc3") + 1                  # after the first byte of 'ß'
    first, second = word[:cut], word[cut:]
    print(f"'straße' in two sends: {first!r} then {second!r}")
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(first)
        # Waiting for this answer proves the server read the first part alone.
        checker.check("answer to the first part", recv_exactly(sock, 4), b"STRA")
        sock.sendall(second)
        sock.shutdown(socket.SHUT_WR)
        checker.check("answer to the second part", recv_until_closed(sock), b"SSE")


def whole(address, checker, data, expected, why):
    """Sends data, then EOF, and reads the answer until the server closes."""
    print(f"{why}: sent {show(data)}")
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        checker.check("answer", recv_until_closed(sock), expected)


def main():
    parser = argparse.ArgumentParser(description="tcp-upper client")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=1236)
    args = parser.parse_args()
    address = (args.host, args.port)
    checker = Checker()
    try:
        split_character(address, checker)
        for text in ["hello, wörld", "ﬁx ǆ ŉ", "привет", "ὀδυσσεύς 𐐨 日本 😀"]:
            whole(address, checker, text.encode("utf-8"), text.upper().encode("utf-8"),
                  "full Unicode mapping")
        whole(address, checker, b"ab\xffcd", b"AB\xffCD", "a byte that is not UTF-8 passes")
        whole(address, checker, b"euro \xe2\x82", b"EURO \xe2\x82",
              "a character cut short by EOF is sent as it came")
    except OSError as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if checker.wrong:
        sys.exit(f"FAIL: {checker.wrong} wrong replies")
    print("upper: all replies right")


if __name__ == "__main__":
    main()
