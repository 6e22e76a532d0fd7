"""The size presets of every notebook and sweep, in one place.

A notebook's parameters cell holds literals and leaves the size-dependent knobs as ``None``; its
first code cell asks for its preset by name (``config.resolve(size, given, NOTEBOOK, ...)``), so the
views, synthetic data sizes, epochs, learning rates and dictionary sizes of each size live here once
and the sweeps (:mod:`reprolib.sweeps`, :mod:`reprolib.mer`) read the same values.

Sizes: ``smoke`` is the notebooks' default (CPU, minutes); ``medium`` (sweeps only) doubles the
synthetic data and trains 15 epochs; ``full`` uses ResNet-18 encoders, the larger views and about ten
times the data, with the papers' epochs and learning rates where they state them (GPU).

Kept free of torch so that the command line and the parameter checks pay nothing for it.
"""

from __future__ import annotations

import copy
from typing import Any

from reprolib.parameters import ABLATIONS, BASELINES, MULT_DATASETS

# (subject, context, image) view sizes per dataset; EMOTIC's subject view is (H, W) of the body crop.
VIEWS = {"caer_s": (32, 48, 48), "emotic": ((48, 32), (48, 72), (48, 72))}  # the sweeps' smoke and medium views
# The notebooks' smoke views: EMOTIC's at two thirds of the sweeps' side (same aspect ratios), because its
# runs were half of the smoke suite's training time and still improving at the last epoch. On seed 0 an
# EMOT-Net run took 0.44x the time (23.5 s vs 53.0 s, run side by side, one thread each) and scored
# test 0.272 / test_ood 0.141 mAP against 0.291 / 0.158: the same context gap (0.13) at lower scores.
NOTEBOOK_SMOKE_VIEWS = {"caer_s": VIEWS["caer_s"], "emotic": ((36, 24), (32, 48), (32, 48))}
FULL_VIEWS = {"caer_s": (96, 112, 112), "emotic": (128, 224, 224)}

# Synthetic split sizes at smoke size (the generator's defaults) and the generator's knobs at full size.
SMOKE_SIZES = {"caer_s": {"train": 1400, "val": 350, "test": 700, "test_ood": 700},
               "emotic": {"train": 900, "val": 250, "test": 500, "test_ood": 500}}
FULL_SYNTHETIC = {"caer_s": {"image_size": 160, "sizes": {"train": 14000, "val": 2000, "test": 4000, "test_ood": 4000}},
                  "emotic": {"image_size": (288, 192), "sizes": {"train": 9000, "val": 1500, "test": 3000, "test_ood": 3000}}}
SMOKE_SYNTHETIC = {"caer_s": {}, "emotic": {}}

# The dataset each baseline is trained on at smoke size (its notebook's), the one its paper used first.
HOME_DATASET = {"emotnet": "emotic", "caernet": "caer_s", "gnncnn": "emotic", "cdnet": "caer_s", "emoticon": "emotic"}
ALL_BASELINES = list(BASELINES)

# Smoke-size notebook runs stop once this many epochs in a row have not beaten the best validation
# score (engine.fit's early_stopping), and keep that best epoch as always. Over the 35 distinct runs of
# the smoke suite at 10 epochs, 3 ends 19 % of the training time sooner and changes the kept epoch of
# one run (an 8-epoch 01 probe whose val score moved from 0.791 to 0.794 after six epochs); full-size
# runs and the sweeps train every epoch, as the papers do (0 = never stop early).
SMOKE_EARLY_STOPPING = 3

# The baseline sweeps (python -m reprolib sweep): one spec per size.
SWEEP_SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=10, lr=3e-3, backbone="small", views=VIEWS, scale=1),
    "medium": dict(epochs=15, lr=3e-3, backbone="small", views=VIEWS, scale=2),
    "full": dict(epochs=30, lr=1e-3, backbone="resnet18", views=FULL_VIEWS, scale=10),
}

# MulT / CausalMER (notebook 10 and sweep --method causalmer).
MER_SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=10, lr=1e-3, batch_size=32, early_stopping=SMOKE_EARLY_STOPPING, branch_encoder="small",
                  scale=1, mult=dict(d=20, num_heads=4, layers=2, positions="all")),
    "medium": dict(epochs=15, lr=1e-3, batch_size=32, branch_encoder="small", scale=2,
                   mult=dict(d=20, num_heads=4, layers=3, positions="all")),
    "full": dict(epochs=40, lr=1e-3, batch_size=32, early_stopping=0, branch_encoder="resnet18", scale=10,
                 mult=dict(d=40, num_heads=10, layers=5, positions="all")),
}
MER_DATASETS = list(MULT_DATASETS)

# The ablations notebook 09 runs on its first baseline (its ABLATIONS cell says what each one changes).
CLEF_NOTEBOOK_ABLATIONS = list(ABLATIONS)


