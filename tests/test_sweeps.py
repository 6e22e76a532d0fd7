"""The multi-seed sweep: argument checks and the summary table (the training itself is the notebooks')."""

from __future__ import annotations

import pytest

from reprolib import sweeps
from reprolib.__main__ import main


def test_summarise_gives_sample_std():
    s = sweeps.summarise([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert sweeps.summarise([0.4])["std"] == 0.0


def test_format_table_reads_mean_and_std():
    row = {"dataset": "caer_s", "metric": "accuracy",
           **{k: {"mean": m, "std": 0.01, "n": 3} for k, m in (("test", 0.9), ("test_ood", 0.2), ("gap", 0.7))}}
    text = sweeps.format_table({"caernet": row})
    assert "| caernet | baseline | caer_s (accuracy) | 0.900 ± 0.010 | 0.200 ± 0.010 | 0.700 ± 0.010 | 3 |" in text
    cols = {k: {"mean": m, "std": 0.02, "n": 3} for k, m in (("test", 0.8), ("test_ood", 0.3), ("gap", 0.5))}
    ccim = {"dataset": "caer_s", "metric": "accuracy", "variants": {"baseline": row, "ccim_additive": cols}}
    lines = sweeps.format_table({"caernet": ccim}).splitlines()
    assert lines[2].startswith("| caernet | baseline |")
    assert lines[3] == "| caernet | ccim_additive | caer_s (accuracy) | 0.800 ± 0.020 | 0.300 ± 0.020 | 0.500 ± 0.020 | 3 |"


def test_ccim_sweep_wraps_each_baseline_both_ways():
    variants = sweeps._variants("ccim")
    assert list(variants) == ["baseline", "ccim_dot_product", "ccim_additive"] and variants["baseline"] is None
    assert list(sweeps._variants("baselines")) == ["baseline"]
    assert list(sweeps._variants("clef")) == ["baseline", sweeps.OWN_LOSS_CONTROL, "clef"]


def test_every_wrapping_variant_builds_on_every_baseline():
    import numpy as np
    import torch

    from reprolib.causal.ccim import CCIM
    from reprolib.causal.clef import CLEF
    from reprolib.causal.dictionary import ConfounderDictionary
    from reprolib.engine import WithDefaultLoss
    from reprolib.experiments import DataBundle

    dictionary = ConfounderDictionary(np.random.default_rng(0).random((4, 6)), np.full(4, 0.25))
    for name, (kind, build) in sweeps.baseline_builders("smoke").items():
        d = DataBundle(kind, None, {}, ("a", "b", "c"), kind == "emotic", True)
        for method in ("ccim", "clef"):
            for variant, wrap in sweeps._variants(method).items():
                if wrap is None:
                    continue
                model = wrap(build(d, "small"), d, dictionary, "small")
                if method == "ccim":
                    assert isinstance(model.classifier, CCIM), (name, variant)
                elif variant == sweeps.OWN_LOSS_CONTROL:
                    assert isinstance(model, WithDefaultLoss) and not hasattr(model, "training_loss")
                else:
                    assert isinstance(model, CLEF) and model.y_e_star.shape == (3,), (name, variant)


def test_ablation_variants_build_what_their_paper_row_says(monkeypatch):
    import numpy as np

    from reprolib import experiments
    from reprolib.causal.ccim import CCIM
    from reprolib.causal.clef import CLEF, ContextOnly, NoContext
    from reprolib.causal.dictionary import ConfounderDictionary
    from reprolib.experiments import DataBundle

    main_dictionary = ConfounderDictionary(np.random.default_rng(0).random((4, 6)), np.full(4, 0.25))
    asked = []

    def fake_dictionary_for(data, n, view="context", **_):
        asked.append((n, view))
        return ConfounderDictionary(np.random.default_rng(n).random((n, 6)), np.full(n, 1 / n))

    monkeypatch.setattr(experiments, "dictionary_for", fake_dictionary_for)
    kind, build = sweeps.baseline_builders("smoke")["emotnet"]
    d = DataBundle(kind, None, {}, ("a", "b", "c"), True, True)
    built = {v: (wrap(build(d, "small"), d, main_dictionary, "small") if wrap else None)
             for v, wrap in sweeps._variants("ccim_ablations").items()}
    assert list(built) == list(sweeps.ABLATION_ROWS["ccim_ablations"])
    heads = {v: m.classifier for v, m in built.items() if m is not None}
    assert all(isinstance(h, CCIM) for h in heads.values())
    assert heads["additive"].strategy == "additive" and heads["no_lambda"].use_attention is False
    assert np.allclose(heads["no_prior"].prior.numpy(), 0.25)
    assert not np.allclose(heads["random_dictionary"].dictionary.numpy(), main_dictionary.Z)
    assert [heads[f"N{n}"].size for n in sweeps.ABLATION_DICTIONARY_SIZES] == list(sweeps.ABLATION_DICTIONARY_SIZES)
    assert (4, "image") in asked  # no_mask: the main N from the unmasked images

    kind, build = sweeps.baseline_builders("smoke")["cdnet"]
    d = DataBundle(kind, None, {}, ("a", "b", "c"), False, True)
    built = {v: (wrap(build(d, "small"), d, None, "small") if wrap else None)
             for v, wrap in sweeps._variants("clef_ablations").items()}
    assert list(built) == list(sweeps.ABLATION_ROWS["clef_ablations"])
    assert isinstance(built["context_alone"], ContextOnly) and isinstance(built["no_context_branch"].context, NoContext)
    assert built["no_kl"].kl is False and built["no_mask"].context_key == "image"
    assert built["star_average"].star == "average" and built["star_random"].star == "random"
    assert all(isinstance(built[v], CLEF) for v in ("clef", "no_context_branch", "no_kl", "no_mask"))


def test_ablation_rows_name_published_settings_and_the_papers_baselines():
    from reprolib.published import ABLATIONS

    for method, paper in (("ccim_ablations", "ccim"), ("clef_ablations", "clef")):
        settings = {row.setting for row in ABLATIONS[paper]}
        named = [s for s in sweeps.ABLATION_ROWS[method].values() if s]
        assert named and set(named) <= settings, method
        assert set(sweeps.NOT_EXPRESSIBLE[method]) <= settings
        assert set(named).isdisjoint(sweeps.NOT_EXPRESSIBLE[method])
        models = {row.model for row in ABLATIONS[paper] if row.table == "Table 4"}
        assert set(sweeps.ABLATION_BASELINES[method]) == models


def test_baseline_rows_are_reused_only_for_the_same_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    from reprolib.results import write_metrics

    write_metrics("sweep_baselines_medium", {"caernet": {"runs": [{"seed": 0, "test": 0.9}]}}, {"seeds": [0, 1, 2]})
    assert sweeps._reusable_baseline_runs("medium", (0, 1, 2)) == {"caernet": [{"seed": 0, "test": 0.9}]}
    assert sweeps._reusable_baseline_runs("medium", (0, 1)) == {}
    assert sweeps._reusable_baseline_runs("smoke", (0, 1, 2)) == {}


def test_every_baseline_has_a_home_dataset():
    assert set(sweeps.baseline_builders("medium")) == {"emotnet", "caernet", "gnncnn", "cdnet", "emoticon"}
    assert {kind for kind, _ in sweeps.baseline_builders("medium").values()} == {"caer_s", "emotic"}


def test_bad_arguments_are_refused(capsys):
    assert main(["sweep", "--only", "resnet"]) == 2
    assert "unknown baseline" in capsys.readouterr().err
    with pytest.raises(ValueError, match="size must be one of"):
        sweeps.sweep_baselines("huge")
    with pytest.raises(ValueError, match="method must be one of"):
        sweeps.sweep("dropout")
