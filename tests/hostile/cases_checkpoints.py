"""Bad ``last.pt`` checkpoints met by ``engine.fit(resume=True)``: each must end in an error that names the
file and what is wrong with it, not a ``KeyError`` or a raw torch message.

Every case trains a tiny linear model for one epoch (well under a second) so that the damaged file sits
where a real run's checkpoint would, with the configuration the resuming call uses.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from .harness import Attempt, case

FIT = dict(epochs=2, lr=1e-2, batch_size=8, seed=0)


class _Tiny(Dataset):
    """16 samples of a 4-feature 'context' with alternating labels: enough for fit to run."""

    def __init__(self, n: int = 16):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.arange(n) % 2

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"context": self.x[i], "label": self.y[i]}


class _Linear(nn.Module):
    def __init__(self, features: int = 4):
        super().__init__()
        self.classifier = nn.Linear(features, 2)

    def forward(self, batch):
        return self.classifier(batch["context"])


def _resume(folder: Path):
    """The call under test: resume the tiny run from ``folder/last.pt``."""
    from reprolib.engine import fit

    return lambda: fit(_Linear(), _Tiny(), _Tiny(8), checkpoint_dir=folder, resume=True, **FIT)


def _good_checkpoint(folder: Path) -> dict:
    """Train one epoch into ``folder`` and return the checkpoint it wrote (to be damaged by the case)."""
    from reprolib.engine import fit

    fit(_Linear(), _Tiny(), _Tiny(8), checkpoint_dir=folder, **{**FIT, "epochs": 1})
    return torch.load(folder / "last.pt", weights_only=True)


def _rewrite(folder: Path, change) -> None:
    state = _good_checkpoint(folder)
    change(state)
    torch.save(state, folder / "last.pt")


def _attempt(folder: Path, *problem: str) -> Attempt:
    """A clear error names the file, the problem and the way out (delete it or resume=False)."""
    return Attempt(_resume(folder), names=("last.pt", *problem, "resume=False"))


@case("checkpoints", "last.pt holds plain text, not a checkpoint")
def _text(tmp: Path) -> Attempt:
    (tmp / "last.pt").write_text("epoch=3\nthis is not a torch file\n")
    return _attempt(tmp, "not a checkpoint")


@case("checkpoints", "last.pt is empty (killed before the first byte)")
def _empty(tmp: Path) -> Attempt:
    (tmp / "last.pt").write_bytes(b"")
    return _attempt(tmp, "empty")


@case("checkpoints", "last.pt truncated to half its size")
def _truncated(tmp: Path) -> Attempt:
    _good_checkpoint(tmp)
    path = tmp / "last.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _attempt(tmp, "truncated")


@case("checkpoints", "last.pt is a whole pickled model, refused by weights_only")
def _pickled_module(tmp: Path) -> Attempt:
    torch.save(_Linear(), tmp / "last.pt")
    return _attempt(tmp, "weights_only")


@case("checkpoints", "last.pt holds a list, not a dict")
def _a_list(tmp: Path) -> Attempt:
    torch.save([1, 2, 3], tmp / "last.pt")
    return _attempt(tmp, "list")


@case("checkpoints", "last.pt is a dict without 'config'")
def _no_config(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.pop("config"))
    return _attempt(tmp, "'config'")


@case("checkpoints", "last.pt is a bare state dict (model weights only)")
def _bare_state_dict(tmp: Path) -> Attempt:
    torch.save(_Linear().state_dict(), tmp / "last.pt")
    return _attempt(tmp, "'config'", "'optimizer'")


@case("checkpoints", "last.pt 'epoch' is a string")
def _epoch_string(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(epoch="1"))
    return _attempt(tmp, "'epoch'", "str")


@case("checkpoints", "last.pt 'history' is not a list of epoch records")
def _history_type(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(history={"epoch": 1}))
    return _attempt(tmp, "'history'")


@case("checkpoints", "last.pt 'epoch' disagrees with its history")
def _epoch_history_mismatch(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(epoch=5))
    return _attempt(tmp, "'epoch'", "history")


@case("checkpoints", "last.pt 'config' is a string")
def _config_type(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(config="lr=0.01"))
    return _attempt(tmp, "'config'", "str")


@case("checkpoints", "last.pt 'loader_rng' is a float tensor")
def _rng_type(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(loader_rng=torch.zeros(3)))
    return _attempt(tmp, "'loader_rng'")


@case("checkpoints", "last.pt holds the weights of another model")
def _other_model(tmp: Path) -> Attempt:
    _rewrite(tmp, lambda s: s.update(model=_Linear(7).state_dict()))
    return _attempt(tmp, "'model'")


@case("checkpoints", "last.pt 'optimizer' state is for other parameters")
def _other_optimizer(tmp: Path) -> Attempt:
    other = torch.optim.Adam([nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3)),
                              nn.Parameter(torch.zeros(1))])
    _rewrite(tmp, lambda s: s.update(optimizer=other.state_dict()))
    return _attempt(tmp, "'optimizer'")


@case("checkpoints", "last.pt is a folder")
def _folder(tmp: Path) -> Attempt:
    (tmp / "last.pt").mkdir()
    return _attempt(tmp, "not a file")
