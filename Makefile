# sidecar — build and test.
#
#   make test    installs the Debian packages the tests need (when run as
#                root), then runs go vet and every test with the race detector.
#   make run     runs the daemon on the embedded default configuration.

GO      ?= go
PKGS    ?= ./...
# Debian packages the end-to-end tests drive (real MTAs and DNS servers).
DEB_PKGS ?= $(shell cat scripts/debian-packages.txt 2>/dev/null)

.PHONY: all build test test-short deps vet fuzz bench run clean install

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

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]: the binary,
# the man page (from "sidecar help man"), a commented example configuration
# (the embedded default, never over an existing sidecar.conf) and the
# systemd unit. The user sidecar is not created (see README, "Install").
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/sidecar $(DESTDIR)$(UNITDIR)
	install -m 0755 bin/sidecar $(DESTDIR)$(SBINDIR)/sidecar
	bin/sidecar help man > bin/sidecar.8
	install -m 0644 bin/sidecar.8 $(DESTDIR)$(MANDIR)/man8/sidecar.8
	bin/sidecar help default > bin/sidecar.conf.example
	install -m 0644 bin/sidecar.conf.example $(DESTDIR)$(SYSCONFDIR)/sidecar/sidecar.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/sidecar/sidecar.conf || install -m 0640 bin/sidecar.conf.example $(DESTDIR)$(SYSCONFDIR)/sidecar/sidecar.conf
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' contrib/systemd/sidecar.service.in > bin/sidecar.service
	install -m 0644 bin/sidecar.service $(DESTDIR)$(UNITDIR)/sidecar.service

clean:
	rm -rf bin
