# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and install fdm into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Tests use this PostgreSQL server (pytest-django creates and drops its own test database on it).
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

# The locks pin every package, with hashes, for Python 3.11 on any platform: requirements.txt (what the image
# runs), requirements-demo.txt (that, the emulator and the embedded PostgreSQL: what `make demo` installs) and
# requirements-dev.txt (that and the test tools: what `make test` installs).
UV ?= $(BIN)/uv
LOCK_DIR ?= .
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock"

.PHONY: install install-demo browser tools demo test load faults lint format bench lock clean screenshots

install: $(VENV)/.installed
install-demo: $(VENV)/.installed-demo

# Installs exactly what a lock lists (pip refuses any package whose hash differs), then fdm itself. The demo's
# lock is a subset of the development lock, so a .venv made for the tests serves the demo as it is.
$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed-demo

$(VENV)/.installed-demo: requirements-demo.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-demo.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# After a change of pins in pyproject.toml: rewrite both locks (versions already locked stay unless a pin moves
# them). tests/deploy/test_lock.py fails while a lock is out of step with pyproject.toml.
lock:
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o $(LOCK_DIR)/requirements.txt
	$(UV) pip compile pyproject.toml --extra demo $(LOCK_FLAGS) -o $(LOCK_DIR)/requirements-demo.txt
	$(UV) pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o $(LOCK_DIR)/requirements-dev.txt

# The admin's page tests drive Debian's Chromium through its chromedriver; installed only when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium chromium-driver; \
	fi

# Debian's prometheus (promtool runs the alert rules' unit tests; the stack test runs Prometheus itself) and
# docker-compose (`docker-compose config` validates docker-compose.yml); installed only when missing.
tools:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The demo serves plain http on 127.0.0.1: FDM_HTTPS=false (no HTTPS redirect, cookies sent over http).
demo: install-demo
	FDM_HTTPS=false $(BIN)/python manage.py demo

# Checks and tests run as a local run (FDM_HTTPS=false, no SECRET_KEY); `check --deploy` with a production
# environment proves the production posture.
test: install browser tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/mypy
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/python manage.py check
	DATABASE_URL=$(TEST_DATABASE_URL) SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
		ALLOWED_HOSTS=fdm.example.com DEBUG= FDM_HTTPS= $(BIN)/python manage.py check --deploy --fail-level WARNING
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest

# PNGs of the operator's pages at 1440 px (dashboard, status board, a queued run's page following its run, the
# finished run's page, the import page's error excerpt), written to screenshots/ by the real-browser tests that drive those pages.
screenshots: install browser
	rm -rf screenshots
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false FDM_SCREENSHOT_DIR=$(CURDIR)/screenshots \
		$(BIN)/pytest -q tests/browser/test_cockpit.py tests/browser/test_import_page.py tests/browser/test_source_browser.py
	@ls -1 screenshots/*.png

# The load checks that take minutes: 200 tables due at once through two workers (a test), then the API under 50
# clients for 60 s against a 100,000-run history (a benchmark printing its figures; docs/reliability.md).
load: install
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/pytest -q -m load
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/python manage.py benchmark_load

# The fault cases alone (`pytest -m faults`: kills, lost connections, a lost or slow source, restarts, disk,
# data, concurrency), with the stateful property test at a larger size than in `make test`; then, pass or fail,
# the table of what the kill and connection cases measured (docs/reliability.md, "Kills and lost connections"),
# from the results file they write.
FAULTS_RESULTS ?= $(or $(TMPDIR),/tmp)/fdm-faults-results.jsonl
faults: install
	rm -f $(FAULTS_RESULTS)
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false FDM_PROPERTY_EXAMPLES=60 FDM_FAULTS_RESULTS=$(FAULTS_RESULTS) \
		$(BIN)/pytest -q -m faults; status=$$?; $(BIN)/python -m tests.faults.report $(FAULTS_RESULTS); exit $$status

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The django-stubs plugin loads the settings, which need a database URL (mypy never connects to it).
.PHONY: typecheck
typecheck: install
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/mypy

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python manage.py benchmark

clean:
	rm -rf $(VENV) .fdm staticfiles
