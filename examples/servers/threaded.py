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

import threading

from common import accept_forever, parse_args, serve_client


def main():
    args = parse_args(__doc__.splitlines()[0])

    def hand_over(conn, service):
        # The main thread only accepts; each client gets a thread of its own.
        threading.Thread(target=serve_client, args=(conn, service, args.reply_delay),
                         daemon=True).start()

    accept_forever(args, hand_over)


if __name__ == "__main__":
    main()
