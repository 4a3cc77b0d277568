# One command per task, the same locally and in CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench schema clean chromium graphiql-assets

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the gateway with GraphiQL on the embedded local UCD (data in ./.local-ucd).
run: $(STAMP)
	$(BIN)/ucd-gateway serve

## Run the whole test suite, with branch coverage of gateway/ (the floor only goes up).
test: $(STAMP) chromium
	@# A real Redis for the shared-state tests: installed with apt-get when missing and root.
	@.ci/install-redis
	$(BIN)/pytest -q -n 2 --dist loadfile --cov=gateway --cov-branch --cov-report= --cov-fail-under=96

## Lint and type-check.
check: $(STAMP)
	$(BIN)/ruff check gateway tests bench scripts
	$(BIN)/ruff format --check gateway tests bench scripts
	$(BIN)/mypy

## Benchmarks; results are written to bench/README.md by hand from the printed tables.
bench: $(STAMP)
	@# bench/peers.py's load generator; without it the bench falls back to a Python process.
	@command -v wrk >/dev/null 2>&1 || (apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1)) \
		|| echo "wrk could not be installed: bench/peers.py uses its Python load generator"
	$(BIN)/python -m bench

## Regenerate schema/schema.graphql from the code.
schema: $(STAMP)
	$(BIN)/ucd-gateway schema > schema/schema.graphql

## Debian's chromium, for the GraphiQL browser test; installed only when missing.
chromium:
	scripts/ensure_chromium.sh

## Refresh GraphiQL's vendored files from npm at the versions pinned in the script.
graphiql-assets: $(STAMP)
	$(BIN)/python scripts/refresh_graphiql.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
