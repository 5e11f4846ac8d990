# Two commands on a fresh clone (see README): `make demo` and `make test`.
# Both set everything up themselves, idempotently: the venv is rebuilt only when
# pyproject.toml or this file changes (stamp file), so a second call is quick.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint contracts bench clean

setup: $(STAMP) chromium

$(STAMP): pyproject.toml Makefile scripts/setup_venv.sh
	PY=$(PY) bash scripts/setup_venv.sh 2>&1 | grep -v "^WARNING: Location"; test $${PIPESTATUS[0]} -eq 0
	touch $(STAMP)

# Chromium for figure export (kaleido); Debian's package, installed once.
chromium:
	@bash scripts/ensure_system_packages.sh

demo: setup
	$(BIN)/sagetui demo

# Static checks, before any test runs: style, the import contracts, and the
# type check of store/, scheduler/, loadgen/, engine/, vocab/ and exports/ (pyproject [tool.mypy]).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benches/run_all.py

clean:
	rm -rf $(VENV)
