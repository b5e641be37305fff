#!/usr/bin/env python3
"""tcp-array client (push wire, `pollmux serve --array-wire push`): the server
sends its whole array as soon as we connect - N little-endian float64 values,
no header - then closes. The client asks for nothing.

With no header, the client must know N beforehand (--len, the server's
--array-len). It allocates the array once with numpy.empty(N) and lets
recv_into() write each arriving piece straight into it until it is full.

recv_into() returns 0 when the server has closed. A loop that only subtracts
what arrived would then spin forever on a short array; this one stops and
says how much was missing. After the last value it also checks that the
server closes without sending more (a larger array than --len).

usage: python3 array_push_client.py [HOST [PORT]] [--len N]
       (default 127.0.0.1 25000, N = 50000000 as the server's default)
Exits 0 if the array arrived whole and equal to numpy.arange(N), 1 otherwise.
"""

import argparse
import socket
import sys

import numpy as np

TIMEOUT = 30.0


class Wrong(Exception):
    pass


def recv_into_array(sock, array):
    """Fills array from the socket; returns how many recv_into() calls it took."""
    view = memoryview(array).cast("B")      # the array's memory, as bytes
    total = len(view)
    calls = 0
    while len(view):
        received = sock.recv_into(view)
        calls += 1
        if received == 0:
            got = total - len(view)
            raise Wrong(f"server closed after {got} of {total} bytes ({got // 8} of "
                        f"{total // 8} values): is --len the server's --array-len?")
        view = view[received:]
    return calls


def main():
    parser = argparse.ArgumentParser(description="tcp-array client, push wire")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=25000)
    parser.add_argument("--len", type=int, default=50_000_000, metavar="N",
                        help="values the server pushes (its --array-len)")
    args = parser.parse_args()
    if args.len < 0:
        parser.error("--len must be 0 or more")

    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            array = np.empty(args.len, dtype="<f8")   # uninitialised: recv_into fills it
            print(f"connected; expecting {args.len} values ({array.nbytes} bytes)")
            calls = recv_into_array(sock, array)
            print(f"received {array.nbytes} bytes with {calls} recv_into() calls")
            if sock.recv(1):
                raise Wrong(f"server sent more than {args.len} values: is --len the server's --array-len?")
            print("then the server closed  ok")
    except (OSError, Wrong) as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")

    expected = np.arange(args.len, dtype="<f8")
    if not np.array_equal(array, expected):
        first = int(np.argmax(array != expected))
        sys.exit(f"FAIL: value {first} is {array[first]}, expected {expected[first]}")
    print(f"values {array[:3]}...{array[-2:]} == numpy.arange({args.len})  ok")


if __name__ == "__main__":
    main()
