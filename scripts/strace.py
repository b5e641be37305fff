#!/usr/bin/env python3
"""`make strace [BACKEND=poll|select|epoll]`: pollmux under strace, one exchange per service.

Starts target/release/pollmux under `strace -f -tt`, limited to the calls
ffi-notes/ explains, waits for its six `listening` lines, drives one exchange
per service, asks for the fd table with SIGUSR1, stops it with SIGTERM while
a connection is open, and prints how many times each call was made. Writes
    target/strace/pollmux-<backend>.trace   the trace, one line per call
    target/strace/pollmux-<backend>.log     the server's stderr
Nothing here sleeps: the server is ready once it has printed its `listening`
lines, an exchange is over when its reply has been read, and a signal has
been handled when the server has logged it. (Before each signal, and before
--attach attaches, /proc is polled until the server is blocked in its wait
call; --errors sleeps once, to let the accept back-off timer fire.)

--python (`make strace-python`) runs the same exchanges against the Python
poll reference server, examples/servers/poll_server.py, which serves
tcp-echo and tcp-upper only, with the interpreter running this script
(python-poll.trace): the trace that ffi-notes/README.md sets beside
pollmux's. It has no SIGUSR1 (the signal's default action would kill it) and
no drain (SIGTERM closes every socket at once).

STRACE_OPTS adds strace flags, e.g. STRACE_OPTS=-yy shows what each descriptor
is: 4<TCP:[127.0.0.1:20000]>.

--attach starts pollmux without strace, attaches `strace -p` to it once it
is blocked in its wait call, sends one datagram and stops it with SIGTERM
(pollmux-<backend>-attach.trace): what attaching does to a blocked wait.

--errors drives the error paths instead (pollmux-<backend>-errors.trace),
with a hard RLIMIT_NOFILE of 16 from the start, so the server lowers
--max-conns to what the limit leaves: a UDP reply too large for a datagram
(EMSGSIZE); a PONG sent to udp-ping, which is not answered; a peer that
resets an idle connection and one that resets during a large reply
(ECONNRESET, EPIPE, or POLLERR|POLLHUP); one connection more than
--max-conns (accepted and closed at once); then the server's soft limit is
lowered from outside (prlimit(2) on its pid, as `prlimit --pid` does) to
its lowest free descriptor, so the next accept4 fails with EMFILE: the
listeners leave the wait set until the 100 ms back-off ends or a connection
closes. With poll, last, the soft limit is lowered below the number of
watched descriptors, so poll(2) itself fails (EINVAL) and the server backs
off and retries until the limit is put back.
"""

import argparse
import collections
import os
import queue
import re
import resource
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# The network calls, the three wait APIs (with the p-variants glibc may call
# instead: select(3) is pselect6(2) in glibc 2.36), the signal descriptor, the
# descriptor limit, read/write/close (the signalfd is read with read(2), the
# log and the SIGUSR1 table are written with write(2), every socket ends with
# close(2)), and the sleep after a failed wait (std::thread::sleep is
# nanosleep(3), the clock_nanosleep syscall in glibc 2.36).
CALLS = [
    "%network",
    "poll", "ppoll", "select", "pselect6",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "signalfd4", "rt_sigprocmask",
    "read", "write", "close",
    "prlimit64",
    "nanosleep", "clock_nanosleep",
    "restart_syscall",
]
# --python traces these too: how CPython makes a socket non-blocking
# (ioctl FIONBIO), and how its signal handler runs (rt_sigaction at start, the
# signal's delivery, rt_sigreturn).
PYTHON_CALLS = CALLS + ["ioctl", "fcntl", "rt_sigaction", "rt_sigreturn"]
# The Python poll reference server and the services it has.
PYTHON_SERVER = "examples/servers/poll_server.py"
PYTHON_SERVICES = ["tcp-echo", "tcp-upper"]
# x86-64 numbers of the wait calls, to see in /proc/PID/syscall that the
# server is blocked in one (before --attach attaches, and before a signal).
WAIT_SYSCALL_NR = {"poll": 7, "select": 270, "epoll": 232}
SERVICES = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"]
TIMEOUT = 10.0  # hang guard of every client socket and of the server's exit
# The soft descriptor limit the server starts with: a common default, lower
# than the hard limit, so the trace shows the server raising it.
SOFT_NOFILE = 1024
# --errors: soft = hard = this, so the server lowers --max-conns to a few.
ERRORS_NOFILE = 16


