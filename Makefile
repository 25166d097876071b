# Quick start: `make run` (the daemon on settings.toml) and `make test`.
# Both create .venv and install the project with its test extra first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SETTINGS ?= settings.toml

.PHONY: install test run lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

run: install
	$(BIN)/newsletter --settings $(SETTINGS) run

# The digest-and-send phase at a department's scale, measured (bench/bench.py);
# `make bench BENCH_N=200` for a quick run. Prints a table and one summary line.
BENCH_N ?= 10000
bench: install
	$(BIN)/python bench/bench.py $(BENCH_N)

lint: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
