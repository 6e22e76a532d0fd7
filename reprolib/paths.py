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


def results_dir() -> Path:
    """Metrics JSON, figures and executed notebooks written by runs."""
    return Path(os.environ.get("REPROLIB_RESULTS", repo_root() / "results"))


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"
