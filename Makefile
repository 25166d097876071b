# Quick start: `make run` (the daemon on settings.toml) and `make test`.
# Both create .venv and install the project with its test extra first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SETTINGS ?= settings.toml

UNIT_DIR ?= /etc/systemd/system

.PHONY: install test run lint format bench clean install-service

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
# `make bench BENCH_N=200` for a quick run, `BENCH_ARGS=--help` for its options.
# Prints a table and one summary line.
BENCH_N ?= 10000
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/bench.py $(BENCH_N) $(BENCH_ARGS)

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

# Install the systemd unit for this checkout (run as root), then print the next steps.
install-service: install
	sed "s#/opt/daily-papers#$(CURDIR)#g" systemd/newsletter.service > $(UNIT_DIR)/newsletter.service
	@echo "Installed $(UNIT_DIR)/newsletter.service for $(CURDIR). Next steps (as root):"
	@echo "  1. A system user:   useradd --system --home-dir /var/lib/newsletter --shell /usr/sbin/nologin newsletter"
	@echo "  2. Its files:       chown -R newsletter: $(CURDIR)/archive $(CURDIR)/subscribers"
	@echo "  3. SMTP password:   install -d -m 0700 /etc/newsletter && install -m 0600 /dev/stdin /etc/newsletter/smtp-password"
	@echo "                      and in settings.toml: [smtp] password_file = \"smtp-password\""
	@echo "  4. Start it:        systemctl daemon-reload && systemctl enable --now newsletter"
	@echo "  5. Watch it:        systemctl status newsletter; journalctl -u newsletter -f"
