# The README's two commands: `make demo` and `make test`. Both set everything up from a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hf-galaxy-installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch is installed first from its CPU wheel (an open `torch` requirement can pull a multi-GB CUDA build).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/hf-galaxy demo --output_dir demo_output

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_prepare.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
