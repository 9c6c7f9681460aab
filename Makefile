# Switchboard build. `make run` starts the server on configs/switchboard.yaml;
# `make test` installs what the tests need and runs them.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/switchboard
CONFIG  ?= configs/switchboard.yaml

.PHONY: all build run test test-short bench bench-deps lint fuzz soak deps clean

all: lint test build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchboard

run: build
	./$(BIN) serve --config $(CONFIG)

# deps installs the real peers the tests drive (SIPp) when they are missing.
deps:
	@scripts/deps.sh

test: deps
	$(GO) test -race -count=1 -timeout 10m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# bench measures Switchboard side by side with Kamailio and rtpengine (Go
# microbenchmarks, SIPp load, RTP relay load) and writes docs/benchmarks.md
# and docs/bench/chart.svg. bench-deps installs Kamailio, rtpengine and SIPp.
bench: bench-deps build
	@scripts/bench.sh
	@scripts/bench-webrtc.sh
	@bin/benchchart report --dir docs/bench --doc docs/benchmarks.md --chart docs/bench/chart.svg

bench-deps:
	@scripts/bench-deps.sh

# soak drives 10,000 calls with media and 50,000 registration refreshes
# through the server and checks that its heap, goroutines, open files,
# relay ports and live-state rows come back to their baseline (a shorter
# run is part of `make test`).
SOAK_CALLS     ?= 10000
SOAK_REGISTERS ?= 50000
SOAK_CALL_RATE ?= 30
SOAK_REGISTER_RATE ?= 300
soak: deps
	SOAK_CALLS=$(SOAK_CALLS) SOAK_REGISTERS=$(SOAK_REGISTERS) SOAK_CALL_RATE=$(SOAK_CALL_RATE) SOAK_REGISTER_RATE=$(SOAK_REGISTER_RATE) \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 60m ./cmd/switchboard/

# fuzz runs every fuzz target for FUZZTIME each: a duration (10s) or a
# count of inputs (20000x). CI uses a count: with a duration, Go 1.26 can
# fail a target with a bare "context deadline exceeded" when the time runs
# out while a worker is busy minimising an input (go.dev/issue/75804).
FUZZTIME ?= 10s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
