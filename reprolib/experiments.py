"""The steps every baseline / causal-module notebook takes, written once.

A notebook opens a dataset (synthetic in the real format, or the real one under ``data_root``),
builds a model, trains it with :func:`reprolib.engine.fit` and scores it on ``test`` and
``test_ood``. This module gives those steps one spelling, so the notebooks stay short and the
multi-seed runs behind the closing tables use exactly what the notebooks use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from reprolib import dryrun, metrics, runstore
from reprolib.causal.dictionary import (ConfounderDictionary, build_dictionary, dictionary_backbone,
                                       extract_features)
from reprolib.data import synthetic
from reprolib.data.base import records_of, targets_of
from reprolib.data.caers import CLASSES as CAER_CLASSES
from reprolib.data.caers import open_caers_splits
from reprolib.data.emotic import CATEGORIES as EMOTIC_CATEGORIES
from reprolib.data.emotic import Emotic
from reprolib.data.fingerprint import data_record
from reprolib.data.mult import IEMOCAP_EMOTIONS, load_mult
from reprolib.engine import FitResult, default_metric, fit, place, predict
from reprolib.paths import data_dir, results_dir
from reprolib.seed import seed_everything

DATASETS = ("caer_s", "emotic")
MULT_DATASETS = ("iemocap", "mosei")
EVAL_SPLITS = ("test", "test_ood")


@dataclass
class DataBundle:
    """Splits of one dataset plus what a model and a metric need to know about it.

    ``metric`` (None: :func:`reprolib.engine.default_metric`, accuracy or mAP) scores model outputs
    against targets, for model selection on ``val`` and for the evaluation splits alike;
    ``metric_label`` names it in tables and plots."""

    kind: str
    root: Path
    splits: dict
    class_names: tuple[str, ...]
    multilabel: bool
    synthetic: bool
    metric: Callable[[torch.Tensor, torch.Tensor], float] | None = None
    metric_label: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def target_key(self) -> str:
        return "labels" if self.multilabel else "label"

    @property
    def metric_name(self) -> str:
        return self.metric_label or ("mAP" if self.multilabel else "accuracy")

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float((self.metric or default_metric)(outputs, targets))

    def eval_splits(self) -> list[str]:
        return [s for s in EVAL_SPLITS if s in self.splits]

    def record(self) -> dict[str, Any]:
        """What was read (path, synthetic or real, file-list fingerprint), for the results file."""
        return data_record(self.kind, self.root, self.synthetic)

    def targets(self, split: str) -> torch.Tensor:
        return targets_of(self.splits[split], self.target_key)

    def chance(self, split: str = "test") -> float:
        """The score of an uninformed predictor: majority-class rate, or for mAP the mean prevalence
        (the expected AP of random scores) over the classes present. MulT data: the bundle's metric
        of a constant prediction, the training split's majority per emotion (IEMOCAP) or its median
        sentiment (MOSEI)."""
        t = self.targets(split).numpy()
        if self.kind == "iemocap":
            present = self.targets("train").numpy().mean(axis=0) > 0.5
            pairs = np.stack([~present, present], axis=1).astype(np.float32).reshape(1, -1)
            return self.score(torch.from_numpy(np.repeat(pairs, len(t), axis=0)), torch.from_numpy(t))
        if self.kind == "mosei":
            median = float(np.median(self.targets("train").numpy()))
            return self.score(torch.full((len(t), 1), median), torch.from_numpy(t))
        if self.multilabel:
            prevalence = t.mean(axis=0)
            return float(prevalence[prevalence > 0].mean())
        return float(np.bincount(t).max() / len(t))


def open_data(kind: str, *, data_root: str | Path | None = None, seed: int = 0,
              synthetic_knobs: dict[str, Any] | None = None, subject_size=32, context_size=48,
              image_size=48, cache: bool = True, extra_views: tuple[str, ...] = ()) -> DataBundle:
    """Open ``caer_s`` or ``emotic`` data: the real folder at ``data_root``, or synthetic data in the
    same format (generated once into ``data/``, with ``synthetic_knobs`` over the smoke defaults).

    ``extra_views`` (EMOTIC only): ``"pose"`` and/or ``"depth"``, for EmotiCon."""
    if kind not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {kind!r}")
    is_synthetic = data_root is None
    knobs = dict(synthetic_knobs or {})
    scale = None
    if is_synthetic and dryrun.active():  # generated at a few batches a split, counted at the preset's sizes
        full_sizes = knobs.get("sizes") or (synthetic.CAER_DEFAULTS if kind == "caer_s" else synthetic.EMOTIC_DEFAULTS)["sizes"]
        knobs["sizes"] = dryrun.sample_sizes(full_sizes)
        scale = {split: full_sizes[split] / knobs["sizes"][split] for split in full_sizes}
    views = dict(subject_size=subject_size, context_size=context_size, image_size=image_size, cache=cache)
    if kind == "caer_s":
        if extra_views:
            raise ValueError(f"CAER-S has no {list(extra_views)}: it annotates faces only")
        root = Path(data_root) if data_root else synthetic.make_caer_s(data_dir(), seed=seed, **knobs)
        splits = open_caers_splits(root, seed=seed, **views)
        return DataBundle(kind, root, dryrun.sample_splits(splits, scale), CAER_CLASSES, False, is_synthetic)
    root = Path(data_root) if data_root else synthetic.make_emotic(data_dir(), seed=seed, **knobs)
    splits = {s: Emotic(root, s, extra_views=extra_views, **views) for s in ("train", "val", "test", "test_ood")
              if (root / f"{s}.csv").exists()}
    return DataBundle(kind, root, dryrun.sample_splits(splits, scale), EMOTIC_CATEGORIES, True, is_synthetic)


def open_mult(dataset: str, *, data_root: str | Path | None = None, aligned: bool = True, seed: int = 0,
              synthetic_knobs: dict[str, Any] | None = None) -> DataBundle:
    """Open ``iemocap`` or ``mosei`` data in the MulT pickle format: the real file (or the folder
    holding it) at ``data_root``, or a synthetic file written once into ``data/`` by
    :func:`reprolib.data.synthetic.make_mult` (``synthetic_knobs`` over its defaults).

    The metric is CausalMER's "average accuracy": the mean binary accuracy over the four IEMOCAP
    emotions, and acc7 on MOSEI. MulT files have no ``test_ood``; on synthetic data ``test`` is the
    split without the shortcut."""
    if dataset not in MULT_DATASETS:
        raise ValueError(f"dataset must be one of {MULT_DATASETS}, got {dataset!r}")
    if data_root is not None and synthetic_knobs:
        raise ValueError("synthetic_knobs apply to synthetic data only; drop them or data_root")
    path = Path(data_root) if data_root is not None else synthetic.make_mult(
        data_dir(), dataset, seed, **{"aligned": aligned, **(synthetic_knobs or {})})
    splits = load_mult(path, dataset, aligned=aligned)
    if dataset == "iemocap":
        return DataBundle(dataset, path, splits, IEMOCAP_EMOTIONS, True, data_root is None,
                          metric=lambda s, t: metrics.iemocap_metrics(s, t)["mean_acc"], metric_label="mean acc")
    return DataBundle(dataset, path, splits, ("sentiment",), False, data_root is None,
                      metric=lambda p, t: metrics.mosei_metrics(p, t)["acc7"], metric_label="acc7")


@dataclass
class Run:
    """A trained model and what it scored."""

    model: nn.Module
    fit: FitResult
    scores: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        """test - test_ood: how much the score owes to the training-time context bias."""
        if "test" in self.scores and "test_ood" in self.scores:
            return self.scores["test"] - self.scores["test_ood"]
        return None


def score_row(run: Run) -> dict[str, float | None]:
    """test, test_ood and their gap of one run; test_ood and the gap are None on real data (no such split)."""
    return {"test": run.scores.get("test"), "test_ood": run.scores.get("test_ood"), "gap": run.gap}


def cell(value: float | None, width: int = 0) -> str:
    """A score for a printed table: two decimals, or 'n/a' where it was not measured (real data)."""
    return f"{value:{width}.2f}" if value is not None else "n/a".rjust(width)


def train_and_score(build: Callable[[], nn.Module], data: DataBundle, *, seed: int = 0,
                    checkpoint_dir: str | Path | None = None, **fit_kwargs) -> Run:
    """Seed, build the model, fit on train (selecting on val), score every evaluation split.

    A run whose code, initial model, data, seed and settings all match one already trained (by this
    notebook earlier or by another, e.g. notebook 03's EMOT-Net in notebook 08) is loaded from
    :mod:`reprolib.runstore` instead of trained again: the same weights and history, so the same
    scores. ``REPROLIB_NO_RUN_REUSE=1`` trains every run."""
    seed_everything(seed)  # before building: the initial weights come from this seed
    model = build()
    description = None
    if runstore.enabled() and "metric" not in fit_kwargs:
        try:
            description = runstore.describe_run(model, data, seed, fit_kwargs)
        except runstore.Unfingerprintable:
            description = None
    entry = runstore.load(description) if description is not None else None
    if entry is not None:
        place(model, fit_kwargs.get("device"))
        model.load_state_dict(entry["model"])
        runstore.restore_random_states(entry["random_states"])
        result = FitResult(history=list(entry["history"]), best_epoch=int(entry["best_epoch"]),
                           best_val=float(entry["best_val"]))
        print(f"{fit_kwargs.get('desc', 'run')}: reusing the run trained as '{entry['origin']}' "
              "(same code, data, initial weights, seed and settings)")
    else:
        result = fit(model, data.splits["train"], data.splits["val"], seed=seed, target_key=data.target_key,
                     checkpoint_dir=checkpoint_dir, **{"metric": data.metric, **fit_kwargs})
        if description is not None:
            runstore.save(description, model.state_dict(), result.history, result.best_epoch, result.best_val,
                          origin=str(fit_kwargs.get("desc", "run")))
    run = Run(model=model, fit=result)
    for split in data.eval_splits():
        logits, targets = predict(model, data.splits[split], target_key=data.target_key, desc=split)
        run.outputs[split] = (logits, targets)
        run.scores[split] = data.score(logits, targets)
    return run


@dataclass(frozen=True)
class Recipe:
    """One notebook's training recipe: every model it trains gets the same seed, epochs, learning rate and
    batch size (the notebooks compare variants, so only the model may differ), and its checkpoints go to
    results/checkpoints/<notebook>/<tag>."""

    notebook: str
    seed: int
    epochs: int
    lr: float
    batch_size: int
    early_stopping: int = 0  # engine.fit's: the size preset's value (smoke runs stop early, full ones do not)

    def train(self, build: Callable[[], nn.Module], data: DataBundle, tag: str, desc: str | None = None) -> Run:
        """:func:`train_and_score` with this recipe; ``desc`` labels the progress bar (default: ``tag``)."""
        return train_and_score(build, data, seed=self.seed, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                               early_stopping=self.early_stopping,
                               checkpoint_dir=results_dir() / "checkpoints" / self.notebook / tag, desc=desc or tag)


def truth_records(data: DataBundle, split: str) -> list[dict] | None:
    """The synthetic sidecar's record of every sample of ``split``, in dataset order (None for real
    data). CAER-S-style: ``scene``, ``shown`` (drawn expression), ``bystanders`` (their emotions);
    EMOTIC-style: ``scene``, ``primary``, ``shown``, ``image``, ``person``. Analysis only, never training."""
    if not data.synthetic:
        return None
    truth = synthetic.load_truth(data.root)["splits"][split]
    records = records_of(data.splits[split])
    if data.multilabel:  # EMOTIC-style: sidecar rows are aligned with the CSV's Index column
        return [truth["rows"][r.meta["index"]] for r in records]
    return [truth["samples"][str(r.path.relative_to(data.root))] for r in records]


def scene_suggestions(data: DataBundle, split: str) -> np.ndarray | None:
    """bool [N, K]: the classes each sample's scene favours in the biased splits, i.e. the shortcut's
    answers (synthetic data only; None for real data). One class per scene on CAER-S-style data, a
    fixed group of categories on EMOTIC-style data. Analysis only, never training."""
    scenes = true_scenes(data, split)
    if scenes is None:
        return None
    n_scenes, k = int(synthetic.load_truth(data.root)["knobs"]["n_scenes"]), data.num_classes
    favours = np.zeros((n_scenes, k), dtype=bool)
    for c in range(k):
        if data.multilabel:
            favours[synthetic.emotic_favoured_scenes(c, n_scenes), c] = True
        else:
            favours[[s for s in range(n_scenes) if synthetic.favoured_emotion(s, k) == c], c] = True
    return favours[scenes]


def true_scenes(data: DataBundle, split: str) -> np.ndarray | None:
    """The scene id of every sample of ``split`` from the synthetic sidecar (None for real data, which
    records no scene). For measuring how well context clusters recover the confounder; never for training."""
    records = truth_records(data, split)
    return None if records is None else np.array([r["scene"] for r in records])


def dictionary_path(data: DataBundle, n: int, *, seed: int = 0, backbone: str = "ColourLayout",
                    view: str = "context") -> Path:
    """Where the confounder dictionary of this dataset, N, seed, backbone and context view size is kept
    (``view="image"``, the unmasked-subject ablation, gets a name of its own)."""
    size = "x".join(str(v) for v in data.splits["train"][0]["context"].shape[1:])
    where = hashlib.sha1(str(Path(data.root).resolve()).encode()).hexdigest()[:8]
    unmasked = "" if view == "context" else f"-{view}"
    return data_dir() / "dictionaries" / (f"{data.kind}-{Path(data.root).name}-{where}-{size}-{backbone}"
                                          f"{unmasked}-N{n}-seed{seed}.npz")


def dictionary_for(data: DataBundle, n: int, *, seed: int = 0, places365_weights: str | None = None,
                   rebuild: bool = False, view: str = "context") -> ConfounderDictionary:
    """The confounder dictionary of ``data`` with ``n`` prototypes: loaded if notebook 02 (or an
    earlier call) saved it, else built from the training split's masked contexts and saved.
    ``view="image"`` clusters the whole images instead, subject included (CCIM Table 4's
    "without masking the subject")."""
    if view not in ("context", "image"):
        raise ValueError(f"view must be 'context' (subject masked) or 'image' (unmasked), got {view!r}")
    encoder, description = dictionary_backbone(places365_weights)
    path = dictionary_path(data, n, seed=seed, backbone=description["backbone"], view=view)
    if path.exists() and not rebuild:
        return ConfounderDictionary.load(path)
    features = extract_features(encoder, data.splits["train"], view=view,
                                desc=f"{view} features ({description['backbone']})")
    dictionary, _ = build_dictionary(features, n, seed=seed, provenance={
        **description, "dataset": data.kind, "data_root": str(data.root), "split": "train",
        **({} if view == "context" else {"subject": "not masked"})})
    dictionary.save(path)
    return dictionary


def per_class_scores(run: Run, data: DataBundle, split: str) -> np.ndarray:
    """Per-class AP (multi-label) or per-class accuracy (single-label) on one split."""
    logits, targets = run.outputs[split]
    if data.multilabel:
        return metrics.average_precision(logits, targets)
    return metrics.per_class_accuracy(metrics.confusion_matrix(logits, targets, data.num_classes))


def module_table(model: nn.Module) -> str:
    """A text table of the model's top-level parts with their parameter counts."""
    rows = [(name, type(child).__name__, sum(p.numel() for p in child.parameters()))
            for name, child in model.named_children()]
    rows.append(("total", "", sum(p.numel() for p in model.parameters())))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {kind:<18}{count:>12,d}" for name, kind, count in rows)


