"""MulT vs MulT+CausalMER on MulT-format data: the one code path behind notebook 10 and its sweep.

Each run trains a model with :func:`reprolib.experiments.train_and_score` (selection on ``val`` with the
data's metric: IEMOCAP mean accuracy, MOSEI acc7) and then measures, on ``test``:

* what the predictions follow on synthetic data, the shortcut or the label (:func:`shortcut_following`);
* every metric of the reference notes (:func:`reprolib.metrics.iemocap_metrics` / ``mosei_metrics``);
* the missing-modality study (:func:`reprolib.causal.modalities.missing_modality_study`: six zeroing
  scenarios, the drop of each, their mean and population std) and the drop shares;
* for CausalMER also what its inference does: the score of the factual fusion Z_fact next to TIE, each
  branch's own score, the learned constants and how large the counterfactual correction TIE - Z_fact is
  relative to Z_fact (:func:`causalmer_diagnostics`).

``python -m reprolib sweep --method causalmer --size medium --seeds 0 1 2`` repeats this over seeds and
writes ``results/sweep_causalmer_<size>.json``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from reprolib import dryrun, experiments, metrics
from reprolib.presets import MER_SIZES
from reprolib.causal.causalmer import CausalMER, build_causalmer
from reprolib.causal.modalities import drop_share, missing_modality_studies, missing_modality_study
from reprolib.data import synthetic
from reprolib.engine import predict
from reprolib.models.mult import MulT
from reprolib.progress import progress
from reprolib.results import write_metrics
from reprolib.sweeps import Journal, summarise

DATASETS = ("iemocap", "mosei")
MODELS = ("mult", "causalmer")

# MulT settings per size. positions="all": a zeroed step keeps its positional embedding, so the model
# is a continuous function of its inputs at 0 and integrated gradients from the zero baseline add up
# (the reference rule switches the embedding off exactly at 0; it stays available as an option).
SIZES = MER_SIZES  # smoke / medium / full, kept in reprolib.presets
SMOKE_SPLITS = {"train": 600, "valid": 150, "test": 300}
# How MulT and CausalMER are trained. "official": the paper code's loop (../shared/reference, causalmer
# §1.7 and §5): Adam without weight decay, gradient-norm clipping at 0.8, ReduceLROnPlateau (patience
# 20, factor 0.1) on the validation loss, and MulT's attention mask on. "engine": engine.fit's
# defaults, which every run used before 2026-12: Adam weight decay 1e-4, no clipping, a constant
# learning rate, no mask. Either way the constants and nothing else are exempt from decay
# (CausalMER.no_weight_decay).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "official": {"fit": dict(weight_decay=0.0, clip_grad_norm=0.8, plateau_patience=20, lr_gamma=0.1),
                 "mult": dict(causal_mask=True)},
    "engine": {"fit": {}, "mult": dict(causal_mask=False)},
}
DEFAULT_RECIPE = "official"


def open_data(dataset: str, size: str = "smoke", *, data_root=None, seed: int = 0) -> experiments.DataBundle:
    """The dataset at ``data_root``, or synthetic data scaled to the size preset (``scale`` x smoke).

    In a dry run (:mod:`reprolib.dryrun`) synthetic data are generated at the smoke sizes and counted
    at the preset's; a real file is read whole (MulT files are small)."""
    scale = SIZES[size]["scale"]
    generated = 1 if dryrun.active() else scale
    knobs = None if data_root is not None else {"sizes": {k: n * generated for k, n in SMOKE_SPLITS.items()}}
    bundle = experiments.open_mult(dataset, data_root=data_root, seed=seed, synthetic_knobs=knobs)
    if dryrun.active():
        for split in bundle.splits.values():
            split.full_length = len(split) * (scale // generated if data_root is None else 1)
    return bundle


def shortcut_cue(data: experiments.DataBundle, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(cue, target) on ``split`` of synthetic data: the shortcut columns of the text modality averaged
    over time ([N, 4] on IEMOCAP, [N, 1] on MOSEI) and the labels ([N, 4] multi-hot / [N] sentiment).
    None for real data (no known shortcut). Analysis only, never training."""
    if not data.synthetic:
        return None
    ds = data.splits[split]
    columns = synthetic.mult_shortcut_columns(data.kind, ds.dims["text"])
    return ds.text[:, :, columns].mean(dim=1).numpy(), ds.targets().numpy()


def shortcut_strength(data: experiments.DataBundle, split: str) -> float | None:
    """How well the synthetic shortcut predicts the label on ``split``: IEMOCAP, the fraction of samples
    whose strongest shortcut column is their emotion; MOSEI, the Pearson correlation of the shortcut
    column with the sentiment. None for real data."""
    found = shortcut_cue(data, split)
    if found is None:
        return None
    cue, y = found
    if data.kind == "iemocap":
        return float((cue.argmax(axis=1) == y.argmax(axis=1)).mean())
    return float(np.corrcoef(cue[:, 0], y)[0, 1])


def shortcut_following(data: experiments.DataBundle, outputs: torch.Tensor, split: str = "test") -> dict[str, float] | None:
    """What a model's predictions on ``split`` line up with: the shortcut cue or the label. IEMOCAP: the
    fraction of samples whose most-present emotion (largest present - absent margin) is the shortcut's
    strongest column / the true emotion; MOSEI: the correlation of the prediction with the shortcut
    column / with the sentiment. On ``test`` the two are independent, so the pair tells which one the
    model follows. None for real data."""
    found = shortcut_cue(data, split)
    if found is None:
        return None
    cue, y = found
    out = outputs.detach().float().numpy()
    if data.kind == "iemocap":
        pairs = out.reshape(len(out), -1, 2)
        pick = (pairs[..., 1] - pairs[..., 0]).argmax(axis=1)
        return {"shortcut": float((pick == cue.argmax(axis=1)).mean()), "label": float((pick == y.argmax(axis=1)).mean())}
    pred = out.reshape(-1)
    return {"shortcut": float(np.corrcoef(pred, cue[:, 0])[0, 1]), "label": float(np.corrcoef(pred, y)[0, 1])}


def recipe_of(name: str) -> dict[str, dict[str, Any]]:
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {name!r}")
    return RECIPES[name]


def builders(data: experiments.DataBundle, size: str = "smoke", *, mult: dict | None = None,
             recipe: str = DEFAULT_RECIPE, **causalmer_kwargs) -> dict[str, Callable[[], torch.nn.Module]]:
    """``{"mult": ..., "causalmer": ...}`` constructors with the same MulT settings (``mult`` over the
    recipe's over the size preset's); ``causalmer_kwargs`` go to
    :func:`reprolib.causal.causalmer.build_causalmer`."""
    spec = SIZES[size]
    mult_kw = {**spec["mult"], **recipe_of(recipe)["mult"], **(mult or {})}
    train = data.splits["train"]
    causalmer_kwargs.setdefault("branch_encoder", spec["branch_encoder"])
    return {"mult": lambda: MulT.for_data(train, **mult_kw),
            "causalmer": lambda: build_causalmer(train, mult=mult_kw, **causalmer_kwargs)}


def all_metrics(data: experiments.DataBundle, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Every metric of the reference notes for this dataset (IEMOCAP per emotion + means; MOSEI acc7 ...)."""
    if data.kind == "iemocap":
        return metrics.iemocap_metrics(outputs, targets)
    return metrics.mosei_metrics(outputs, targets)


def causalmer_diagnostics(model: CausalMER, data: experiments.DataBundle, split: str = "test", *,
                          outputs: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any]:
    """What CausalMER's inference does on ``split``: scores of TIE, Z_fact and each branch (z_m = the
    MulT inside, z_t / z_a / z_v the unimodal branches) and what each follows on synthetic data
    (:func:`shortcut_following`), the constants, and the size of the counterfactual correction,
    mean |TIE - Z_fact| / mean |Z_fact| (0 = TIE is the factual fusion). ``outputs``: the
    ``(model.outputs on split, targets)`` when already computed (:func:`evaluate` has them)."""
    out, targets = outputs or predict(model, data.splits[split], target_key=data.target_key, forward=model.outputs,
                                      desc=f"{split} (all branches)")
    keys = {"tie": "tie", "z_fact": "Z_fact", "mult_branch": "z_m", "text_branch": "z_t", "audio_branch": "z_a",
            "vision_branch": "z_v"}
    correction = float((out["tie"] - out["Z_fact"]).abs().mean() / out["Z_fact"].abs().mean().clamp_min(1e-12))
    follows = {name: shortcut_following(data, out[key], split) for name, key in keys.items()}
    return {"scores": {name: data.score(out[key], targets) for name, key in keys.items()},
            "follows": follows if data.synthetic else None,
            "constants": {k: float(c.detach()) for k, c in zip("tav", model.constants())},
            "relative_correction": correction}


def evaluate(run: experiments.Run, data: experiments.DataBundle) -> dict[str, Any]:
    """Metrics, the missing-modality study and the drop shares of a trained run (plus the CausalMER
    diagnostics when the model is one). JSON-plain."""
    model = run.model
    test = data.splits["test"]
    if isinstance(model, CausalMER):  # TIE (the model's output) and Z_fact studied from the same passes
        studies, full_outputs = missing_modality_studies(model, test, data.score, forward=model.outputs,
                                                         keys=("tie", "Z_fact"), target_key=data.target_key)
        study = studies["tie"]
    else:
        study = missing_modality_study(model, test, data.score, target_key=data.target_key)
    record: dict[str, Any] = {
        "val": run.fit.best_val, "test": run.scores["test"],
        "metrics": all_metrics(data, *run.outputs["test"]), "study": study, "drop_share": drop_share(study),
        "follows": shortcut_following(data, run.outputs["test"][0]),
        "best_epoch": run.fit.best_epoch}
    if isinstance(model, CausalMER):
        record["causalmer"] = causalmer_diagnostics(model, data, outputs=full_outputs)
        record["causalmer"]["factual_std_drop"] = studies["Z_fact"]["summary"]["std_drop"]
    return record


def train(data: experiments.DataBundle, name: str, build: Callable[[], torch.nn.Module], *, size: str = "smoke",
          seed: int = 0, checkpoint_dir=None, recipe: str = DEFAULT_RECIPE, **fit_overrides) -> experiments.Run:
    """Train one model with the size preset's epochs / lr / batch size and the recipe's optimisation
    settings (:data:`RECIPES`); ``fit_overrides`` win."""
    spec = SIZES[size]
    fit_kwargs = {"epochs": spec["epochs"], "lr": spec["lr"], "batch_size": spec["batch_size"],
                  "early_stopping": spec.get("early_stopping", 0),  # the sweeps' medium size trains every epoch
                  **recipe_of(recipe)["fit"], **fit_overrides}
    return experiments.train_and_score(build, data, seed=seed, checkpoint_dir=checkpoint_dir,
                                       desc=f"{data.kind} {name} seed {seed}", **fit_kwargs)


SWEEP_COLUMNS = ("test", "std_drop", "mean_drop")


def sweep(size: str = "medium", seeds=(0, 1, 2), datasets=DATASETS, log=print,
          recipe: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """MulT and MulT+CausalMER on each dataset for every seed; writes ``results/sweep_causalmer_<size>.json``:
    per seed the test score, the study's drops and std, the drop shares (and CausalMER's diagnostics),
    and mean ± sample std over seeds of test, std_drop and mean_drop."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    table: dict[str, Any] = {}
    read: dict[str, experiments.DataBundle] = {}
    # each finished run is journalled at once, so a crash loses only the run it interrupted (reprolib.sweeps)
    journal = Journal(f"sweep_causalmer_{size}", {"size": size, "seeds": list(seeds), "datasets": list(datasets),
                                                         "spec": SIZES[size], "splits": SMOKE_SPLITS,
                                                         "recipe": recipe_of(recipe)}, log)
    for dataset in progress(list(datasets), desc=f"sweep causalmer {size}"):
        data = read[dataset] = open_data(dataset, size)
        rows: dict[str, Any] = {}
        for name, build in builders(data, size, recipe=recipe).items():
            runs = []
            for seed in seeds:
                row = journal.get(dataset, name, seed)
                if row is None:
                    started = time.perf_counter()
                    run = train(data, name, build, size=size, seed=seed, recipe=recipe)
                    record = evaluate(run, data)
                    summary = record["study"]["summary"]
                    row = journal.add((dataset, name, seed), {
                        "seed": seed, "seconds": time.perf_counter() - started, **record,
                        "std_drop": summary["std_drop"], "mean_drop": summary["mean_drop"]})
                    note = f"({row['seconds']:.0f} s)"
                else:
                    note = f"(kept from the journal, trained in {row['seconds']:.0f} s before the interruption)"
                runs.append(row)
                log(f"{dataset:7s} {name:9s} seed {seed}: test {row['test']:.3f}, drop std "
                    f"{row['std_drop']:.3f}, mean drop {row['mean_drop']:.3f} {note}")
            rows[name] = {"runs": runs, **{k: summarise([r[k] for r in runs]) for k in SWEEP_COLUMNS}}
        table[dataset] = {"metric": data.metric_name, "chance": data.chance(), "variants": rows}
    spec = SIZES[size]
    write_metrics(f"sweep_causalmer_{size}", table, {"size": size, "seeds": list(seeds), "datasets": list(datasets),
                                                     **spec, "recipe": {"name": recipe, **recipe_of(recipe)},
                                                     "splits": {k: n * spec["scale"] for k, n in SMOKE_SPLITS.items()}},
                  data=read)
    journal.close()
    return table


def format_table(table: dict[str, Any]) -> str:
    """Markdown: (dataset, model) x (test, drop std, mean drop) as mean ± std over seeds."""
    lines = ["| data (metric) | chance | model | test | std of drops | mean drop | seeds |", "|---|---|---|---|---|---|---|"]
    for dataset, row in table.items():
        for name, cols in row["variants"].items():
            cells = [f"{cols[k]['mean']:.3f} ± {cols[k]['std']:.3f}" for k in SWEEP_COLUMNS]
            lines.append(f"| {dataset} ({row['metric']}) | {row['chance']:.3f} | {name} | " + " | ".join(cells)
                         + f" | {cols['test']['n']} |")
    return "\n".join(lines)
