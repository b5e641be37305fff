#!/usr/bin/env python3
"""A threaded server: one thread per client.

Blocking code as simple as the sequential server's, yet clients no longer wait
for each other: with --reply-delay 2000 two clients are each answered after two
seconds, not one after two and the other after four. The price is a thread
(and its stack) per connection.

Serves tcp-echo and tcp-upper (see common.py):
    python3 threaded.py --tcp-echo 0 --tcp-upper 0 [--reply-delay MS]

Fixed where the lessons' threaded servers go wrong: the handler leaves its loop
on EOF (instead of calling recv() on a closed socket), replies with sendall(),
keeps a character split across reads whole, and honours the client's
half-close. Client threads are daemons, so SIGTERM or Ctrl-C ends the process
at once, with status 0, whatever the clients are doing.
"""

import select
import sys
import threading
import time

from common import SERVICES, Stopped, open_listeners, parse_args, stop_on_signals


def serve_client(conn, service, delay):
    """Runs in the client's own thread: answers until EOF, then closes."""
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:                  # EOF: send what is still owed, then close
                    conn.sendall(service.finish())
                    return
                if delay:
                    time.sleep(delay)         # blocks this client's thread only
                conn.sendall(service.feed(data))
        except OSError as e:                  # a reset ends this client only
            print(f"client dropped: {e}", file=sys.stderr)


def main():
    args = parse_args(__doc__.splitlines()[0])
    stop_on_signals()                         # signals reach the main thread only
    listeners = open_listeners(args)
    by_fd = {sock.fileno(): (name, sock) for name, sock in listeners}
    try:
        while True:
            # The main thread only accepts: select() says which listener has a
            # client waiting, and each client is handed to a new thread.
            ready, _, _ = select.select(list(by_fd), [], [])
            for fd in ready:
                name, listener = by_fd[fd]
                try:
                    conn, _ = listener.accept()
                except OSError as e:
                    print(f"accept: {e}", file=sys.stderr)
                    continue
                worker = threading.Thread(target=serve_client, daemon=True,
                                          args=(conn, SERVICES[name](), args.reply_delay))
                worker.start()
    except Stopped:
        pass
    finally:
        for _, sock in listeners:
            sock.close()


if __name__ == "__main__":
    main()