# Notebook 09's analyses of a trained CLEF model, kept here so that the notebook shows the reading,
# not the bookkeeping.
DECOMPOSITION_GROUPS = ("scene suggests k, k is not a label", "k is a label, scene suggests other classes")


def clef_decomposition(outs: dict[str, torch.Tensor], targets: np.ndarray, suggestions: np.ndarray,
                       multilabel: bool) -> dict[str, dict[str, np.ndarray]]:
    """CLEF's three scores at class k, averaged per class over two groups of images: those whose scene
    suggests k although k is not a label (what the shortcut would add) and those where k is a label
    but the scene suggests other classes (what the face must carry). ``outs``: the model's
    ``outputs`` on the split (``fused``, ``counterfactual``, ``tie``, [N, K]); ``suggestions``: bool
    [N, K] from :func:`scene_suggestions`. Returns {group: {quantity: [K] means, NaN where empty}}."""
    num_classes = suggestions.shape[1]
    present = targets.astype(bool) if multilabel else np.eye(num_classes, dtype=bool)[targets]
    quantities = {"fused Y_ce": outs["fused"].numpy(), "counterfactual Y_ce*": outs["counterfactual"].numpy(),
                  "TIE": outs["tie"].numpy()}
    groups = dict(zip(DECOMPOSITION_GROUPS, (suggestions & ~present, present & ~suggestions)))
    return {title: {q: np.array([v[members[:, k], k].mean() if members[:, k].any() else np.nan
                                 for k in range(num_classes)]) for q, v in quantities.items()}
            for title, members in groups.items()}


