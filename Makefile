# Two commands for a new machine: `make test` and `make demo`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING

# The oldest Airflow pyproject.toml admits, with the dependencies of its release (as its constraints file would
# pin them; later pydantic releases break it), so the declared range is tested, not assumed.
OLDEST_AIRFLOW := 3.2.0
OLDEST_DATE := 2026-05-01
OLDEST := .venv-oldest
NEWER := $(foreach p,duckdb duckdb-engine $(addprefix apache-airflow-providers-,duckdb common-sql common-compat \
	common-io postgres sqlite standard smtp),--exclude-newer-package $(p)=2100-01-01)

.PHONY: install test test-oldest test-deployment lint demo bench clean focus-validator

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
	$(BIN)/mypy

test: lint focus-validator
	$(BIN)/pytest -n 2 --dist loadgroup -q

$(OLDEST)/.installed: pyproject.toml | $(BIN)/python
	test -x $(OLDEST)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(OLDEST)
	$(UV) pip install --quiet --python $(OLDEST)/bin/python --exclude-newer $(OLDEST_DATE) $(NEWER) \
		-e '.[dev]' 'apache-airflow==$(OLDEST_AIRFLOW)'
	@touch $@

test-oldest: $(OLDEST)/.installed focus-validator
	$(OLDEST)/bin/python -m pytest -n 2 --dist loadgroup -q

# The deployment test: the built wheel in a venv of its own with the Airflow of .venv, Airflow's processes
# started as a deployment runs them (tests_deployment/test_deployment.py). A few minutes; PostgreSQL required.
DEPLOY := .deploy
test-deployment: install
	rm -rf $(DEPLOY)/dist
	$(UV) build --quiet --wheel --out-dir $(DEPLOY)/dist
	test -x $(DEPLOY)/venv/bin/python || $(UV) venv --quiet --python $(PYTHON) $(DEPLOY)/venv
	$(UV) pip install --quiet --compile-bytecode --python $(DEPLOY)/venv/bin/python \
		"apache-airflow==$$($(BIN)/python -c 'import airflow; print(airflow.__version__)')" \
		apache-airflow-providers-postgres apache-airflow-providers-duckdb pytest \
		--reinstall-package airflow-provider-fastly-billing $(DEPLOY)/dist/*.whl
	time $(DEPLOY)/venv/bin/pytest -p no:cacheprovider -q tests_deployment
	@cat $(DEPLOY)/run/summary.json

demo: install focus-validator
	$(BIN)/python dags_examples/demo.py

# Each benchmark against the floor or the peer (dlt, from the [bench] extra); about 10-15 minutes on 2 cores.
bench: install
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(OLDEST) $(FOCUS_VENV) $(DEPLOY) .airflow demo .pytest_cache .ruff_cache .hypothesis

# The FinOps Foundation's FOCUS validator and focus-data-toolkit need Python >= 3.12 (on 3.11 pip silently installs
# a validator of FOCUS 1.0): their own venv, at the fixed path tests/test_focus_validator.py looks for. Without a
# Python 3.12 those tests skip (and fail under CI=true).
FOCUS_VENV := .venv-focus
PYTHON312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12.*/bin/python3.12) \
	$(shell command -v python3.12 2>/dev/null))

$(FOCUS_VENV)/.installed: | $(BIN)/python
	@if [ -n "$(PYTHON312)" ] && "$(PYTHON312)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
		$(UV) venv --quiet --python "$(PYTHON312)" $(FOCUS_VENV) && \
		$(UV) pip install --quiet --python $(FOCUS_VENV)/bin/python \
			"focus-validator==2.2.1" "pyarrow<22" "focus-data-toolkit==0.14.1" && touch $@; \
	else echo "No Python 3.12 found (set PYTHON312=...): the FOCUS validator tests will skip"; fi

focus-validator: $(FOCUS_VENV)/.installed
