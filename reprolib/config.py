"""Size presets for notebooks: the parameters cell holds literals, this turns them into a run config.

A notebook's parameters cell sets ``size`` and leaves size-dependent knobs as ``None``; the cell after
it calls :func:`resolve` so that an explicit papermill ``-p epochs=3`` always wins over the preset.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

SIZES = ("smoke", "full")


def resolve(size: str, given: dict[str, Any], presets: dict[str, dict[str, Any]]) -> SimpleNamespace:
    """Merge: preset for ``size`` <- every value in ``given`` that is not None."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    unknown = sorted(set(given) - set(presets[size]))
    if unknown:
        raise KeyError(f"no {size} preset for {unknown}")
    merged = dict(presets[size])
    merged.update({k: v for k, v in given.items() if v is not None})
    return SimpleNamespace(size=size, **merged)
