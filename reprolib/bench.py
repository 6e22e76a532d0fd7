"""Performance benchmark: ``python -m reprolib bench`` (``make bench``) -> ``results/bench.json``.

Everything is measured in one run, on one machine, and reported as **ratios** (these machines are
noisy; a ratio of two timings taken side by side is what carries over). Absolute seconds are kept in
the JSON for context only.

* **Causal modules vs the model they wrap**: one training step (forward, backward, Adam) and one
  inference forward of CCIM and CLEF around CAER-Net-S and EMOT-Net, and of CausalMER around MulT,
  each divided by the same for the bare model, at the smoke and the full model sizes.
* **MulT vs the reference structure**: this repo's MulT (batch-first, fairseq's arithmetic) against :class:`ReferenceStructureMulT`, the same weights run the
  way the reference code runs them: time-first tensors throughout, fairseq's attention (one packed
  projection for self attention, q scaled before ``bmm``, float mask added, float32 softmax), LayerNorm applied to key and value separately
  in every cross-modal layer. At the reference configuration (d=30, 10 heads, 5 layers, batch 32,
  kernels 1) and at this repo's smoke size. Outputs are compared before anything is timed.
* **Data pipeline**: samples/s through the CAER-S-style loader (images decoded and cropped per item,
  no cache) with 0 and 2 workers, divided by the samples/s CAER-Net-S consumes in training steps.
  Above 1, the loader keeps up with the model.
* **Evaluation batch**: inference over a smoke validation split at the engine's default batch for
  the device (:func:`reprolib.engine.eval_batch_size`, 32 on CPU) against batch 256, around CAER-Net-S
  and EMOT-Net bare and inside CLEF, with a check that the logits are bit-identical (so model
  selection cannot change).
* **Smoke suite**: the wall time of each notebook in the last ``make reproduce`` (papermill's record in
  ``results/executed/``), as shares of the total; not re-run here (``--run-suite`` does).

Timing uses ``torch.utils.benchmark.Timer`` (it synchronises CUDA and runs its own warm-up calls)
on torch's default thread count, the one a user gets. Models that are compared are timed
**interleaved**, round by round (:func:`paired_timings`), and every ratio is the **median of the
per-round ratios**, reported with their min and max: a burst of load on the machine hits both sides
of one round alike, where a ratio of separately taken medians would pair unrelated rounds.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reprolib import experiments, sweeps
from reprolib.engine import _loader as engine_loader
from reprolib.engine import default_loss, eval_batch_size, place, predict, to_device
from reprolib.models.mult import (MODALITIES, CrossmodalEncoder, MulT, MultiheadAttention, causal_mask,
                                   sinusoidal_positions)
from reprolib.paths import results_dir
from reprolib.progress import progress
from reprolib.results import write_metrics

SIZES = ("smoke", "full")


# ---------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
                   device: torch.device | None = None) -> float:
    """Median seconds of one ``fn()`` over ``repeats`` timings (``torch.utils.benchmark``, which also
    synchronises CUDA), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device or torch.device("cpu"))
    threads = torch.get_num_threads()
    return statistics.median(_timed(fn, threads) for _ in range(repeats))


def _step_fns(model: nn.Module, batch: dict, target_key: str,
              device: torch.device) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one training step, one inference forward) on ``batch``: the model's own loss or the default
    loss, backward and Adam; eval mode without grad for inference."""
    model.to(device)
    batch = to_device(batch, device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    own = getattr(model, "training_loss", None)

    def train_step() -> None:
        model.train()
        loss = own(batch) if own is not None else default_loss(model(batch), batch[target_key])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    return train_step, infer


def _peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def step_and_inference(model: nn.Module, batch: dict, target_key: str, *, repeats: int = 5,
                       device: torch.device | None = None) -> dict[str, float]:
    """Median seconds of one training step and of one inference forward of ``model`` on ``batch``
    (plus peak memory on a GPU). The model is left in eval mode."""
    device = device or torch.device("cpu")
    train_step, infer = _step_fns(model, batch, target_key, device)
    out = {"train_step": median_seconds(train_step, repeats=repeats, device=device),
           "inference": median_seconds(infer, repeats=repeats, device=device)}
    if (memory := _peak_memory_mb(train_step, device)) is not None:
        out["peak_memory_mb"] = memory
    model.eval()
    return out


MULT_ROUNDS = 15    # rounds of the MulT-vs-reference row (see run)
ROUND_SECONDS = 0.2  # each round times calls for at least this long: one call of a small model is mostly noise


def _timed(fn: Callable[[], None], threads: int) -> float:
    """Seconds per call of ``fn``: the median over the blocks ``Timer.blocked_autorange`` times in one
    round of at least :data:`ROUND_SECONDS` (after the Timer's own warm-up)."""
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=ROUND_SECONDS).median


