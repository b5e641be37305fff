#!/usr/bin/env python3
"""tcp-array client (framed wire): asks for slices of the server's float64
array and receives them straight into numpy arrays, without copies.

The server holds a[i] = i for i < N (its --array-len). A request is one block
(4-byte big-endian length + payload) whose payload is ASCII 'OFFSET:COUNT'.
The answer is a 4-byte big-endian length L, a status byte, then L-1 bytes:
  status 0: COUNT little-endian float64 values, a[OFFSET:OFFSET+COUNT]
  status 1: a UTF-8 error message (the connection stays usable)

The values are not collected into a bytes object and converted: numpy.empty()
allocates the result once, and recv_into() has the kernel copy each arriving
piece directly into the array's memory (a memoryview of it, cast to bytes).

usage: python3 array_framed_client.py [HOST [PORT]] [--array-len N]
       (default 127.0.0.1 25000, N = 50000000 as the server's default)
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import struct
import sys

import numpy as np

TIMEOUT = 30.0
LENGTH = struct.Struct("!I")


class Wrong(Exception):
    pass


def recvall(sock, length):
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise Wrong(f"server closed the connection {length - len(data)} bytes early")
        data += chunk
    return bytes(data)


def recv_into_array(sock, array):
    """Fills array from the socket: each recv_into() writes where the last one
    stopped. Returns how many recv_into() calls it took."""
    view = memoryview(array).cast("B")      # the array's own bytes, not a copy
    calls = 0
    while len(view):
        received = sock.recv_into(view)
        calls += 1
        if received == 0:                   # 0 means EOF: without this test, a loop forever
            raise Wrong(f"server closed the connection {len(view)} bytes before the end of the values")
        view = view[received:]
    return calls


def ask(sock, offset, count):
    """Sends one request; returns (status, values or error message)."""
    request = f"{offset}:{count}".encode("ascii")
    sock.sendall(LENGTH.pack(len(request)) + request)
    length, status = struct.unpack("!IB", recvall(sock, 5))
    if status == 0:
        if length - 1 != count * 8:
            raise Wrong(f"status 0 with {length - 1} bytes of values, expected {count * 8}")
        values = np.empty(count, dtype="<f8")   # little-endian float64, as on the wire
        calls = recv_into_array(sock, values)
        print(f"  received {count * 8} bytes of values with {calls} recv_into() calls")
        return status, values
    if status == 1:
        return status, recvall(sock, length - 1).decode("utf-8")
    raise Wrong(f"status byte {status}, neither 0 nor 1: is this the tcp-array port?")


def main():
    parser = argparse.ArgumentParser(description="tcp-array client, framed wire")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=25000)
    parser.add_argument("--array-len", type=int, default=50_000_000, metavar="N",
                        help="the server's --array-len")
    args = parser.parse_args()
    n = args.array_len
    if n < 10:
        parser.error("--array-len must be at least 10 for these requests")

    good = [(0, 10), (n // 2, min(n // 2, 100_000)), (n - 3, 3), (5, 0)]
    wrong = 0
    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            for offset, count in good:
                print(f"request {offset}:{count}")
                status, values = ask(sock, offset, count)
                expected = np.arange(offset, offset + count, dtype="<f8")
                if status != 0:
                    print(f"  WRONG: status {status}: {values}")
                    wrong += 1
                elif not np.array_equal(values, expected):
                    print(f"  WRONG: got {values[:5]}..., expected {expected[:5]}...")
                    wrong += 1
                else:
                    print(f"  status 0, values {values[:3]}...{values[-2:]} == numpy.arange  ok")
            # Past the end: an error reply, and the connection goes on.
            print(f"request {n - 1}:2 (one value past the end)")
            status, message = ask(sock, n - 1, 2)
            if status == 1:
                print(f"  status 1, message {message!r}  ok")
            else:
                print(f"  WRONG: status {status}, expected 1")
                wrong += 1
            print("request 1:1 (still usable after an error)")
            status, values = ask(sock, 1, 1)
            ok = status == 0 and values.tolist() == [1.0]
            print(f"  status {status}, {values}  {'ok' if ok else 'WRONG'}")
            wrong += not ok
    except (OSError, Wrong, UnicodeDecodeError) as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if wrong:
        sys.exit(f"FAIL: {wrong} wrong replies")
    print("array (framed): all replies right")


if __name__ == "__main__":
    main()
