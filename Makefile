# The two set-up commands of a fresh machine: `make run` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/stamdata-importer replay autorisation ops/samples/autorisation
	$(BIN)/stamdata-importer status

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
