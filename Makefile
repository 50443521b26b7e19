# Two commands: `make demo` and `make test`. Each sets up everything it needs on a
# fresh machine (Java 17 when missing, .venv, the project with its dev extras).
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup java maven jvm bench clean

demo: setup
	$(BIN)/python jobs/flights/demo.py

test: setup
	$(BIN)/python -m pytest tests sparkfs $(PYTEST_ARGS)

setup: java maven $(STAMP) jvm

# JVM jars (Delta's Spark writer, HBase, a Kafka broker and Spark's connector) from Maven Central into a shared cache
# (~/.cache/sparkfs/jvm): the first run downloads them, later runs start no Maven.
jvm: $(STAMP)
	$(BIN)/python -m sparkfs.jvm fetch delta hbase kafka spark-kafka

maven:
	@command -v mvn >/dev/null 2>&1 || { \
	  echo "mvn not found: installing maven"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq maven; }

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "java not found: installing openjdk-17-jre-headless"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless; }

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "$(PY) is required"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b; done

clean:
	rm -rf .sparkfs build *.egg-info
