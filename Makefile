# Two commands a newcomer needs after cloning (see README.md):
#   make run    set up .venv and run the pipeline on the embedded default config
#   make test   set up .venv and run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.galaxy-sbi-installed
CORES  ?= all

.PHONY: setup run test test-slurm lint format clean-results

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel here, the matching CUDA build on a cluster. Unpinned, pip
	# would pull the newest CUDA build (several GB) on CPU-only machines.
	$(BIN)/python -m pip install "torch==2.13.0"
	# VICE (yield tables for the chemistry graph) is an sdist that only compiles with Cython < 3.1:
	# build it against that Cython, outside pip's isolated build environment.
	$(BIN)/python -m pip install "cython<3.1" "setuptools<81" wheel
	$(BIN)/python -m pip install --no-build-isolation "vice==1.3.1"
	$(BIN)/python -m pip install -e ".[test,lint]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	$(BIN)/python -m pytest

# profiles/slurm for real: needs a running SLURM cluster (CI: sudo .ci/slurm-local.sh start)
test-slurm: setup
	GALAXY_SBI_SLURM=1 $(BIN)/python -m pytest -v -s tests/test_slurm.py

# ruff (lint + format) on the Python, snakefmt on the rules, Snakemake's own linter (config: pyproject.toml)
LINTED := src scripts tests benchmarks envs tools
lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# rewrite the code in the house style (what `make lint` checks)
format: setup
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/snakefmt Snakefile workflow/rules

clean-results:
	rm -rf results logs .snakemake
