"""The full-size dry run: every notebook at its full-size models, views and presets, on a few batches.

A researcher about to spend a night of GPU time wants two things first: that nothing crashes after
hours on a shape, a path or a preset, and how long the real run will take. ``reprolib reproduce
--size full --dry-run`` (``make dry-run``) sets :data:`ENV` for the kernels it starts; then

* :func:`sample_splits` (called by :func:`reprolib.experiments.open_data` and
  :func:`reprolib.mer.open_data`) keeps :data:`SAMPLE_SIZES` samples of each split (evenly spaced,
  so every part of a real folder is read) and remembers each split's full length; synthetic data
  are generated at those sizes directly, at the full-size image sizes;
* :func:`reprolib.engine.fit` trains one epoch of at most :data:`TRAIN_STEPS` steps at the real batch
  size and times them (the first step is a warm-up and is not counted where more were timed);
* :func:`reprolib.engine.predict` and the dictionary's feature extraction time every evaluation
  pass per sample;

and every event is kept (:func:`record_training`, :func:`record_evaluation`) so that
:func:`reprolib.results.write_metrics` can store, in the notebook's results file, the steps the
real run will take and an estimate from the measured times (:func:`estimate`). The estimate is for
the machine the dry run ran on: run it on the GPU server for that server's numbers. What it leaves
out is said in :data:`LEAVES_OUT`. Results of a dry run go to ``results/dry_run/`` (never over the
committed ones) and are meaningless as scores.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolib import atomic

ENV = "REPROLIB_DRY_RUN"
FOLDER = "dry_run"  # results/dry_run/: where a dry run's results, checkpoints and notebooks go
TRAIN_STEPS = 2
# Samples kept per split: enough training images for the largest dictionary a preset asks for
# (N = 1024 prototypes need 1024 context features), a few batches for the others.
SAMPLE_SIZES = {"train": 1100, "val": 128, "valid": 128, "test": 128, "test_ood": 128}
LEAVES_OUT = ("data generation and loading before the first step, k-means, model construction, "
              "figures and the analyses that do not go through fit / predict (Captum attributions)")

_events: list[dict[str, Any]] = []
_written_as: list[Path | None] = [None]  # the notebook's events file, once it has written its results
_repeat = [1]  # how many times the evaluation being timed runs in the real run (fit's validation: once an epoch)


def active() -> bool:
    """True inside a dry run (the runner sets :data:`ENV` for the kernels it starts)."""
    return os.environ.get(ENV) == "1"


def sample_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    """The split sizes synthetic data are generated at in a dry run (the smaller of the two)."""
    return {split: min(int(n), SAMPLE_SIZES.get(split, 128)) for split, n in sizes.items()}


def sample_splits(splits: dict[str, Any], scale: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Each split cut to its :data:`SAMPLE_SIZES` (evenly spaced samples, in order) and labelled with
    the length the real run will see: its own length times ``scale[split]`` where the data were
    generated small (synthetic: preset size / generated size), else its own length (a real folder,
    read whole and then sampled). Outside a dry run: ``splits`` unchanged."""
    if not active():
        return splits
    import torch

    out = {}
    for split, data in splits.items():
        full = round(len(data) * (scale or {}).get(split, 1.0))
        keep = SAMPLE_SIZES.get(split, 128)
        if len(data) > keep:
            step = len(data) / keep
            data = torch.utils.data.Subset(data, [int(i * step) for i in range(keep)])
        data.full_length = full
        out[split] = data
    return out


def full_length(data: Any) -> int:
    """The length the real run will see: the one :func:`sample_splits` noted, else ``len(data)``."""
    return int(getattr(data, "full_length", None) or len(data))


class repeated:
    """Within this block an evaluation runs ``times`` times in the real run (once per epoch)."""

    def __init__(self, times: int):
        self.times = max(1, int(times))

    def __enter__(self):
        _repeat.append(self.times)
        return self

    def __exit__(self, *exc):
        _repeat.pop()
        return False


