"""One training and evaluation loop for every model of this repo.

Contract with models: ``model(batch) -> logits`` where ``batch`` is the dict a dataset serves; the
target lives in the batch under ``target_key`` (``label`` for single-label data, ``labels`` for
multi-hot EMOTIC targets). A model may define ``training_loss(batch) -> scalar`` to train with its
own published loss (EMOT-Net's weighted squared error, say); otherwise cross-entropy (single-label)
or per-class binary cross-entropy (multi-label) is used.

What the loop guarantees:

* **model selection on validation only**: the returned model carries the weights of its best
  validation epoch; test splits are scored afterwards with :func:`predict`;
* **checkpoints**: with ``checkpoint_dir``, ``last.pt`` is rewritten atomically after every epoch
  (model, optimiser, scheduler, RNG states, history), and ``resume=True`` continues an interrupted
  run so that it ends exactly as an uninterrupted one would; checkpoints load with
  ``weights_only=True``;
* **a NaN or infinite loss stops the run** with :class:`NonFiniteLossError` naming epoch and step;
* **multi-GPU under torchrun**: DistributedDataParallel with a shard of the training set per process
  and the same validation everywhere (:mod:`reprolib.distributed`); one process otherwise;
* **channels-last memory format** for image tensors and convolution weights, on CPU as on CUDA: on
  CPU it is what oneDNN's convolutions and pooling want (a CAER-Net-S + CLEF smoke run takes 0.68x
  the time on one thread; ``reprolib bench`` measures it), and runs stay bit-for-bit reproducible
  on one machine and thread count;
* **on CUDA**: bf16 autocast (fp16 with a gradient scaler where bf16 is missing), pinned memory and
  worker processes; on CPU none of these.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reprolib import atomic, distributed, dryrun
from reprolib.parameters import check_fit
from reprolib.progress import progress
from reprolib.seed import seed_everything

CHECKPOINT_NAME = "last.pt"


def select_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA when available, else CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    """Move every tensor of a batch; image tensors (4-D) optionally to channels-last layout."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


# Inference batch when none is given. On CPU a smoke model's activations at 32 images stay in cache:
# evaluation takes 0.5-0.8x the time it takes at 256, with bit-identical logits (measured on the
# five baselines and CLEF around each, `make bench` has the row); a GPU wants large batches.
EVAL_BATCH_SIZE = {"cpu": 32, "cuda": 256}


def eval_batch_size(device: torch.device | str) -> int:
    """:data:`EVAL_BATCH_SIZE` for ``device``'s type (256 on other accelerators)."""
    return EVAL_BATCH_SIZE.get(torch.device(device).type, 256)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = -float("inf")
    resumed_from: int = 0  # epochs that were already done when this call started
    stopped_early: bool = False  # fit(early_stopping=...) ended the run before its last epoch


def is_multilabel(target: torch.Tensor) -> bool:
    return target.dim() == 2


def default_metric(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Top-1 accuracy for class indices, mean average precision for multi-hot targets."""
    from reprolib import metrics

    if is_multilabel(target):
        return metrics.mean_average_precision(logits, target)
    return metrics.accuracy(logits, target)


def default_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if is_multilabel(target):
        return nn.functional.binary_cross_entropy_with_logits(logits, target.float())
    return nn.functional.cross_entropy(logits, target)


class WithDefaultLoss(nn.Module):
    """``model`` trained with :func:`default_loss` on its logits instead of its own ``training_loss``.

    The control for wrappers that replace a baseline's published loss (CLEF trains the fused scores
    with cross-entropy / BCE): comparing the wrapper with this, and not only with the baseline as
    published, separates the wrapper's effect from the change of loss.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.target_key = getattr(model, "target_key", "label")
        self.views = tuple(getattr(model, "views", ()))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch)


