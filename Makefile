# OCIS backend. `make run` serves the development instance; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` needs no linters or test tools: the test extras have a stamp of their own.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Every install takes the exact versions and hashes of the locks; `make lock` refreshes them.
LOCK := requirements/main.lock
TEST_LOCK := requirements/test.lock
# `make test` runs the suite on TEST_WORKERS processes (pytest-xdist): `auto` takes one per core,
# at most TEST_MAX_WORKERS (each worker has its own Redis databases, four at most from the base);
# TEST_WORKERS=0 runs it in one process. A plain `pytest tests/test_x.py` is always serial.
TEST_WORKERS ?= auto
TEST_MAX_WORKERS ?= 4
COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)

.PHONY: run test lint bench load sdl clean lock audit console browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "OCIS needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(TEST_STAMP): pyproject.toml $(TEST_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(TEST_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(TEST_STAMP) $(STAMP)

# Refresh the locks after a change to pyproject.toml; `make lock UPGRADE=1` takes every newest
# release the pins allow.
lock: $(TEST_STAMP)
	$(COMPILE) --output-file=$(LOCK) pyproject.toml
	$(COMPILE) --extra=test --output-file=$(TEST_LOCK) pyproject.toml

# Known vulnerabilities in the locked versions; --strict fails when a package cannot be checked.
audit: $(TEST_STAMP)
	$(BIN)/pip-audit --strict --require-hashes --disable-pip --progress-spinner off -r $(TEST_LOCK)

# The real OpenID provider (npm oidc-provider) that the federated sign-in tests run on loopback.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package-lock.json
	npm ci --omit=dev --no-audit --no-fund --prefix $(OIDC_PROVIDER)
	@touch $@

# The staff console (GraphiQL at /console), built from its lock into console/dist; the server
# answers 503 at /console until it is built.
CONSOLE := console
CONSOLE_DIST := $(CONSOLE)/dist
CONSOLE_SOURCES := $(CONSOLE)/package.json $(CONSOLE)/index.html $(CONSOLE)/vite.config.js \
	$(wildcard $(CONSOLE)/src/*)
$(CONSOLE)/node_modules/.installed: $(CONSOLE)/package-lock.json
	npm ci --no-audit --no-fund --prefix $(CONSOLE)
	@touch $@
$(CONSOLE_DIST)/.built: $(CONSOLE)/package-lock.json $(CONSOLE_SOURCES) $(CONSOLE)/node_modules/.installed
	npm run build --prefix $(CONSOLE)
	@touch $@
console: $(CONSOLE_DIST)/.built

# Debian's Chromium for the console's browser test (tests/test_console_browser.py); needs root.
browser:
	@test -x /usr/bin/chromium || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# `make run` needs only Python (ARCHITECTURE.md): without npm the console stays unbuilt (503).
# graphql-http's server audit of the GraphQL-over-HTTP spec, run against a real server.
HTTP_AUDIT := tests/graphql_http_audit
$(HTTP_AUDIT)/node_modules/.installed: $(HTTP_AUDIT)/package-lock.json
	npm ci --omit=dev --no-audit --no-fund --prefix $(HTTP_AUDIT)
	@touch $@

# graphql-ws's own client (npm), subscribing as the web frontend does (tests/test_subscriptions.py).
WS_CLIENT := tests/graphql_ws_client
$(WS_CLIENT)/node_modules/.installed: $(WS_CLIENT)/package-lock.json
	npm ci --omit=dev --no-audit --no-fund --prefix $(WS_CLIENT)
	@touch $@

run: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(CONSOLE_DIST)/.built; \
	else echo "npm not found: /console answers 503 until 'make console'"; fi
	$(BIN)/python server.py migrate
	$(BIN)/python server.py seed
	$(BIN)/python server.py serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/deptry .
	@# tests/ may also import the test extras.
	$(BIN)/deptry . --exclude '\.venv|\.git|migrations' --ignore DEP002,DEP004

test: lint $(OIDC_PROVIDER)/node_modules/.installed $(HTTP_AUDIT)/node_modules/.installed \
	$(WS_CLIENT)/node_modules/.installed \
	$(CONSOLE_DIST)/.built browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses=$(TEST_MAX_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

# 50 clients for 60 s on `serve --workers 2`, a PostgreSQL database and a Redis of its own (the
# cluster of DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres); ends with one
# JSON line, exit 1 on a lost or doubled write, an internal error or a broken audit trail.
load: $(STAMP)
	$(BIN)/python -m bench.load_run

sdl: $(STAMP)
	$(BIN)/python -c 'import schema; schema.SDL_PATH.write_text(schema.sdl())'

clean:
	rm -rf $(VENV) var/*.sqlite3*