def record_training(desc: str, step_seconds: list[float], *, full_train: int, batch_size: int, epochs: int,
                    drop_last: bool) -> None:
    """One :func:`reprolib.engine.fit`: its timed steps and the steps the real run will take."""
    if not step_seconds:
        return
    timed = step_seconds[1:] or step_seconds  # the first step pays for allocation and kernel choice
    per_epoch = full_train // batch_size if drop_last else math.ceil(full_train / batch_size)
    _keep({"kind": "train", "desc": desc, "batch_size": batch_size, "epochs": int(epochs),
                    "steps": int(max(1, per_epoch) * epochs), "seconds_per_step": statistics.median(timed),
                    "steps_timed": len(step_seconds)})


def record_evaluation(desc: str, seconds: float, *, items: int, full_items: int) -> None:
    """One evaluation pass (predict, feature extraction) over ``items`` samples of ``full_items``."""
    if items <= 0:
        return
    _keep({"kind": "eval", "desc": desc, "items": int(full_items) * _repeat[-1],
                    "seconds_per_item": seconds / items})


def _keep(event: dict[str, Any]) -> None:
    _events.append(event)
    if _written_as[0] is not None:
        atomic.append_line(_written_as[0], json.dumps(event))


def events() -> list[dict[str, Any]]:
    return list(_events)


def events_file(folder: str | os.PathLike, notebook: str) -> Path:
    return Path(folder) / f"{notebook}.dry_run.jsonl"


def results_written(folder: str | os.PathLike, notebook: str) -> None:
    """Called by :func:`reprolib.results.write_metrics` in a dry run: the kernel now knows which
    notebook it runs, so the events so far go to that notebook's events file, and later ones (an
    exercise that trains after the results are written) are appended to it as they happen."""
    path = events_file(folder, notebook)
    atomic.write_text(path, "".join(json.dumps(e) + "\n" for e in _events))
    _written_as[0] = path


def read_estimate(folder: str | os.PathLike, notebook: str) -> dict[str, Any] | None:
    """The :func:`estimate` of a notebook's events file, or None where it wrote none (it failed
    before writing its results)."""
    path = events_file(folder, notebook)
    if not path.exists():
        return None
    return estimate([json.loads(line) for line in atomic.read_lines(path) if line.strip()])


def estimate(recorded: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the real run will do and how long it will take here: training steps and evaluated samples
    summed over every event, each multiplied by its measured time."""
    recorded = _events if recorded is None else recorded
    train = [e for e in recorded if e["kind"] == "train"]
    evals = [e for e in recorded if e["kind"] == "eval"]
    train_s = sum(e["steps"] * e["seconds_per_step"] for e in train)
    eval_s = sum(e["items"] * e["seconds_per_item"] for e in evals)
    return {"trainings": len(train), "train_steps": sum(e["steps"] for e in train),
            "evaluated_samples": sum(e["items"] for e in evals),
            "median_seconds_per_step": statistics.median([e["seconds_per_step"] for e in train]) if train else None,
            "train_seconds": train_s, "eval_seconds": eval_s, "estimate_seconds": train_s + eval_s,
            "leaves_out": LEAVES_OUT,
            "trainings_detail": [{k: e[k] for k in ("desc", "batch_size", "epochs", "steps", "seconds_per_step")}
                                 for e in train]}


def duration(seconds: float) -> str:
    """Seconds as a reader wants them: 45 s, 12 min, 3.4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def report(estimates: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The table the runner prints after a dry run: one row per notebook, then the total."""
    row = "{:30s} {:>9s} {:>12s} {:>14s} {:>18s} {:>14s}".format
    lines = [row("notebook", "trainings", "train steps", "median s/step", "evaluated samples", "estimate here"),
             "-" * 102]
    total = 0.0
    for name, est in estimates.items():
        if not est:
            lines.append(f"{name:30s} (no estimate: the notebook failed before writing its results)")
            continue
        per_step = est["median_seconds_per_step"]
        lines.append(row(name, str(est["trainings"]), str(est["train_steps"]),
                         f"{per_step:.2f}" if per_step is not None else "-", str(est["evaluated_samples"]),
                         duration(est["estimate_seconds"])))
        total += est["estimate_seconds"]
    lines.append(row("total", "", "", "", "", duration(total)))
    lines.append(f"(measured on this machine; left out: {LEAVES_OUT})")
    return "\n".join(lines)
