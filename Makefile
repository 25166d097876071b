# Quick start: `make run` (the daemon on settings.toml) and `make test`.
# Each target creates .venv and installs what it needs first: `make install`
# (and run, install-service) the program and its runtime dependencies only;
# test, bench and demo add the test extra; lint and format the dev extra.
#
# The install is editable (pip install -e): the checkout is what runs, so an
# upgrade is `git pull` and a restart, and a reinstall is due only when
# pyproject.toml changes, which is what the stamps below track. Each extra has
# its own stamp; installing an extra also installs the runtime, so it touches
# the runtime stamp too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test
DEV_STAMP := $(VENV)/.installed-dev
SETTINGS ?= settings.toml

UNIT_DIR ?= /etc/systemd/system

.PHONY: install test run demo lint format bench clean install-service

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $(RUNTIME_STAMP) $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $(RUNTIME_STAMP) $@

install: $(RUNTIME_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n 2

run: $(RUNTIME_STAMP)
	$(BIN)/newsletter --settings $(SETTINGS) run

# One whole cycle offline, with stand-ins for arXiv and the mail server (tools/demo.py).
demo: $(TEST_STAMP)
	$(BIN)/python tools/demo.py

# The digest-and-send phase at a department's scale, measured (bench/bench.py);
# `make bench BENCH_N=200` for a quick run, `BENCH_ARGS=--help` for its options.
# Prints a table and one summary line.
BENCH_N ?= 10000
BENCH_ARGS ?=
bench: $(TEST_STAMP)
	$(BIN)/python bench/bench.py $(BENCH_N) $(BENCH_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo

# The systemd unit for this checkout and SETTINGS (as root): systemd/render_unit.py
# fills in ExecStart, ReadWritePaths (from the settings' paths) and the rest, writes
# $(UNIT_DIR)/newsletter.service and prints the next steps (docs/service.md).
install-service: $(RUNTIME_STAMP)
	$(BIN)/python systemd/render_unit.py --settings '$(SETTINGS)' --output '$(UNIT_DIR)/newsletter.service'
