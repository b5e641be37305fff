#!/usr/bin/env python3
"""Runs every example client against the server it is written for, and prints
one line per check. `make examples` builds pollmux, then runs this.

1. Starts target/release/pollmux serve with every port 0 (free ports) and a
   small --array-len, and runs each client against its service.
2. Starts each Python reference server in examples/servers/ on free ports and
   runs echo_client.py and upper_client.py against it.
3. Stops every server with SIGTERM and checks that it exits with status 0.

No sleeping to synchronise: a server is ready once it has printed its
`listening SERVICE ADDRESS` lines, and this script waits for exactly those.

usage: python3 examples/run.py [--verbose] [--pollmux PATH]
Exits 0 if every check passed, 1 otherwise.
"""

import argparse
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ARRAY_LEN = 100_000
SERVICES = ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"]
STARTUP_DEADLINE = 30.0     # seconds for a server to print its listening lines
CLIENT_DEADLINE = 120.0     # seconds for one client to finish
STOP_DEADLINE = 15.0        # seconds for a server to exit after SIGTERM

# Each check: (client, service it talks to, client arguments, extra arguments
# for `pollmux serve`). Checks with the same extra arguments share one server.
CHECKS = [
    ("echo_client.py", "tcp-echo", [], []),
    ("upper_client.py", "tcp-upper", [], []),
    ("frame_client.py", "tcp-frame", [], []),
    ("array_framed_client.py", "tcp-array", ["--array-len", str(ARRAY_LEN)], []),
    ("udp_upper_client.py", "udp-upper", [], []),
    ("udp_ping_client.py", "udp-ping", [], []),
    # The lessons' two numpy clients, against the two wires they expect.
    ("array_push_client.py", "tcp-array", ["--len", str(ARRAY_LEN)], ["--array-wire", "push"]),
    ("array_fixed_client.py", "tcp-array", [], ["--array-wire", "fixed"]),
]

PYTHON_SERVERS = ["sequential.py", "threaded.py", "poll_server.py"]
PYTHON_SERVER_CHECKS = [("echo_client.py", "tcp-echo"), ("upper_client.py", "tcp-upper")]


class Server:
    """A server process, started and waited for until it has printed one
    listening line per expected service."""

    def __init__(self, label, command, services):
        self.label = label
        self.log = tempfile.TemporaryFile()    # stderr; a pipe nobody reads could fill and block it
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.addresses = {}
        lines = queue.Queue()

        def read_stdout():
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)                    # EOF: the process closed stdout or exited

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            self.wait_for_listening(lines, services)
        except BaseException:
            self.process.kill()                # never leave a half-started server behind
            self.process.wait()
            raise

    def wait_for_listening(self, lines, services):
        label = self.label
        deadline = time.monotonic() + STARTUP_DEADLINE
        while len(self.addresses) < len(services):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{label}: no listening lines within {STARTUP_DEADLINE} s; "
                                   f"got {self.addresses}\n{self.stderr()}")
            if line is None:
                self.process.wait()
                raise RuntimeError(f"{label} exited with status {self.process.returncode} "
                                   f"before listening\n{self.stderr()}")
            words = line.split()
            if len(words) == 3 and words[0] == "listening" and words[1] in services:
                host, _, port = words[2].rpartition(":")
                self.addresses[words[1]] = (host.strip("[]"), port)

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self.process.stdout.close()


class Report:
    def __init__(self, verbose):
        self.verbose = verbose
        self.passed = 0
        self.failed = 0

    def line(self, ok, what, details=""):
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if details and (self.verbose or not ok):
            print("".join(f"       {line}\n" for line in details.rstrip().splitlines()), end="")
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def client(self, client, address, args, target):
        command = [sys.executable, str(EXAMPLES / client), address[0], address[1], *args]
        what = f"{client} -> {target}"
        try:
            run = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=CLIENT_DEADLINE)
        except subprocess.TimeoutExpired as e:
            output = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            self.line(False, what, f"still running after {CLIENT_DEADLINE} s\n{output}")
            return
        self.line(run.returncode == 0, what, f"exit status {run.returncode}\n{run.stdout}")

    def stopped(self, server):
        status = server.stop()
        self.line(status == 0, f"{server.label} exits 0 on SIGTERM",
                  f"exit status {status}\n{server.stderr()}")


def pollmux_checks(report, pollmux, checks):
    """One pollmux per distinct set of extra server arguments."""
    groups = {}
    for client, service, client_args, server_args in checks:
        groups.setdefault(tuple(server_args), []).append((client, service, client_args))
    for server_args, group in groups.items():
        label = " ".join(["pollmux", *server_args])
        command = [str(pollmux), "serve", "--array-len", str(ARRAY_LEN)]
        for service in SERVICES:
            command += [f"--{service}", "0"]
        command += server_args
        try:
            server = Server(label, command, SERVICES)
        except RuntimeError as e:
            for client, service, _ in group:
                report.line(False, f"{client} -> {label} {service}", str(e))
            continue
        try:
            for client, service, client_args in group:
                report.client(client, server.addresses[service], client_args,
                              f"{label} {service}")
        finally:
            report.stopped(server)


def python_server_checks(report):
    for script in PYTHON_SERVERS:
        command = [sys.executable, str(EXAMPLES / "servers" / script),
                   "--tcp-echo", "0", "--tcp-upper", "0"]
        try:
            server = Server(script, command, ["tcp-echo", "tcp-upper"])
        except RuntimeError as e:
            for client, service in PYTHON_SERVER_CHECKS:
                report.line(False, f"{client} -> {script} {service}", str(e))
            continue
        try:
            for client, service in PYTHON_SERVER_CHECKS:
                report.client(client, server.addresses[service], [], f"{script} {service}")
        finally:
            report.stopped(server)


def main():
    parser = argparse.ArgumentParser(description="run every example against its server")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print every client's output, not only a failing one's")
    parser.add_argument("--pollmux", type=Path, default=ROOT / "target" / "release" / "pollmux",
                        help="the pollmux binary (default target/release/pollmux)")
    args = parser.parse_args()
    if not os.access(args.pollmux, os.X_OK):
        sys.exit(f"{args.pollmux} not found: build it first (make examples does)")

    report = Report(args.verbose)
    pollmux_checks(report, args.pollmux, CHECKS)
    python_server_checks(report)
    print(f"examples: {report.passed} passed, {report.failed} failed")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
