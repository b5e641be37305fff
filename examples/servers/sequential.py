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

from common import accept_forever, parse_args, serve_client


def main():
    args = parse_args(__doc__.splitlines()[0])
    # One thread: the client is served to its end, right here, while every
    # other waits in the listen backlog.
    accept_forever(args, lambda conn, service: serve_client(conn, service, args.reply_delay))


if __name__ == "__main__":
    main()
