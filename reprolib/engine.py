"""One training and evaluation loop for the models of this repo.

Models take a batch dict and return logits; the target lives in the batch under ``target_key``.
Model selection uses the validation split only: the returned model carries the weights of its best
validation epoch, and test splits are scored afterwards with :func:`predict`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from reprolib.progress import progress

from reprolib.seed import seed_everything


def select_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA when available, else CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = -math.inf


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float((logits.argmax(1) == target).float().mean())


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, *, target_key: str = "label", batch_size: int = 256,
            device: torch.device | None = None, desc: str = "predict") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets for a whole dataset, in dataset order, on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    logits, targets = [], []
    for batch in progress(DataLoader(data, batch_size=batch_size, shuffle=False), desc=desc, leave=False):
        logits.append(model(to_device(batch, device)).float().cpu())
        targets.append(batch[target_key])
    return torch.cat(logits), torch.cat(targets)


def fit(model: nn.Module, train: Dataset, val: Dataset, *, epochs: int = 5, lr: float = 1e-3,
        weight_decay: float = 1e-4, batch_size: int = 64, seed: int = 0, target_key: str = "label",
        loss_fn: Callable | None = None, metric: Callable = accuracy, device: str | None = None,
        desc: str = "fit") -> FitResult:
    """Train with Adam, keep the weights of the best validation epoch, return the per-epoch history.

    A NaN or infinite loss stops training with :class:`NonFiniteLossError` naming the epoch and step.
    """
    generator = seed_everything(seed)
    dev = select_device(device)
    model.to(dev)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator,
                        drop_last=len(train) > batch_size)
    result = FitResult()
    best_state = None
    bar = progress(range(epochs), desc=desc)
    for epoch in bar:
        model.train()
        losses = []
        for step, batch in enumerate(loader):
            batch = to_device(batch, dev)
            loss = loss_fn(model(batch), batch[target_key])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        val_logits, val_targets = predict(model, val, target_key=target_key, device=dev, desc="val")
        score = metric(val_logits, val_targets)
        result.history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val": score})
        if score > result.best_val:
            result.best_val, result.best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{score:.3f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
