"""Where data, results and notebooks live, resolved the same way from a notebook, papermill or pytest.

Notebooks run with their own folder as the working directory (nbval, JupyterLab) or wherever
papermill was started, so nothing may rely on the cwd. The repository root is the folder above the
installed (editable) package when it holds ``pyproject.toml``; otherwise the cwd. ``REPROLIB_DATA``
and ``REPROLIB_RESULTS`` override the two output folders.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    """Cache of generated synthetic data (git-ignored); real datasets are passed as ``data_root``."""
    return Path(os.environ.get("REPROLIB_DATA", repo_root() / "data"))


LAB_RESULTS = "lab"  # results/lab/ (git-ignored): what notebooks run in JupyterLab write


def committed_results_dir() -> Path:
    """The repository's own results/: the committed metrics, sweeps and figures."""
    return repo_root() / "results"


def results_dir() -> Path:
    """Metrics JSON, figures and executed notebooks written by runs: ``REPROLIB_RESULTS`` when set;
    in a kernel that JupyterLab started (Jupyter Server sets ``JPY_SESSION_NAME`` for those, papermill
    and nbval do not) ``results/lab/``, so that stepping through a notebook never overwrites the
    committed results; else ``results/`` (``make reproduce``, ``refresh``, the sweeps)."""
    if os.environ.get("REPROLIB_RESULTS"):
        return Path(os.environ["REPROLIB_RESULTS"])
    if os.environ.get("JPY_SESSION_NAME"):
        return committed_results_dir() / LAB_RESULTS
    return committed_results_dir()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"
