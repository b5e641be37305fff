#!/usr/bin/env python3
"""An independent client of pollmux: exercises every service with Python's
socket module and asserts exact bytes. tcp-upper is checked against Python's
own str.upper over every assigned character. Exits 0 when all checks pass.

usage: contract.py --tcp-echo ADDR --tcp-upper ADDR --tcp-frame ADDR
                   --tcp-array ADDR --udp-upper ADDR --udp-ping ADDR
                   --array-len N
ADDR is HOST:PORT, with an IPv6 host in brackets ([::1]:1234).
"""

import argparse
import socket
import struct
import sys
import threading
import unicodedata

TIMEOUT = 20.0
checks = 0


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def family(addr):
    return socket.AF_INET6 if ":" in addr[0] else socket.AF_INET


def check(what, got, expected):
    global checks
    if got != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
            min(len(got), len(expected)),
        )
        sys.exit(
            f"FAIL {what}: differs at offset {at} (got {len(got)} items, expected {len(expected)})\n"
            f"     got[{at}:]: {got[at:at + 40]!r}\n"
            f"expected[{at}:]: {expected[at:at + 40]!r}"
        )
    checks += 1


def connect(addr):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            sys.exit(f"FAIL: EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_to_eof(s):
    buf = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk


def exchange(addr, data):
    """Sends data then FIN from a thread while reading everything until EOF."""
    with connect(addr) as s:
        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        got = recv_to_eof(s)
        sender.join()
        return got


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def read_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return recv_exact(s, n)


def udp(addr, data):
    with socket.socket(family(addr), socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        s.connect(addr)
        for _ in range(5):
            s.send(data)
            try:
                return s.recv(65536)
            except socket.timeout:
                continue
        sys.exit(f"FAIL: no UDP reply to {data!r} from {addr}")


def upper(data):
    """Python's str.upper on valid UTF-8; other bytes unchanged."""
    out = bytearray()
    while data:
        try:
            out += data.decode("utf-8").upper().encode("utf-8")
            break
        except UnicodeDecodeError as e:
            out += data[: e.start].decode("utf-8").upper().encode("utf-8")
            out += data[e.start : e.end]
            data = data[e.end :]
    return bytes(out)


def test_echo(addr):
    data = bytes(range(256)) * 64
    check("tcp-echo all byte values", exchange(addr, data), data)
    with connect(addr) as s:
        for i in range(10):
            msg = f"line {i}\n".encode()
            s.sendall(msg)
            check("tcp-echo conversation", recv_exact(s, len(msg)), msg)


# Characters given capitals only after Unicode 14 (Unicode 16); skipped while
# this Python knows no more than that.
NEWLY_CASED = {0x019B, 0x0264, 0xA7D3, 0xA7D5}


def test_upper(addr):
    check("straße", exchange(addr, "straße".encode()), b"STRASSE")
    for text in ["ǆ ﬁ ŉ ΐ ǰ ᾳ ı µ ÿ", "привет, мир", "ὀδυσσεύς", "日本語 😀 𐐨"]:
        check(f"tcp-upper {text!r}", exchange(addr, text.encode()), text.upper().encode())
    old_unicode = tuple(map(int, unicodedata.unidata_version.split("."))) < (16,)
    chars = [
        chr(c)
        for c in range(0x110000)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")
        and not (old_unicode and c in NEWLY_CASED)
    ]
    text = "".join(chars)
    check("tcp-upper every assigned character", exchange(addr, text.encode()).decode(), text.upper())
    for raw in [b"ab\xffcd", b"\x80x\xc3(", b"\xed\xa0\x80s", b"abc\xe2\x82", b"x\xf0\x9f\x98"]:
        check(f"tcp-upper {raw!r}", exchange(addr, raw), upper(raw))
    # A character split across writes, the first part answered on its own.
    with connect(addr) as s:
        s.sendall(b"a\xc3")
        check("tcp-upper before split", recv_exact(s, 1), b"A")
        s.sendall(b"\x9fb")
        check("tcp-upper after split", recv_exact(s, 3), b"SSB")


def test_frame(addr):
    payloads = [b"hello", b"", "straße".encode(), "ǆ ﬁ привет".encode(), b"\xff\x00a", b"x" * 100000]
    with connect(addr) as s:
        for p in payloads:
            s.sendall(frame(p))
            check(f"tcp-frame {p[:20]!r}", read_frame(s), upper(p))
    got = exchange(addr, b"".join(frame(p) for p in payloads))
    check("tcp-frame pipelined", got, b"".join(frame(upper(p)) for p in payloads))


def ask_array(s, request):
    s.sendall(frame(request.encode()))
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    body = recv_exact(s, n)
    return body[0], body[1:]


def test_array(addr, length):
    with connect(addr) as s:
        for offset, count in [(0, 1), (0, length), (length - 1, 1), (3, 7), (5, 0)]:
            status, body = ask_array(s, f"{offset}:{count}")
            check(f"tcp-array {offset}:{count} status", status, 0)
            values = list(struct.unpack(f"<{count}d", body))
            check(f"tcp-array {offset}:{count} values", values, [float(i) for i in range(offset, offset + count)])
        bad = ["abc", "1:", ":1", "1:2:3", "-1:2", " 1:2", "", "18446744073709551616:1",
               "18446744073709551615:2", f"{length - 1}:2", f"{length}:1"]
        for request in bad:
            status, body = ask_array(s, request)
            check(f"tcp-array {request!r} status", status, 1)
            body.decode("utf-8")
            check(f"tcp-array {request!r} has a message", len(body) > 0, True)
            status, body = ask_array(s, "1:1")
            check(f"tcp-array usable after {request!r}", (status, body), (0, struct.pack("<d", 1.0)))


def test_udp_upper(addr):
    for data in [b"hello", "straße".encode(), "ǆ ﬁ привет 😀".encode(), b"a\xffb"]:
        check(f"udp-upper {data!r}", udp(addr, data), upper(data))


def test_udp_ping(addr):
    for data, expected in [(b"PING", b"PONG"), (b"PING 7", b"PONG 7"), (b"PINGx", b"PONGx"),
                           (b"", b"PONG"), (b"hello", b"PONG"), (b"ping 1", b"PONG")]:
        check(f"udp-ping {data!r}", udp(addr, data), expected)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for service in ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"]:
        ap.add_argument(f"--{service}", required=True, type=parse_addr)
    ap.add_argument("--array-len", required=True, type=int)
    args = ap.parse_args()
    test_echo(args.tcp_echo)
    test_upper(args.tcp_upper)
    test_frame(args.tcp_frame)
    test_array(args.tcp_array, args.array_len)
    test_udp_upper(args.udp_upper)
    test_udp_ping(args.udp_ping)
    print(f"contract: {checks} checks passed")


if __name__ == "__main__":
    main()
