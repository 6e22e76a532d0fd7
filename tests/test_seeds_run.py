"""reprolib.seeds.clear_outputs: rerunning some notebooks for a seed keeps the other notebooks' results."""

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
