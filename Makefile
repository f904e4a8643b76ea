# Two entry points: `make demo` (set up, then run cmsr on the built-in example)
# and `make test` (set up, then lint, type-check and run the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# constraints.txt pins the exact torch (the CPU wheel) the tests and benchmarks run with;
# the package's own metadata accepts a range.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/cmsr demo -o demo-output --overwrite

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python benchmarks/eval_suite.py

clean:
	rm -rf $(VENV) demo-output
