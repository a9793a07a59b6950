# Two entry points: `make plan` (offline plan + policy pack for STACK) and `make test` (lint, types, tests).
# Both create the virtualenv on first use; nothing here calls AWS or the Pulumi service.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: plan test lint typecheck pytest clean

NODE_TOOLS := node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

plan: $(VENV)/.installed
	$(PY) -m tools.plan --stack $(STACK) $(if $(JSON),--json $(JSON))

lint: $(VENV)/.installed
	$(PY) -m ruff check .

typecheck: $(VENV)/.installed
	$(PY) -m mypy

pytest: $(VENV)/.installed $(NODE_TOOLS)
	$(PY) -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) node_modules .mypy_cache .pytest_cache .ruff_cache .hypothesis
