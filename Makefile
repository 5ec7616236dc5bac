# stepup-idp — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml examples/hotp_factor/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint install clean browser bench bench-compare

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml examples/hotp_factor/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	# The example third-party factor, for its tests (inactive unless allowed by policy).
	$(BIN)/pip install --quiet --no-deps -e examples/hotp_factor
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## run: install, initialise the embedded database and keys, start the IdP (:5000), the demo RP (:5001)
## and the demo resource server (:5002)
run: install
	$(BIN)/idp init
	$(BIN)/idp demo

## test: lint and the whole suite (SQLite + in-process store unless IDP_TEST_* point elsewhere)
test: install lint browser
	$(BIN)/pytest

## browser: Debian Chromium for the real-browser tests (installed with apt when run as root)
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "The browser tests need Chromium at /usr/bin/chromium. Install it with" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium   (Debian/Ubuntu)" >&2; \
		echo "or your distribution's chromium package, then run make test again." >&2; \
		exit 1; \
	fi

## bench: benchmark suite (benchmarks/README.md); BENCH_DURATION, BENCH_BACKENDS, BENCH_SCENARIOS, BENCH_CONCURRENCY
bench: install
	$(BIN)/python -m benchmarks.suite

## bench-compare: stepup-idp and node oidc-provider side by side (sso-flow, refresh), with ratios
bench-compare: install
	npm install --prefix benchmarks/.node --no-audit --no-fund --loglevel=error oidc-provider@latest
	$(BIN)/python -m benchmarks.compare

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info instance