def decision_measures(predictions: np.ndarray, labels: np.ndarray, suggested: np.ndarray,
                      cue: np.ndarray) -> dict[str, float]:
    """One decision rule on a shortcut-free split: accuracy, how often it answers the class the scene
    suggests when that class is wrong (:func:`reprolib.analysis.shortcut_rate`), and its accuracy with
    and without a bystander who shares the label (the honest context cue)."""
    from reprolib import analysis

    return {"accuracy": float((predictions == labels).mean()),
            "shortcut_rate": analysis.shortcut_rate(predictions, labels, suggested),
            **analysis.accuracy_with_and_without_cue(predictions, labels, cue)}


def bystander_cue(data: DataBundle, split: str, labels: np.ndarray) -> np.ndarray | None:
    """bool [N]: the sample has a bystander showing its label (synthetic CAER-S-style data; None otherwise)."""
    records = truth_records(data, split)
    if records is None or data.multilabel:
        return None
    return np.array([label in r["bystanders"] for label, r in zip(labels, records)])


def ccim_attention_by_group(model: nn.Module, encoder: nn.Module, dictionary: ConfounderDictionary,
                            data: DataBundle, split: str) -> tuple[np.ndarray, str, float]:
    """Notebook 08's reading of CCIM's attention: λ averaged over the images of each true scene (of each
    emotion where the data record no scene or are multi-label), and the share of images whose
    most-attended prototype is the one nearest to their own context feature (``encoder`` is the
    dictionary's feature extractor). Returns (table [groups, N], what the rows are, that share)."""
    from reprolib.causal.ccim import inspect_ccim

    attention = inspect_ccim(model, data.splits[split]).attention
    features = extract_features(encoder, data.splits[split], desc=f"{split} context")
    own = np.argmin(((features[:, None, :] - dictionary.Z[None]) ** 2).sum(-1), axis=1)
    own_share = float((attention.argmax(axis=1) == own).mean())
    rows, row_label = true_scenes(data, split), "true scene"
    if rows is None or data.multilabel:
        targets = data.targets(split).numpy()
        rows, row_label = (targets.argmax(1) if data.multilabel else targets), "emotion"
    table = np.stack([attention[rows == r].mean(axis=0) for r in np.unique(rows)])
    return table, row_label, own_share
