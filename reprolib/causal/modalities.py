"""The missing-modality study and modality contribution (CausalMER's robustness claims, notes section 2).

CausalMER's abstract claims (a) robustness to missing modalities, "shown by its low standard deviation in
performance drop gaps", and (b) "balanced contributions from each modality". The paper body (its table and
figure) could not be read, so this module measures both in a way that is written down here and can be
re-run on any model that takes the batch dict (:class:`reprolib.models.mult.MulT`,
:class:`reprolib.causal.causalmer.CausalMER`, a probe ...), without changing the model.

What is measured
----------------
* **Missing modality** (:func:`missing_modality_study`): a trained model is scored on the test data as
  it is (``full``) and under each scenario of :data:`SCENARIOS`, where one or two modalities are
  **removed by zeroing their raw features at test time** (:class:`ZeroedModalities`, through
  :func:`reprolib.causal.causalmer.zero_modalities`). This is the reference code's ``--remove``: no
  retraining, and the zeros reach every consumer (MulT and, for CausalMER, the unimodal branch). The
  reference only zeroes on CUDA (a bug); here it happens on every device. The drop (gap) of a scenario is
  ``score(full) - score(scenario)``, in the units of ``score_fn`` (e.g. IEMOCAP mean accuracy as a
  fraction); the summary is the mean and the standard deviation of the drops.
* **Contribution, measure 1** (:func:`drop_share`): each modality's share of the three single-removal
  drops.
* **Contribution, measure 2** (:func:`modality_attribution`): integrated gradients (Sundararajan et al.
  2017) from the all-zero baseline, the absolute attributions summed over each modality's time steps and
  features, averaged over samples and normalised to shares. It is **one attribution method among
  several** (gradient x input, occlusion, Shapley values over zeroed modalities, attention-based
  scores ...); the paper's method is unknown, so read the shares as this method's view, not the paper's.
* **Contribution, measure 3** (:func:`shapley_attribution`): exact Shapley values with the three
  modalities as players and zeroing as absence (each of the 2^3 zeroing corners scored once; the same
  values as Captum's ``ShapleyValues``): the fair split of f(x) - f(0) over the corners, exact by
  construction, blind to the path between them.

Decisions where the paper is silent (notes 2.2, 2.3, 8.9)
---------------------------------------------------------
* **Scenario set**: all six non-empty proper subsets of {text, audio, vision} are removed: the three
  single removals and the three pairs (removing all three leaves nothing to predict from). Whether the
  paper used pairs is unknown, so the study reports the summary over all six (``summary``) and over the
  three single removals (``summary_single``).
* **Removal = zeros** for every model alike, the baseline MulT included, at the raw-input level. In MulT
  with the reference position rule, an all-zero step also loses its positional embedding (notes 5.3);
  that is part of "absent" as the reference code simulates it.
* **Which standard deviation**: the **population** std (``ddof=0``, ``numpy.std``'s default). The
  scenarios are the complete, fixed set of cases being described, not a sample from a larger population
  of scenarios, so their spread is described, not estimated; it is also what a numpy-based script gives
  by default (INFERRED: the reference does not contain this computation). ``ddof=1`` gives the sample
  std; the value used is recorded in the summary.
* **Drop shares** (:func:`drop_share`): a negative drop (the score *rose* when the modality was removed)
  is clipped to 0 before the shares are taken: such a modality contributed nothing useful to the score.
  If no single removal lowers the score (all clipped drops are 0), the shares are undefined and every
  share is NaN: equal shares would claim a balance that was not measured.
* **Integrated gradients**: baseline = all three modalities zero at once (the same "absent" input as the
  study), straight-line path, the path integral by ``steps``-point Gauss-Legendre quadrature (default;
  ``method="riemann_middle"`` for the midpoint rule), computed by Captum's ``IntegratedGradients`` (it
  agrees with the hand-written quadrature this module had before to float32 rounding; the test keeps that
  reference), the model in eval mode and float32. Completeness (the attributions of a sample add up to f(x) - f(0)) then holds up
  to the quadrature error; :func:`modality_attribution` reports the mean gap next to the mean |f(x) - f(0)|.
  ReLU kinks only slow the quadrature down (more ``steps`` help); a jump breaks completeness for any
  ``steps``: MulT's reference position rule switches the positional embedding of a step off exactly at 0,
  so f(0) differs from the limit of f(alpha x) as alpha -> 0 (``positions="all"`` has no such jump).
  The shares are still computed from the path alpha in (0, 1]; read the gap before reading the shares.
* **The scalar that is attributed** (:func:`target_output`), per sample: IEMOCAP outputs [B, 8]
  (4 emotions x (absent, present)): the logit margin towards the true answer summed over emotions,
  sum_e s_e (z_e,present - z_e,absent) with s_e = +1 if the emotion is present, -1 if absent (so evidence
  for the truth in every emotion adds up, instead of mixing evidence for "present" in the one true emotion
  with evidence for "present" in the three false ones); a single output ([B] or [B, 1], MOSEI
  regression): that output; class scores [B, K] with integer targets (MOSEI ``cls``): the logit of the
  true class. ``output_fn(outputs, batch) -> [B]`` replaces the rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from reprolib.causal.causalmer import zero_modalities
from reprolib.engine import predict, to_device
from reprolib.metrics import iemocap_metrics, mosei_metrics
from reprolib.progress import progress

__all__ = ["MODALITIES", "Scenario", "SCENARIOS", "as_scenario", "ZeroedModalities", "missing_modality_study",
           "drop_share", "IG_METHODS", "target_output", "integrated_gradients", "modality_attribution",
           "shapley_attribution",
           "iemocap_mean_acc", "mosei_acc7", "mosei_acc2_nonzero", "mosei_acc2_nonneg"]

MODALITIES = ("text", "audio", "vision")
_LETTERS = {"t": "text", "a": "audio", "v": "vision"}
IG_METHODS = ("gausslegendre", "riemann_middle")


# ---------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """A missing-modality scenario: ``name`` (readable, the key in results) and the ``removed`` modalities."""

    name: str
    removed: tuple[str, ...]

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m not in self.removed)

    @property
    def code(self) -> str:
        """The reference's ``--remove`` string: ``""``, ``"t"``, ``"ta"`` ..."""
        return "".join(m[0] for m in self.removed)

    @property
    def is_full(self) -> bool:
        return not self.removed


