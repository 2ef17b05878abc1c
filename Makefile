# Quickstart targets. Each one is self-contained on a fresh machine: it creates
# .venv, installs the CPU build of PyTorch first (a bare `torch` requirement
# would pull several GB of CUDA packages), then bayes with all extras.
# Re-running reuses the environment; it is rebuilt only when pyproject.toml
# or setup.py change.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.bayes-installed
PYTEST_ARGS ?=

.PHONY: demo test setup lint docs clean

demo: $(STAMP)
	$(BIN)/bayes showcase --out results

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site results build *.egg-info
