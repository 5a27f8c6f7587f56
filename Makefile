# Mailwright. Two commands matter (see README.md):
#   make run    install missing Debian build packages, build, open the window
#   make test   install what the tests need, then go vet and every test (race detector on)
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
BIN     := bin/mailwright

# Fyne's cgo GL driver (X11 and Wayland backends).
BUILD_DEBS := gcc libc6-dev pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev \
	libxinerama-dev libxi-dev libxxf86vm-dev libwayland-dev libxkbcommon-dev
# The test harness's real servers, and a real browser for the sign-in test.
TEST_DEBS := $(BUILD_DEBS) dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond chromium
# What `make bench` compares Mailwright with (scripts/bench/run.sh; `make test` runs a tiny
# smoke of it), and GNU time for peak RSS.
BENCH_DEBS := isync fetchmail curl msmtp time

# apt_install installs the packages of $(1) that are not installed yet; with none missing it
# costs one dpkg-query, so a warm `make test` starts testing within seconds.
define apt_install
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(1) 2>/dev/null | awk '$$NF=="installed"{print $$1}' | \
		sort | comm -13 - <(printf '%s\n' $(1) | sort)); \
	if [ -n "$$missing" ]; then \
		echo "make: installing Debian packages:" $$missing; \
		$(APT_GET) update -q && $(APT_GET) install -y -q $$missing; \
	fi
endef

.PHONY: help run build headless test deps-build deps-test check-go vet bench fuzz clean screenshots window-check

help:
	@echo "make run    build and open Mailwright (installs missing build packages)"
	@echo "make test   install test dependencies, go vet, run every test"
	@echo "make build  build $(BIN);  make headless  build bin/mailwright-headless (no GUI, no cgo)"
	@echo "make bench  every benchmark;  make fuzz  every fuzz target for FUZZTIME (default $(FUZZTIME))"

check-go:
	@command -v $(GO) >/dev/null || { echo "make: Go not found; install Go 1.26+ (https://go.dev/dl) and put it on PATH" >&2; exit 1; }

deps-build: check-go
	$(call apt_install,$(BUILD_DEBS))

deps-test: check-go
	$(call apt_install,$(TEST_DEBS) $(BENCH_DEBS))
	$(GO) mod download

build: deps-build
	$(GO) build -o $(BIN) .

headless: check-go
	CGO_ENABLED=0 $(GO) build -tags nogui -o bin/mailwright-headless .

run: build
	./$(BIN)

vet: deps-test
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi

FUZZTIME ?= 5m

# Every test with the race detector, then a short smoke of every fuzz target, one
# iteration of every benchmark and a tiny run of every comparison of the bench harness
# (the long runs are `make fuzz` and `make bench`).
test: vet
	$(GO) test -race -count=1 -timeout 25m ./...
	FUZZ_FRESH=1 GO=$(GO) scripts/fuzz.sh 10s
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	BENCH_SMOKE=1 GO=$(GO) scripts/bench/run.sh
	GO=$(GO) scripts/govulncheck.sh  # known vulnerabilities; skipped with a message when vuln.go.dev is unreachable

# The Go benchmarks, then the comparison with mbsync, fetchmail, curl and msmtp (issue 7;
# BENCH_LARGE=1 adds 100,000 messages, scripts/bench/run.sh lists the other settings).
bench: deps-test
	$(GO) test -run '^$$' -bench . -benchmem ./...
	GO=$(GO) scripts/bench/run.sh

fuzz: deps-test
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

# The screens' pictures in docs/screenshots (headless, from the app tests), and the real
# window once under Xvfb: time until it is mapped and a screenshot.
screenshots: check-go
	MAILWRIGHT_SCREENSHOTS=1 CGO_ENABLED=0 $(GO) test -count=1 ./app

WINDOW_DEBS := xvfb x11-utils imagemagick
window-check: build
	$(call apt_install,$(WINDOW_DEBS))
	scripts/window-check.sh $(BIN) docs/screenshots/window.png

clean:
	rm -rf bin