def _scenario_name(removed: tuple[str, ...]) -> str:
    return "full" if not removed else "no " + "+".join(removed)


def as_scenario(spec: Scenario | str | Iterable[str]) -> Scenario:
    """A :class:`Scenario` from itself, a name of :data:`SCENARIOS` (``"no text+audio"``), a ``--remove``
    code (``""`` = full, ``"t"``, ``"av"`` ...) or modality names (``("text", "audio")``)."""
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, str):
        for s in SCENARIOS:
            if spec == s.name:
                return s
        names = [spec] if spec in MODALITIES else [_LETTERS.get(ch, ch) for ch in spec]
    else:
        names = [_LETTERS.get(r, r) for r in spec]
    bad = [n for n in names if n not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modality {bad} in scenario {spec!r}; use a scenario name "
                         f"({', '.join(s.name for s in SCENARIOS)}), letters 't', 'a', 'v' or {MODALITIES}")
    removed = tuple(m for m in MODALITIES if m in names)  # view order, no repeats
    return Scenario(_scenario_name(removed), removed)


#: The study's scenarios: the full input, each single modality removed, each pair removed.
SCENARIOS: tuple[Scenario, ...] = tuple(
    Scenario(_scenario_name(r), r) for r in
    [(), ("text",), ("audio",), ("vision",), ("text", "audio"), ("text", "vision"), ("audio", "vision")])


# ---------------------------------------------------------------------------------------------------
# Zeroed view of a dataset
# ---------------------------------------------------------------------------------------------------

class ZeroedModalities(Dataset):
    """The items of ``source`` with the ``removed`` modalities' features replaced by zeros.

    ``removed``: anything :func:`as_scenario` reads (a :class:`Scenario`, ``"ta"``, ``["vision"]`` ...).
    Each item is a shallow copy with new zero tensors, so the source dataset is never modified; other
    keys (targets, ``index``) pass through. Attributes of the source (``target_key``, ``dims``,
    ``dataset``, ``targets()`` ...) are served through, so the view can go wherever the source goes.
    """

    def __init__(self, source: Dataset, removed: Scenario | str | Iterable[str]):
        self.source = source
        self.scenario = as_scenario(removed)
        self.removed = self.scenario.removed

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        item = self.source[index]
        if not isinstance(item, Mapping):
            raise TypeError(f"ZeroedModalities needs dict items with {MODALITIES}, got {type(item).__name__}")
        return zero_modalities(dict(item), self.removed) if self.removed else dict(item)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not found normally; guard against recursion before __init__ ran
        if name.startswith("__") or "source" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["source"], name)

    def __repr__(self) -> str:
        return f"ZeroedModalities({self.scenario.name!r}, {self.source!r})"