@dataclass(frozen=True)
class _Accel:
    """How to run on this device: autocast dtype (None = off), gradient scaling, memory layout
    (channels-last everywhere: it only changes how 4-D tensors are stored, not what they hold)."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device, amp: bool | None) -> "_Accel":
        cuda = device.type == "cuda"
        use_amp = cuda if amp is None else (amp and cuda)
        dtype = None
        if use_amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cls(device=device, amp_dtype=dtype, channels_last=True)

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


def place(model: nn.Module, device: torch.device | str | None = None, accel: _Accel | None = None) -> torch.device:
    """Move ``model`` to the device (and memory format) :func:`fit` trains it on; returns the device.
    A model loaded instead of trained goes through here too, so it predicts exactly as a trained one."""
    dev = torch.device(device) if isinstance(device, str) else device or select_device()
    accel = accel or _Accel.for_device(dev, None)
    model.to(dev)
    if accel.channels_last:
        model.to(memory_format=torch.channels_last)
    return dev


def _loader(data: Dataset, batch_size: int, shuffle: bool, device: torch.device, num_workers: int | None,
            generator: torch.Generator | None = None, drop_last: bool = False, sampler=None) -> DataLoader:
    cuda = device.type == "cuda"
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1) if cuda else 0
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      generator=generator if sampler is None else None, drop_last=drop_last,
                      num_workers=num_workers, pin_memory=cuda, persistent_workers=num_workers > 0)


class _TrainingLoss(nn.Module):
    """A model and its training loss as one module: under DDP the whole step, including a model's own
    ``training_loss``, must run through the wrapper's forward for the gradients to be synchronised."""

    def __init__(self, model: nn.Module, loss_fn: Callable, target_key: str):
        super().__init__()
        self.model, self.loss_fn, self.target_key = model, loss_fn, target_key

    def forward(self, batch: dict) -> torch.Tensor:
        own_loss = getattr(self.model, "training_loss", None)
        if own_loss is not None:
            return own_loss(batch)
        return self.loss_fn(self.model(batch), batch[self.target_key])


def without_decay(model: nn.Module, groups: list) -> list:
    """The optimiser's parameter groups with the parameters ``model.no_weight_decay()`` names (full
    ``named_parameters`` names) moved into groups of their own with ``weight_decay`` 0 (same options
    otherwise); the groups unchanged when the model names none. Names that are not parameters fail."""
    named = getattr(model, "no_weight_decay", None)
    names = set(named()) if named is not None else set()
    if not names:
        return groups
    by_name = dict(model.named_parameters())
    unknown = sorted(names - set(by_name))
    if unknown:
        raise ValueError(f"{type(model).__name__}.no_weight_decay() names {unknown}, which are not its parameters")
    exempt = {id(by_name[n]) for n in names}
    groups = [dict(g) for g in groups] if groups and isinstance(groups[0], dict) else [{"params": list(groups)}]
    out = []
    for group in groups:
        params = list(group["params"])
        kept = [p for p in params if id(p) not in exempt]
        freed = [p for p in params if id(p) in exempt]
        if kept:
            out.append({**group, "params": kept})
        if freed:
            out.append({**group, "params": freed, "weight_decay": 0.0})
    return out