def free_ports(services):
    """`--SERVICE 0` for each: every port chosen by the kernel."""
    return [arg for service in services for arg in (f"--{service}", "0")]


def child_of(ppid):
    """The pid of the process strace started (the server), read from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid ...: comm may hold spaces, so split after ')'
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            return int(entry)
    return None


class TracedServer:
    """A server under strace; its stderr is copied to the log and kept for `await_log`.

    `server` is the command line after `strace ... --`; `services` the
    `listening` lines to wait for; `nofile` the (soft, hard) RLIMIT_NOFILE it
    starts with (None: SOFT_NOFILE, and the hard limit this script has)."""

    def __init__(self, server, services, trace, log, nofile, calls=CALLS, env=None):
        def limit_nofile():
            soft, hard = nofile
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile is None:
            soft = SOFT_NOFILE if hard == resource.RLIM_INFINITY else min(SOFT_NOFILE, hard)
            nofile = (soft, hard)
        command = [
            "strace", "-f", "-tt", *shlex.split(os.environ.get("STRACE_OPTS", "")),
            "-o", trace, "-e", "trace=" + ",".join(calls), *server,
        ]
        print(f"$ ulimit -S -n {nofile[0]} -H -n {nofile[1]}; {shlex.join(command)}")
        self.log_path = log
        self.lines = queue.Queue()
        # close_fds (the default): the server starts with only 0, 1 and 2
        # open, so its descriptor numbers are those of ffi-notes/.
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit_nofile,
            env=env,
        )
        threading.Thread(target=self._copy_stderr, daemon=True).start()
        self.addrs = {}
        self.pid = None
        while len(self.addrs) < len(services):
            line = self.proc.stdout.readline()
            if not line:
                self.fail("the server exited before printing its listening lines")
            words = line.split()
            if len(words) == 3 and words[0] == "listening":
                host, _, port = words[2].rpartition(":")
                self.addrs[words[1]] = (host.strip("[]"), int(port))
        self.pid = child_of(self.proc.pid)
        if self.pid is None:
            self.fail(f"cannot find the server under strace (pid {self.proc.pid})")

    def _copy_stderr(self):
        with open(self.log_path, "w") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                self.lines.put(line)

    def await_log(self, fragment):
        """Blocks until the server logs a line containing `fragment`."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.fail(f"the server never logged {fragment!r}")
            if fragment in line:
                return line

    def signal(self, signum):
        # The server, not strace: a signal to strace makes it detach before the shutdown.
        os.kill(self.pid, signum)

    def terminate(self):
        self.signal(signal.SIGTERM)

    def set_nofile(self, soft):
        """Sets the server's soft RLIMIT_NOFILE from outside, keeping its hard
        limit: prlimit(2) on its pid, what `prlimit --pid PID --nofile=SOFT:` does."""
        _, hard = resource.prlimit(self.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(self.pid, resource.RLIMIT_NOFILE, (soft, hard))
        print(f"  prlimit --pid {self.pid} --nofile={soft}:{hard}")

    def lowest_free_fd(self):
        """The number the server's next new descriptor gets (the lowest free one)."""
        held = {int(fd) for fd in os.listdir(f"/proc/{self.pid}/fd")}
        return next(fd for fd in range(len(held) + 1) if fd not in held)

    def wait(self):
        try:
            status = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"the server did not exit within {TIMEOUT} s")
        if status != 0:
            self.fail(f"strace/the server exited with status {status}")

    def kill(self):
        """Stops both processes if they still run: the server first, since a
        killed strace would leave it running, detached."""
        if self.proc.poll() is None:
            if self.pid is not None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()

    def fail(self, message):
        self.kill()
        with open(self.log_path) as f:
            sys.exit(f"{message}\nserver stderr:\n{f.read()}")


# ------------------------------------------------------------------ clients


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, expected {want!r}")
    shown = got if len(got) <= 40 else got[:40] + b"..."
    print(f"  {what}: {shown!r}")


def tcp(addr):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_exact(s, n):
    got = b""
    while len(got) < n and (chunk := s.recv(n - len(got))):
        got += chunk
    return got


