# Two commands for a fresh machine (see README): `make benchmark` and `make test`.
# Both create the pinned virtual environment first (once; again when the pins change).
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.pulse-installed

.PHONY: setup benchmark check test lint clean-venv

setup: $(STAMP)

$(STAMP): envs/requirements.txt envs/requirements-dev.txt envs/requirements-cluster.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r envs/requirements.txt -r envs/requirements-dev.txt -r envs/requirements-cluster.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The default PULSE benchmark end to end: results/default/summary.md
benchmark: setup
	PATH="$(abspath $(BIN)):$$PATH" pulse workflow --cores $(CORES) --workflow-profile profiles/local

# Artifact review: the default run's summary against the committed expected results (README)
check: setup
	PATH="$(abspath $(BIN)):$$PATH" pulse check-results --summary results/default/summary.csv \
		--expected expected/default.csv

test: setup
	PATH="$(abspath $(BIN)):$$PATH" pytest -q $(PYTEST_ARGS)

lint: setup
	PATH="$(abspath $(BIN)):$$PATH" snakemake --lint

clean-venv:
	rm -rf $(VENV)
