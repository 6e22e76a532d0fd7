"""Progress bars for long work: widgets in JupyterLab, text in a terminal, off under test.

tqdm reads ``TQDM_DISABLE`` from the environment for its text bars but its notebook (widget) bars
ignore it, so every bar in this repo goes through :func:`progress`, which applies the variable to both.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def bars_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` with ``disable`` defaulting to the ``TQDM_DISABLE`` environment variable
    (and on, under torchrun, on rank 0 only)."""
    from reprolib import distributed

    kwargs.setdefault("disable", bars_disabled() or not distributed.is_main())
    return tqdm(iterable, **kwargs)
