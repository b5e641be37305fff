#!/usr/bin/env python3
"""`make strace [BACKEND=poll|select|epoll]`: pollmux under strace, one exchange per service.

Starts target/release/pollmux under `strace -f -tt`, limited to the calls
ffi-notes/ explains, waits for its six `listening` lines, drives one exchange
per service, stops it with SIGTERM, and prints how many times each call was
made. Writes
    target/strace/pollmux-<backend>.trace   the trace, one line per call
    target/strace/pollmux-<backend>.log     the server's stderr
Nothing here sleeps: the server is ready once it has printed its `listening`
lines, and an exchange is over when its reply has been read. (Only --attach
polls /proc until the server is blocked in its wait call.)

STRACE_OPTS adds strace flags, e.g. STRACE_OPTS=-yy shows what each descriptor
is: 4<TCP:[127.0.0.1:20000]>.

--attach starts pollmux without strace, attaches `strace -p` to it once it
is blocked in its wait call, sends one datagram and stops it with SIGTERM
(pollmux-<backend>-attach.trace): what attaching does to a blocked wait.

--errors drives the error paths instead (pollmux-<backend>-errors.trace): a
UDP reply too large for a datagram (EMSGSIZE), a peer that resets an idle
connection and one that resets during a large reply (ECONNRESET, EPIPE, or
POLLERR|POLLHUP), and more connections than RLIMIT_NOFILE allows (EMFILE: the
listeners leave the wait set until a connection closes).
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
# descriptor limit, and read/close (the signalfd is read with read(2); every
# socket ends with close(2)).
CALLS = [
    "%network",
    "poll", "ppoll", "select", "pselect6",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "signalfd4", "rt_sigprocmask",
    "read", "close",
    "prlimit64",
    "restart_syscall",
]
# x86-64 numbers of the wait calls, to see in /proc/PID/syscall that the
# server is blocked in one before attaching (--attach).
WAIT_SYSCALL_NR = {"poll": 7, "select": 270, "epoll": 232}
SERVICES = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"]
TIMEOUT = 10.0  # hang guard of every client socket and of the server's exit
# The soft descriptor limit the server starts with: a common default, lower
# than the hard limit, so the trace shows the server raising it.
SOFT_NOFILE = 1024
# --errors: soft = hard = this, so a handful of connections exhausts it.
ERRORS_NOFILE = 16


def child_of(ppid):
    """The pid of the process strace started (pollmux), read from /proc."""
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
    """pollmux serve under strace; its stderr is copied to the log and kept for `await_log`."""

    def __init__(self, backend, trace, log, extra_args, nofile):
        def limit_nofile():
            soft, hard = nofile
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile is None:
            soft = SOFT_NOFILE if hard == resource.RLIM_INFINITY else min(SOFT_NOFILE, hard)
            nofile = (soft, hard)
        ports = [arg for service in SERVICES for arg in (f"--{service}", "0")]
        command = [
            "strace", "-f", "-tt", *shlex.split(os.environ.get("STRACE_OPTS", "")),
            "-o", trace, "-e", "trace=" + ",".join(CALLS),
            "target/release/pollmux", "serve", "--backend", backend, *ports, *extra_args,
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
        )
        threading.Thread(target=self._copy_stderr, daemon=True).start()
        self.addrs = {}
        self.pid = None
        while len(self.addrs) < len(SERVICES):
            line = self.proc.stdout.readline()
            if not line:
                self.fail("pollmux exited before printing its listening lines")
            words = line.split()
            if len(words) == 3 and words[0] == "listening":
                host, _, port = words[2].rpartition(":")
                self.addrs[words[1]] = (host.strip("[]"), int(port))
        self.pid = child_of(self.proc.pid)
        if self.pid is None:
            self.fail(f"cannot find pollmux under strace (pid {self.proc.pid})")

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

    def terminate(self):
        # pollmux, not strace: a signal to strace makes it detach before the shutdown.
        os.kill(self.pid, signal.SIGTERM)

    def wait(self):
        try:
            status = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"pollmux did not exit within {TIMEOUT} s")
        if status != 0:
            self.fail(f"strace/pollmux exited with status {status}")

    def kill(self):
        """Stops both processes if they still run: pollmux first, since a
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


def drive(srv):
    addrs = srv.addrs
    print("exchanges:")
    expect("tcp-upper", half_close_exchange(addrs["tcp-upper"], "straße".encode()), b"STRASSE")
    expect("tcp-frame", half_close_exchange(addrs["tcp-frame"], frame(b"abc")), frame(b"ABC"))
    values = b"".join(struct.pack("<d", v) for v in (2.0, 3.0, 4.0))
    expect(
        "tcp-array 2:3",
        half_close_exchange(addrs["tcp-array"], frame(b"2:3")),
        frame(b"\0" + values),
    )
    expect("udp-upper", udp_exchange(addrs["udp-upper"], b"hello"), b"HELLO")
    expect("udp-ping", udp_exchange(addrs["udp-ping"], b"PING 1"), b"PONG 1")
    with tcp(addrs["tcp-echo"]) as s:
        s.sendall(b"echo")
        expect("tcp-echo", read_exact(s, 4), b"echo")
        # SIGTERM while this connection is open: the server shuts its write
        # side, we read EOF and close, and only then does the server exit.
        srv.terminate()
        expect("tcp-echo after SIGTERM", read_to_eof(s), b"")