@torch.no_grad()
def mean_loss(step_loss: nn.Module, data: Dataset, batch_size: int, device: torch.device, accel: "_Accel",
              num_workers: int | None, target_key: str) -> float:
    """The training loss averaged over ``data`` (weighted by batch size), in eval mode and without
    gradients: what ReduceLROnPlateau watches. The model is left in eval mode."""
    step_loss.eval()
    total, count, started = 0.0, 0, time.perf_counter()
    for batch in _loader(data, batch_size, False, device, num_workers):
        batch = to_device(batch, device, accel.channels_last)
        with accel.autocast():
            loss = step_loss(batch)
        n = batch[target_key].shape[0]
        total, count = total + float(loss) * n, count + n
    if dryrun.active():
        dryrun.record_evaluation("val loss", time.perf_counter() - started, items=count, full_items=dryrun.full_length(data))
    return total / max(count, 1)


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, *, target_key: str = "label", batch_size: int | None = None,
            device: torch.device | str | None = None, num_workers: int | None = None, amp: bool | None = None,
            desc: str = "predict", forward: Callable[[dict], Any] | None = None) -> tuple[Any, torch.Tensor]:
    """Logits and targets for a whole dataset, in dataset order, as float32 CPU tensors.

    ``forward(batch)`` replaces ``model(batch)`` when other outputs are wanted; it may return a tensor
    or a dict of tensors (e.g. :meth:`reprolib.causal.clef.CLEF.outputs`), and a dict comes back
    with each entry concatenated over the dataset. ``batch_size`` None: :func:`eval_batch_size`.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    accel = _Accel.for_device(device, amp)
    forward = forward or model
    model.eval()
    outputs, targets, started = [], [], time.perf_counter()
    for batch in progress(_loader(data, batch_size, False, device, num_workers), desc=desc, leave=False):
        with accel.autocast():
            out = forward(to_device(batch, device, accel.channels_last))
        outputs.append({k: v.float().cpu() for k, v in out.items()} if isinstance(out, dict) else out.float().cpu())
        targets.append(batch[target_key])
    if dryrun.active():
        dryrun.record_evaluation(desc, time.perf_counter() - started, items=len(data), full_items=dryrun.full_length(data))
    if outputs and isinstance(outputs[0], dict):
        return {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}, torch.cat(targets)
    return torch.cat(outputs), torch.cat(targets)


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save under a unique temporary name, renamed into place: two writers of one checkpoint
    never share a temporary file, and a killed or failed save leaves only the previous checkpoint."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


class CheckpointError(ValueError):
    """A ``last.pt`` that cannot be resumed from; the message names the file, the problem and the way out."""


# key -> (accepted types, whether None is allowed): what fit itself writes into a checkpoint
_CHECKPOINT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "epoch": ((int,), False), "config": ((dict,), False), "model": ((dict,), False),
    "optimizer": ((dict,), False), "scheduler": ((dict,), True), "scaler": ((dict,), False),
    "loader_rng": ((torch.Tensor,), False), "torch_rng": ((torch.Tensor,), False),
    "cuda_rng": ((torch.Tensor,), True), "history": ((list,), False), "best_epoch": ((int,), False),
    "best_val": ((float, int), False), "best_model": ((dict,), True),
}


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    """Read ``path`` and check that it is a checkpoint this loop wrote, key by key, before anything uses it;
    any problem is a :class:`CheckpointError` saying what is wrong instead of a KeyError or a torch error."""
    fix = "delete it to start afresh, or pass resume=False"

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: cannot resume: {problem}; {fix}")

    if not path.is_file():
        raise bad("it is not a file")
    if path.stat().st_size == 0:
        raise bad("the file is empty (a save killed before its first byte)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:  # torch's own text is long and asks to trust the file: keep its cause
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        found = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|$)", text, re.MULTILINE)
        reason = found.group(1).strip() if found else (text.strip().splitlines() or [type(err).__name__])[0]
        raise bad(f"not a checkpoint of fit: it does not load with weights_only=True ({reason})") from err
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged zip or pickle
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise bad(f"not a checkpoint, or a truncated or damaged one ({type(err).__name__}: {reason})") from err
    if not isinstance(state, dict):
        raise bad(f"it holds a {type(state).__name__}, not a dict of training state (not a checkpoint of fit)")
    missing = [key for key in _CHECKPOINT_FIELDS if key not in state and key != "cuda_rng"]
    if missing:
        raise bad(f"the checkpoint lacks {', '.join(repr(k) for k in missing)} (not a checkpoint of fit)")
    for key, (types, optional) in _CHECKPOINT_FIELDS.items():
        value = state.get(key)
        if (value is None and optional) or (isinstance(value, types) and not isinstance(value, bool)):
            continue
        expected = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
        raise bad(f"checkpoint entry {key!r} is a {type(value).__name__}, expected {expected}")
    for key in ("loader_rng", "torch_rng", "cuda_rng"):
        value = state.get(key)
        if value is not None and (value.dtype != torch.uint8 or value.dim() != 1):
            raise bad(f"checkpoint entry {key!r} is a {value.dtype} tensor of shape {tuple(value.shape)}, "
                      "expected a 1-D uint8 random-generator state")
    history = state["history"]
    if not all(isinstance(record, dict) for record in history):
        raise bad("checkpoint entry 'history' is not a list of per-epoch records (dicts)")
    if state["epoch"] < 1 or state["epoch"] != len(history):
        raise bad(f"checkpoint entry 'epoch' is {state['epoch']} but its history holds {len(history)} epoch(s)")
    return state


def _restore(path: Path, state: dict, model: nn.Module, opt, sched, scaler, generator: torch.Generator,
             device: torch.device) -> None:
    """Load a checked checkpoint's model, optimiser, scheduler, scaler and random states, first checking that
    they fit this run (names and shapes), so a mismatch is a :class:`CheckpointError`, not a torch error
    from a half-loaded model or from the first optimiser step."""

    def bad(key: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: cannot resume: checkpoint entry {key!r} {problem}; delete it to start "
                               "afresh, or pass resume=False")

    def shape(value: Any) -> Any:  # a module's extra state need not be a tensor
        return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__

    expected = {k: shape(v) for k, v in model.state_dict().items()}
    for key in ("model", "best_model"):
        saved = state[key]
        if saved is None:
            continue
        got = {k: shape(v) for k, v in saved.items()}
        if got != expected:
            missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
            shapes = [k for k in expected.keys() & got.keys() if expected[k] != got[k]]
            detail = "; ".join(part for part in (
                f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "",
                "other shapes for " + ", ".join(f"{k} {got[k]} (model {expected[k]})" for k in sorted(shapes)[:5])
                if shapes else "") if part)
            raise bad(key, f"holds the weights of another model than this {type(model).__name__} ({detail})")
    if sched is not None and state["scheduler"] is None:
        raise bad("scheduler", "is None but this run steps the learning rate (lr_step)")
    for key, target in (("model", model), ("optimizer", opt), ("scheduler", sched), ("scaler", scaler)):
        if target is None:
            continue
        try:
            target.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise bad(key, f"does not fit this run's {type(target).__name__} ({type(err).__name__}: {reason})") from err
    params = {id(p): p for group in opt.param_groups for p in group["params"]}
    for param_id, slots in ((id(p), s) for p, s in opt.state.items()):
        param = params.get(param_id)
        for name, value in slots.items():
            if param is not None and isinstance(value, torch.Tensor) and value.dim() > 0 \
                    and value.shape != param.shape:
                raise bad("optimizer", f"holds {name} of shape {tuple(value.shape)} for a parameter of shape "
                                       f"{tuple(param.shape)}")
    rngs = [("loader_rng", generator.set_state), ("torch_rng", torch.set_rng_state)]
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        rngs.append(("cuda_rng", lambda s: torch.cuda.set_rng_state(s, device)))
    for key, set_state in rngs:
        try:
            set_state(state[key].cpu())
        except (RuntimeError, ValueError, TypeError) as err:
            raise bad(key, f"is not a random-generator state of this torch ({err})") from err


def fit(model: nn.Module, train: Dataset, val: Dataset, *, epochs: int = 5, lr: float = 1e-3,
        weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0, optimizer: str = "adam",
        momentum: float = 0.9, lr_step: int | None = None, lr_gamma: float = 0.1, target_key: str = "label",
        loss_fn: Callable | None = None, metric: Callable | None = None, device: str | None = None,
        num_workers: int | None = None, amp: bool | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool = False, on_epoch_end: Callable[[dict], None] | None = None,
        param_groups: Callable[[nn.Module], list[dict]] | None = None, clip_grad_norm: float | None = None,
        plateau_patience: int | None = None, early_stopping: int = 0, desc: str = "fit") -> FitResult:
    """Train, keep the weights of the best validation epoch, return the per-epoch history.

    ``optimizer``: ``"adam"`` or ``"sgd"`` (Nesterov momentum); ``param_groups(model)``: the optimiser's
    parameter groups when parts of the model need their own learning rate (e.g.
    :meth:`reprolib.causal.causalmer.CausalMER.parameter_groups`); default one group of every trainable
    parameter at ``lr``. Weight decay is ``weight_decay`` everywhere except on the parameters a model
    names in ``no_weight_decay()`` (CLEF's Y_e*, CausalMER's constants: a learned "no information"
    value that decay would pull towards 0), which get none, whatever the groups.

    The learning rate is constant unless ``lr_step`` (multiply by ``lr_gamma`` every ``lr_step``
    epochs) or ``plateau_patience`` (multiply by ``lr_gamma`` once the validation *loss* has not
    improved for that many epochs: ReduceLROnPlateau, as the official CausalMER and MulT loops) is given.
    ``clip_grad_norm``: rescale the gradients before each step so that their global L2 norm is at most
    this (the official loops: 0.8). ``metric(logits, targets)`` is maximised on ``val`` for model
    selection (default: accuracy or mAP by target type). ``early_stopping``: stop once that many
    epochs in a row have not beaten the best validation score (0: train every epoch); the kept
    weights are the best epoch's either way, so stopping changes the result only where a later epoch
    would have beaten it. ``on_epoch_end(record)`` is called after each epoch's checkpoint is written.
    """
    check_fit(locals())  # bad numbers are named before any data is touched
    generator = seed_everything(seed)
    distributed.init()
    world = distributed.world_size()
    dev = distributed.device() if distributed.active() else select_device(device)
    accel = _Accel.for_device(dev, amp)
    if distributed.active() and dev.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over the global batch
    place(model, dev, accel)
    metric = metric or default_metric
    step_loss = _TrainingLoss(model, loss_fn or default_loss, target_key)
    if distributed.active():
        # static_graph: every step uses the same parameters, so DDP may skip searching for unused ones
        step_loss = nn.parallel.DistributedDataParallel(
            step_loss, device_ids=[dev.index] if dev.type == "cuda" else None, static_graph=True)
    if lr_step and plateau_patience:
        raise ValueError("lr_step and plateau_patience are two learning-rate schedules: give one of them")
    params = param_groups(model) if param_groups else [p for p in model.parameters() if p.requires_grad]
    params = without_decay(model, params)
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if lr_step:
        sched = torch.optim.lr_scheduler.StepLR(opt, lr_step, lr_gamma)
    elif plateau_patience:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=lr_gamma, patience=plateau_patience)
    else:
        sched = None
    scaler = torch.amp.GradScaler("cuda", enabled=accel.amp_dtype == torch.float16)
    config = {"lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed,
              "optimizer": optimizer, "lr_step": lr_step, "lr_gamma": lr_gamma, "n_train": len(train)}
    for name, value in (("clip_grad_norm", clip_grad_norm), ("plateau_patience", plateau_patience),
                        ("early_stopping", early_stopping or None)):
        if value is not None:  # absent when unused, so checkpoints of runs without them still resume
            config[name] = value
    if world > 1:
        config["world_size"] = world

    result = FitResult()
    best_state = None
    start_epoch = 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        if resume and ckpt_path.exists():
            state = _load_checkpoint(ckpt_path, dev)
            if state["config"] != config:
                raise CheckpointError(f"{ckpt_path}: checkpoint was written with {state['config']}, this run uses "
                                      f"{config}; use another checkpoint_dir or resume=False")
            _restore(ckpt_path, state, model, opt, sched, scaler, generator, dev)
            result.history = list(state["history"])
            result.best_epoch, result.best_val = state["best_epoch"], state["best_val"]
            best_state = state["best_model"]
            start_epoch = result.resumed_from = int(state["epoch"])

    drop_last = len(train) > batch_size
    sampler = None
    if world > 1:  # each process takes its shard of every epoch's permutation; batch_size stays global
        sampler = torch.utils.data.DistributedSampler(train, num_replicas=world, rank=distributed.rank(),
                                                      shuffle=True, seed=seed, drop_last=drop_last)
    loader = _loader(train, max(1, batch_size // world), True, dev, num_workers, generator, drop_last=drop_last,
                     sampler=sampler)
    dry, planned_epochs = dryrun.active(), epochs
    if dry:  # one epoch of a few timed steps; the counts of the real run are recorded (reprolib.dryrun)
        epochs = min(epochs, start_epoch + 1)
    bar = progress(range(start_epoch, epochs), desc=desc, initial=start_epoch, total=epochs)
    for epoch in bar:
        if early_stopping and result.best_epoch > 0 and epoch - result.best_epoch >= early_stopping:
            result.stopped_early = True  # checked before the epoch, so a resumed run stops where it would have
            break
        started = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        step_loss.train()
        losses, step_seconds, step_started = [], [], time.perf_counter()
        for step, batch in enumerate(loader):
            if dry and step == dryrun.TRAIN_STEPS:
                break
            batch = to_device(batch, dev, accel.channels_last)
            with accel.autocast():
                loss = step_loss(batch)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(opt)  # clip the true gradients, not the fp16-scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())  # waits for the device, so the step time below is complete
            step_seconds.append(time.perf_counter() - step_started)  # batch loading included, as in an epoch
            step_started = time.perf_counter()
        if dry:
            full = dryrun.full_length(train)
            dryrun.record_training(desc, step_seconds, full_train=full, batch_size=batch_size,
                                   epochs=planned_epochs, drop_last=full > batch_size)
        distributed.average_buffers(model)
        current_lr = opt.param_groups[0]["lr"]
        with dryrun.repeated(planned_epochs if dry else 1):  # the real run validates every epoch
            val_logits, val_targets = predict(model, val, target_key=target_key, device=dev, amp=amp,
                                              num_workers=num_workers, desc="val")
            val_loss = mean_loss(step_loss, val, batch_size, dev, accel, num_workers, target_key) \
                if plateau_patience else None
        score = float(metric(val_logits, val_targets))
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val": score, "lr": current_lr}
        if plateau_patience:
            record["val_loss"] = val_loss
            sched.step(record["val_loss"])
        elif sched is not None:
            sched.step()
        record["seconds"] = time.perf_counter() - started
        result.history.append(record)
        if score > result.best_val:
            result.best_val, result.best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if ckpt_path is not None and distributed.is_main():
            _atomic_save({
                "epoch": epoch + 1, "config": config, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None, "scaler": scaler.state_dict(),
                "loader_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                "history": result.history, "best_epoch": result.best_epoch, "best_val": result.best_val,
                "best_model": best_state,
            }, ckpt_path)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{score:.3f}")
        if on_epoch_end is not None:
            on_epoch_end(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
