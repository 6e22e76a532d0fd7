"""reprolib.seeds: rerunning some notebooks for a seed keeps the other notebooks' results; seeds run elsewhere are added."""

from __future__ import annotations

from reprolib import seeds


def test_clearing_a_seed_folder_removes_only_the_notebooks_rerun(tmp_path):
    folder = seeds.seed_folder(tmp_path, 1)
    for sub, suffix in (("results", ".json"), ("executed", ".ipynb")):
        (folder / sub).mkdir(parents=True)
        for name in ("03_baseline_emotnet", "10_causalmer_missing_modality"):
            (folder / sub / f"{name}{suffix}").write_text("{}")
    (folder / "results" / "checkpoints").mkdir()
    seeds.clear_outputs(folder, ["10_causalmer_missing_modality"])
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert left == ["executed", "executed/03_baseline_emotnet.ipynb", "results", "results/03_baseline_emotnet.json",
                    "results/checkpoints"]
    seeds.clear_outputs(tmp_path / "never-run", ["01_context_bias"])  # nothing there: nothing to do


def _evidence(seed_numbers, epochs=10):
    return {"notebooks": {"08_ccim": {"parameters": {"epochs": epochs},
                                      "seeds": {str(s): {"claims": {}, "metrics": {"x": float(s)}} for s in seed_numbers}}}}


def test_seeds_run_elsewhere_are_kept_beside_the_ones_collected_now():
    import pytest

    joined = seeds.keep_other_seeds(_evidence([0, 1, 2]), _evidence([0, 3, 4]))
    assert sorted(joined["notebooks"]["08_ccim"]["seeds"], key=int) == ["0", "1", "2", "3", "4"]
    assert sorted(seeds.seed_values("08_ccim", joined)["x"].values()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert seeds.keep_other_seeds({"notebooks": {}}, _evidence([0]))["notebooks"]["08_ccim"]["seeds"].keys() == {"0"}
    with pytest.raises(ValueError, match="other parameters .*epochs"):
        seeds.keep_other_seeds(_evidence([0, 1, 2]), _evidence([0, 3], epochs=5))