def drive_errors(srv):
    addrs = srv.addrs
    print("error paths:")
    # EMSGSIZE: 'ΐ' is 2 bytes of UTF-8 and uppercases to 3 characters, 6 bytes,
    # so the reply to 60,000 bytes is 180,000: more than a datagram can carry.
    # The reply is dropped; the next datagram from the same socket is answered.
    with udp_socket(addrs["udp-upper"]) as s:
        s.sendto("ΐ".encode() * 30_000, addrs["udp-upper"])
        s.sendto(b"after", addrs["udp-upper"])
        expect("udp-upper after an oversized reply was dropped", s.recv(65536), b"AFTER")

    # A reset while idle: POLLERR|POLLHUP (poll, epoll) or recv's ECONNRESET (select).
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

    # EMFILE: more connections than descriptors. The kernel completes them all
    # (the listen backlog); the server accepts until accept4 fails, then stops
    # watching its listeners until one closes.
    conns = [tcp(addrs["tcp-echo"]) for _ in range(8)]
    print("  server:", srv.await_log("not accepting").strip())
    for s in conns:
        s.close()
    srv.terminate()


def blocked_in(pid, nr):
    """True when /proc/PID/syscall says the process is blocked in syscall `nr`."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == str(nr)
    except (OSError, IndexError):
        return False


def attach_run(backend, trace, log):
    """pollmux alone; strace attaches while it waits, sees one datagram and the exit."""
    ports = [arg for service in SERVICES for arg in (f"--{service}", "0")]
    command = ["target/release/pollmux", "serve", "--backend", backend, "--array-len", "10", *ports]
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
        # printed just before it), polling /proc: a capture aid, not a test.
        nr = WAIT_SYSCALL_NR[backend] if os.uname().machine == "x86_64" else None
        deadline = time.monotonic() + TIMEOUT
        while nr is not None and not blocked_in(server.pid, nr):
            if time.monotonic() > deadline:
                sys.exit(f"pollmux never blocked in syscall {nr}")
            time.sleep(0.001)
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


def count_calls(trace):
    """Counts by name: (every call, pollmux's own). pollmux's own calls start
    at its first prlimit64(RLIMIT_NOFILE); the ones before are the dynamic
    loader and the Rust runtime starting up (ffi-notes/README.md)."""
    every, own = collections.Counter(), collections.Counter()
    started = False
    with open(trace) as f:
        for line in f:
            if m := CALL.match(line):
                started = started or "RLIMIT_NOFILE" in line
                every[m.group(1)] += 1
                own[m.group(1)] += started
    return every, own


def print_counts(trace, backend):
    every, own = count_calls(trace)
    print(f"calls by name, {backend} backend: all {sum(every.values())}, "
          f"pollmux's own {sum(own.values())} (the rest: loader and Rust runtime start-up)")
    print("    all    own")
    for call, n in sorted(every.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:7}{own[call]:7}  {call}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="poll", choices=["poll", "select", "epoll"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--errors", action="store_true", help="drive the error paths instead")
    mode.add_argument("--attach", action="store_true", help="attach strace -p to a waiting server")
    p.add_argument("--out", help="where to write the trace and log (default: target/strace)")
    args = p.parse_args()
    if not shutil.which("strace"):
        sys.exit("strace not found (apt-get install strace)")
    args.out = os.path.abspath(args.out) if args.out else None
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args.out = args.out or os.path.abspath("target/strace")

    os.makedirs(args.out, exist_ok=True)
    name = f"pollmux-{args.backend}" + ("-errors" if args.errors else "-attach" if args.attach else "")
    trace = os.path.join(args.out, f"{name}.trace")
    log = os.path.join(args.out, f"{name}.log")
    if args.attach:
        attach_run(args.backend, trace, log)
        print(f"\ntrace: {trace}")
        return
    if args.errors:
        srv = TracedServer(
            args.backend, trace, log, ["--array-len", "1000000"], (ERRORS_NOFILE, ERRORS_NOFILE)
        )
    else:
        srv = TracedServer(args.backend, trace, log, ["--array-len", "1000"], None)
    try:
        drive_errors(srv) if args.errors else drive(srv)
        srv.wait()
    finally:
        srv.kill()  # only if a client check failed and they still run

    trace, log = os.path.relpath(trace), os.path.relpath(log)
    print(f"\ntrace: {trace} ({sum(1 for _ in open(trace))} lines); server stderr: {log}")
    print_counts(trace, args.backend)


if __name__ == "__main__":
    main()
