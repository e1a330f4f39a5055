# `make run` sets up and starts the app; `make test` runs the whole suite.
# Both create .venv on first use and reinstall only when a requirements file changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint serve bench clean

run: $(VENV)/installed
	$(BIN)/flask db upgrade
	$(BIN)/flask run

test: $(VENV)/installed
	$(BIN)/pytest

lint: $(VENV)/installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Production-style serving on http://127.0.0.1:8000 (settings in gunicorn.conf.py).
serve: $(VENV)/installed
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn "backend:create_app()"

# Performance against a bare Flask baseline; needs PostgreSQL, Redis and wrk (benchmarks/README.md).
bench: $(VENV)/installed
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "wrk is needed: install it (apt-get install wrk, brew install wrk)"; exit 1; }
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .coverage htmlcov

$(VENV)/installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@
