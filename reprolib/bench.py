"""Performance benchmark: ``python -m reprolib bench`` (``make bench``) -> ``results/bench.json``.

Everything is measured in one run, on one machine, and reported as **ratios** (these machines are
noisy; a ratio of two timings taken side by side is what carries over). Absolute seconds are kept in
the JSON for context only.

* **Causal modules vs the model they wrap**: one training step (forward, backward, Adam) and one
  inference forward of CCIM and CLEF around CAER-Net-S and EMOT-Net, and of CausalMER around MulT,
  each divided by the same for the bare model, at the smoke and the full model sizes.
* **MulT attention**: this repo's MulT (packed projections into ``scaled_dot_product_attention``) vs
  the same weights run through :class:`FairseqStyleAttention`, a straightforward re-implementation of
  the reference code's attention (time-first tensors, explicit scaling, ``bmm``, float softmax).
  Both give the same outputs; the benchmark checks that before it times them.
* **Data pipeline**: samples/s through the CAER-S-style loader (images decoded and cropped per item,
  no cache) with 0 and 2 workers, divided by the samples/s CAER-Net-S consumes in training steps.
  Above 1, the loader keeps up with the model.
* **Smoke suite**: the wall time of each notebook in the last ``make reproduce`` (papermill's record in
  ``results/executed/``), as shares of the total; not re-run here (``--run-suite`` does).

Timings are medians over ``repeats`` calls after a warm-up call, with ``torch`` on its default threads;
models that are compared are timed interleaved (:func:`paired_timings`), round by round.
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
from reprolib.engine import default_loss, to_device
from reprolib.models.mult import MultiheadAttention
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
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def paired_timings(models: dict[str, nn.Module], batch: dict, target_key: str, *, repeats: int = 5,
                   device: torch.device | None = None) -> dict[str, dict[str, float]]:
    """Median training-step and inference seconds of several models on the same batch, **interleaved**:
    each round times every model once, so a slow spell of the machine hits all of them alike and their
    ratios stay fair. One warm-up call each first. Models are left in eval mode."""
    device = device or torch.device("cpu")
    fns = {name: _step_fns(model, batch, target_key, device) for name, model in models.items()}
    times: dict[str, dict[str, list[float]]] = {name: {"train_step": [], "inference": []} for name in models}
    for train_step, infer in fns.values():
        train_step(), infer()
    for _ in range(repeats):
        for name, (train_step, infer) in fns.items():
            for kind, fn in (("train_step", train_step), ("inference", infer)):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                times[name][kind].append(time.perf_counter() - start)
    out = {name: {kind: statistics.median(v) for kind, v in kinds.items()} for name, kinds in times.items()}
    for name, (train_step, _) in fns.items():
        if (memory := _peak_memory_mb(train_step, device)) is not None:
            out[name]["peak_memory_mb"] = memory
    for model in models.values():
        model.eval()
    return out


def _ratio(wrapped: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    return {f"{k}_ratio": wrapped[k] / base[k] for k in ("train_step", "inference")}


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
                         **_ratio(timed[module], timed["baseline"]), "seconds": timed[module],
                         "baseline_seconds": timed["baseline"]})

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
# MulT attention vs a fairseq-style re-implementation
# ---------------------------------------------------------------------------------------------------

class FairseqStyleAttention(MultiheadAttention):
    """The reference code's attention computation on this repo's parameters (for the benchmark only).

    Time-first [T, B, d] tensors, q scaled by head_dim^-0.5 before ``bmm(q, k^T)``, the mask added to
    the weights (False -> -inf), softmax in float32, dropout on the weights, ``bmm`` with v, then the
    output projection. Same maths as :class:`reprolib.models.mult.MultiheadAttention`.
    """

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        q_in, k_in, v_in = (x.transpose(0, 1) for x in (query, key, value))  # [T, B, d]
        t_q, b, d = q_in.shape
        t_k = k_in.shape[0]
        heads, head_dim = self.num_heads, d // self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(q_in, w_q, b_q) * head_dim ** -0.5
        k = F.linear(k_in, w_k, b_k)
        v = F.linear(v_in, w_v, b_v)
        q = q.contiguous().view(t_q, b * heads, head_dim).transpose(0, 1)
        k = k.contiguous().view(t_k, b * heads, head_dim).transpose(0, 1)
        v = v.contiguous().view(t_k, b * heads, head_dim).transpose(0, 1)
        weights = torch.bmm(q, k.transpose(1, 2))
        if mask is not None:
            weights = weights.masked_fill(~mask.unsqueeze(0), float("-inf")) if mask.dtype == torch.bool \
                else weights + mask.unsqueeze(0)
        weights = F.softmax(weights.float(), dim=-1).type_as(weights)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(t_q, b, d)
        return self.out_proj(out).transpose(0, 1)


def with_fairseq_attention(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose every :class:`MultiheadAttention` is a :class:`FairseqStyleAttention`
    holding the same weights."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is MultiheadAttention:
                swapped = FairseqStyleAttention(child.dim, child.num_heads, child.dropout)
                swapped.load_state_dict(child.state_dict())
                setattr(parent, name, swapped)
    return model


def mult_attention_comparison(size: str = "smoke", *, batch_size: int = 8, repeats: int = 5,
                              device: torch.device | None = None) -> dict[str, Any]:
    """This repo's MulT vs the same weights with fairseq-style attention: the largest output difference
    (eval mode, causal masks on, so the masked path is checked too) and the time ratios ours / theirs."""
    from reprolib import mer

    data = mer.open_data("iemocap", "smoke")
    batch = _first_batch(data.splits["train"], batch_size)
    torch.manual_seed(0)
    ours = mer.builders(data, size, mult={"causal_mask": True})["mult"]()
    theirs = with_fairseq_attention(ours)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        difference = float((ours(batch) - theirs(batch)).abs().max())
    timed = paired_timings({"ours": ours, "fairseq_style": theirs}, batch, data.target_key, repeats=repeats,
                           device=device)
    return {"size": size, "batch_size": batch_size, "max_abs_output_difference": difference,
            **_ratio(timed["ours"], timed["fairseq_style"]), "seconds": timed["ours"],
            "fairseq_style_seconds": timed["fairseq_style"]}


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
    return {"dataset": kind, "batch_size": batch_size, "samples": n, "loader_samples_per_s": rates,
            "model_samples_per_s": consumption,
            "loader_to_model_ratio": {w: r / consumption for w, r in rates.items()}}


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
    out["mult_attention"] = [mult_attention_comparison(size, batch_size=batch_size, repeats=repeats, device=dev)
                             for size in sizes]
    out["data_pipeline"] = loader_throughput(repeats=min(repeats, 3), device=dev)
    if suite:
        out["suite_run_seconds"] = run_suite()
    out["suite"] = suite_times()
    write_metrics("bench", out, {"sizes": list(sizes), "repeats": repeats, "batch_size": batch_size,
                                 "device": str(dev), "suite": suite})
    log(format_table(out))
    return out


def format_table(out: dict[str, Any]) -> str:
    """The ratios as markdown tables (GPU runs also show samples/s and peak memory)."""
    gpu = out.get("device", "cpu").startswith("cuda")
    lines = ["| module | wraps | size | train step ratio | inference ratio |" + (" train samples/s | peak MB |" if gpu else ""),
             "|---|---|---|---|---|" + ("---|---|" if gpu else "")]
    for r in out["causal_modules"]:
        extra = (f" {r['batch_size'] / r['seconds']['train_step']:.0f} | {r['seconds'].get('peak_memory_mb', float('nan')):.0f} |"
                 if gpu else "")
        lines.append(f"| {r['module']} | {r['wraps']} | {r['size']} | {r['train_step_ratio']:.2f} | "
                     f"{r['inference_ratio']:.2f} |" + extra)
    lines += ["", "| MulT attention, ours / fairseq-style | size | train step ratio | inference ratio | max output diff |",
              "|---|---|---|---|---|"]
    for r in out["mult_attention"]:
        lines.append(f"| MulT | {r['size']} | {r['train_step_ratio']:.2f} | {r['inference_ratio']:.2f} | "
                     f"{r['max_abs_output_difference']:.1e} |")
    d = out["data_pipeline"]
    lines += ["", "| data pipeline | workers | loader / model samples per second |", "|---|---|---|"]
    for w, ratio in d["loader_to_model_ratio"].items():
        lines.append(f"| {d['dataset']} loader vs CAER-Net-S training | {w} | {ratio:.2f} |")
    suite = out.get("suite")
    lines.append("")
    if suite:
        lines.append(f"Smoke suite (last `make reproduce`, {len(suite['notebooks'])} notebooks): "
                     f"{suite['total_seconds'] / 60:.1f} min; largest shares "
                     + ", ".join(f"{k} {v:.0%}" for k, v in sorted(suite["shares"].items(), key=lambda kv: -kv[1])[:3]))
    else:
        lines.append("Smoke suite: no executed notebooks in results/executed/ (run `make reproduce`, or bench --run-suite)")
    return "\n".join(lines)
