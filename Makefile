# rsyslog → ZeroMQ relay. `make help` lists the targets.
GO      ?= go
BIN     ?= bin
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
CMDS    := relay tap omzmq-bridge
FUZZTIME ?= 10s

.PHONY: help build run test test-short test-deb bench fuzz lint install clean deps peers deb man

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the binaries into ./bin
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(CMDS))

run: build ## run the relay on its embedded default config
	$(BIN)/relay

test: peers lint ## the whole test suite (after gofmt and vet), with the race detector and the real peers (rsyslogd, libzmq, chromium)
	$(GO) test -race -count=1 -timeout 40m ./...

test-short: ## unit tests only, no real peers
	$(GO) test -short -count=1 ./...

test-deb: ## as root: build the .deb, lintian it, install it, check it, purge it (CI runs this)
	GO=$(GO) bash packaging/test-deb.sh

deb: ## build the Debian package into dist/ with dpkg-deb (nothing downloaded but Go modules)
	GO=$(GO) bash packaging/build-deb.sh dist

man: build ## regenerate docs/man/ and the README's command block from the binaries' --help
	$(GO) run ./internal/manpage/genman -bin $(BIN) -root .

bench: build ## benchmarks that print comparable ratios (see bench/)
	bash bench/run.sh

fuzz: ## a short run of every fuzz target (FUZZTIME=10s each)
	@set -e; for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: run gofmt -w on the files above"; exit 1; }
	$(GO) vet ./...

install: build ## install the binaries into $(PREFIX)/bin
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BIN)/,$(CMDS)) $(DESTDIR)$(PREFIX)/bin/

PEERS := python3-zmq rsyslog rsyslog-czmq rsyslog-relp rsyslog-gnutls chromium procps nats-server \
         man-db prometheus lintian systemd adduser util-linux

peers: ## install the real test peers if any is missing (Debian, as root)
	@if command -v rsyslogd >/dev/null && test -x /usr/bin/chromium && /usr/bin/python3 -c 'import zmq' 2>/dev/null \
	    && command -v man >/dev/null && command -v promtool >/dev/null && command -v lintian >/dev/null \
	    && command -v systemd-analyze >/dev/null && command -v adduser >/dev/null && command -v prlimit >/dev/null \
	    && command -v nats-server >/dev/null \
	    && test -n "$$(find /usr/lib -name omczmq.so 2>/dev/null)" && test -n "$$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null)"; then :; \
	elif [ "$$(id -u)" = 0 ]; then $(MAKE) deps; \
	else echo "missing test peers: run 'sudo make deps' (installs $(PEERS))"; exit 1; fi

deps: ## install the real peers the tests use (Debian; run as root)
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y $(PEERS)

clean:
	rm -rf $(BIN) dist