def read_to_eof(s):
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def reset(s):
    """close(2) with SO_LINGER {on, 0 s}: the kernel sends RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def half_close_exchange(addr, request):
    """Request, FIN, then every reply byte up to the server's FIN: the server's
    recv of 0 and its close(2) are in the trace before the next exchange."""
    with tcp(addr) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        return read_to_eof(s)


def udp_socket(addr):
    s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    return s


def udp_exchange(addr, datagram):
    with udp_socket(addr) as s:
        s.sendto(datagram, addr)
        return s.recv(65536)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def drive(srv, backend, sigusr1=True):
    """One exchange per service the server has (those it printed a
    `listening` line for), then, with the echo connection still open,
    SIGUSR1 (pollmux only) and SIGTERM, each once the server is blocked in
    `backend`'s wait call, so that the trace shows the signal arriving
    there, whatever the timing."""
    addrs = srv.addrs
    print("exchanges:")
    if "tcp-upper" in addrs:
        expect("tcp-upper", half_close_exchange(addrs["tcp-upper"], "straße".encode()), b"STRASSE")
    if "tcp-frame" in addrs:
        expect("tcp-frame", half_close_exchange(addrs["tcp-frame"], frame(b"abc")), frame(b"ABC"))
    if "tcp-array" in addrs:
        values = b"".join(struct.pack("<d", v) for v in (2.0, 3.0, 4.0))
        expect(
            "tcp-array 2:3",
            half_close_exchange(addrs["tcp-array"], frame(b"2:3")),
            frame(b"\0" + values),
        )
    if "udp-upper" in addrs:
        expect("udp-upper", udp_exchange(addrs["udp-upper"], b"hello"), b"HELLO")
    if "udp-ping" in addrs:
        expect("udp-ping", udp_exchange(addrs["udp-ping"], b"PING 1"), b"PONG 1")
    with tcp(addrs["tcp-echo"]) as s:
        s.sendall(b"echo")
        expect("tcp-echo", read_exact(s, 4), b"echo")
        await_blocked(srv.pid, backend)
        if sigusr1:
            # The fd table, written to stderr; serving goes on.
            srv.signal(signal.SIGUSR1)
            print("  SIGUSR1:", srv.await_log("summary:").strip())
            await_blocked(srv.pid, backend)
        # SIGTERM while this connection is open: pollmux shuts its write side
        # (the Python server closes it), we read EOF and close, and only then
        # does the server exit.
        srv.terminate()
        expect("tcp-echo after SIGTERM", read_to_eof(s), b"")


def drive_errors(srv, backend):
    addrs = srv.addrs
    print("error paths:")
    # At start the server read the hard limit of 16 and lowered --max-conns
    # to what the descriptors it holds leave (its log says so).
    lowered = srv.await_log("--max-conns")
    print("  server:", lowered.strip())
    max_conns = int(re.search(r"lowered to (\d+)", lowered).group(1))

    # EMSGSIZE: 'ΐ' is 2 bytes of UTF-8 and uppercases to 3 characters, 6 bytes,
    # so the reply to 60,000 bytes is 180,000: more than a datagram can carry.
    # The reply is dropped; the next datagram from the same socket is answered.
    with udp_socket(addrs["udp-upper"]) as s:
        s.sendto("ΐ".encode() * 30_000, addrs["udp-upper"])
        s.sendto(b"after", addrs["udp-upper"])
        expect("udp-upper after an oversized reply was dropped", s.recv(65536), b"AFTER")

    # A PONG to udp-ping is a reply, not a request: read and not answered
    # (a recvfrom with no sendto), so two servers cannot ping-pong forever.
    with udp_socket(addrs["udp-ping"]) as s:
        s.sendto(b"PONG stray", addrs["udp-ping"])
        s.sendto(b"PING after", addrs["udp-ping"])
        expect("udp-ping after an unanswered PONG", s.recv(65536), b"PONG after")

    # A reset while idle: readable (POLLIN|POLLERR|POLLHUP, EPOLLIN|EPOLLERR|EPOLLHUP,
    # or plain readable with select), and the recv says ECONNRESET.
    s = tcp(addrs["tcp-echo"])
    s.sendall(b"x")
    expect("tcp-echo before the reset", read_exact(s, 1), b"x")
    reset(s)
    expect("udp-ping after the reset", udp_exchange(addrs["udp-ping"], b"PING reset"), b"PONG reset")

    # A reset while an 8 MB reply is being sent: the server is waiting for POLLOUT.
    s = tcp(addrs["tcp-array"])
    s.sendall(frame(b"0:1000000"))
    expect("tcp-array reply header before the reset", read_exact(s, 5), b"\x00\x7a\x12\x01\x00")
    reset(s)
    expect("udp-ping after the reset", udp_exchange(addrs["udp-ping"], b"PING reset2"), b"PONG reset2")

    # --max-conns: as many connections as it allows, each proven served,
    # then one more, which is accepted and closed at once: we read EOF.
    held = []
    for i in range(max_conns):
        s = tcp(addrs["tcp-echo"])
        s.sendall(b"%d" % i)
        expect(f"tcp-echo, connection {i + 1} of --max-conns {max_conns}", read_exact(s, 1), b"%d" % i)
        held.append(s)
    with tcp(addrs["tcp-echo"]) as s:
        expect("one past --max-conns: EOF at once", read_to_eof(s), b"")
    print("  server:", srv.await_log("reached").strip())

    # EMFILE: the server's soft limit lowered, from outside, to its lowest free
    # descriptor: the next accept4 fails. The listeners leave the wait set, come
    # back when the 100 ms back-off ends (and leave again: the connection is
    # still queued), and for good when a connection closes.
    srv.set_nofile(srv.lowest_free_fd())
    queued = tcp(addrs["tcp-echo"])  # completed by the kernel, queued
    print("  server:", srv.await_log("not accepting").strip())
    time.sleep(0.25)  # the one sleep: the back-off timer fires twice
    held.pop(0).close()  # the server reads EOF, closes, and accepts again
    queued.sendall(b"q")
    expect("the queued connection, once one closed", read_exact(queued, 1), b"q")
    held.append(queued)

    if backend == "poll":
        # poll(2) refuses more entries than the soft limit (EINVAL): the server
        # logs it, sleeps 10 ms, 20 ms, ... and waits again; once the limit is
        # back, it serves on.
        srv.set_nofile(4)
        print("  server:", srv.await_log("waiting again").strip())
        srv.set_nofile(ERRORS_NOFILE)
        expect("udp-ping after the failed waits", udp_exchange(addrs["udp-ping"], b"PING back"), b"PONG back")

    for s in held:
        s.close()
    srv.terminate()


def blocked_in(pid, nr):
    """True when /proc/PID/syscall says the process is blocked in syscall `nr`."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == str(nr)
    except (OSError, IndexError):
        return False


