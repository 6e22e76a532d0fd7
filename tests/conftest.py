"""Shared test setup: unit tests train every run (the run store of reprolib.runstore is tested on its
own, in a temporary results folder), so no test reads or writes the repository's checkpoints."""

from __future__ import annotations

import pytest

from reprolib import runstore


@pytest.fixture(autouse=True)
def _no_run_reuse(monkeypatch):
    monkeypatch.setenv(runstore.ENV_DISABLE, "1")