def paired_timings(models: dict[str, nn.Module], batch: dict, target_key: str, *, repeats: int = 5,
                   device: torch.device | None = None) -> dict[str, dict[str, Any]]:
    """Training-step and inference seconds of several models on the same batch, **interleaved**: each
    round times every model once, so a slow spell of the machine hits all of them alike. Per model:
    the median seconds per kind and ``rounds``, the per-round seconds that :func:`ratio` pairs up.
    Models are left in eval mode."""
    device = device or torch.device("cpu")
    threads = torch.get_num_threads()
    fns = {name: _step_fns(model, batch, target_key, device) for name, model in models.items()}
    rounds: dict[str, dict[str, list[float]]] = {name: {"train_step": [], "inference": []} for name in models}
    for _ in range(repeats):
        for name, (train_step, infer) in fns.items():
            rounds[name]["train_step"].append(_timed(train_step, threads))
            rounds[name]["inference"].append(_timed(infer, threads))
    out: dict[str, dict[str, Any]] = {
        name: {**{kind: statistics.median(v) for kind, v in kinds.items()}, "rounds": kinds}
        for name, kinds in rounds.items()}
    for name, (train_step, _) in fns.items():
        if (memory := _peak_memory_mb(train_step, device)) is not None:
            out[name]["peak_memory_mb"] = memory
    for model in models.values():
        model.eval()
    return out


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> dict[str, Any]:
    """Per kind: the median of the per-round ratios numerator / denominator (``<kind>_ratio``) and
    their ``[min, max]`` (``<kind>_ratio_range``), from two entries of :func:`paired_timings`."""
    out: dict[str, Any] = {}
    for kind in ("train_step", "inference"):
        per_round = [a / b for a, b in zip(numerator["rounds"][kind], denominator["rounds"][kind])]
        out[f"{kind}_ratio"] = statistics.median(per_round)
        out[f"{kind}_ratio_range"] = [min(per_round), max(per_round)]
    return out


def _seconds(entry: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in entry.items() if k != "rounds"}


# ---------------------------------------------------------------------------------------------------
# Causal modules vs the model they wrap
# ---------------------------------------------------------------------------------------------------

def _first_batch(dataset, batch_size: int) -> dict:
    """The first ``batch_size`` items of ``dataset``, collated as the engine's loaders do."""
    from torch.utils.data import DataLoader

    return next(iter(DataLoader(dataset, batch_size=batch_size)))


def _image_batch(kind: str, size: str, batch_size: int) -> tuple[experiments.DataBundle, dict]:
    """A batch of the synthetic ``kind`` data at the size's view resolutions (smoke images, resized)."""
    views = sweeps.VIEWS if size == "smoke" else sweeps.FULL_VIEWS
    subject, context, image = views[kind]
    data = experiments.open_data(kind, subject_size=subject, context_size=context, image_size=image, cache=False,
                                 extra_views=("pose", "depth") if kind == "emotic" else ())
    return data, _first_batch(data.splits["train"], batch_size)


def _random_dictionary(n: int = 16, width: int = 64, seed: int = 0):
    from reprolib.causal.dictionary import ConfounderDictionary

    rng = np.random.default_rng(seed)
    return ConfounderDictionary(rng.standard_normal((n, width)).astype(np.float32), np.full(n, 1.0 / n),
                                {"backbone": "random (benchmark)", "N": n})


