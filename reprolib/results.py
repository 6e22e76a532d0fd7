"""Results I/O: one writer for metrics JSON (atomic, with provenance) and for figures."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolib import atomic, distributed, dryrun
from reprolib.paths import repo_root, results_dir


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


LOCK_FILE = "requirements/lock.txt"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else what the platform module says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lock_fingerprint() -> dict[str, Any] | None:
    """Which lock file the environment was installed from: its path and SHA-256 (first 12 hex digits).
    ``make setup`` stamps the venv with it; without the stamp (a hand-made environment) it is None."""
    import hashlib

    stamp = Path(sys.prefix) / ".installed-stamp"
    if not stamp.exists():
        return None
    lock = repo_root() / LOCK_FILE
    installed = stamp.read_text().strip()
    current = hashlib.sha256(lock.read_bytes()).hexdigest()[:12] if lock.exists() else None
    return {"file": LOCK_FILE, "sha256": installed or None, "matches_checkout": bool(installed) and installed == current}


def machine() -> dict[str, Any]:
    """What a trained number depends on beyond its seed: the CPU and the instruction set torch dispatches
    to, the thread count, and the GPU if one is used."""
    import torch

    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                       "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return info


def _installed_version(package: str) -> str | None:
    """The installed version of ``package`` without importing it (importing torchvision costs seconds)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Who/what/when of a run: parameters, machine, library versions and lock, git commit, device."""
    import matplotlib
    import numpy
    import torch

    return {
        "parameters": parameters or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": machine(),
        "versions": {"torch": torch.__version__, "torchvision": _installed_version("torchvision"), "numpy": numpy.__version__,
                     "sklearn": _installed_version("scikit-learn"), "matplotlib": matplotlib.__version__},
        "lock": lock_fingerprint(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a unique temporary file in the same folder, then rename: readers never see half a file
    (:func:`reprolib.atomic.replacing`); results are meant to be shared, so the file is world-readable."""
    with atomic.replacing(Path(path), mode=0o644) as tmp:
        tmp.write_text(text)


def write_metrics(name: str, metrics: dict[str, Any], parameters: dict[str, Any] | None = None,
                  folder: Path | None = None, *, data: Mapping[str, Any] | None = None) -> Path:
    """Save ``results/<name>.json`` = {"metrics": ..., "provenance": ...}; returns the path. Under
    torchrun only rank 0 writes (every rank holds the same synchronised results).

    ``data``: dataset -> what was read, a :class:`reprolib.experiments.DataBundle` (its ``record()``)
    or a record of :func:`reprolib.data.fingerprint.data_record`; kept as ``provenance["data"]``, the
    only thing the summary reads to call a row synthetic or real."""
    path = (folder or results_dir()) / f"{name}.json"
    if not distributed.is_main():
        return path
    payload = {"metrics": metrics, "provenance": provenance(parameters)}
    if dryrun.active():  # a few steps of each training: the scores mean nothing (reprolib.dryrun)
        payload["provenance"]["dry_run"] = True
    if data is not None:
        payload["provenance"]["data"] = {kind: d.record() if hasattr(d, "record") else dict(d) for kind, d in data.items()}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n")
    if dryrun.active():
        dryrun.results_written(path.parent, name)
    return path


def save_figure(fig, name: str, folder: Path | None = None, dpi: int | None = None) -> Path:
    """Save ``results/figures/<name>.png`` at the notebooks' inline dpi (:data:`reprolib.plots.FIGURE_DPI`):
    what a student sees in JupyterLab and the committed file are the same picture."""
    from .plots import FIGURE_DPI

    dpi = dpi or FIGURE_DPI
    path = (folder or results_dir()) / "figures" / f"{name}.png"
    if not distributed.is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path
