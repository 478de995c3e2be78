# GravityPM Ops. Two commands do all set-up on a fresh machine:
#   make up     start the suite on its embedded local stack (Ctrl-C or `make stop` stops it)
#   make test   install what the tests need, check the import contracts, run everything, tear down
.DEFAULT_GOAL := help
SHELL := /bin/bash

# The local MongoDB server (mongoeco) needs Python >= 3.13, so the whole project runs on 3.13.
PYTHON ?= $(shell for p in $$(command -v python3.13) "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help up stop test bench lock clean

help:
	@echo "make up     start Airflow + an Edge worker host agent + the local stack (UI on http://127.0.0.1:8080)"
	@echo "            make up SINGLE=1: one box, no Edge worker"
	@echo "make stop   stop what 'make up' started"
	@echo "make test   run the whole test suite (installs what it needs)"
	@echo "make bench  run the benchmarks"

# The install also puts include/ on the venv's path (a .pth file), so the library imports in every
# tool run from the venv: lint-imports, python -m bench, a shell.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13) or pass PYTHON=/path/to/python3.13"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
	echo "$(CURDIR)/include" > "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/gravitypm_ops_include.pth"
	touch $(STAMP)

# The split topology (control plane + an Edge worker as the host agent); `make up SINGLE=1`: one box;
# `make up METADB=sqlite`: Airflow's metadata in SQLite instead of the stack's own Postgres.
up: $(STAMP)
	$(VENV)/bin/python -m dev.up $(if $(SINGLE),--single) $(if $(METADB),--metadb $(METADB))

stop: $(STAMP)
	$(VENV)/bin/python -m dev.up stop

# Import contracts first (.importlinter; a second, quick), then the suite.
test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python -m bench

# Re-resolve and pin every transitive dependency (run after changing requirements*.txt).
lock:
	rm -rf /tmp/gravitypm-lock && $(PYTHON) -m venv /tmp/gravitypm-lock
	/tmp/gravitypm-lock/bin/pip install --quiet -r requirements.txt -r requirements-dev.txt
	/tmp/gravitypm-lock/bin/pip freeze --exclude-editable | sort > constraints.txt

clean:
	rm -rf $(VENV) .state
