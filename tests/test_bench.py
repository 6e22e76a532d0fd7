"""reprolib.bench: the fairseq-style attention is the same maths, and the measurements are wired up."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reprolib import bench
from reprolib.models.mult import MulT, MultiheadAttention, causal_mask


@pytest.mark.parametrize("masked", [False, True])
def test_fairseq_style_attention_matches_ours(masked):
    torch.manual_seed(0)
    ours = MultiheadAttention(12, 3)
    theirs = bench.FairseqStyleAttention(12, 3)
    theirs.load_state_dict(ours.state_dict())
    q, kv = torch.randn(2, 5, 12), torch.randn(2, 7, 12)
    mask = causal_mask(5, 7) if masked else None
    assert torch.allclose(ours(q, kv, kv, mask), theirs(q, kv, kv, mask), atol=1e-6)


def test_with_fairseq_attention_swaps_every_layer_and_keeps_the_outputs():
    torch.manual_seed(0)
    model = MulT({"text": 6, "audio": 5, "vision": 4}, d=8, num_heads=2, layers=1, kernel_sizes=(1, 1, 1),
                 causal_mask=True).eval()
    swapped = bench.with_fairseq_attention(model).eval()
    kinds = lambda m: [type(x) for x in m.modules() if isinstance(x, MultiheadAttention)]
    assert kinds(swapped) == [bench.FairseqStyleAttention] * len(kinds(model)) and len(kinds(model)) > 0
    assert all(t is MultiheadAttention for t in kinds(model))  # the original is left alone
    batch = {"text": torch.randn(3, 6, 6), "audio": torch.randn(3, 6, 5), "vision": torch.randn(3, 6, 4)}
    with torch.no_grad():
        assert torch.allclose(model(batch), swapped(batch), atol=1e-5)


def test_median_seconds_warms_up_then_times_each_repeat():
    calls = []
    assert bench.median_seconds(lambda: calls.append(1), repeats=3, warmup=2) >= 0
    assert len(calls) == 5


def test_step_and_inference_trains_and_leaves_eval_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    wrapped = type("Net", (nn.Module,), {"forward": lambda self, b: model(b["x"])})()
    wrapped.inner = model
    before = model[1].weight.detach().clone()
    out = bench.step_and_inference(wrapped, {"x": torch.randn(3, 4), "label": torch.tensor([0, 1, 0])}, "label",
                                   repeats=2)
    assert out["train_step"] > 0 and out["inference"] > 0 and not wrapped.training
    assert not torch.equal(before, model[1].weight)  # the training step did step


def _executed(path, duration):
    path.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"duration": duration}}}))


def test_suite_times_reads_papermill_durations(tmp_path):
    assert bench.suite_times(tmp_path) is None and bench.suite_times(tmp_path / "missing") is None
    _executed(tmp_path / "01_a.ipynb", 30.0)
    _executed(tmp_path / "02_b.ipynb", 90.0)
    (tmp_path / "notes.ipynb").write_text("{}")  # not a numbered notebook: ignored
    times = bench.suite_times(tmp_path)
    assert times["total_seconds"] == 120.0 and times["shares"] == {"01_a": 0.25, "02_b": 0.75}


def test_format_table_shows_ratios_not_seconds_on_cpu():
    row = {"module": "CCIM", "wraps": "caernet", "size": "smoke", "batch_size": 8, "train_step_ratio": 1.25,
           "inference_ratio": 1.5, "seconds": {"train_step": 0.2, "inference": 0.1}}
    out = {"device": "cpu", "causal_modules": [row],
           "mult_attention": [{"size": "smoke", "train_step_ratio": 0.8, "inference_ratio": 0.7,
                               "max_abs_output_difference": 1e-7}],
           "data_pipeline": {"dataset": "caer_s", "loader_to_model_ratio": {"0": 2.0, "2": 3.5}}, "suite": None}
    text = bench.format_table(out)
    assert "| CCIM | caernet | smoke | 1.25 | 1.50 |" in text and "| MulT | smoke | 0.80 | 0.70 | 1.0e-07 |" in text
    assert "| 2 | 3.50 |" in text and "make reproduce" in text and "samples/s |" not in text.splitlines()[0]


def test_paired_timings_times_every_model_each_round():
    calls = {"a": 0, "b": 0}

    def net(name):
        layer = nn.Linear(4, 2)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = layer

            def forward(self, batch):
                calls[name] += 1
                return self.layer(batch["x"])

        return Net()

    out = bench.paired_timings({"a": net("a"), "b": net("b")}, {"x": torch.randn(3, 4), "label": torch.tensor([0, 1, 0])},
                               "label", repeats=3)
    assert set(out) == {"a", "b"} and all(v["train_step"] > 0 and v["inference"] > 0 for v in out.values())
    assert calls == {"a": 8, "b": 8}  # (1 warm-up + 3 rounds) x (train step + inference)
