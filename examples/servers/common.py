"""What the three reference servers share: the command line, the listening
sockets, the two byte-stream services (echo and upper) and a clean exit on
SIGTERM/SIGINT.

The servers differ only in how they wait for clients (one at a time, one thread
each, one poll loop for all); everything that must be identical between them,
and identical to pollmux, lives here once.
"""

import argparse
import codecs
import select
import signal
import socket
import sys
import time


# ------------------------------------------------------------- command line

def port_or_off(text):
    """A port number (0 = let the kernel pick a free one) or 'off'."""
    if text == "off":
        return None
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a port number nor 'off'")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address or name to bind on (default 127.0.0.1)")
    parser.add_argument("--tcp-echo", type=port_or_off, default=20000, metavar="PORT",
                        help="echo port, 0 for a free one, or off (default 20000)")
    parser.add_argument("--tcp-upper", type=port_or_off, default=1236, metavar="PORT",
                        help="uppercase port, 0 for a free one, or off (default 1236)")
    parser.add_argument("--backlog", type=int, default=128,
                        help="connections the kernel may queue before accept (default 128)")
    parser.add_argument("--reply-delay", type=int, default=0, metavar="MS",
                        help="milliseconds to wait before each reply, to make slowness visible")
    args = parser.parse_args()
    if args.tcp_echo is None and args.tcp_upper is None:
        parser.error("both services are off: nothing to serve")
    if args.reply_delay < 0:
        parser.error("--reply-delay must be 0 or more")
    args.reply_delay = args.reply_delay / 1000.0      # seconds from here on
    return args


# ------------------------------------------------------- listening sockets

def open_listeners(args, blocking=True):
    """Binds and listens for each enabled service, then prints one
    `listening SERVICE ADDRESS` line per service (the line scripts wait for).
    Returns a list of (service name, listening socket)."""
    listeners = []
    for name, port in (("tcp-echo", args.tcp_echo), ("tcp-upper", args.tcp_upper)):
        if port is None:
            continue
        # Like pollmux: a name is resolved and its first address used.
        family, kind, proto, _, address = socket.getaddrinfo(
            args.host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        # Restarting the server must not wait for old connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            sys.exit(f"cannot bind {name} to {args.host}:{port}: {e.strerror}")
        sock.listen(args.backlog)
        sock.setblocking(blocking)
        listeners.append((name, sock))
    # Print only once every socket is bound: a script that reads these lines can
    # connect at once, with no sleep and no retry.
    for name, sock in listeners:
        print(f"listening {name} {show_address(sock.getsockname())}", flush=True)
    return listeners


def show_address(address):
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ------------------------------------------------------------- the services
#
# Each connection gets its own service object. feed() takes the bytes just
# received and returns the reply owed for them; finish() is called once the
# client has sent EOF and returns whatever is still owed.

class Echo:
    def feed(self, data):
        return data

    def finish(self):
        return b""


class Upper:
    """Uppercases a UTF-8 byte stream the way pollmux does.

    - Full Unicode mapping, as str.upper: 'ß' becomes 'SS', 'ﬁ' becomes 'FI'.
    - A character cut in two by the network is held until its last byte
      arrives: the incremental decoder keeps the incomplete tail for us (the
      lessons' received.decode('utf-8') raises on it instead).
    - Bytes that are not UTF-8 pass through unchanged: 'surrogateescape' turns
      each into a lone surrogate, which str.upper leaves alone and the encoder
      turns back into the same byte.
    - At EOF a character still incomplete is sent as it came.
    """

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")

    def feed(self, data):
        return self.decoder.decode(data).upper().encode("utf-8", "surrogateescape")

    def finish(self):
        return self.decoder.decode(b"", final=True).upper().encode("utf-8", "surrogateescape")


SERVICES = {"tcp-echo": Echo, "tcp-upper": Upper}


# -------------------------------------------------------------------- exit

class Stopped(BaseException):
    """Raised by the signal handler; a BaseException so that no `except
    OSError` or `except Exception` on the way swallows it."""


def _stop(signum, frame):
    raise Stopped(signum)


def stop_on_signals():
    """SIGTERM and SIGINT (Ctrl-C) end the server with status 0: the handler
    raises Stopped in the main thread, which interrupts whatever blocking call
    it is in (accept, recv, select, poll)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


# ------------------------------------------------ the blocking servers' parts

def serve_client(conn, service, delay):
    """Answers one client on a blocking socket until its EOF (sending what is
    still owed), then closes it; `delay` seconds before each reply, as the
    lessons' slow servers sleep. A client that resets is dropped alone."""
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:                  # EOF: send what is still owed, then close
                    conn.sendall(service.finish())
                    return
                if delay:
                    time.sleep(delay)
                conn.sendall(service.feed(data))
        except OSError as e:
            print(f"client dropped: {e}", file=sys.stderr)


def accept_forever(args, hand_over):
    """Opens the listeners and accepts until SIGTERM or SIGINT, handing each
    client, with a fresh state of its service, to `hand_over(conn, service)`:
    the one thing the sequential and the threaded servers do differently."""
    stop_on_signals()                         # signals reach the main thread only
    listeners = open_listeners(args)
    by_fd = {sock.fileno(): (name, sock) for name, sock in listeners}
    try:
        while True:
            # select() only says which listener has a client waiting.
            ready, _, _ = select.select(list(by_fd), [], [])
            for fd in ready:
                name, listener = by_fd[fd]
                try:
                    conn, _ = listener.accept()
                except OSError as e:          # e.g. the client gave up while queued
                    print(f"accept: {e}", file=sys.stderr)
                    continue
                hand_over(conn, SERVICES[name]())
    except Stopped:
        pass
    finally:
        for _, sock in listeners:
            sock.close()
