# Two commands on a fresh clone (only Python >= 3.11 and pip needed):
#   make run   - install into .venv if needed, then run the whole workflow on config/config.yaml
#                (more Snakemake arguments: make run ARGS="--configfile config/smoke.yaml")
#   make test  - install into .venv if needed, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned to the builds this project is tested with; override for another platform,
# e.g. `make run TORCH="torch torchvision"`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
CORES ?= 8
ARGS ?=

.PHONY: run test lint bench clean-results

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

# dlatoms.run clears a lock left by a killed run (only when no Snakemake runs here), then runs Snakemake.
run: $(BIN)/.installed
	$(BIN)/python -m dlatoms.run --cores $(CORES) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src scripts tests bench
	$(BIN)/ruff format --check src scripts tests bench
	$(BIN)/snakefmt --check Snakefile workflow

bench: $(BIN)/.installed
	$(BIN)/python bench/train_engine.py

clean-results:
	rm -rf results logs benchmarks
