SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful install: pip runs again only when pyproject.toml changes.
# make run installs what running takes; the test, lint and bench tools (the dev extra)
# come with the targets that use them. The dev install covers run's needs too.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test bench lint messages clean venv

# Everything, tools included: what CI and a developer about to change the code want.
venv: $(DEV_STAMP)

$(PY):
	@for candidate in python3.11 python3; do \
	  if command -v $$candidate >/dev/null && $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	    interpreter=$$candidate; break; \
	  fi; \
	done; \
	if [ -z "$${interpreter:-}" ]; then \
	  echo "make: deploycheck needs Python 3.11 or newer (python3.11 or python3 on PATH); none found" >&2; \
	  exit 1; \
	fi; \
	echo "make: creating $(VENV) with $$($$interpreter --version)"; \
	$$interpreter -m venv $(VENV)

# Order-only on the interpreter: creating the virtualenv is no reason to install again.
$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(PY) -m deploycheck.run

# The suite runs against real PostgreSQL and Redis; the environment or the command line
# may point elsewhere, and `make run` keeps its embedded SQLite + filesystem broker.
test: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
test: export REDIS_URL ?= redis://127.0.0.1:6379/0
# settings refuse to start without a key when DEBUG is off, as it is under test.
test: export SECRET_KEY ?= insecure-key-for-tests-only
test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(PY) -m tests.bench $(BENCH_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=lint $(VENV)/bin/mypy deploycheck releases checks api notifications

# The settings refuse to load without a key when DEBUG is off; no key is used here.
messages: export SECRET_KEY ?= messages
messages: $(RUN_STAMP)
	mkdir -p locale
	$(PY) manage.py makemessages -l es --ignore=.venv --ignore=tests --ignore=var --no-obsolete
	$(PY) manage.py compilemessages -l es --ignore=.venv

# Only what the app writes at run time under the default DATA_DIR (and the control/
# folder older versions left in the working directory); dotfiles such as a .gitkeep stay.
clean:
	rm -rf var/* control
