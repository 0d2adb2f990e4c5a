# The two set-up commands of the README: `make demo` and `make test`. Everything installs into .venv
# from pyproject.toml, pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CRM_HOME ?= $(CURDIR)/var
export CRM_HOME

.PHONY: demo test lint browser promtool bench install install-dev java wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# Spark (the scale-out engine, tested in the suite) needs a Java runtime; Debian's when the machine has none.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev java

demo: install
	$(BIN)/crm demo

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The web-page tests drive Debian's chromium through Playwright (never a downloaded browser): install it, with a
# font for the Chinese terms, when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium fonts-wqy-microhei; }

# The alert rules in deploy/prometheus are checked and unit-tested with promtool (Debian's prometheus package).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends prometheus; }

test: lint browser promtool
	$(BIN)/pytest -n 2 -q

BENCH_HOME ?= $(CURDIR)/var/bench-100k

# The HTTP benchmark's load generator: Debian's wrk, installed when missing.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }

bench: install-dev wrk
	$(BIN)/python loadtests/bench_generate.py
	rm -rf $(BENCH_HOME)
	$(BIN)/python loadtests/bench_features.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_models.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_rules.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_online.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_api.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_http.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_ui.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_events.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_nba.py --home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_batch.py --home $(CURDIR)/var/bench-1m --models-home $(BENCH_HOME)
	$(BIN)/python loadtests/bench_spark.py

clean:
	rm -rf $(VENV) var
