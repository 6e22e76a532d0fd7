"""The full-size dry run (reprolib.dryrun): few steps, timed, and the steps a real run will take.

One kernel starts here (the runner test, about two seconds); the rest runs in-process with the
dry-run switch set by monkeypatch.
"""

from __future__ import annotations

import io
import json
import math

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import Dataset, Subset

from reprolib import dryrun, runner
from reprolib.data.base import targets_of
from reprolib.engine import fit, predict
from reprolib.results import write_metrics


class Blobs(Dataset):
    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % 2
        self.x = torch.randn(n, 6, generator=g) + 2.0 * self.label.view(-1, 1).float()

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"x": self.x[i], "label": self.label[i]}

    def targets(self, key="label"):
        return self.label


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 2)

    def forward(self, batch):
        return self.fc(batch["x"])


@pytest.fixture
def dry(monkeypatch, tmp_path):
    monkeypatch.setenv(dryrun.ENV, "1")
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    monkeypatch.setattr(dryrun, "_events", [])
    monkeypatch.setattr(dryrun, "_written_as", [None])
    return tmp_path


def test_outside_a_dry_run_nothing_changes(monkeypatch):
    monkeypatch.delenv(dryrun.ENV, raising=False)
    splits = {"train": Blobs(2000)}
    assert dryrun.sample_splits(splits, {"train": 4.5}) is splits
    result = fit(Linear(), Blobs(64), Blobs(32, 1), epochs=3, batch_size=16)
    assert len(result.history) == 3


def test_fit_takes_a_few_timed_steps_and_counts_those_of_the_real_run(dry):
    steps = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: steps.append(1))
    try:
        result = fit(Linear(), Blobs(200), Blobs(50, 1), epochs=7, batch_size=16, desc="blobs")
    finally:
        handle.remove()
    assert len(result.history) == 1 and len(steps) == dryrun.TRAIN_STEPS
    train, val = [e for e in dryrun.events() if e["kind"] == "train"], [e for e in dryrun.events() if e["kind"] == "eval"]
    assert len(train) == 1 and train[0]["steps"] == (200 // 16) * 7 and train[0]["seconds_per_step"] > 0
    assert train[0]["steps_timed"] == dryrun.TRAIN_STEPS
    assert len(val) == 1 and val[0]["items"] == 50 * 7  # validation runs once an epoch in the real run


def test_the_real_run_is_counted_at_the_full_length_of_sampled_splits(dry):
    splits = dryrun.sample_splits({"train": Blobs(3000), "test": Blobs(1000, 1), "val": Blobs(40, 2)})
    assert len(splits["train"]) == dryrun.SAMPLE_SIZES["train"] and splits["train"].full_length == 3000
    assert isinstance(splits["test"], Subset) and len(splits["test"]) == dryrun.SAMPLE_SIZES["test"]
    assert splits["test"].indices[-1] > 900  # evenly spaced: the whole folder is read, not its first files
    assert len(splits["val"]) == 40 and splits["val"].full_length == 40  # small splits are kept whole
    assert len(targets_of(splits["test"])) == dryrun.SAMPLE_SIZES["test"]
    predict(Linear(), splits["test"], desc="test")
    (event,) = dryrun.events()
    assert event["items"] == 1000
    generated = dryrun.sample_splits({"train": Blobs(50)}, {"train": 280.0})  # synthetic, generated small
    assert generated["train"].full_length == 14000 and dryrun.sample_sizes({"train": 14000, "test": 4000}) == {
        "train": dryrun.SAMPLE_SIZES["train"], "test": dryrun.SAMPLE_SIZES["test"]}


def test_the_estimate_multiplies_each_count_by_its_measured_time():
    events = [{"kind": "train", "desc": "a", "batch_size": 64, "epochs": 30, "steps": 600, "seconds_per_step": 0.5},
              {"kind": "train", "desc": "b", "batch_size": 64, "epochs": 10, "steps": 100, "seconds_per_step": 2.0},
              {"kind": "eval", "desc": "val", "items": 1000, "seconds_per_item": 0.01}]
    est = dryrun.estimate(events)
    assert est["trainings"] == 2 and est["train_steps"] == 700 and est["evaluated_samples"] == 1000
    assert math.isclose(est["estimate_seconds"], 600 * 0.5 + 100 * 2.0 + 1000 * 0.01)
    assert math.isclose(est["median_seconds_per_step"], 1.25)
    table = dryrun.report({"03_x": est, "04_y": None})
    assert "03_x" in table and "8 min" in table and "no estimate" in table


def test_events_after_the_results_file_still_count(dry):
    fit(Linear(), Blobs(100), Blobs(20, 1), epochs=2, batch_size=10, desc="before")
    write_metrics("05_demo", {"x": 1.0})
    fit(Linear(), Blobs(100), Blobs(20, 1), epochs=4, batch_size=10, desc="after")  # e.g. an exercise
    est = dryrun.read_estimate(dry, "05_demo")
    assert est["trainings"] == 2 and est["train_steps"] == 10 * 2 + 10 * 4
    assert json.loads((dry / "05_demo.json").read_text())["metrics"] == {"x": 1.0}


def test_reproduce_dry_run_prints_the_estimate_and_keeps_results_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(dryrun.ENV, raising=False)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = new_code_cell('size = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(
        "import torch\nfrom torch import nn\nfrom torch.utils.data import TensorDataset\n"
        "from reprolib.engine import fit\nfrom reprolib.results import write_metrics\n"
        "class Pairs(TensorDataset):\n"
        "    def __getitem__(self, i):\n"
        "        x, y = super().__getitem__(i)\n"
        "        return {'x': x, 'label': y}\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, b):\n"
        "        return self.fc(b['x'])\n"
        "data = Pairs(torch.randn(96, 4), torch.arange(96) % 2)\n"
        "fit(M(), data, data, epochs=5, batch_size=8, desc='tiny')\n"
        "print(write_metrics('01_tiny', {'size': size}))")]
    nbformat.write(nb, folder / "01_tiny.ipynb")
    out = io.StringIO()
    code = runner.reproduce(size="full", dry_run=True, notebooks_folder=folder, progress=False, out=out)
    text = out.getvalue()
    assert code == 0, text
    dry_folder = tmp_path / "results" / dryrun.FOLDER
    assert json.loads((dry_folder / "01_tiny.json").read_text())["metrics"] == {"size": "full"}
    assert not (tmp_path / "results" / "01_tiny.json").exists()  # never over the real results
    table = text.split("full-size dry run")[1]
    row = next(line for line in table.splitlines() if line.startswith("01_tiny"))
    assert row.split()[1:3] == ["1", str(12 * 5)]  # one training, 96 // 8 steps x 5 epochs
    saved = json.loads((dry_folder / "estimate.json").read_text())
    assert saved["notebooks"]["01_tiny"]["train_steps"] == 60
    assert dryrun.ENV not in __import__("os").environ  # the switch is the kernels' only


def test_exercise_checks_of_training_are_skipped_only_in_a_dry_run(monkeypatch, capsys):
    from reprolib.claims import expect_trained

    monkeypatch.delenv(dryrun.ENV, raising=False)
    with pytest.raises(AssertionError, match="the gap"):
        expect_trained(False, "the gap should shrink")
    expect_trained(True, "never shown")
    monkeypatch.setenv(dryrun.ENV, "1")
    expect_trained(False, "the gap should shrink")
    assert "dry run: not checked" in capsys.readouterr().out
