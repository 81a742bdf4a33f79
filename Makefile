# Two commands for a new machine: `make test` and `make demo`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING

.PHONY: install test lint demo bench clean

$(BIN)/python:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --python $(PYTHON) $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	@# An editable install is not byte-compiled; DAG parsing should not pay for compiling the provider.
	$(BIN)/python -m compileall -q airflow_provider_fastly_billing
	@touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup -q

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .airflow demo .pytest_cache .ruff_cache .hypothesis
