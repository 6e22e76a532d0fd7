"""Trained metrics of a fresh notebook run, compared with the committed run within measured bands.

`make nbval` executes every notebook into a scratch results folder and then runs this file with
``REPROLIB_FRESH_RESULTS`` pointing at it (without it, e.g. under `make unit`, these tests skip).
Text outputs of trained cells are not compared by nbval, because a trained number depends on the
machine; instead each headline metric (:func:`reprolib.seeds.headline_metrics`) must fall inside the
band :func:`reprolib.seeds.band` computes from its values over seeds 0, 1 and 2 in
``results/seeds_smoke.json``. A model that no longer learns, or a causal method that no longer removes
the shortcut, moves its metrics far outside those bands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reprolib import claims as claims_module
from reprolib import paths, seeds

FRESH = os.environ.get("REPROLIB_FRESH_RESULTS")
EVIDENCE = claims_module.load_evidence(paths.repo_root() / "results").get("notebooks", {})

pytestmark = pytest.mark.skipif(not FRESH, reason="REPROLIB_FRESH_RESULTS is not set (make nbval sets it)")


@pytest.mark.parametrize("name", sorted(EVIDENCE))
def test_fresh_metrics_fall_in_the_seed_bands(name):
    path = Path(FRESH) / f"{name}.json"
    assert path.exists(), f"{path}: the notebook did not write its results"
    fresh = json.loads(path.read_text())
    params = fresh["provenance"]["parameters"]
    assert claims_module.comparable(params) == EVIDENCE[name]["parameters"], f"{name}: not run at its defaults"
    values = seeds.seed_values(name, {"notebooks": EVIDENCE})
    metrics = seeds.headline_metrics(fresh["metrics"])
    outside = []
    for key, per_seed in values.items():
        if key.startswith("claim: "):
            continue
        if key not in metrics:
            outside.append(f"{key}: missing from the fresh run")
            continue
        lo, hi = seeds.band(list(per_seed.values()))
        if not lo <= metrics[key] <= hi:
            outside.append(f"{key}: {metrics[key]:.3f} outside [{lo:.3f}, {hi:.3f}] "
                           f"(seeds {', '.join(f'{v:.3f}' for v in per_seed.values())})")
    assert not outside, f"{name} ({fresh['provenance'].get('machine')}):\n  " + "\n  ".join(outside)
    failed = [n for n, c in fresh["metrics"]["claims"].items() if not c["holds"]]
    assert not failed, f"{name}: claims that do not hold: {failed}"
