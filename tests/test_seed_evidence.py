"""The committed multi-seed evidence (results/seeds_smoke.json) backs every claim a notebook asserts.

No kernel runs here: these tests read committed files. What they hold:
* every notebook that states claims on its own runs has evidence for seeds 0, 1 and 2;
* the evidence's seed 0 *is* the committed run (same parameters, claim values and headline metrics),
  so the notebooks' defaults are the setting the claims are asserted at;
* every claim the committed notebook states clears its threshold by ``claims.required_margin`` in
  every recorded seed (thresholds are those of the committed run: the notebook's current ones);
* every parameter of a notebook's parameters cell is recorded, so no knob can change unnoticed while
  the claims are asserted.
"""

from __future__ import annotations

import json

import pytest

from reprolib import claims as claims_module
from reprolib import paths, seeds
from reprolib.notebook_meta import parameter_names
from reprolib.runner import find_notebooks

RESULTS = paths.repo_root() / "results"
EVIDENCE = claims_module.load_evidence(RESULTS)
NOTEBOOKS = [p for p in find_notebooks() if p.stem not in seeds.DERIVED]


def _committed(name):
    return json.loads((RESULTS / f"{name}.json").read_text())


def test_evidence_file_exists_with_its_rule():
    assert EVIDENCE, f"{RESULTS / claims_module.SEEDS_FILE} is missing: run `python -m reprolib seeds`"
    rule = EVIDENCE["rule"]
    assert rule["floor"] == seeds.FLOOR and rule["min_margin"] == claims_module.MIN_MARGIN
    assert rule["relative_margin"] == claims_module.RELATIVE_MARGIN


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_seed_zero_is_the_committed_run(path):
    entry = EVIDENCE["notebooks"].get(path.stem)
    assert entry, f"{path.stem}: no entry in {claims_module.SEEDS_FILE}"
    assert {str(s) for s in claims_module.REQUIRED_SEEDS} <= set(entry["seeds"]), sorted(entry["seeds"])
    committed = _committed(path.stem)
    params = committed["provenance"]["parameters"]
    assert params["seed"] == 0 and claims_module.comparable(params) == entry["parameters"], (
        f"{path.stem}: the committed run's parameters are not the ones measured over seeds: its claims "
        "would not be asserted at the defaults")
    seed0 = entry["seeds"]["0"]
    assert seed0["claims"] == {n: c["value"] for n, c in committed["metrics"]["claims"].items()}
    assert seed0["metrics"] == seeds.headline_metrics(committed["metrics"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_claim_holds_for_every_seed_with_a_margin(path):
    stated = _committed(path.stem)["metrics"]["claims"]
    assert stated, f"{path.stem}: states no claims at its defaults"
    entry = EVIDENCE["notebooks"][path.stem]
    weak = []
    for name, claim in stated.items():
        for seed, record in sorted(entry["seeds"].items()):
            if name not in record["claims"]:
                weak.append(f"{name}: not measured for seed {seed}")
                continue
            margin = claims_module.Claim(name, record["claims"][name], claim["threshold"], claim["direction"]).margin
            needed = claims_module.required_margin(claim["threshold"])
            if margin < needed:
                weak.append(f"{name}: seed {seed} value {record['claims'][name]:.3f} vs {claim['direction']} "
                            f"{claim['threshold']:g} (margin {margin:.3f}, needs {needed:.3f})")
    assert not weak, f"{path.stem}:\n  " + "\n  ".join(weak)


@pytest.mark.parametrize("path", find_notebooks(), ids=[p.stem for p in find_notebooks()])
def test_every_parameter_is_recorded(path):
    recorded = set(_committed(path.stem)["provenance"]["parameters"])
    missing = sorted(parameter_names(path) - recorded)
    assert not missing, f"{path.stem}: parameters {missing} are not written with its results"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_committed_notebook_asserted_its_claims(path):
    """The committed run printed its claims as asserted: a refresh run before the seed evidence caught
    up with a new parameter prints "reported, not asserted", and nbval (which runs with the evidence as
    committed) would then see another output. Refresh the notebook again after `seeds --collect-only`."""
    import nbformat

    text = "".join(o.get("text", "") for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "reported, not asserted" not in text, f"{path.name}: refresh it again now that the seed evidence matches"
    assert "asserted (the setting measured over seeds)" in text, f"{path.name}: no asserted claims in its outputs"
