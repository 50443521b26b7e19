# Two commands: `make demo` and `make test`. Each sets up everything it needs on a
# fresh machine (Java 17 when missing, .venv, the project with its dev and all extras at the
# exact versions in constraints.txt). `make test` runs the linters and the type checker first.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install -q -c constraints.txt

# The checks `make test` and .ci/run run; re-run them after a merge with `make lint`.
RUFF := $(BIN)/ruff check .
MYPY := $(BIN)/mypy
PYTEST := $(BIN)/python -m pytest tests sparkfs

.PHONY: demo test pytest lint fmt setup java maven postgres chromium jvm bench constraints clean

demo: setup
	$(BIN)/python jobs/flights/demo.py

test: setup lint pytest

pytest: setup
	$(PYTEST) $(PYTEST_ARGS)

# ruff (lint + import order) and mypy (on sparkfs/; config in pyproject.toml)
lint: $(STAMP)
	$(RUFF)
	$(MYPY)

# Safe automatic fixes only (import order, pyupgrade, unused imports). No `ruff format`:
# reformatting the whole tree would collide with every branch in flight.
fmt: $(STAMP)
	$(RUFF) --fix

setup: java maven postgres chromium $(STAMP) jvm

# JVM jars (Delta's Spark writer, HBase, a Kafka broker and Spark's connector) from Maven Central into a shared cache
# (~/.cache/sparkfs/jvm): the first run downloads them, later runs start no Maven.
jvm: $(STAMP)
	$(BIN)/python -m sparkfs.jvm fetch delta hbase kafka spark-kafka

maven:
	@command -v mvn >/dev/null 2>&1 || { \
	  echo "mvn not found: installing maven"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq maven; }

# PostgreSQL's server binaries (Debian's package) for the registry's PostgreSQL tests; the
# tests start their own throw-away cluster (sparkfs/testing/postgres.py), so the system
# service is not needed and is not started here.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  echo "PostgreSQL not found: installing postgresql"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Debian's Chromium for the browser tests (tests/test_ui_browser.py) and the demo's
# screenshots, driven by Playwright at /usr/bin/chromium (Playwright's own browser download
# is not used).
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "chromium not found: installing chromium"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "java not found: installing openjdk-17-jre-headless"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless; }

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "$(PY) is required"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(PIP_INSTALL) -e '.[dev,all]'
	touch $(STAMP)

# After a tested upgrade in .venv: write the exact versions back to constraints.txt.
constraints: $(STAMP)
	$(BIN)/python scripts/update_constraints.py

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf .sparkfs build *.egg-info
