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
# One job per core: on 2 cores, --cores 8 runs 8 one-thread jobs at once and each slows to a quarter.
CORES ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
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
	$(BIN)/python bench/finetune.py

clean-results:
	rm -rf results logs benchmarks
