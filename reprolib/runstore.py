"""Trained runs kept by what made them, so a notebook reuses a run another notebook already trained.

Notebooks 08 (CCIM) and 09 (CLEF) train the same baselines, with the same seed, data and settings,
as notebooks 03 and 04; the results are bit-identical, so training them again only costs time.
:func:`reprolib.experiments.train_and_score` asks this store first. A run is reused only when its
**fingerprint** matches, and the match is checked on the full description, not on a hash alone:

* the code: SHA-256 of every ``.py`` file of the installed ``reprolib`` package, torch's version,
  the device type and torch's thread count (these change the floating-point path);
* the model as built, before training: class, module tree, every plain attribute of every module
  (options such as ``kl=False`` or ``fusion="hm"`` live there), and a hash of the initial weights
  with their ``requires_grad`` flags (so a frozen part is a different run);
* the data: dataset kind and root, every file under the root (relative path, size, modification
  time), and per split its length, dataset class, plain attributes and the first sample's shapes;
* the training settings: seed and every keyword passed to :func:`reprolib.engine.fit`.

A run with anything the fingerprint cannot describe (a callable keyword such as ``param_groups``
or ``on_epoch_end``, an attribute without a stable text form) is trained and not stored: a miss
costs time, a false match would cost correctness. Entries live in ``<results>/checkpoints/runs/``
(git-ignored, like every checkpoint), are written atomically under a unique temporary name, and
load with ``weights_only=True``; an unreadable entry is ignored and retrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reprolib import atomic
from reprolib.data.fingerprint import files_digest
from reprolib.paths import results_dir

STORE_FOLDER = ("checkpoints", "runs")
ENV_DISABLE = "REPROLIB_NO_RUN_REUSE"  # set to 1 to train every run (e.g. to time training itself)
_PLAIN = (bool, int, float, str, type(None))


class Unfingerprintable(ValueError):
    """Something about the run has no stable description: the run is trained, not stored."""


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-able plain data, or :class:`Unfingerprintable`."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, where) for k, v in sorted(value.items())}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, torch.Tensor):
        return {"tensor": _tensor_digest(value)}
    raise Unfingerprintable(f"{where}: {type(value).__name__} has no stable description")


def _tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_code_digest: str | None = None


def code_digest() -> str:
    """SHA-256 over the sources of the ``reprolib`` package (path and bytes of each ``.py`` file)."""
    global _code_digest
    if _code_digest is None:
        package = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            h.update(str(path.relative_to(package)).encode())
            h.update(path.read_bytes())
        _code_digest = h.hexdigest()
    return _code_digest


def describe_model(model: nn.Module) -> dict:
    """Class, options and initial weights of every module of ``model``."""
    modules = {}
    for name, module in model.named_modules():
        options = {}
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training" or isinstance(value, nn.Module):
                continue
            options[key] = _plain(value, f"{type(module).__name__}.{key}")
        modules[name or "."] = {"class": f"{type(module).__module__}.{type(module).__qualname__}",
                                "options": options}
    weights = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        weights.update(name.encode())
        weights.update(_tensor_digest(tensor).encode())
    for name, param in model.named_parameters():
        weights.update(f"{name}:{param.requires_grad}".encode())
    return {"modules": modules, "weights": weights.hexdigest()}


def describe_data(data) -> dict:
    """What identifies a :class:`reprolib.experiments.DataBundle`'s content and views."""
    root = Path(data.root).resolve()
    files, _ = files_digest(root, mtimes=True)
    splits = {}
    for split, dataset in sorted(data.splits.items()):
        options = {k: _plain(v, f"{split} dataset.{k}") for k, v in sorted(vars(dataset).items())
                   if not k.startswith("_") and isinstance(v, _PLAIN + (tuple,))}
        first = dataset[0] if len(dataset) else {}
        shapes = {k: [str(v.dtype), list(v.shape)] for k, v in sorted(first.items()) if isinstance(v, torch.Tensor)}
        splits[split] = {"len": len(dataset), "class": type(dataset).__qualname__, "options": options, "first": shapes}
    return {"kind": data.kind, "root": str(root), "files": files, "multilabel": data.multilabel,
            "metric": data.metric_name, "splits": splits}


def describe_run(model: nn.Module, data, seed: int, fit_kwargs: dict) -> dict:
    """The full description of a run about to be trained; :class:`Unfingerprintable` if it has none."""
    settings = {k: _plain(v, f"fit keyword {k}") for k, v in sorted(fit_kwargs.items()) if k not in ("desc", "metric")}
    from reprolib import distributed

    return {"code": code_digest(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "world_size": distributed.world_size(),
            "device": "cuda" if torch.cuda.is_available() else "cpu", "seed": seed, "settings": settings,
            "model": describe_model(model), "data": describe_data(data)}


def key_of(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def store_dir() -> Path:
    return results_dir().joinpath(*STORE_FOLDER)


def enabled() -> bool:
    return os.environ.get(ENV_DISABLE, "") not in ("1", "true", "yes")


def load(description: dict) -> dict | None:
    """The stored run whose description equals ``description`` exactly, else None."""
    path = store_dir() / f"{key_of(description)}.pt"
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged entry is a miss: the run is trained again and the entry replaced
        return None
    if not isinstance(entry, dict) or json.loads(entry.get("description", "null")) != description:
        return None
    if not {"model", "history", "best_epoch", "best_val", "origin", "random_states"} <= set(entry):
        return None
    return entry


def random_states() -> dict:
    """Python's, NumPy's and torch's global random states, as tensors and numbers (weights-only loadable).

    Stored after training and restored on reuse, so that whatever a notebook draws after a run
    (a sample to plot, a permutation) is the same whether the run was trained or reused."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": [version, torch.tensor(mt, dtype=torch.int64), gauss],
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    version, mt, gauss = states["python"]
    random.setstate((version, tuple(int(x) for x in mt.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(description: dict, state: dict, history: list[dict], best_epoch: int, best_val: float, origin: str) -> Path:
    """Write the trained run under its key (atomically, under a unique temporary name per writer, so two
    notebooks storing the same run never collide; :func:`reprolib.atomic.replacing`)."""
    path = store_dir() / f"{key_of(description)}.pt"
    with atomic.replacing(path) as tmp:
        torch.save({"description": json.dumps(description, sort_keys=True), "model": state, "history": history,
                    "best_epoch": best_epoch, "best_val": best_val, "origin": origin,
                    "random_states": random_states()}, tmp)
    return path
