# `make demo` runs the product; `make test` runs every check. Both set themselves up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m starter demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: lint
	bash scripts/run_pytest.sh

bench: setup
	$(PY) -m bench

# Fault injection on the deployed stack (bench/chaos.py): worker kill -9 during an alert
# herd, dev server killed and restarted, store unavailable. CI runs it at 10 cases per
# scenario (tests/chaos/); `make chaos CHAOS_SIZE=2000 CHAOS_OUTAGE=60` is the benchmark.
CHAOS_SIZE ?= 200
CHAOS_OUTAGE ?= 10
chaos: setup
	$(PY) -m bench.chaos --cases $(CHAOS_SIZE) --outage $(CHAOS_OUTAGE)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
