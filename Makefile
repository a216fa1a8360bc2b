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

# The daemon on the embedded SQLite default (var/*.sqlite); Ctrl-C stops it cleanly.
run: $(INSTALLED)
	@echo "stamdata importer daemon"
	@echo "  inbox:   $$(realpath -m "$${STAMDATA_INBOX:-inbox}")/<register>/   (try: cp ops/samples/autorisation/* inbox/autorisation/)"
	@echo "  status:  http://$${STAMDATA_LISTEN:-127.0.0.1:8080}/status"
	@echo "  metrics: http://$${STAMDATA_LISTEN:-127.0.0.1:8080}/metrics"
	$(BIN)/stamdata-importer run

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two or more workers: most of the suite waits on databases and daemons, so it runs in under half the time.
test: lint
	$(BIN)/pytest -n auto --maxprocesses 4

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
