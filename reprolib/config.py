"""Size presets for notebooks: the parameters cell holds literals, this turns them into a run config.

A notebook's parameters cell sets ``size`` and leaves size-dependent knobs as ``None``; the cell after
it calls :func:`resolve` so that an explicit papermill ``-p epochs=3`` always wins over the preset,
and so that every parameter is checked (:mod:`reprolib.parameters`) before the notebook reads data.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from reprolib.parameters import SIZES, ParameterError, check, check_known, check_value

__all__ = ["SIZES", "ParameterError", "check", "resolve"]


def resolve(size: str, given: dict[str, Any], presets: dict[str, dict[str, Any]], /,
            **others: Any) -> SimpleNamespace:
    """Merge: preset for ``size`` <- every value in ``given`` that is not None; check everything first.

    ``others`` are the parameters-cell values that bypass the presets (``seed``, ``data_root``,
    ``bias`` ...): checked, not merged. Checked in turn: ``size``, ``given``, ``others``, then the
    merged config (the presets too). A list of names given (``datasets``, ``baselines``,
    ``ablations``) must come from the names the presets of either size use, the notebook's own
    choices. ``data_root`` must be a dict of dataset name to path where the presets choose datasets
    or baselines (such a notebook would ignore a plain path and silently use synthetic data), a path
    where they do not (notebook 01).
    """
    check_value("size", size)
    unknown = sorted(set(given) - set(presets[size]))
    if unknown:
        raise KeyError(f"no {size} preset for {unknown}")
    for name, value in given.items():
        offered = [x for p in presets.values() if isinstance(p.get(name), (list, tuple)) for x in p[name]]
        check_value(name, value, within=offered or None)
    check(**others)
    merged = dict(presets[size])
    merged.update({k: v for k, v in given.items() if v is not None})
    check_known(merged)
    root = others.get("data_root")
    several = "datasets" in merged or "baselines" in merged
    if root is not None and several != isinstance(root, Mapping):
        form = "a dict of dataset name to path: this notebook reads several datasets" if several else \
            "a path: this notebook reads one dataset"
        raise ParameterError(f"data_root must be {form}, got {root!r}")
    return SimpleNamespace(size=size, **merged)
