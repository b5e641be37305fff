#!/usr/bin/env python3
"""A poll() multiplexer: one thread serves every client.

The whole server is one loop around select.poll(): it sleeps until some socket
is ready (or a delayed reply falls due), does the little work that is possible
without blocking, and goes back to sleep. Per connection it keeps, keyed by
file descriptor, the same three dicts as the lessons' multiplexing server:

    sockets   fd -> socket object
    received  fd -> input read but not yet answered: (due time, bytes) in order
    to_send   fd -> bytes answered but not yet taken by the kernel

plus the connection's service (which holds a character cut in two by the
network) and whether its client has sent EOF.

Serves tcp-echo and tcp-upper (see common.py):
    python3 poll_server.py --tcp-echo 0 --tcp-upper 0 [--reply-delay MS]

--reply-delay never sleeps: a reply's due time becomes poll()'s timeout, so
one slow reply holds up nobody else.

Fixed where the lessons' multiplexing server goes wrong:
  - every socket is non-blocking, so no send() or recv() can stall the loop;
  - POLLOUT is asked for only while output is pending (asking for it always
    makes poll() return at once, forever), and what send() did not take stays
    queued instead of being recomputed;
  - a connection is unregistered BEFORE its socket is closed: afterwards the
    socket has no descriptor to unregister, and the number may already belong
    to the next client accepted;
  - EOF is not the end: the client may have half-closed, so everything owed is
    sent first, then the socket is closed (the lessons closed it at once and
    left it registered);
  - POLLHUP/POLLERR are not dropped on the floor: what is left is read to EOF
    (or to the error), answered if the socket still takes it, then closed;
  - a character split across two reads is held until complete.
"""

import collections
import select
import sys
import time

from common import SERVICES, Stopped, open_listeners, parse_args, stop_on_signals

# Stop reading from a client while this much of its input or output is
# waiting: a client that sends without reading cannot make us hold unbounded
# memory (it resumes once its output drains).
MAX_PENDING = 1 << 20

HANGUP = select.POLLHUP | select.POLLERR