def _image_views(size: str) -> dict[str, Any]:
    """The views and synthetic knobs every image notebook shares at ``size``."""
    if size == "smoke":
        return dict(views=NOTEBOOK_SMOKE_VIEWS, synthetic=SMOKE_SYNTHETIC)
    return dict(views=FULL_VIEWS, synthetic=FULL_SYNTHETIC)


def _baseline(name: str, *, backbone: tuple[str, str], full_epochs: int, full_lr: float) -> dict[str, dict[str, Any]]:
    """Notebooks 03-07: the home dataset at smoke size, both datasets at full size with the paper's
    epochs and learning rate (``backbone`` = (smoke, full))."""
    return {"smoke": dict(datasets=[HOME_DATASET[name]], backbone=backbone[0], epochs=10, lr=0.003, batch_size=64,
                          early_stopping=SMOKE_EARLY_STOPPING, **_image_views("smoke")),
            "full": dict(datasets=["caer_s", "emotic"], backbone=backbone[1], epochs=full_epochs, lr=full_lr,
                         batch_size=64, early_stopping=0, **_image_views("full"))}


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "01_context_bias": {
        "smoke": dict(epochs=8, lr=3e-3, batch_size=64, early_stopping=SMOKE_EARLY_STOPPING, n_context_groups=7,
                      image_size=64, subject_size=32, context_size=48, sizes=SMOKE_SIZES["caer_s"]),
        "full": dict(epochs=30, lr=1e-3, batch_size=128, early_stopping=0, n_context_groups=16, image_size=160,
                     subject_size=96, context_size=112, sizes=FULL_SYNTHETIC["caer_s"]["sizes"]),
    },
    "02_confounder_dictionary": {
        "smoke": dict(datasets=["caer_s", "emotic"], dictionary_sizes=[4, 8, 16, 32], main_size=16,
                      **_image_views("smoke")),
        "full": dict(datasets=["caer_s", "emotic"], dictionary_sizes=[16, 64, 256, 1024], main_size=256,
                     **_image_views("full")),
    },
    "03_baseline_emotnet": _baseline("emotnet", backbone=("small", "resnet18"), full_epochs=15, full_lr=0.001),
    "04_baseline_caernet": _baseline("caernet", backbone=("caer", "caer"), full_epochs=40, full_lr=0.001),
    "05_baseline_gnncnn": _baseline("gnncnn", backbone=("small", "resnet18"), full_epochs=30, full_lr=0.001),
    "06_baseline_cdnet": _baseline("cdnet", backbone=("small", "resnet18"), full_epochs=61, full_lr=0.001),
    "07_baseline_emoticon": _baseline("emoticon", backbone=("small", "resnet18"), full_epochs=75, full_lr=0.0001),
    # dictionary_size None at full size: the papers' N per dataset (published.IMPLEMENTATION).
    "08_ccim": {
        "smoke": dict(baselines=["caernet", "emotnet"], dictionary_size=16, ablation_sizes=[4, 64], epochs=10,
                      lr=0.003, batch_size=64, early_stopping=SMOKE_EARLY_STOPPING, backbone="small",
                      **_image_views("smoke")),
        "full": dict(baselines=ALL_BASELINES, dictionary_size=None, ablation_sizes=[64, 1024], epochs=30, lr=0.001,
                     batch_size=64, early_stopping=0, backbone="resnet18", **_image_views("full")),
    },
    "09_clef": {
        "smoke": dict(baselines=["caernet", "emotnet"], ablations=CLEF_NOTEBOOK_ABLATIONS, epochs=10, lr=0.003,
                      batch_size=64, early_stopping=SMOKE_EARLY_STOPPING, backbone="small", **_image_views("smoke")),
        "full": dict(baselines=ALL_BASELINES, ablations=CLEF_NOTEBOOK_ABLATIONS, epochs=30, lr=0.001, batch_size=64,
                     early_stopping=0, backbone="resnet18", **_image_views("full")),
    },
    "10_causalmer_missing_modality": {size: dict(datasets=MER_DATASETS, **MER_SIZES[size]) for size in ("smoke", "full")},
}


def preset(notebook: str) -> dict[str, dict[str, Any]]:
    """size -> preset of ``notebook`` (a deep copy: a notebook may change its config freely)."""
    if notebook not in PRESETS:
        raise KeyError(f"no presets for notebook {notebook!r}; known: {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[notebook])


def datasets_read(notebook: str, merged: dict[str, Any]) -> list[str]:
    """The datasets a notebook reads with this config: its ``datasets``, else the home datasets of its
    ``baselines`` (each baseline is trained on its own), else CAER-S (notebook 01)."""
    if "datasets" in merged:
        return list(merged["datasets"])
    if "baselines" in merged:
        return list(dict.fromkeys(HOME_DATASET[b] for b in merged["baselines"]))
    if notebook == "01_context_bias":
        return ["caer_s"]
    raise KeyError(f"{notebook}: its presets name no datasets or baselines")