# ---------------------------------------------------------------------------------------------------
# Ready-made score functions (score_fn(outputs, targets) -> float)
# ---------------------------------------------------------------------------------------------------

def iemocap_mean_acc(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """IEMOCAP mean accuracy over the four emotions (CausalMER's headline "average accuracy")."""
    return iemocap_metrics(outputs, targets)["mean_acc"]


def mosei_acc7(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """MOSEI 7-class accuracy (CausalMER's likely "average accuracy" on MOSEI, UNVERIFIED)."""
    return float(mosei_metrics(outputs, targets)["acc7"])


def mosei_acc2_nonzero(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """MOSEI binary accuracy, negative vs positive with zero truths excluded (MulT's Acc2)."""
    return float(mosei_metrics(outputs, targets)["acc2_nonzero"])


def mosei_acc2_nonneg(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """MOSEI binary accuracy, negative vs non-negative on all samples (CausalMER's ``acc2``)."""
    return float(mosei_metrics(outputs, targets)["acc2_nonneg"])


# ---------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------

def _drop_summary(drops: dict[str, float], ddof: int) -> dict[str, Any]:
    values = np.asarray(list(drops.values()), dtype=np.float64)
    n = len(values)
    std = float(np.std(values, ddof=ddof)) if n > ddof else float("nan")
    return {"mean_drop": float(values.mean()) if n else float("nan"), "std_drop": std,
            "max_drop": float(values.max()) if n else float("nan"),
            "min_drop": float(values.min()) if n else float("nan"),
            "ddof": int(ddof), "std": {0: "population", 1: "sample"}.get(int(ddof), f"ddof={int(ddof)}"),
            "n": n, "over": list(drops)}


def _ordered_scenarios(scenarios: Iterable[Scenario | str | Iterable[str]]) -> list[Scenario]:
    """The scenarios to run: the full input first (added when not listed), duplicates dropped."""
    wanted = [as_scenario(s) for s in scenarios]
    if not any(s.is_full for s in wanted):
        wanted.insert(0, SCENARIOS[0])
    seen: dict[str, Scenario] = {}
    for s in wanted:
        if s.removed == MODALITIES:
            raise ValueError("removing all three modalities leaves no input; that scenario is not part of the study")
        seen.setdefault(s.name, s)
    return sorted(seen.values(), key=lambda s: (not s.is_full, len(s.removed)))  # full first, stable otherwise


def _study_of(ordered: Sequence[Scenario], scores: Mapping[str, float], ddof: int) -> dict[str, Any]:
    full = scores[SCENARIOS[0].name]
    records = {s.name: {"removed": list(s.removed), "kept": list(s.kept), "score": scores[s.name],
                        "drop": full - scores[s.name]} for s in ordered}
    missing = {s.name: records[s.name]["drop"] for s in ordered if not s.is_full}
    single = {s.name: records[s.name]["drop"] for s in ordered if len(s.removed) == 1}
    out: dict[str, Any] = {"full": full, "scenarios": records, "summary": _drop_summary(missing, ddof)}
    if single:
        out["summary_single"] = _drop_summary(single, ddof)
    return out


def _scenario_outputs(model: nn.Module, dataset: Dataset, ordered: Sequence[Scenario], *, target_key: str | None,
                      batch_size: int | None, forward: Callable[[dict], Any] | None, device, num_workers: int | None,
                      desc: str) -> dict[str, tuple[Any, torch.Tensor]]:
    """scenario name -> (outputs, targets) of one pass over ``dataset`` with its modalities zeroed."""
    key = target_key or getattr(dataset, "target_key", None) or getattr(model, "target_key", None) or "label"
    was_training = model.training
    outputs: dict[str, tuple[Any, torch.Tensor]] = {}
    try:
        for s in progress(ordered, desc=desc, leave=False):
            outputs[s.name] = predict(model, ZeroedModalities(dataset, s), target_key=key, batch_size=batch_size,
                                      device=device, num_workers=num_workers, forward=forward, desc=s.name)
    finally:
        model.train(was_training)
    return outputs


def missing_modality_study(model: nn.Module, dataset: Dataset, score_fn: Callable[[Any, torch.Tensor], float], *,
                           scenarios: Iterable[Scenario | str | Iterable[str]] = SCENARIOS, batch_size: int | None = None,
                           target_key: str | None = None, forward: Callable[[dict], Any] | None = None,
                           device: torch.device | str | None = None, num_workers: int | None = None,
                           ddof: int = 0, desc: str = "missing modalities") -> dict[str, Any]:
    """Score ``model`` on ``dataset`` with each scenario's modalities zeroed; return scores, drops, summary.

    ``score_fn(outputs, targets) -> float``: e.g. :func:`iemocap_mean_acc`, :func:`mosei_acc2_nonzero`;
    higher is better (the drop is full - scenario). ``scenarios``: :class:`Scenario` objects or anything
    :func:`as_scenario` reads; the full input is always scored, whether listed or not. ``target_key``:
    the item key given to ``score_fn`` as targets (default the dataset's ``target_key``, else the
    model's, else ``"label"``). ``forward(batch)``: replaces ``model(batch)`` (as in
    :func:`reprolib.engine.predict`). ``ddof``: 0 = population std (default, see the module docstring),
    1 = sample std. The model's train/eval mode is restored afterwards.

    Returns a JSON-plain dict::

        {"full": score of the full input,
         "scenarios": {name: {"removed": [...], "kept": [...], "score": s, "drop": full - s}, ...},
         "summary":        {"mean_drop", "std_drop", "max_drop", "min_drop", "ddof", "std", "n", "over"},
         "summary_single": the same over the single-removal scenarios only (when any was run)}

    ``summary`` is over every missing scenario run (not the full input, whose drop is 0 by definition).
    """
    ordered = _ordered_scenarios(scenarios)
    outputs = _scenario_outputs(model, dataset, ordered, target_key=target_key, batch_size=batch_size,
                                forward=forward, device=device, num_workers=num_workers, desc=desc)
    return _study_of(ordered, {name: float(score_fn(*out)) for name, out in outputs.items()}, ddof)


def missing_modality_studies(model: nn.Module, dataset: Dataset, score_fn: Callable[[Any, torch.Tensor], float], *,
                             forward: Callable[[dict], Mapping[str, torch.Tensor]], keys: Sequence[str],
                             scenarios: Iterable[Scenario | str | Iterable[str]] = SCENARIOS,
                             batch_size: int | None = None, target_key: str | None = None,
                             device: torch.device | str | None = None, num_workers: int | None = None,
                             ddof: int = 0, desc: str = "missing modalities") -> tuple[dict[str, Any], tuple[dict, torch.Tensor]]:
    """:func:`missing_modality_study` of several outputs of one model from one pass per scenario.

    ``forward(batch)`` returns a dict of outputs (e.g. :meth:`reprolib.causal.causalmer.CausalMER.outputs`);
    each of ``keys`` gets its own study, exactly what :func:`missing_modality_study` gives with a forward
    that returns that output alone, from one pass per scenario instead of one per scenario and key. Returns
    ``({key: study}, (outputs on the full input, targets))``: the full pass serves other diagnostics too.
    """
    ordered = _ordered_scenarios(scenarios)
    outputs = _scenario_outputs(model, dataset, ordered, target_key=target_key, batch_size=batch_size,
                                forward=forward, device=device, num_workers=num_workers, desc=desc)
    studies = {k: _study_of(ordered, {name: float(score_fn(out[k], targets)) for name, (out, targets) in outputs.items()},
                            ddof) for k in keys}
    return studies, outputs[SCENARIOS[0].name]


def drop_share(study: Mapping[str, Any]) -> dict[str, float]:
    """Each modality's share of the single-removal drops: {"text", "audio", "vision"} -> share, summing to 1.

    ``study``: the result of :func:`missing_modality_study`, which must include the three single
    removals. share_m = max(drop_m, 0) / sum_k max(drop_k, 0): a negative drop (the score rose without
    the modality) counts as 0; if every clipped drop is 0, every share is NaN (nothing to share).
    """
    records = study.get("scenarios", {}) if isinstance(study, Mapping) else {}
    drops: dict[str, float] = {}
    for record in records.values():
        removed = tuple(record.get("removed", ()))
        if len(removed) == 1:
            drops[removed[0]] = float(record["drop"])
    missing = [m for m in MODALITIES if m not in drops]
    if missing:
        raise ValueError(f"drop_share needs the single-removal scenarios; the study lacks "
                         f"{', '.join(_scenario_name((m,)) for m in missing)}")
    clipped = {m: max(drops[m], 0.0) if math.isfinite(drops[m]) else float("nan") for m in MODALITIES}
    total = sum(clipped.values())
    if not math.isfinite(total) or total <= 0.0:
        return {m: float("nan") for m in MODALITIES}
    return {m: clipped[m] / total for m in MODALITIES}


# ---------------------------------------------------------------------------------------------------
# Integrated gradients
# ---------------------------------------------------------------------------------------------------

def target_output(outputs: torch.Tensor, batch: Mapping[str, Any], target_key: str | None = None) -> torch.Tensor:
    """The per-sample scalar [B] that is attributed (rules in the module docstring).

    ``outputs``: [B] or [B, 1] (the output itself), [B, 8] with IEMOCAP targets [B, 4] (0/1) or [B, 4, 2]
    (the true-answer margin summed over emotions), or [B, K] with integer class targets [B] (the true
    class's logit). ``target_key``: where the targets are in ``batch`` (needed for the last two).
    """
    if outputs.dim() == 1:
        return outputs
    if outputs.dim() == 2 and outputs.shape[1] == 1:
        return outputs[:, 0]
    if target_key is None or target_key not in batch:
        raise KeyError(f"outputs of shape {tuple(outputs.shape)} need the targets to pick the true class, but "
                       f"the batch has no {target_key!r} (keys {sorted(batch)}); pass target_key or output_fn")
    target = batch[target_key]
    b = outputs.shape[0]
    if outputs.dim() == 2 and outputs.shape[1] == 8 and target.shape in ((b, 4), (b, 4, 2)):
        present = target.argmax(-1) if target.dim() == 3 else target
        sign = 2.0 * present.to(outputs.dtype) - 1.0
        pairs = outputs.view(b, 4, 2)
        return (sign * (pairs[..., 1] - pairs[..., 0])).sum(dim=1)
    if outputs.dim() == 2 and target.dim() == 1 and not target.is_floating_point():
        return outputs.gather(1, target.long().view(-1, 1))[:, 0]
    raise ValueError(f"no attribution target rule for outputs {tuple(outputs.shape)} and targets "
                     f"{tuple(target.shape)} ({target.dtype}); pass output_fn(outputs, batch) -> [B]")


def _quadrature(steps: int, method: str) -> tuple[list[float], list[float]]:
    """Nodes alpha in (0, 1) and weights summing to 1 for the path integral."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return ((nodes + 1.0) / 2.0).tolist(), (weights / 2.0).tolist()
    if method == "riemann_middle":
        return [(k + 0.5) / steps for k in range(steps)], [1.0 / steps] * steps
    raise ValueError(f"unknown integration method {method!r}; valid: {', '.join(IG_METHODS)}")


def _as_function(forward: Callable[[dict], torch.Tensor], batch: Mapping[str, Any], names: tuple[str, ...],
                 scalar: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``f(*modality tensors) -> [N]`` over ``batch``, the form Captum attributes. Captum stacks several
    points of the path into one call, step-major (N = steps x B), so every other per-sample tensor of the
    batch (targets, lengths ...) is tiled to match."""
    b = batch[names[0]].shape[0]

    def f(*xs: torch.Tensor) -> torch.Tensor:
        reps = xs[0].shape[0] // b
        point = {k: v.repeat(reps, *[1] * (v.dim() - 1)) if reps > 1 and torch.is_tensor(v) and v.dim() > 0
                 and v.shape[0] == b else v for k, v in batch.items()}
        point.update(zip(names, xs))
        # + 0 x each input: a modality the model ignores gets zero gradients, not an autograd error
        return scalar(forward(point), point) + sum(0.0 * x.flatten(1).sum(1) for x in xs)

    return f


def integrated_gradients(model: nn.Module, batch: Mapping[str, Any], *, steps: int = 16,
                         target_key: str | None = None, forward: Callable[[dict], torch.Tensor] | None = None,
                         output_fn: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor] | None = None,
                         method: str = "gausslegendre",
                         modalities: Iterable[str] = MODALITIES) -> dict[str, torch.Tensor]:
    """Integrated gradients of each sample's :func:`target_output` for one batch, from the zero baseline,
    with Captum (``captum.attr.IntegratedGradients``, the PyTorch attribution library).

    attr_m = x_m * integral_0^1 d f(alpha x) / d x_m d alpha, with all listed ``modalities`` scaled
    together (the other keys of the batch, and unlisted modalities, stay as they are). Returns
    {modality: attributions shaped like its input}, detached. ``forward``: replaces ``model(batch)``;
    ``output_fn(outputs, batch) -> [B]``: replaces :func:`target_output`. ``steps`` path points with
    ``method`` ("gausslegendre" or "riemann_middle", Captum's names), evaluated one path point at a time
    (``internal_batch_size`` = the batch). Call with the model in eval mode
    (:func:`modality_attribution` does): in train mode dropout and BatchNorm make f random and couple
    the samples. The model's parameters get no gradient.
    """
    from captum.attr import IntegratedGradients

    forward = forward or model
    names = as_scenario(list(modalities)).removed  # checked, in view order
    if not names:
        raise ValueError("integrated_gradients needs at least one modality to attribute")
    _quadrature(int(steps), method)  # the same checks and messages as before Captum
    key = target_key or getattr(model, "target_key", None)
    scalar = output_fn if output_fn is not None else (lambda out, b: target_output(out, b, key))
    inputs = tuple(batch[m].detach().float() for m in names)
    with torch.enable_grad():  # Captum takes input gradients with torch.autograd.grad: no parameter .grad
        attr = IntegratedGradients(_as_function(forward, batch, names, scalar)).attribute(
            inputs, baselines=tuple(torch.zeros_like(x) for x in inputs), n_steps=int(steps), method=method,
            internal_batch_size=inputs[0].shape[0])
    return {m: a.detach() for m, a in zip(names, attr)}


def _shares_over(model: nn.Module, dataset: Dataset, per_batch, *, batch_size: int, max_samples: int | None,
                 target_key: str | None, forward, output_fn, device, desc: str, what: str) -> dict[str, Any]:
    """The loop both attributions share: ``per_batch(batch, forward, scalar) -> ({m: |attributions| of
    each sample, [B, ...]}, {m: their signed sum per sample, [B]})`` over the first ``max_samples`` of ``dataset`` in
    eval mode; returns the shares of the mean absolute sums, the mean signed sums, the mean
    |sum of all attributions - (f(x) - f(0))| (``gap``) and the mean |f(x) - f(0)|."""
    if max_samples is not None:
        dataset = Subset(dataset, range(min(int(max_samples), len(dataset))))  # type: ignore[arg-type]
    n_total = len(dataset)  # type: ignore[arg-type]
    if n_total == 0:
        raise ValueError(f"{what}: no samples")
    forward = forward or model
    key = (target_key or getattr(model, "target_key", None)
           or getattr(getattr(dataset, "dataset", dataset), "target_key", None))
    dev = torch.device(device) if device else next(model.parameters()).device

    def scalar(out: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return output_fn(out, batch) if output_fn is not None else target_output(out, batch, key)

    abs_sum = {m: 0.0 for m in MODALITIES}
    signed_sum = {m: 0.0 for m in MODALITIES}
    gap_sum = delta_sum = 0.0
    was_training = model.training
    model.eval()
    try:
        for batch in progress(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc=desc, leave=False):
            batch = to_device(batch, dev)
            absolute, signed = per_batch(batch, forward, scalar)
            with torch.no_grad():
                f_x = scalar(forward(batch), batch).float()
                f_0 = scalar(forward(zero_modalities(batch, MODALITIES)), batch).float()
            total = torch.zeros_like(f_x)
            for m in MODALITIES:
                abs_sum[m] += float(absolute[m].sum())
                signed_sum[m] += float(signed[m].sum())
                total = total + signed[m]
            gap_sum += float((total - (f_x - f_0)).abs().sum())
            delta_sum += float((f_x - f_0).abs().sum())
    finally:
        model.train(was_training)
    mean_abs = {m: abs_sum[m] / n_total for m in MODALITIES}
    denom = sum(mean_abs.values())
    shares = ({m: mean_abs[m] / denom for m in MODALITIES} if denom > 0 and math.isfinite(denom)
              else {m: float("nan") for m in MODALITIES})
    return {"shares": shares, "mean_abs": mean_abs, "mean_signed": {m: signed_sum[m] / n_total for m in MODALITIES},
            "gap": gap_sum / n_total, "mean_abs_delta": delta_sum / n_total, "n": n_total}


def _shapley_weight(coalition_size: int, players: int) -> float:
    """|S|! (n - |S| - 1)! / n!: the share of the n! orders in which exactly S precedes a player."""
    return math.factorial(coalition_size) * math.factorial(players - coalition_size - 1) / math.factorial(players)


def shapley_attribution(model: nn.Module, dataset: Dataset, *, batch_size: int = 64, max_samples: int | None = None,
                        target_key: str | None = None, forward: Callable[[dict], torch.Tensor] | None = None,
                        output_fn: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor] | None = None,
                        device: torch.device | str | None = None, desc: str = "Shapley values") -> dict[str, Any]:
    """Per-modality contribution as exact Shapley values over the three modalities (each modality one
    player, "absent" = zeroed as in the missing-modality study).

    phi_m = sum over the coalitions S of the other modalities of |S|! (2 - |S|)! / 3! x (v(S + m) - v(S)),
    v(S) = the sample's :func:`target_output` with only S kept: the average change when m is added,
    over the 3! orders of adding the modalities to the all-zero input. The 2^3 corners are each scored
    once per batch (Captum's ``ShapleyValues`` gives the same values from 19 forward passes; the tests
    compare the two). Unlike integrated gradients it looks only at the corners (no path, no gradients),
    so it is blind to how f bends in between, and it adds up exactly: sum_m phi_m = f(x) - f(0).
    Shares: mean |phi_m| over samples, normalised. Returns ``{"shares", "mean_abs", "mean_signed",
    "efficiency_gap" (mean |sum phi - (f(x) - f(0))|), "mean_abs_delta", "n"}``.
    """
    coalitions = [frozenset(c) for r in range(len(MODALITIES) + 1) for c in itertools.combinations(MODALITIES, r)]

    def per_batch(batch, forward, scalar):
        with torch.no_grad():
            value = {s: scalar(forward(zero_modalities(batch, [m for m in MODALITIES if m not in s])), batch).float()
                     for s in coalitions}
        values = {m: sum(_shapley_weight(len(s), len(MODALITIES)) * (value[s | {m}] - value[s])
                         for s in coalitions if m not in s) for m in MODALITIES}
        return {m: v.abs() for m, v in values.items()}, values

    out = _shares_over(model, dataset, per_batch, batch_size=batch_size, max_samples=max_samples,
                       target_key=target_key, forward=forward, output_fn=output_fn, device=device, desc=desc,
                       what="shapley_attribution")
    out["efficiency_gap"] = out.pop("gap")
    return out


def modality_attribution(model: nn.Module, dataset: Dataset, *, steps: int = 16, batch_size: int = 64,
                         max_samples: int | None = None, target_key: str | None = None,
                         forward: Callable[[dict], torch.Tensor] | None = None,
                         output_fn: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor] | None = None,
                         method: str = "gausslegendre", device: torch.device | str | None = None,
                         desc: str = "integrated gradients") -> dict[str, Any]:
    """Per-modality contribution by integrated gradients (zero baseline), as shares summing to 1.

    For each sample and modality: a_m = sum over time steps and features of |IG attribution|; a_m is
    averaged over the samples (the first ``max_samples`` of ``dataset``, all by default) and
    share_m = mean a_m / sum_k mean a_k (NaN when every mean is 0). ``target_key``: where the targets
    are (default the model's ``target_key``, else the dataset's): the true class / emotion answers pick
    the attributed output (:func:`target_output`). One method among several; the paper's is unknown.

    Returns ``{"shares": {m: float}, "mean_abs": {m: mean a_m}, "mean_signed": {m: mean of the signed
    sums}, "completeness_gap": mean over samples of |sum of all attributions - (f(x) - f(0))|,
    "mean_abs_delta": mean |f(x) - f(0)| (the scale of that gap), "n", "steps", "method"}``.
    """
    _quadrature(int(steps), method)  # validate before any work

    def per_batch(batch, forward, scalar):
        attr = integrated_gradients(model, batch, steps=steps, forward=forward, output_fn=scalar, method=method)
        return ({m: attr[m].flatten(1).abs() for m in MODALITIES}, {m: attr[m].flatten(1).sum(1) for m in MODALITIES})

    out = _shares_over(model, dataset, per_batch, batch_size=batch_size, max_samples=max_samples,
                       target_key=target_key, forward=forward, output_fn=output_fn, device=device, desc=desc,
                       what="modality_attribution")
    out["completeness_gap"] = out.pop("gap")
    return {**out, "steps": int(steps), "method": method}