class PollServer:
    def __init__(self, listeners, delay):
        self.delay = delay
        self.poller = select.poll()
        self.listeners = {}          # fd -> service name, for the listening sockets
        self.sockets = {}            # fd -> socket, listeners and connections
        self.received = {}           # fd -> deque of (due, bytes or None for EOF)
        self.to_send = {}            # fd -> bytearray of output not yet sent
        self.services = {}           # fd -> Echo() or Upper()
        self.at_eof = set()          # fds whose client has sent EOF
        for name, sock in listeners:
            fd = sock.fileno()
            self.listeners[fd] = name
            self.sockets[fd] = sock
            self.poller.register(fd, select.POLLIN)

    # ------------------------------------------------------------ the loop

    def run(self):
        while True:
            for fd, events in self.poller.poll(self.timeout_ms()):
                if fd not in self.sockets:            # closed earlier in this batch
                    continue
                if events & select.POLLNVAL:          # cannot happen: we unregister first
                    self.poller.unregister(fd)
                    self.forget(fd)
                elif fd in self.listeners:
                    self.accept_all(fd)
                elif events & HANGUP:
                    self.on_hangup(fd)
                else:
                    if events & select.POLLIN:
                        self.on_readable(fd)
                    if events & select.POLLOUT and fd in self.sockets:
                        self.flush(fd)
                    if fd in self.sockets:
                        self.update(fd)
            if self.delay:
                self.answer_everyone_due()

    def timeout_ms(self):
        """How long poll() may sleep: until the earliest delayed reply is due,
        or forever (None) if none is waiting. A real server would keep the due
        times in a heap rather than look at every connection."""
        if not self.delay:
            return None                               # every input is answered at once
        dues = [queue[0][0] for queue in self.received.values() if queue]
        if not dues:
            return None
        return max(0, int((min(dues) - time.monotonic()) * 1000) + 1)

    # ---------------------------------------------------------- listeners

    def accept_all(self, fd):
        """Accepts every client waiting: the listener is non-blocking, so
        accept() says 'no more' instead of blocking."""
        listener = self.sockets[fd]
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as e:                      # e.g. out of descriptors
                print(f"accept: {e}", file=sys.stderr)
                return
            conn.setblocking(False)
            cfd = conn.fileno()
            self.sockets[cfd] = conn
            self.received[cfd] = collections.deque()
            self.to_send[cfd] = bytearray()
            self.services[cfd] = SERVICES[self.listeners[fd]]()
            self.poller.register(cfd, select.POLLIN)

    # -------------------------------------------------------- connections

    def on_readable(self, fd, to_eof=False):
        """Reads once (poll will say again if more is waiting), or until EOF or
        an error when to_eof is set. Returns False if the connection closed."""
        while True:
            try:
                data = self.sockets[fd].recv(65536)
            except BlockingIOError:
                return True
            except OSError as e:                      # reset: nothing more can be sent
                print(f"client dropped: {e}", file=sys.stderr)
                self.close(fd)
                return False
            now = time.monotonic()
            if not data:
                if fd not in self.at_eof:
                    # EOF goes through the same queue as data, so that it is
                    # handled after every reply owed before it. It is not
                    # delayed itself.
                    self.at_eof.add(fd)
                    self.received[fd].append((now, None))
                    self.answer_due(fd, now)
                return fd in self.sockets            # sending may have failed
            self.received[fd].append((now + self.delay, data))
            self.answer_due(fd, now)
            if fd not in self.sockets:
                return False
            if not to_eof:
                return True

    def on_hangup(self, fd):
        """POLLHUP or POLLERR: the client closed or reset the connection. Read
        what is left up to EOF (an error, if any, is collected there), answer
        it if the socket still accepts data, and close: there is no later."""
        if self.on_readable(fd, to_eof=True):
            self.answer_due(fd, float("inf"))   # sends at once, if it still can
        if fd in self.sockets:
            self.close(fd)

    def answer_due(self, fd, now):
        """Turns every input whose time has come into output, in order, then
        tries to send it at once."""
        queue, service, out = self.received[fd], self.services[fd], self.to_send[fd]
        answered = False
        while queue and queue[0][0] <= now:
            _, data = queue.popleft()
            out += service.finish() if data is None else service.feed(data)
            answered = True
        if answered:
            self.flush(fd)

    def answer_everyone_due(self):
        now = time.monotonic()
        for fd in [fd for fd, queue in self.received.items() if queue and queue[0][0] <= now]:
            if fd in self.sockets:
                self.answer_due(fd, now)
            if fd in self.sockets:
                self.update(fd)

    def flush(self, fd):
        """Sends what the kernel takes now; the rest waits for POLLOUT.
        Returns False if the connection closed."""
        out = self.to_send[fd]
        while out:
            try:
                sent = self.sockets[fd].send(out)
            except BlockingIOError:                   # the kernel's buffer is full
                return True
            except OSError as e:                      # EPIPE, ECONNRESET
                print(f"client dropped: {e}", file=sys.stderr)
                self.close(fd)
                return False
            del out[:sent]
        return True

    def update(self, fd):
        """Asks poll for what this connection needs next, or closes it once
        its client has sent EOF and been sent everything."""
        queue, out = self.received[fd], self.to_send[fd]
        if fd in self.at_eof and not queue and not out:
            self.close(fd)
            return
        events = 0
        held = len(out) + sum(len(data) for _, data in queue if data)
        if fd not in self.at_eof and held < MAX_PENDING:
            events |= select.POLLIN       # after EOF, POLLIN would report EOF forever
        if out:
            events |= select.POLLOUT      # only while there is something to send
        self.poller.modify(fd, events)    # 0 still reports POLLHUP and POLLERR

    def close(self, fd):
        self.poller.unregister(fd)        # first: after close() the fd may be reused
        self.forget(fd).close()

    def forget(self, fd):
        for table in (self.received, self.to_send, self.services, self.listeners):
            table.pop(fd, None)
        self.at_eof.discard(fd)
        return self.sockets.pop(fd)

    def close_all(self):
        for fd in list(self.sockets):
            self.close(fd)


def main():
    args = parse_args(__doc__.splitlines()[0])
    stop_on_signals()
    server = PollServer(open_listeners(args, blocking=False), args.reply_delay)
    try:
        server.run()
    except Stopped:
        pass
    finally:
        server.close_all()


if __name__ == "__main__":
    main()
