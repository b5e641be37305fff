#!/usr/bin/env python3
"""tcp-frame client: length-prefixed messages ("blocks") over TCP.

A TCP stream has no message boundaries, so each message travels as a block: a
4-byte big-endian length, then that many bytes. The server answers each block
with one block holding the uppercased payload.

This client pipelines: it sends every block first, then reads the answers,
which must come back complete and in order - the empty block included, which
is answered by an empty block.

usage: python3 frame_client.py [HOST [PORT]]     (default 127.0.0.1 1241)
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import struct
import sys

TIMEOUT = 10.0
HEADER = struct.Struct("!I")        # network order (big-endian), unsigned 32 bits


def recvall(sock, length):
    """Reads exactly length bytes; a connection closed before that is an error
    (EOFError), never a short result taken for a whole one."""
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise EOFError(f"connection closed {length - len(data)} bytes before the end of a block")
        data += chunk
    return bytes(data)


def put_block(sock, payload):
    # Header and payload in one sendall: two small sends would be two packets.
    sock.sendall(HEADER.pack(len(payload)) + payload)


def get_block(sock):
    (length,) = HEADER.unpack(recvall(sock, HEADER.size))
    return recvall(sock, length)


def show(data):
    """The text, if the bytes are UTF-8 (easier to read), else the bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return repr(text) if len(text) <= 40 else f"{text[:30]!r}... ({len(data)} bytes)"


def main():
    parser = argparse.ArgumentParser(description="tcp-frame client")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=1241)
    args = parser.parse_args()

    texts = ["hello", "", "straße", "ﬁx ǆ привет", "x" * 70000]
    wrong = 0
    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            for text in texts:
                put_block(sock, text.encode("utf-8"))
                print(f"sent block {show(text.encode('utf-8'))}")
            for text in texts:
                expected = text.upper().encode("utf-8")
                reply = get_block(sock)
                verdict = "ok" if reply == expected else f"WRONG, expected {show(expected)}"
                print(f"got  block {show(reply)}  {verdict}")
                wrong += reply != expected
            sock.shutdown(socket.SHUT_WR)
            extra = sock.recv(1)
            print(f"after our EOF: {'server closed, ok' if not extra else 'WRONG, got more'}")
            wrong += extra != b""
    except (OSError, EOFError) as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if wrong:
        sys.exit(f"FAIL: {wrong} wrong replies")
    print("frame: all replies right")


if __name__ == "__main__":
    main()
