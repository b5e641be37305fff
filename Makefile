# pollmux: `make run` serves all six services on their default ports; `make test` proves the contract.
CARGO ?= cargo
ARGS ?=

.PHONY: build run test lint fmt

build:
	$(CARGO) build --release

# Starts every service on its default port (see README); pass flags with ARGS="--backend select".
run: build
	./target/release/pollmux serve $(ARGS)

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check

fmt:
	$(CARGO) fmt
