# Two entry points: `make plan` (offline plan + policy pack for STACK) and `make test` (lint, types, tests).
# Both create the virtualenv on first use; nothing here calls AWS or the Pulumi service.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
.PHONY: plan test lint typecheck jstest pytest clean sandbox localstack chromium

NODE_TOOLS := node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# LocalStack (host mode) in its own Python 3.13 venv for the sandbox and its tests; the stamp is the requirements' hash.
LOCALSTACK := .sandbox/localstack-venv/.requirements.sha256
TRACKER := web/dist/clickstream.min.js

$(LOCALSTACK): tools/sandbox/localstack-requirements.txt | $(VENV)/.installed
	$(PY) -m tools.sandbox.localstack --install

$(TRACKER): $(NODE_TOOLS) web/build.mjs $(wildcard web/src/*)
	npm run build

# `@` and the venv set-up's output on stderr keep stdout clean for `make plan JSON=- | jq .`.
plan:
	@$(MAKE) -q --no-print-directory $(VENV)/.installed || $(MAKE) --no-print-directory $(VENV)/.installed 1>&2
	@$(PY) -m tools.plan --stack $(STACK) $(if $(JSON),--json $(JSON))

lint: $(VENV)/.installed
	$(PY) -m ruff check .

typecheck: $(VENV)/.installed
	$(PY) -m mypy

jstest: $(NODE_TOOLS)
	npm run --silent test:web

pytest: $(VENV)/.installed $(NODE_TOOLS) $(TRACKER) $(LOCALSTACK) chromium
	$(PY) -m pytest

test: lint typecheck jstest pytest

localstack: $(LOCALSTACK)

# The browser tests drive Debian's chromium (headless); install it on a fresh machine.
chromium:
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

# The reader loop on this machine (see README "Try it locally"); SANDBOX_ARGS e.g. "--site-port 8080".
sandbox: $(VENV)/.installed $(LOCALSTACK) $(TRACKER)
	$(PY) -m tools.sandbox $(SANDBOX_ARGS)

clean:
	rm -rf $(VENV) node_modules .mypy_cache .pytest_cache .ruff_cache .hypothesis
