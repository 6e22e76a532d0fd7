"""reprolib.claims and the band rule of reprolib.seeds: when a claim is asserted, what it reports."""

from __future__ import annotations

import json

import pytest

from reprolib import claims as claims_module
from reprolib import seeds
from reprolib.claims import Claim, ClaimFailed, Claims


def _evidence(params, seed_list=(0, 1, 2)):
    return {"notebooks": {"nb": {"parameters": claims_module.comparable(params),
                                 "seeds": {str(s): {"claims": {}, "metrics": {}} for s in seed_list}}}}


PARAMS = {"size": "smoke", "seed": 0, "bias": 0.9, "epochs": 8, "sizes": {"train": 10}, "data_root": None}


def test_claim_margin_and_direction():
    assert Claim("a", 0.5, 0.3, ">=").margin == pytest.approx(0.2)
    assert Claim("b", 0.05, 0.1, "<=").margin == pytest.approx(0.05)
    assert not Claim("c", 0.2, 0.1, "<=").holds
    assert not Claim("nan", float("nan"), 0.1, ">=").holds
    with pytest.raises(ValueError, match="direction"):
        Claim("d", 1, 0, ">")


def test_asserted_only_at_the_measured_setting(capsys):
    evidence = _evidence(PARAMS)
    assert claims_module.measured_setting("nb", PARAMS, evidence)
    assert claims_module.measured_setting("nb", dict(PARAMS, seed=2), evidence)  # a recorded seed
    for changed in ({"seed": 7}, {"bias": 0.5}, {"epochs": 3}, {"data_root": "/data/CAER-S"}, {"size": "full"}):
        assert not claims_module.measured_setting("nb", dict(PARAMS, **changed), evidence), changed
    assert not claims_module.measured_setting("other", PARAMS, evidence)
    assert not claims_module.measured_setting("nb", PARAMS, {})


def test_a_failed_claim_raises_at_the_measured_setting_only(capsys):
    def run(params):
        c = Claims("nb")
        c.at_least("gap", 0.1, 0.3)
        c.at_most("distance", 0.01, 0.1)
        c.check(params, _evidence(PARAMS))
        return c

    experiment = run(dict(PARAMS, bias=0.5))
    out = capsys.readouterr().out
    assert "reported, not asserted" in out and "DOES NOT HOLD  gap >= 0.3" in out and "holds          distance <= 0.1" in out
    experiment.raise_if_failed()  # an experiment: nothing raised
    assert experiment.as_json()["gap"]["holds"] is False and experiment.as_json()["gap"]["margin"] == pytest.approx(-0.2)

    defaults = run(PARAMS)
    assert "asserted (the setting measured over seeds)" in capsys.readouterr().out
    with pytest.raises(ClaimFailed, match=r"gap: 0\.100, expected >= 0\.3"):
        defaults.raise_if_failed()


def test_the_printed_verdicts_carry_no_values(capsys):
    c = Claims("nb")
    c.at_least("probe above chance", 0.7812345, 0.5)
    # None, not self: nbval does not store history, so a trailing ";" would not hide a returned repr
    assert c.check(PARAMS, _evidence(PARAMS)) is None
    out = capsys.readouterr().out
    assert "0.78" not in out and "all claims hold" in out
    assert "0.781" in c.table()


def test_claims_over_seeds_are_always_asserted():
    c = Claims("nb", over_seeds=True)
    c.at_least("mean gain", -0.1, 0)
    c.check({}, {})
    with pytest.raises(ClaimFailed):
        c.raise_if_failed()


def test_a_claim_is_stated_once():
    c = Claims("nb")
    c.at_least("x", 1, 0)
    with pytest.raises(ValueError, match="stated twice"):
        c.at_most("x", 1, 2)


def test_required_margin_scales_with_the_threshold():
    assert claims_module.required_margin(0.5) == pytest.approx(0.05)
    assert claims_module.required_margin(-2) == pytest.approx(0.2)
    assert claims_module.required_margin(0) == claims_module.MIN_MARGIN == claims_module.required_margin(0.02)


def test_band_rule():
    assert seeds.band([0.64, 0.69, 0.71]) == pytest.approx((0.57, 0.78))  # pad = the range, 0.07
    assert seeds.band([0.5, 0.5, 0.5]) == pytest.approx((0.5 - seeds.FLOOR, 0.5 + seeds.FLOOR))  # the floor


def test_headline_metrics_skip_histories_and_claims():
    metrics = {"emotic": {"scores": {"test": 0.3, "test_ood": 0.2}, "gap": 0.1, "history": {"val": [0.1, 0.2]},
                          "best_epoch": 3, "chance": 0.07},
               "claims": {"x": {"value": 1.0}}, "flag": True}
    assert seeds.headline_metrics(metrics) == {"emotic/scores/test": 0.3, "emotic/scores/test_ood": 0.2, "emotic/gap": 0.1}


def _results(folder, seed, claims=None, **params):
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": {"scores": {"test": 0.9 - seed / 100}, "claims": claims or {"c": {"value": 0.5 + seed}}},
               "provenance": {"parameters": {"seed": seed, "size": "smoke", **params}, "machine": {"cpu": "x"}}}
    (folder / "nb.json").write_text(json.dumps(payload))


def test_collect_pairs_seeds_and_refuses_mixed_settings(tmp_path):
    for s in (0, 1, 2):
        _results(tmp_path / str(s), s, bias=0.9)
    evidence = seeds.collect(["nb"], {s: tmp_path / str(s) for s in (0, 1, 2)})
    entry = evidence["notebooks"]["nb"]
    assert entry["parameters"] == {"size": "smoke", "bias": 0.9}
    assert entry["seeds"]["2"]["claims"] == {"c": 2.5} and entry["seeds"]["1"]["metrics"] == {"scores/test": 0.89}
    assert seeds.seed_values("nb", evidence)["scores/test"] == {"0": 0.9, "1": 0.89, "2": 0.88}
    assert "| `scores/test` | 0.900 | 0.890 ± 0.010 (0, 1, 2) |" in seeds.spread_table("nb", {"scores": {"test": 0.9}}, evidence)

    _results(tmp_path / "2", 2, bias=0.5)
    with pytest.raises(ValueError, match="other parameters.*bias"):
        seeds.collect(["nb"], {s: tmp_path / str(s) for s in (0, 1, 2)})
    with pytest.raises(ValueError, match="ran with seed 1, expected 3"):
        seeds.collect(["nb"], {3: tmp_path / "1"})
    with pytest.raises(FileNotFoundError, match="no results for other"):
        seeds.collect(["other"], {0: tmp_path / "0"})