def causal_overheads(size: str = "smoke", *, batch_size: int = 8, repeats: int = 5,
                     device: torch.device | None = None) -> list[dict[str, Any]]:
    """Train-step and inference ratios of CCIM / CLEF (around CAER-Net-S and EMOT-Net) and CausalMER
    (around MulT) to the bare model, at ``size`` ("smoke" or "full" model and view sizes). CCIM uses a
    random 16-prototype dictionary: its cost depends on the shapes only."""
    from reprolib import mer
    from reprolib.causal.ccim import with_ccim
    from reprolib.causal.clef import CLEF, context_branch

    backbone = sweeps.SIZES[size]["backbone"]
    builders = sweeps.baseline_builders(size)
    rows = []

    def add_rows(models: dict[str, nn.Module], wraps: str, batch: dict, target_key: str) -> None:
        timed = paired_timings(models, batch, target_key, repeats=repeats, device=device)
        for module in list(models)[1:]:
            rows.append({"module": module, "wraps": wraps, "size": size, "batch_size": batch_size,
                         **ratio(timed[module], timed["baseline"]), "seconds": _seconds(timed[module]),
                         "baseline_seconds": _seconds(timed["baseline"])})

    for name in progress(("caernet", "emotnet"), desc=f"causal modules ({size})", leave=False):
        kind, build = builders[name]
        data, batch = _image_batch(kind, size, batch_size)
        torch.manual_seed(0)
        models = {"baseline": build(data, backbone),
                  "CCIM": with_ccim(build(data, backbone), _random_dictionary(), "dot_product"),
                  "CLEF": CLEF(build(data, backbone), context_branch(data.num_classes, backbone), data.num_classes,
                               multilabel=data.multilabel)}
        add_rows(models, name, batch, data.target_key)
    mult_data = mer.open_data("iemocap", "smoke")
    build = mer.builders(mult_data, size)
    torch.manual_seed(0)
    add_rows({"baseline": build["mult"](), "CausalMER": build["causalmer"]()}, "mult",
             _first_batch(mult_data.splits["train"], batch_size), mult_data.target_key)
    return rows


# ---------------------------------------------------------------------------------------------------
# MulT vs the reference code's structure
# ---------------------------------------------------------------------------------------------------

