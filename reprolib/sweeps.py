"""Multi-seed runs behind the closing tables: every baseline, several seeds, one JSON.

``python -m reprolib sweep --size medium --seeds 0 1 2`` trains each baseline on its home dataset
(the one its notebook uses at smoke size) with the notebooks' own code path
(:func:`reprolib.experiments.train_and_score`) and writes ``results/sweep_baselines_<size>.json``
with per-seed scores and mean ± std of test, test_ood and the gap.

Sizes: ``smoke`` is the notebooks' default; ``medium`` doubles the synthetic data and trains 15
epochs (CPU, minutes per run); ``full`` uses ResNet-18 encoders, larger views and more data (GPU).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from reprolib import experiments
from reprolib.progress import progress
from reprolib.results import write_metrics

VIEWS = {"caer_s": (32, 48, 48), "emotic": ((48, 32), (48, 72), (48, 72))}
FULL_VIEWS = {"caer_s": (96, 112, 112), "emotic": (128, 224, 224)}

SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=10, lr=3e-3, backbone="small", views=VIEWS, scale=1),
    "medium": dict(epochs=15, lr=3e-3, backbone="small", views=VIEWS, scale=2),
    "full": dict(epochs=30, lr=1e-3, backbone="resnet18", views=FULL_VIEWS, scale=10),
}

SMOKE_SIZES = {"caer_s": {"train": 1400, "val": 350, "test": 700, "test_ood": 700},
               "emotic": {"train": 900, "val": 250, "test": 500, "test_ood": 500}}


def _baselines(size: str) -> dict[str, tuple[str, Callable]]:
    """name -> (home dataset, build(data, backbone)); the same constructors the notebooks call."""
    from reprolib.models.caernet import CAERNetS
    from reprolib.models.cdnet import CDNet
    from reprolib.models.emoticon import EmotiCon
    from reprolib.models.emotnet import EMOTNet
    from reprolib.models.gnncnn import GNNCNN

    small = size != "full"
    return {
        "emotnet": ("emotic", lambda d, b: EMOTNet(d.num_classes, multilabel=d.multilabel, body_backbone=b,
                                                   context_backbone=b)),
        "caernet": ("caer_s", lambda d, b: CAERNetS(d.num_classes, multilabel=d.multilabel, encoder="caer",
                                                    widths=(16, 32, 64, 64, 64) if small else (32, 64, 128, 256, 256))),
        "gnncnn": ("emotic", lambda d, b: GNNCNN(d.num_classes, multilabel=d.multilabel, backbone=b)),
        "cdnet": ("caer_s", lambda d, b: CDNet(d.num_classes, multilabel=d.multilabel, backbone=b)),
        "emoticon": ("emotic", lambda d, b: EmotiCon(d.num_classes, multilabel=d.multilabel, backbone=b,
                                                     use_pose=d.kind == "emotic", use_depth=d.kind == "emotic")),
    }


def summarise(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


def sweep_baselines(size: str = "medium", seeds=(0, 1, 2), only=None, log=print) -> dict[str, Any]:
    """Train every (selected) baseline for every seed; return and save the per-seed and summary table."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    spec = SIZES[size]
    baselines = _baselines(size)
    unknown = sorted(set(only or ()) - set(baselines))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {sorted(baselines)}")
    names = [n for n in baselines if not only or n in only]
    data: dict[str, experiments.DataBundle] = {}
    table: dict[str, Any] = {}
    for name in progress(names, desc=f"sweep {size}"):
        kind, build = baselines[name]
        if kind not in data:
            subject, context, image = spec["views"][kind]
            sizes = {s: n * spec["scale"] for s, n in SMOKE_SIZES[kind].items()}
            data[kind] = experiments.open_data(
                kind, seed=0, synthetic_knobs={"sizes": sizes}, subject_size=subject, context_size=context,
                image_size=image, extra_views=("pose", "depth") if kind == "emotic" else ())
        d = data[kind]
        runs = []
        for seed in seeds:
            started = time.perf_counter()
            run = experiments.train_and_score(lambda: build(d, spec["backbone"]), d, seed=seed, epochs=spec["epochs"],
                                              lr=spec["lr"], batch_size=64, desc=f"{name} seed {seed}")
            runs.append({"seed": seed, **run.scores, "gap": run.gap, "best_epoch": run.fit.best_epoch,
                         "seconds": time.perf_counter() - started})
            log(f"{name:9s} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.scores.items())
                + f", gap {run.gap:.3f} ({runs[-1]['seconds']:.0f} s)")
        table[name] = {"dataset": kind, "metric": d.metric_name, "chance": d.chance(), "runs": runs,
                       **{key: summarise([r[key] for r in runs]) for key in ("test", "test_ood", "gap")}}
    write_metrics(f"sweep_baselines_{size}", table, {"size": size, "seeds": list(seeds), **{
        k: v for k, v in spec.items() if k != "views"}, "views": {k: str(v) for k, v in spec["views"].items()}})
    return table


def format_table(table: dict[str, Any]) -> str:
    """Markdown: baseline x (test, test_ood, gap) as mean ± std over seeds."""
    lines = ["| baseline | data (metric) | test | test_ood | gap | seeds |", "|---|---|---|---|---|---|"]
    for name, row in table.items():
        cells = [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" for k in ("test", "test_ood", "gap")]
        lines.append(f"| {name} | {row['dataset']} ({row['metric']}) | " + " | ".join(cells)
                     + f" | {row['test']['n']} |")
    return "\n".join(lines)