def await_blocked(pid, backend):
    """Returns once `pid` is blocked in `backend`'s wait call (x86-64 only:
    elsewhere at once), polling /proc: a capture aid, not a test."""
    nr = WAIT_SYSCALL_NR[backend] if os.uname().machine == "x86_64" else None
    deadline = time.monotonic() + TIMEOUT
    while nr is not None and not blocked_in(pid, nr):
        if time.monotonic() > deadline:
            sys.exit(f"pid {pid} never blocked in syscall {nr}")
        time.sleep(0.001)


def attach_run(backend, trace, log):
    """pollmux alone; strace attaches while it waits, sees one datagram and the exit."""
    command = [
        "target/release/pollmux", "serve", "--backend", backend, "--array-len", "10",
        *free_ports(SERVICES),
    ]
    print("$", shlex.join(command))
    with open(log, "w") as err:
        server = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        addrs = {}
        while len(addrs) < len(SERVICES):
            line = server.stdout.readline()
            if not line:
                sys.exit("pollmux exited before printing its listening lines")
            _, service, address = line.split()
            host, _, port = address.rpartition(":")
            addrs[service] = (host, int(port))
        # Attach only once it sleeps in its wait call (the listening lines are
        # printed just before it).
        await_blocked(server.pid, backend)
        attach = ["strace", "-tt", "-o", trace, "-e", "trace=" + ",".join(CALLS), "-p", str(server.pid)]
        print("$", shlex.join(attach))
        tracer = subprocess.Popen(attach, stderr=subprocess.PIPE, text=True)
        # strace says `Process N attached` once the tracee is stopped and traced.
        if "attached" not in tracer.stderr.readline():
            sys.exit("strace did not attach (is ptrace allowed here?)")
        expect("udp-ping while traced", udp_exchange(addrs["udp-ping"], b"PING attach"), b"PONG attach")
        server.send_signal(signal.SIGTERM)  # strace follows it to its exit
        if server.wait(timeout=TIMEOUT) != 0:
            sys.exit(f"pollmux exited with {server.returncode}")
        tracer.wait(timeout=TIMEOUT)
    finally:
        for proc in (server, locals().get("tracer")):
            if proc is not None and proc.poll() is None:
                proc.kill()


