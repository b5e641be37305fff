# pollmux: `make run` serves all six services on their default ports; `make test` proves the contract.
CARGO ?= cargo
ARGS ?=
BACKEND ?= poll

.PHONY: build run test lint fmt strace strace-python

build:
	$(CARGO) build --release

# Starts every service on its default port (see README); pass flags with ARGS="--backend select".
run: build
	./target/release/pollmux serve $(ARGS)

test:
	$(CARGO) test --all-targets

# Every client in examples/ against pollmux (all ports free, a small array), then echo_client.py and
# upper_client.py against each Python reference server in examples/servers/; one line per check.
# The array clients need numpy.
.PHONY: examples
examples: build
	python3 examples/run.py

lint:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --document-private-items

fmt:
	$(CARGO) fmt

# One exchange per service under strace; trace in target/strace/pollmux-$(BACKEND).trace,
# explained line by line in ffi-notes/README.md. BACKEND=poll|select|epoll.
strace: build
	python3 scripts/strace.py --backend $(BACKEND)

# The same exchanges against the Python poll reference server (examples/servers/poll_server.py:
# tcp-echo and tcp-upper only), into target/strace/python-poll.trace; ffi-notes/README.md sets
# one echo exchange of it beside pollmux's.
strace-python:
	python3 scripts/strace.py --python

# Every server under every workload (about 10 minutes on 2 cores): prints the tables and rewrites
# BENCHMARKS.md and benches/plots/*.svg. strace (for the tokio peer's syscall count) is installed if missing.
# BENCH_QUICK=1 make bench: each workload briefly, written to target/bench-preview/ instead.
.PHONY: bench
bench:
	@command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace) \
		|| echo "strace could not be installed: the strace syscall counts will say so"
	$(CARGO) bench --bench bench

# 1,000 connections over every TCP service with random sizes and splits, plus UDP, every byte
# checked: SOAK_SECS seconds per backend (poll, select, epoll), in release mode. `make test`
# runs the same test for 5 s per backend.
SOAK_SECS ?= 60
.PHONY: soak
soak:
	SOAK_SECS=$(SOAK_SECS) $(CARGO) test --release --test soak -- --nocapture
