# `make demo` runs the product; `make test` runs every check. Both set themselves up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The versions the suite is tested with (pip-tools; `make lock` remakes both from
# pyproject.toml). Installed as constraints: a dependency added to pyproject.toml and not yet
# locked still installs (tests/test_deploy.py then says to run `make lock`).
LOCK := requirements-dev.lock
PIP_COMPILE_FLAGS := --quiet --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host

.PHONY: setup demo test lint bench chaos clean lock

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# requirements.lock: the runtime dependencies (the Dockerfile installs it); requirements-dev.lock:
# with the dev extra (make setup's constraints).
lock: setup
	$(VENV)/bin/pip-compile $(PIP_COMPILE_FLAGS) -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile $(PIP_COMPILE_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

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
