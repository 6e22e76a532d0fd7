# Two commands for a fresh clone: `make reproduce` and `make test`. Both create (or refresh, when
# pyproject.toml changed) the local virtual environment .venv first; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# Headless and quiet under test: no progress bars in compared outputs, no GUI backend.
TEST_ENV := TQDM_DISABLE=1 MPLBACKEND=agg PYTHONHASHSEED=0

.PHONY: setup reproduce test unit nbval bench lab clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if ! $(PY) -c "import sys" 2>/dev/null; then rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## Execute every notebook headless at smoke size into results/ (ARGS="--only 01 -p epochs=3" etc.)
reproduce: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib reproduce $(ARGS)

## Unit tests, then nbval over the committed notebooks. Their results go to a scratch folder that
## starts as a copy of the committed results/ (the summary notebook 11 reads the sweeps and bench.json).
test: unit nbval

unit: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q tests

nbval: $(STAMP)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then git archive HEAD results | tar -x -C "$$scratch"; \
	else cp -R results "$$scratch/"; fi && \
	$(TEST_ENV) REPROLIB_RESULTS="$$scratch/results" $(PY) -m pytest -q --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:python notebooks

## Performance ratios (causal modules vs the models they wrap, MulT attention, data pipeline) -> results/bench.json
bench: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib bench $(ARGS)

## JupyterLab on the same environment (kernel "python3" is this venv's Python).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

## Delete the cached synthetic datasets (they are regenerated on demand).
clean-data:
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
