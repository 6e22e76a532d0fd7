"""Notebook 01 also runs on real data: a CAER-S folder with only train/test, no sidecar, Angry spelling.

The real layout is made from a tiny synthetic set by removing what real CAER-S does not have; the
notebook must then carve its own validation split, cluster contexts without scene ids, skip the
test_ood comparison and assert nothing.
"""

from __future__ import annotations

import json
import shutil

from reprolib.data import synthetic
from reprolib.paths import notebooks_dir
from reprolib.runner import run_notebook


def test_notebook_01_runs_on_the_real_caer_s_layout(tmp_path, monkeypatch):
    generated = synthetic.make_caer_s(tmp_path / "gen", seed=1, image_size=32, supersample=1,
                                      sizes={"train": 140, "val": 7, "test": 70, "test_ood": 7})
    real = tmp_path / "CAER-S"
    for split in ("train", "test"):
        shutil.copytree(generated / split, real / split)
        (real / "face_boxes").mkdir(exist_ok=True)
        shutil.copy(generated / "face_boxes" / f"{split}.txt", real / "face_boxes" / f"{split}.txt")
    (real / "train" / "Anger").rename(real / "train" / "Angry")

    results = tmp_path / "results"
    monkeypatch.setenv("REPROLIB_RESULTS", str(results))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    outcome = run_notebook(notebooks_dir() / "01_context_bias.ipynb", tmp_path / "executed",
                           {"data_root": str(real), "epochs": 1, "n_context_groups": 3})
    assert outcome.ok, outcome.error

    metrics = json.loads((results / "01_context_bias.json").read_text())["metrics"]
    assert set(metrics["scores"]["context probe"]) == {"test"}     # no test_ood in real CAER-S
    assert metrics["claims"] == {} and metrics["nmi_emotion_true_scene"] is None  # nothing stated on real data
    assert set(metrics["nmi_emotion_kmeans_group"]) == {"train"}