# ------------------------------------------------------------------ summary

# `PID HH:MM:SS.micro name(args) = result`; a call interrupted by another
# process's line is split into `name(... <unfinished ...>` and
# `<... name resumed>...`: it is counted once, at its first half.
CALL = re.compile(r"^\d+\s+[\d:.]+\s+([a-z_0-9]+)\(")
# Where the server's own calls start: pollmux's first log line (main's
# first write(2) to stderr) or, with logging off, its first
# prlimit64(RLIMIT_NOFILE) (main's raise_nofile); the Python server's first
# socket(2) (open_listeners). The calls before are the dynamic loader and the
# Rust runtime, or the interpreter starting up and importing its modules.
OWN_FROM = {
    "pollmux": re.compile(r" write\(2, | prlimit64\(0, RLIMIT_NOFILE"),
    "python": re.compile(r" socket\("),
}


def count_calls(trace, server="pollmux"):
    """Counts by name: (every call, the server's own), see OWN_FROM."""
    every, own = collections.Counter(), collections.Counter()
    started = False
    with open(trace) as f:
        for line in f:
            if m := CALL.match(line):
                started = started or bool(OWN_FROM[server].search(line))
                every[m.group(1)] += 1
                own[m.group(1)] += started
    return every, own


def print_counts(trace, what, server="pollmux"):
    every, own = count_calls(trace, server)
    before = "loader and Rust runtime" if server == "pollmux" else "interpreter"
    print(f"calls by name, {what}: all {sum(every.values())}, "
          f"the server's own {sum(own.values())} (the rest: {before} start-up)")
    print("    all    own")
    for call, n in sorted(every.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:7}{own[call]:7}  {call}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="poll", choices=["poll", "select", "epoll"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--errors", action="store_true", help="drive the error paths instead")
    mode.add_argument("--attach", action="store_true", help="attach strace -p to a waiting server")
    mode.add_argument(
        "--python", action="store_true",
        help=f"trace the Python poll reference server ({PYTHON_SERVER}) instead of pollmux",
    )
    p.add_argument("--out", help="where to write the trace and log (default: target/strace)")
    args = p.parse_args()
    if not shutil.which("strace"):
        sys.exit("strace not found (apt-get install strace)")
    args.out = os.path.abspath(args.out) if args.out else None
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args.out = args.out or os.path.abspath("target/strace")

    os.makedirs(args.out, exist_ok=True)
    if args.python:
        name = "python-poll"
    else:
        name = f"pollmux-{args.backend}" + ("-errors" if args.errors else "-attach" if args.attach else "")
    trace = os.path.join(args.out, f"{name}.trace")
    log = os.path.join(args.out, f"{name}.log")
    if args.attach:
        attach_run(args.backend, trace, log)
        print(f"\ntrace: {trace}")
        return
    pollmux = ["target/release/pollmux", "serve", "--backend", args.backend, *free_ports(SERVICES)]
    if args.python:
        # The interpreter running this script, by its real path: `python3` on
        # PATH may be a wrapper script (pyenv's shim), whose own calls -f would trace.
        server = [sys.executable, PYTHON_SERVER, *free_ports(PYTHON_SERVICES)]
        # The same trace whatever PYTHON* variables this shell has: with
        # PYTHONUNBUFFERED each print() is two write(2)s (text, then newline).
        # No .pyc files are written into examples/.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        srv = TracedServer(server, PYTHON_SERVICES, trace, log, None, PYTHON_CALLS, env)
    elif args.errors:
        server = [*pollmux, "--array-len", "1000000"]
        srv = TracedServer(server, SERVICES, trace, log, (ERRORS_NOFILE, ERRORS_NOFILE))
    else:
        srv = TracedServer([*pollmux, "--array-len", "1000"], SERVICES, trace, log, None)
    try:
        if args.errors:
            drive_errors(srv, args.backend)
        else:
            drive(srv, "poll" if args.python else args.backend, sigusr1=not args.python)
        srv.wait()
    finally:
        srv.kill()  # only if a client check failed and they still run

    trace, log = os.path.relpath(trace), os.path.relpath(log)
    print(f"\ntrace: {trace} ({sum(1 for _ in open(trace))} lines); server stderr: {log}")
    if args.python:
        print_counts(trace, "the Python poll server", "python")
    else:
        print_counts(trace, f"pollmux, {args.backend} backend")


if __name__ == "__main__":
    main()
