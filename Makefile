# Everything a fresh clone needs: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all venv bench clean

venv: $(STAMP)

# Reinstalls when pyproject.toml changes. torch/torchvision are pinned in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/compete data fetch house-prices --out data/house-prices
	$(BIN)/compete run house-prices --data data/house-prices

# CI's run (.ci/run): everything but the extended variants, which `make test-all` adds.
# Two processes (pytest-xdist), a test file each at a time: a file's module fixtures are
# made once, and the session's shared runs once for both (tests/conftest.py `_once`).
TEST_PROCESSES ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

test: $(STAMP)
	$(PYTEST) -m "not extended"

test-all: $(STAMP)
	$(PYTEST)

bench: $(STAMP)
	for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Also the cache and temp folders README's "Where compete writes" lists (no venv needed).
clean:
	rm -rf runs submissions/*/ .pytest_cache "$${COMPETE_CACHE:-$$HOME/.cache/compete}" "$${TMPDIR:-/tmp}"/compete-*
