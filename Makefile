# sidecar — build and test.
#
#   make test    installs the Debian packages the tests need (when run as
#                root), then runs go vet and every test with the race detector.
#   make run     runs the daemon on the embedded default configuration.

GO      ?= go
PKGS    ?= ./...
# Debian packages the end-to-end tests drive (real MTAs and DNS servers).
DEB_PKGS ?= $(shell cat scripts/debian-packages.txt 2>/dev/null)

.PHONY: all build test test-short deps vet fuzz bench run clean

all: build

build:
	$(GO) build -o bin/sidecar ./cmd/sidecar

run:
	$(GO) run ./cmd/sidecar

deps:
	@scripts/install-deps.sh $(DEB_PKGS)

vet:
	$(GO) vet $(PKGS)

test: deps vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short: vet
	$(GO) test -short -count=1 $(PKGS)

# A short run of every fuzz target (FUZZTIME each), all of them whatever
# the others do; exit 1 only for a crasher (see scripts/fuzz-all.sh).
FUZZTIME ?= 30s
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin
