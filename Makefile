# The two set-up commands of a fresh machine: `make run` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Two locked sets, every package pinned with its sha256 (transitive ones too), made by `make lock`:
# requirements.lock is what production runs (`make run`, ops/RUNBOOK.md); requirements-test.lock is that same
# set at the same versions plus the [test] extra: what `make test` and CI check. requirements-install.lock
# pins the installer, pip, and the build backend, setuptools: installed first, because the pip that comes with
# python3 is slower (46 s against 31 s for the test set here) and an unpinned upgrade would be an unchecked download.
INSTALL_LOCK := requirements-install.lock
RUNTIME_LOCK := requirements.lock
TEST_LOCK := requirements-test.lock

# One stamp per set, remade when its locks or pyproject.toml (scripts, entry points) change.
RUNTIME_SET := $(VENV)/.installed-runtime
TEST_SET := $(VENV)/.installed-test

.PHONY: run test lint lock clean

# --require-hashes: pip installs nothing that is not in the lock with that hash. The project itself is then
# installed editable without resolving anything (--no-deps) and built by the locked setuptools
# (--no-build-isolation), so no unpinned download happens; that install puts the stamdata-importer script and
# the stamdata.registers entry points in place. pip check fails when pyproject.toml asks for a package the
# lock lacks (run `make lock`).
define install_set
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(INSTALL_LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(1)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
endef

$(RUNTIME_SET): $(INSTALL_LOCK) $(RUNTIME_LOCK) pyproject.toml
	$(call install_set,$(RUNTIME_LOCK))
	touch $@

# The test set contains the runtime set at the same versions, so it serves `make run` as well: the runtime
# stamp is touched too and a .venv made by `make test` is not reinstalled by `make run`. (A .venv made by
# `make run` gets the rest of the test set on the next `make test`.)
$(TEST_SET): $(INSTALL_LOCK) $(TEST_LOCK) $(RUNTIME_LOCK) pyproject.toml
	$(call install_set,$(TEST_LOCK))
	touch $@ $(RUNTIME_SET)

# The daemon on the embedded SQLite default (var/*.sqlite); Ctrl-C stops it cleanly. A development machine is a
# test environment: the test-data service is on unless STAMDATA_TESTDATA_ENABLED says otherwise.
run: $(RUNTIME_SET)
	@echo "stamdata importer daemon"
	@echo "  inbox:   $$(realpath -m "$${STAMDATA_INBOX:-inbox}")/<register>/   (try: cp ops/samples/autorisation/* inbox/autorisation/)"
	@echo "  status:  http://$${STAMDATA_LISTEN:-127.0.0.1:8080}/status"
	@echo "  metrics: http://$${STAMDATA_LISTEN:-127.0.0.1:8080}/metrics"
	STAMDATA_TESTDATA_ENABLED=$${STAMDATA_TESTDATA_ENABLED:-true} $(BIN)/stamdata-importer run

lint: $(TEST_SET)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two or more workers: most of the suite waits on databases and daemons, so it runs in under half the time.
test: lint
	$(BIN)/pytest -n auto --maxprocesses 4

# Regenerates the locks from pyproject.toml (needs PyPI). uv resolves for the target platform (Linux x86_64,
# CPython 3.11) whatever machine runs it, in about a second. Current pins are kept unless pyproject.toml's
# ranges exclude them; `make lock UPGRADE=--upgrade` moves everything to the newest allowed versions.
# The install lock takes pyproject.toml's build requirements (setuptools) and pip. The test set is resolved
# under the runtime lock (-c), so both hold the same versions of what they share.
UV_VERSION := 0.13.9
UV := $(VENV)/uv-$(UV_VERSION)/bin/uv
BUILD_REQUIRES := $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'
COMPILE := $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(UPGRADE)

lock: $(UV)
	{ $(BUILD_REQUIRES); echo pip; } | $(COMPILE) - -o $(INSTALL_LOCK)
	$(COMPILE) pyproject.toml -o $(RUNTIME_LOCK)
	$(COMPILE) pyproject.toml --extra test -c $(RUNTIME_LOCK) -o $(TEST_LOCK)

# uv is a development tool only, kept in its own venv inside .venv: installing needs nothing but pip.
$(UV):
	$(PYTHON) -m venv $(VENV)/uv-$(UV_VERSION)
	$(VENV)/uv-$(UV_VERSION)/bin/python -m pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
