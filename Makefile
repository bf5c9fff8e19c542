# slawatch: `make run` starts everything, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench proto proto-check lint typecheck buf-lint rules pytest dist clean-data help

help:
	@echo "make run    - start embedded Postgres/Redis (unless DATABASE_URL/REDIS_URL) and every process"
	@echo "make test   - ruff, mypy, proto drift check, buf lint, alerting rules (promtool), pytest"
	@echo "make bench  - benchmarks; prints the figures"
	@echo "make proto  - regenerate pkg/slawatch/v1 from proto/"
	@echo "make dist   - build the wheels of the client (slawatch) and the server (slawatch-server)"

# The client (pkg/, distribution `slawatch`) and the server (`slawatch-server`, which depends on
# it) in one pip command, so that pip takes `slawatch` from ./pkg and never looks it up elsewhere.
$(STAMP): pyproject.toml pkg/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./pkg -e '.[dev]'
	touch $(STAMP)

# Debian's chromium for the live-page test; Playwright (from PyPI) drives it through
# executable_path, so no browser is ever downloaded.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

# Debian's prometheus package brings promtool, which checks and unit-tests the alerting rules.
PROMTOOL := /usr/bin/promtool

$(PROMTOOL):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus

# curl for the README's curl session (tests/e2e/test_readme_curl.py), where the image lacks it.
CURL := /usr/bin/curl

$(CURL):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends curl

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(PY) cmd/slawatch-run/main.py

proto: $(STAMP)
	$(PY) scripts/protogen.py

proto-check: $(STAMP)
	$(PY) scripts/protogen.py --check

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

buf-lint: node_modules/.installed
	npx --no-install buf lint
	# Wire-compatibility with main (skipped where there is no main branch to compare with).
	if git rev-parse --verify --quiet main >/dev/null; then \
		npx --no-install buf breaking --against '.git#branch=main'; fi

rules: $(PROMTOOL)
	$(PROMTOOL) check rules deploy/prometheus/slawatch-rules.yml
	cd deploy/prometheus && $(PROMTOOL) test rules slawatch-rules.test.yml

# Two worker processes (pytest-xdist), each test module on one of them: most integration tests
# wait on processes, sockets and second-long SLA targets, so two run in about half the time.
# Each worker starts its own embedded PostgreSQL and Redis (or shares DATABASE_URL/REDIS_URL,
# with databases of its own). PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2

pytest: $(STAMP) node_modules/.installed $(CHROMIUM) $(CURL)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test: lint typecheck proto-check buf-lint rules pytest

# Both wheels into dist/: slawatch (the client, for anyone) and slawatch-server (for the image).
DIST ?= dist

dist: $(STAMP)
	rm -rf $(DIST) pkg/build build
	$(PY) -m build --wheel --outdir $(DIST) pkg
	$(PY) -m build --wheel --outdir $(DIST) .

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

clean-data:
	rm -rf .data
