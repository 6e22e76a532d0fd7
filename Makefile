# Two commands for a fresh clone: `make reproduce` and `make test`. Both create (or refresh, when
# pyproject.toml or the lock changed) the local virtual environment .venv first, with the exact
# versions of requirements/lock.txt; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCK := requirements/lock.txt
PIP_TOOLS := pip-tools==7.6.2
UV := uv==0.13.8
INSTALLER ?= uv
ARGS ?=
# make nbval also executes the student copies of these notebooks (make student-check runs them all)
STUDENT_CHECK ?= --only 01 02 11
# Headless and quiet under test: no progress bars in compared outputs, no GUI backend.
TEST_ENV := TQDM_DISABLE=1 MPLBACKEND=agg PYTHONHASHSEED=0
# Tests and notebooks run JOBS at a time (two on two cores or more), each with cores/JOBS threads:
# on CPU, two one-thread kernels get through the suite sooner than one two-thread kernel.
CORES := $(shell $(PYTHON) -c "import os; print(os.cpu_count() or 1)" 2>/dev/null || echo 1)
JOBS ?= $(shell [ $(CORES) -ge 2 ] && echo 2 || echo 1)
THREADS := $(shell echo $$(( $(CORES) / $(JOBS) > 0 ? $(CORES) / $(JOBS) : 1 )))
PARALLEL_ENV := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(THREADS)} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-$(THREADS)}

.PHONY: setup lock reproduce dry-run test unit nbval seeds bench lab student student-check clean-data clean-checkpoints

setup: $(STAMP)

# The stamp holds the lock's SHA-256 (12 hex digits): results record it as the environment they ran in.
# The lock is installed with uv (pip-installed into the venv, pinned): it fetches and unpacks the
# wheels in parallel, 30 s against pip's 139 s for this lock on a 2-core machine (both without a
# cache). The versions are the lock's either way; where uv cannot be installed or cannot reach the
# index (a pip-only mirror, say) pip installs the lock instead. INSTALLER=pip skips uv.
# --compile-bytecode: pip writes the .pyc files at install, uv only when asked; without them every
# process (each kernel, each test worker) compiles torch's sources again where PYTHONDONTWRITEBYTECODE
# is set, as on the CI machines: the unit tests took 168 s instead of 92 s.
$(STAMP): pyproject.toml $(LOCK)
	@if ! $(PY) -c "import sys" 2>/dev/null; then rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	@if [ "$(INSTALLER)" = uv ] && $(PY) -m pip install --quiet $(UV) && \
	  $(VENV)/bin/uv pip install --quiet --native-tls --compile-bytecode --python $(PY) -r $(LOCK) && \
	  $(VENV)/bin/uv pip install --quiet --native-tls --compile-bytecode --python $(PY) --no-deps -e .; then \
	  echo "installed $(LOCK) with $(UV)"; \
	else \
	  echo "installing $(LOCK) with pip"; \
	  $(PY) -m pip install --quiet -r $(LOCK) && $(PY) -m pip install --quiet --no-deps -e .; \
	fi
	@$(PY) -c "import hashlib; print(hashlib.sha256(open('$(LOCK)', 'rb').read()).hexdigest()[:12])" > $(STAMP)

## Re-resolve requirements/lock.txt from pyproject.toml and requirements/pins.in (pip-tools, in a
## throwaway venv), then `make setup` installs it. Commit the lock with what it changes.
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PYTHON) -m venv "$$tmp" && \
	"$$tmp/bin/pip" install --quiet $(PIP_TOOLS) && rm -f $(LOCK) && \
	"$$tmp/bin/pip-compile" --quiet --strip-extras --extra test --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml requirements/pins.in

## Execute every notebook headless at smoke size into results/, JOBS at a time (ARGS="--only 01 -p epochs=3" etc.)
reproduce: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib reproduce --jobs $(JOBS) $(ARGS)

## Before a long full-size run: every notebook at its full-size models, views and presets on a sample
## of each split, a few timed steps per training (reprolib.dryrun). Prints the steps the real run will
## take and an estimate of its time on this machine; writes results/dry_run/. Real data:
## ARGS="-p data_root=..." as for the real run.
dry-run: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib reproduce --size full --dry-run $(ARGS)

## Unit tests, then nbval over the committed notebooks, then the trained metrics of that run against
## the committed multi-seed bands. The notebooks' results go to a scratch folder that starts as a copy
## of the committed results/ (the summary notebook 11 reads the sweeps and bench.json).
## nbval runs in --nbval-lax mode: it executes every cell (an error or a failed claim fails the test)
## but compares only the outputs of cells marked "# NBVAL_CHECK_OUTPUT", the machine-independent ones.
## Last, the student copies of STUDENT_CHECK's notebooks run to the end with only their placeholders failing.
## Both run JOBS at a time with pytest-xdist; nbval keeps each notebook on one worker and starts them in
## `python -m reprolib order` (long ones first, 03 and 04 before the 08 and 09 that reuse their runs).
test: unit nbval

unit: $(STAMP)
	$(TEST_ENV) $(PARALLEL_ENV) $(PY) -m pytest -q -n $(JOBS) tests

nbval: $(STAMP)
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then git archive HEAD results | tar -x -C "$$scratch"; \
	else cp -R results "$$scratch/"; fi && \
	$(TEST_ENV) $(PARALLEL_ENV) REPROLIB_RESULTS="$$scratch/results" $(PY) -m pytest -q -n $(JOBS) --dist loadfile \
	  --no-loadscope-reorder --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:python $$($(PY) -m reprolib order) && \
	$(TEST_ENV) REPROLIB_FRESH_RESULTS="$$scratch/results" $(PY) -m pytest -q tests/test_fresh_results.py && \
	$(TEST_ENV) $(PARALLEL_ENV) REPROLIB_RESULTS="$$scratch/results" $(PY) -m reprolib student --check --jobs $(JOBS) \
	  --out "$$scratch/student" $(STUDENT_CHECK)

## Run the notebooks at seeds 1 and 2 (two at a time) and write results/seeds_smoke.json with the
## committed seed-0 results: the evidence behind the claims and the bands. Refresh after changing what
## a notebook trains or claims (ARGS="--only 09" for one notebook), then commit the file.
seeds: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib seeds --jobs 2 $(ARGS)

## Performance ratios (causal modules vs the models they wrap, MulT attention, data pipeline) -> results/bench.json
bench: $(STAMP)
	MPLBACKEND=agg $(PY) -m reprolib bench $(ARGS)

## JupyterLab on the same environment (kernel "python3" is this venv's Python).
## JupyterLab on the venv. A notebook run here writes its results to results/lab/ (git-ignored;
## reprolib.paths.results_dir), and widget state (the progress bars) is not saved into notebooks:
## overrides.json in the venv sets the widget manager's saveState to false.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
lab: $(STAMP)
	@mkdir -p $(LAB_SETTINGS) && echo '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": false}}' > $(LAB_SETTINGS)/overrides.json
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

## The student copies: student/NN_*.ipynb without the exercises' solutions, hidden checks or outputs
## (reprolib.student). student-check also executes each copy: only the placeholders may fail.
student: $(STAMP)
	$(PY) -m reprolib student $(ARGS)

student-check: $(STAMP)
	$(TEST_ENV) $(PY) -m reprolib student --check $(ARGS)

## Delete the cached synthetic datasets (they are regenerated on demand).
clean-data:
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

## Delete the training checkpoints and the stored runs that notebooks reuse (results/checkpoints/, git-ignored).
clean-checkpoints:
	rm -rf results/checkpoints
