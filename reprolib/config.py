"""Size presets for notebooks: the parameters cell holds literals, this turns them into a run config.

A notebook's parameters cell sets ``size`` and leaves size-dependent knobs as ``None``; the cell after
it calls :func:`resolve` with the notebook's name, so that its preset comes from
:mod:`reprolib.presets`, an explicit papermill ``-p epochs=3`` always wins over the preset, and every
parameter is checked (:mod:`reprolib.parameters`) before the notebook reads data. :func:`data_roots`
then turns ``data_root`` into one folder (or None, synthetic) per dataset the notebook reads, or stops
the run with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reprolib import presets as _presets
from reprolib.parameters import MULT_DATASETS, SIZES, ParameterError, check, check_known, check_value

__all__ = ["SIZES", "ParameterError", "check", "data_roots", "describe", "resolve"]


def resolve(size: str, given: dict[str, Any], presets: str | dict[str, dict[str, Any]], /,
            **others: Any) -> SimpleNamespace:
    """Merge: preset for ``size`` <- every value in ``given`` that is not None; check everything first.

    ``presets`` is the notebook's name (its presets in :data:`reprolib.presets.PRESETS`) or a dict of
    size -> preset. ``others`` are the parameters-cell values that bypass the presets (``seed``,
    ``data_root``, ``bias`` ...): checked, not merged. Checked in turn: ``size``, ``given``,
    ``others``, then the merged config (the presets too). A list of names given (``datasets``,
    ``baselines``, ``ablations``) must come from the names the presets of either size use, the
    notebook's own choices.
    """
    check_value("size", size)
    presets = _presets.preset(presets) if isinstance(presets, str) else presets
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
    return SimpleNamespace(size=size, **merged)


SHOWN = ("datasets", "baselines", "backbone", "epochs", "lr", "batch_size", "early_stopping", "dictionary_sizes", "main_size",
         "dictionary_size", "ablation_sizes", "ablations", "n_context_groups", "mult", "branch_encoder")


def describe(cfg: SimpleNamespace, **extra: Any) -> str:
    """The resolved values a reader wants to see, on one line (views and data sizes are left out)."""
    values = {k: getattr(cfg, k) for k in SHOWN if hasattr(cfg, k)} | extra
    return f"size={cfg.size}: " + ", ".join(f"{k}={v}" for k, v in values.items())


def data_roots(data_root: Any, notebook: str, cfg: SimpleNamespace) -> dict[str, Path | None]:
    """dataset -> its real folder (or MulT file), or None for synthetic data, for every dataset the
    notebook reads with ``cfg``; a ParameterError before any data is read when ``data_root`` cannot
    be honoured exactly.

    * None: synthetic data for every dataset.
    * A path: the folder of the one dataset the notebook reads; refused where it reads several (which
      one would it be?).
    * A dict of dataset name to path (or None for that dataset's synthetic data): it must name every
      dataset the notebook reads, so that no dataset silently falls back to synthetic data; names of
      other datasets are allowed (one dict can serve the whole suite) and ignored.
    * Every path named for a dataset the notebook reads must exist: a folder (a MulT pickle may also
      be the file itself)."""
    reads = _presets.datasets_read(notebook, vars(cfg))
    if data_root is None:
        return {kind: None for kind in reads}
    if isinstance(data_root, Mapping):
        missing = [kind for kind in reads if kind not in data_root]
        if missing:
            raise ParameterError(
                f"data_root names no folder for {missing}, which {notebook} reads ({reads}); add "
                + ", ".join(f"{k!r}: <folder>" for k in missing)
                + " (or None for synthetic data), or choose the datasets it reads")
        chosen = {kind: data_root[kind] for kind in reads}
    elif len(reads) == 1:
        chosen = {reads[0]: data_root}
    else:
        raise ParameterError(
            f"data_root is one path ({data_root!r}) but {notebook} reads {reads}: pass a dict, e.g. "
            "data_root={" + ", ".join(f"'{k}': '/path/to/{k}'" for k in reads) + "}")
    roots = {}
    for kind, value in chosen.items():
        if value is None:
            roots[kind] = None
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise ParameterError(f"data_root for {kind}: {str(path)!r} does not exist")
        if not path.is_dir() and kind not in MULT_DATASETS:
            raise ParameterError(f"data_root for {kind}: {str(path)!r} is a file; {kind} needs its dataset folder")
        roots[kind] = path.resolve()
    return roots
