#!/usr/bin/env python3
"""A sequential server: one client at a time, served to its end.

Every other client waits in the listen backlog (--backlog) until the one being
served disconnects, which is the point of this server: run two clients at once,
add --reply-delay 2000, and watch the second one wait.

Serves tcp-echo and tcp-upper (see common.py):
    python3 sequential.py --tcp-echo 0 --tcp-upper 0 [--reply-delay MS]

Compared with the lessons' sequential servers it is fixed where they go wrong:
the loop leaves on EOF instead of calling close() then recv() again, a reply
goes out with sendall() so no byte is dropped, a character split across two
reads is kept whole, a client that resets is dropped without ending the
server, and the client's half-close is honoured (what is owed is sent first).
"""

import select
import sys
import time

from common import SERVICES, Stopped, open_listeners, parse_args, stop_on_signals


def serve_client(conn, service, delay):
    """Answers one client until it sends EOF, then closes it."""
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:                  # EOF: the client has finished sending
                    conn.sendall(service.finish())
                    return
                if delay:
                    time.sleep(delay)         # the slow server of the lessons
                conn.sendall(service.feed(data))
        except OSError as e:                  # reset by the client: drop it, serve the next
            print(f"client dropped: {e}", file=sys.stderr)


def main():
    args = parse_args(__doc__.splitlines()[0])
    stop_on_signals()
    listeners = open_listeners(args)
    by_fd = {sock.fileno(): (name, sock) for name, sock in listeners}
    try:
        while True:
            # Two listeners, one thread: select() only tells which one has a
            # client waiting; that client then has the server to itself.
            ready, _, _ = select.select(list(by_fd), [], [])
            for fd in ready:
                name, listener = by_fd[fd]
                try:
                    conn, _ = listener.accept()
                except OSError as e:          # e.g. the client gave up while queued
                    print(f"accept: {e}", file=sys.stderr)
                    continue
                serve_client(conn, SERVICES[name](), args.reply_delay)
    except Stopped:
        pass
    finally:
        for _, sock in listeners:
            sock.close()


if __name__ == "__main__":
    main()
