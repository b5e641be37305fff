#!/usr/bin/env python3
"""tcp-array client (fixed wire, `pollmux serve --array-wire fixed`): the
lessons' first array protocol, made exact.

A request is exactly 10 ASCII bytes, 'OFFSET:COUNT' with zeros in front of
OFFSET to make up the length ('5000:10000' is already 10; 7:3 is sent as
'00000007:3'). The server reads those 10 bytes, however many recv() calls
they take, answers with the raw values - COUNT little-endian float64, no
header, no status - and closes. So one connection carries one request, and
the client knows the reply's length only because it chose COUNT.

The client allocates numpy.empty(COUNT) and recv_into()s it until full, stops
with a clear message if the server closes early (recv_into returns 0), checks
that the server then closes, and compares with numpy.arange.

usage: python3 array_fixed_client.py [HOST [PORT]]   (default 127.0.0.1 25000)
The server's --array-len must be at least 15000 for these requests.
Exits 0 if every reply was right, 1 otherwise.
"""

import argparse
import socket
import sys

import numpy as np

TIMEOUT = 30.0
REQUEST_SIZE = 10


class Wrong(Exception):
    pass


def fixed_request(offset, count):
    """'OFFSET:COUNT' as exactly 10 ASCII bytes, the offset zero-padded."""
    width = REQUEST_SIZE - 1 - len(str(count))
    request = f"{offset:0{width}d}:{count}".encode("ascii") if width > 0 else b""
    if len(request) != REQUEST_SIZE:
        raise ValueError(f"{offset}:{count} does not fit in {REQUEST_SIZE} bytes")
    return request


def recv_into_array(sock, array):
    view = memoryview(array).cast("B")
    calls = 0
    while len(view):
        received = sock.recv_into(view)
        calls += 1
        if received == 0:
            raise Wrong(f"server closed {len(view)} bytes before the end of the values")
        view = view[received:]
    return calls


def fetch(address, offset, count):
    request = fixed_request(offset, count)
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(request)
        print(f"sent {request!r}")
        values = np.empty(count, dtype="<f8")
        calls = recv_into_array(sock, values)
        print(f"  received {values.nbytes} bytes with {calls} recv_into() calls")
        if sock.recv(1):
            raise Wrong(f"server sent more than {count} values")
    return values


def main():
    parser = argparse.ArgumentParser(description="tcp-array client, fixed wire")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=25000)
    args = parser.parse_args()

    wrong = 0
    try:
        for offset, count in [(5000, 10000), (7, 3), (0, 1)]:
            values = fetch((args.host, args.port), offset, count)
            expected = np.arange(offset, offset + count, dtype="<f8")
            if np.array_equal(values, expected):
                print(f"  values {values[:3]}...{values[-1:]} == numpy.arange  ok")
            else:
                print(f"  WRONG: got {values[:5]}..., expected {expected[:5]}...")
                wrong += 1
    except (OSError, Wrong) as e:
        sys.exit(f"FAIL: {args.host}:{args.port}: {e}")
    if wrong:
        sys.exit(f"FAIL: {wrong} wrong replies")
    print("array (fixed): all replies right")


if __name__ == "__main__":
    main()
