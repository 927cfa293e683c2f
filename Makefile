# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and install fdm into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Tests use this PostgreSQL server (pytest-django creates and drops its own test database on it).
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: install browser demo test lint format bench clean screenshots

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The admin's page tests drive Debian's Chromium through its chromedriver; installed only when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium chromium-driver; \
	fi

# The demo serves plain http on 127.0.0.1: FDM_HTTPS=false (no HTTPS redirect, cookies sent over http).
demo: install
	FDM_HTTPS=false $(BIN)/python manage.py demo

# Checks and tests run as a local run (FDM_HTTPS=false, no SECRET_KEY); `check --deploy` with a production
# environment proves the production posture.
test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/mypy
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/python manage.py check
	DATABASE_URL=$(TEST_DATABASE_URL) SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
		ALLOWED_HOSTS=fdm.example.com DEBUG= FDM_HTTPS= $(BIN)/python manage.py check --deploy --fail-level WARNING
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest

# PNGs of the operator's pages at 1440 px (dashboard, status board, a queued run's page following its run, the
# finished run's page), written to screenshots/ by the real-browser tests that drive those pages.
screenshots: install browser
	rm -rf screenshots
	DATABASE_URL=$(TEST_DATABASE_URL) FDM_HTTPS=false FDM_SCREENSHOT_DIR=$(CURDIR)/screenshots \
		$(BIN)/pytest -q tests/browser/test_cockpit.py
	@ls -1 screenshots/*.png

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