def fairseq_attention(attn: MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """The reference code's attention on the parameters of ``attn``, time-first [T, B, d] in and out:
    one packed projection when query, key and value are one tensor (self attention: the reference's
    ``qkv_same``), three otherwise; q scaled by head_dim^-0.5 before ``bmm(q, k^T)``, a float mask
    (-inf = hidden) added to the weights, softmax in float32, dropout on the weights, ``bmm`` with v,
    the output projection."""
    t_q, b, d = query.shape
    t_k = key.shape[0]
    heads, head_dim = attn.num_heads, d // attn.num_heads
    if query.data_ptr() == key.data_ptr() == value.data_ptr():
        q, k, v = F.linear(query, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    else:
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
    q = q * head_dim ** -0.5
    q = q.contiguous().view(t_q, b * heads, head_dim).transpose(0, 1)
    k = k.contiguous().view(t_k, b * heads, head_dim).transpose(0, 1)
    v = v.contiguous().view(t_k, b * heads, head_dim).transpose(0, 1)
    weights = torch.bmm(q, k.transpose(1, 2))
    if mask is not None:
        weights = weights + mask.unsqueeze(0)
    weights = F.softmax(weights.float(), dim=-1).type_as(weights)
    weights = F.dropout(weights, p=attn.dropout, training=attn.training)
    out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(t_q, b, d)
    return attn.out_proj(out)


def _reference_encoder(enc: CrossmodalEncoder, x_in: torch.Tensor, x_in_kv: torch.Tensor | None) -> torch.Tensor:
    """The reference ``TransformerEncoder.forward`` (time-first) on the parameters of ``enc``."""
    def embed(x: torch.Tensor) -> torch.Tensor:
        out = enc.embed_scale * x
        pe = sinusoidal_positions(x.transpose(0, 1), enc.positions)  # the reference transposes for this too
        if pe is not None:
            out = out + pe.transpose(0, 1)
        return F.dropout(out, enc.embed_dropout, enc.training)

    x = embed(x_in)
    x_k = x_v = None
    if x_in_kv is not None:  # key and value embedded separately: their own dropout masks
        x_k, x_v = embed(x_in_kv), embed(x_in_kv)
    mask = None
    if enc.causal:
        hidden = ~causal_mask(x_in.shape[0], x_in.shape[0] if x_in_kv is None else x_in_kv.shape[0], x_in.device)
        mask = torch.zeros(hidden.shape, device=x_in.device).masked_fill(hidden, float("-inf"))
    for layer in enc.layers:
        residual = x
        x = layer.ln0(x)
        if x_k is None:
            k = v = x
        else:
            k, v = layer.ln0(x_k), layer.ln0(x_v)
        x = residual + F.dropout(fairseq_attention(layer.attn, x, k, v, mask), layer.res_dropout, layer.training)
        residual = x
        x = F.dropout(F.relu(layer.fc1(layer.ln1(x))), layer.relu_dropout, layer.training)
        x = residual + F.dropout(layer.fc2(x), layer.res_dropout, layer.training)
    return enc.norm(x)


class ReferenceStructureMulT(nn.Module):
    """A MulT's weights run with the reference code's structure (for the benchmark only): time-first
    tensors from the temporal convolutions to the last time step, :func:`fairseq_attention`, and the
    reference layer loop (LayerNorm of key and of value in every cross-modal layer)."""

    def __init__(self, model: MulT):
        super().__init__()
        self.mult = copy.deepcopy(model)
        self.target_key = model.target_key

    def forward(self, batch: dict) -> torch.Tensor:
        m = self.mult
        proj = {}
        for name in MODALITIES:
            x = batch[name].float()
            if name == "text":
                x = F.dropout(x, m.embed_dropout, m.training)
            proj[name] = m.proj[name](x.transpose(1, 2)).permute(2, 0, 1)  # [T, B, d], as the reference
        last = []
        for target in m.targets:
            crossed = [_reference_encoder(m.cross[f"{target}_from_{s}"], proj[target], proj[s])
                       for s in m.sources(target)]
            last.append(_reference_encoder(m.mem[target], torch.cat(crossed, dim=2), None)[-1])
        return m.classifier(torch.cat(last, dim=1))

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.mult.loss(self(batch), batch[self.target_key])


# The upstream MulT's own configuration (its README and main.py defaults, heads as CausalMER hard-codes),
# at which "not slower than the reference" is measured; batch 32 as in the paper's IEMOCAP setting.
REFERENCE_CONFIG = {"d": 30, "num_heads": 10, "layers": 5, "kernel_sizes": (1, 1, 1), "batch_size": 32}


def mult_reference_comparison(config: str = "reference", *, batch_size: int | None = None, repeats: int = 5,
                              device: torch.device | None = None) -> dict[str, Any]:
    """This repo's MulT vs :class:`ReferenceStructureMulT` on the same weights: the largest output
    difference (eval mode, causal masks on, so the masked path is checked too), then the per-round
    time ratios ours / reference. ``config``: ``"reference"`` (:data:`REFERENCE_CONFIG`) or a size of
    :func:`reprolib.mer.builders` (``"smoke"``, ``"full"``)."""
    from reprolib import mer

    data = mer.open_data("iemocap", "smoke")
    torch.manual_seed(0)
    if config == "reference":
        options = {k: v for k, v in REFERENCE_CONFIG.items() if k != "batch_size"}
        ours = MulT.for_data(data.splits["train"], causal_mask=True, **options)
        batch_size = batch_size or REFERENCE_CONFIG["batch_size"]
    else:
        ours = mer.builders(data, config, mult={"causal_mask": True})["mult"]()
        batch_size = batch_size or 8
    batch = _first_batch(data.splits["train"], batch_size)
    reference = ReferenceStructureMulT(ours)
    ours.eval(), reference.eval()
    with torch.no_grad():
        difference = float((ours(batch) - reference(batch)).abs().max())
    timed = paired_timings({"ours": ours, "reference": reference}, batch, data.target_key, repeats=repeats,
                           device=device)
    return {"config": config, "batch_size": batch_size, "d": ours.d, "max_abs_output_difference": difference,
            **ratio(timed["ours"], timed["reference"]), "seconds": _seconds(timed["ours"]),
            "reference_seconds": _seconds(timed["reference"])}


# ---------------------------------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------------------------------

def loader_throughput(*, batch_size: int = 64, batches: int = 8, workers=(0, 2), repeats: int = 3,
                      device: torch.device | None = None) -> dict[str, Any]:
    """Samples/s through the CAER-S-style training loader (no cache: every item is decoded and cropped)
    for each worker count, in the steady state (persistent workers, after a warm-up pass), and samples/s
    CAER-Net-S consumes in training steps; ratios loader / model."""
    from torch.utils.data import DataLoader

    kind, build = sweeps.baseline_builders("smoke")["caernet"]
    subject, context, image = sweeps.VIEWS[kind]
    data = experiments.open_data(kind, subject_size=subject, context_size=context, image_size=image, cache=False)
    train = data.splits["train"]
    n = min(batches * batch_size, len(train))
    rates: dict[str, float] = {}
    for w in workers:
        # persistent workers and one warm-up pass: the steady state of an epoch, not the workers' start-up
        loader = DataLoader(torch.utils.data.Subset(train, range(n)), batch_size=batch_size, num_workers=w,
                            persistent_workers=w > 0)

        def drain() -> None:
            for _ in loader:
                pass

        rates[str(w)] = n / median_seconds(drain, repeats=repeats, warmup=1)
    batch = _first_batch(train, batch_size)
    step = step_and_inference(build(data, "small"), batch, data.target_key, repeats=repeats, device=device)
    consumption = batch_size / step["train_step"]
    # What a user gets: the notebooks' smoke data (decoded once, then cached in memory) through the
    # engine's own training loader with its default workers (none on CPU), against the same batches'
    # training steps: the share of an epoch spent waiting for data.
    cached = experiments.open_data(kind, subject_size=subject, context_size=context, image_size=image, cache=True)
    default_loader = engine_loader(cached.splits["train"], batch_size, True, device or torch.device("cpu"), None,
                                   torch.Generator().manual_seed(0), drop_last=True)

    def epoch_of_batches() -> None:
        for _ in default_loader:
            pass

    load_seconds = median_seconds(epoch_of_batches, repeats=repeats, warmup=1)  # warm-up fills the cache
    step_seconds = len(default_loader) * step["train_step"]
    return {"dataset": kind, "batch_size": batch_size, "samples": n, "loader_samples_per_s": rates,
            "model_samples_per_s": consumption,
            "loader_to_model_ratio": {w: r / consumption for w, r in rates.items()},
            "default_loader": {"num_workers": default_loader.num_workers, "cache": True,
                               "epoch_load_seconds": load_seconds, "epoch_step_seconds": step_seconds,
                               "loading_share_of_epoch": load_seconds / (load_seconds + step_seconds)}}


def evaluation_batch(*, repeats: int = 5, device: torch.device | None = None,
                     against: int = 256) -> list[dict[str, Any]]:
    """Seconds of :func:`reprolib.engine.predict` over a smoke validation split at the device's default
    batch (:func:`eval_batch_size`) divided by the same at ``against``, interleaved round by round, and
    whether the two give bit-identical logits; CAER-Net-S and EMOT-Net, bare and inside CLEF."""
    from reprolib.causal.clef import clef_around

    device = device or torch.device("cpu")
    default, threads = eval_batch_size(device), torch.get_num_threads()
    rows = []
    for name in ("caernet", "emotnet"):
        kind, build = sweeps.baseline_builders("smoke")[name]
        subject, context, image = sweeps.VIEWS[kind]
        data = experiments.open_data(kind, subject_size=subject, context_size=context, image_size=image, cache=True,
                                     extra_views=sweeps.extra_views(kind, [name]))
        val = data.splits["val"]
        torch.manual_seed(0)
        for wrapper, model in (("baseline", build(data, "small")), ("CLEF", clef_around(build(data, "small"), data))):
            place(model, device)

            def logits(batch_size: int, model: nn.Module = model) -> torch.Tensor:
                return predict(model, val, target_key=data.target_key, batch_size=batch_size, device=device)[0]

            identical = torch.equal(logits(default), logits(against))  # also fills the data cache
            per_round = [_timed(lambda: logits(default), threads) / _timed(lambda: logits(against), threads)
                         for _ in range(repeats)]
            rows.append({"model": name if wrapper == "baseline" else f"{name} + CLEF", "samples": len(val),
                         "batch_size": default, "against": against, "identical_logits": identical,
                         "inference_ratio": statistics.median(per_round),
                         "inference_ratio_range": [min(per_round), max(per_round)]})
    return rows


# ---------------------------------------------------------------------------------------------------
# Smoke suite
# ---------------------------------------------------------------------------------------------------

def suite_times(folder: Path | None = None) -> dict[str, Any] | None:
    """Per-notebook wall time of the last run in ``results/executed/`` (papermill's ``duration``) and
    each notebook's share of the total; None when no executed notebook is there."""
    folder = folder or results_dir() / "executed"
    durations = {}
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if folder.is_dir() else []:
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            durations[path.stem] = float(meta["duration"])
    if not durations:
        return None
    total = sum(durations.values())
    return {"total_seconds": total, "notebooks": durations, "shares": {k: v / total for k, v in durations.items()},
            "source": str(folder)}


def run_suite() -> float:
    """Run ``reprolib reproduce`` at smoke size and return its wall time in seconds."""
    from reprolib import runner

    start = time.perf_counter()
    if runner.reproduce() != 0:
        raise RuntimeError("the smoke suite did not run through; see the summary above")
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------

def bench(sizes=SIZES, *, repeats: int = 5, batch_size: int = 8, device: str | None = None,
          suite: bool = False, log=print) -> dict[str, Any]:
    """Run every measurement, write ``results/bench.json`` and return it."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out: dict[str, Any] = {"device": str(dev), "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    out["causal_modules"] = [row for size in sizes for row in
                             causal_overheads(size, batch_size=batch_size, repeats=repeats, device=dev)]
    # ours and the reference structure are within a few percent of each other, well inside one round's
    # noise on a shared machine, so this row takes more rounds than the others
    out["mult_reference"] = [mult_reference_comparison(config, repeats=max(repeats, MULT_ROUNDS), device=dev)
                             for config in ("reference", *sizes)]
    out["data_pipeline"] = loader_throughput(repeats=min(repeats, 3), device=dev)
    out["evaluation_batch"] = evaluation_batch(repeats=repeats, device=dev)
    if suite:
        out["suite_run_seconds"] = run_suite()
    out["suite"] = suite_times()
    write_metrics("bench", out, {"sizes": list(sizes), "repeats": repeats, "batch_size": batch_size,
                                 "device": str(dev), "suite": suite})
    log(format_table(out))
    return out


def _with_range(row: dict[str, Any], kind: str) -> str:
    """``median (min–max)`` of the per-round ratios; the median alone for rows without a range."""
    text = f"{row[f'{kind}_ratio']:.2f}"
    if f"{kind}_ratio_range" in row:
        low, high = row[f"{kind}_ratio_range"]
        text += f" ({low:.2f}–{high:.2f})"
    return text


def format_table(out: dict[str, Any]) -> str:
    """The ratios as markdown tables (GPU runs also show samples/s and peak memory)."""
    gpu = out.get("device", "cpu").startswith("cuda")
    lines = ["Ratios: median of per-round ratios of interleaved runs (min–max over the rounds).", "",
             "| module | wraps | size | train step ratio | inference ratio |" + (" train samples/s | peak MB |" if gpu else ""),
             "|---|---|---|---|---|" + ("---|---|" if gpu else "")]
    for r in out["causal_modules"]:
        extra = (f" {r['batch_size'] / r['seconds']['train_step']:.0f} | {r['seconds'].get('peak_memory_mb', float('nan')):.0f} |"
                 if gpu else "")
        lines.append(f"| {r['module']} | {r['wraps']} | {r['size']} | {_with_range(r, 'train_step')} | "
                     f"{_with_range(r, 'inference')} |" + extra)
    lines += ["", "| MulT, ours / reference structure | config | d | batch | train step ratio | inference ratio | "
              "max output diff |", "|---|---|---|---|---|---|---|"]
    for r in out["mult_reference"]:
        lines.append(f"| MulT | {r['config']} | {r['d']} | {r['batch_size']} | {_with_range(r, 'train_step')} | "
                     f"{_with_range(r, 'inference')} | {r['max_abs_output_difference']:.1e} |")
    d = out["data_pipeline"]
    lines += ["", "| data pipeline | workers | loader / model samples per second |", "|---|---|---|"]
    for w, value in d["loader_to_model_ratio"].items():
        lines.append(f"| {d['dataset']} loader (no cache) vs CAER-Net-S training | {w} | {value:.2f} |")
    if "default_loader" in d:
        dl = d["default_loader"]
        lines.append(f"| share of a smoke epoch spent loading, defaults (cache on) | {dl['num_workers']} | "
                     f"{dl['loading_share_of_epoch']:.0%} |")
    if out.get("evaluation_batch"):
        lines += ["", "| evaluation (predict over val) | batch vs | inference ratio | bit-identical logits |",
                  "|---|---|---|---|"]
        for r in out["evaluation_batch"]:
            lines.append(f"| {r['model']} | {r['batch_size']} vs {r['against']} | {_with_range(r, 'inference')} | "
                         f"{'yes' if r['identical_logits'] else 'no'} |")
    suite = out.get("suite")
    lines.append("")
    if suite:
        lines.append(f"Smoke suite (last `make reproduce`, {len(suite['notebooks'])} notebooks): "
                     f"{suite['total_seconds'] / 60:.1f} min; largest shares "
                     + ", ".join(f"{k} {v:.0%}" for k, v in sorted(suite["shares"].items(), key=lambda kv: -kv[1])[:3]))
    else:
        lines.append("Smoke suite: no executed notebooks in results/executed/ (run `make reproduce`, or bench --run-suite)")
    return "\n".join(lines)
