# parkgate: two commands for a new user, `make demo` and `make test`.
# Both create the virtualenv and install what they need (pip, npm, apt when root).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PARKGATE := $(VENV)/bin/parkgate
PY_STAMP := $(VENV)/.installed
NPM_STAMP := contracts/node_modules/.installed
WEB_STAMP := web/node_modules/.installed
BUNDLE := edge/booking/static/app.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-core test-random bench chaos gas lint contracts train system-deps clean help web bundle

help:
	@echo "make demo   - install everything and run the main job on embedded defaults"
	@echo "make test   - install everything and run the test suite"
	@echo "make test-core   - the pure core's tests alone (seconds)"
	@echo "make test-random - the test suite in a random order (ARGS=... to pass more pytest options)"
	@echo "make bench  - measure latency, LPR, sync throughput, RSS, start-up"
	@echo "make chaos  - bounded fault-injection run of a simulated day"
	@echo "make gas    - gas report of the rental contract"
	@echo "make lint   - ruff, import contracts (lint-imports), mypy"
	@echo "make train  - retrain the plate models (installs the optional torch extra)"
	@echo "make web    - rebuild the booking pages' wallet bundle (viem, esbuild) from web/"

$(PY_STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)"; exit 1; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || $(SUDO) apt-get install -y python3-venv
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

$(NPM_STAMP): contracts/package.json contracts/package-lock.json
	@command -v npm >/dev/null || $(SUDO) apt-get install -y nodejs npm
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null || $(SUDO) apt-get install -y nodejs npm
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The booking pages' wallet bundle: web/src bundled with viem by esbuild into package data of edge.booking.
# It is committed (pip install and the wheel need no node); `make web` rebuilds it and records the hash of
# its sources (tests/booking/test_booking_pages.py finds a bundle older than its sources); `make bundle`
# builds it only when missing.
web: $(WEB_STAMP)
	cd web && npm run build --silent
	export LC_ALL=C; cat web/package-lock.json web/src/*.js | sha256sum | cut -d" " -f1 > $(BUNDLE).sources

bundle:
	@test -f $(BUNDLE) || $(MAKE) web

# Services the integration tests start themselves on free loopback ports.
system-deps:
	@command -v mosquitto >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto; }
	@command -v openssl >/dev/null || $(SUDO) apt-get install -y -qq openssl
	@command -v systemd-analyze >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends systemd; }
	@/usr/bin/python3 tests/vision/rtsp_server.py --check 2>/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0 \
		gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly; }
	@# the console's browser tests drive Debian's chromium (Playwright never downloads a browser)
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

contracts: $(PY_STAMP) $(NPM_STAMP)
	$(PY) -m edge.chain.build

# Two pytest-xdist workers, one test file per worker (module fixtures stay in one process): the suite waits
# on daemons, brokers and chain nodes as much as it computes, so two workers take about half the time on a
# 2-core box. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(PY_STAMP) $(NPM_STAMP) system-deps bundle
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The pure core's tests alone (pytest -m core: seconds), and the suite in a random order (pytest-randomly;
# in the test workers; the seed is printed in the header: rerun one order with ARGS=--randomly-seed=N).
test-core: $(PY_STAMP)
	$(PY) -m pytest -q -m core

test-random: $(PY_STAMP) $(NPM_STAMP) system-deps bundle
	$(PY) -m pytest -p randomly -n $(TEST_WORKERS) --dist loadfile $(ARGS)

demo: $(PY_STAMP) $(NPM_STAMP) bundle
	$(PARKGATE) demo $(DEMO_ARGS)

bench: $(PY_STAMP) $(NPM_STAMP)
	$(PY) -m edge.tools.bench

chaos: $(PY_STAMP) $(NPM_STAMP) system-deps
	$(PY) -m edge.tools.chaos

gas: $(PY_STAMP) $(NPM_STAMP)
	$(PY) -m edge.tools.gas

# ruff, the import contracts of docs/ARCHITECTURE.md (pyproject.toml [tool.importlinter]), mypy (strict on
# the pure core).
lint: $(PY_STAMP)
	$(VENV)/bin/ruff check edge firmware_bridge models tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

train: $(PY_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,train]'
	$(PY) -m models.train --all --threads 2

clean:
	rm -rf $(VENV) contracts/node_modules web/node_modules .pytest_cache
