"""reprolib.bench: the reference-structure MulT is the same maths, ratios pair rounds, and the measurements are wired up."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reprolib import bench
from reprolib.models.mult import MulT, MultiheadAttention, causal_mask


@pytest.mark.parametrize("masked", [False, True])
def test_fairseq_attention_matches_ours(masked):
    torch.manual_seed(0)
    ours = MultiheadAttention(12, 3)
    q, kv = torch.randn(2, 5, 12), torch.randn(2, 7, 12)
    hidden = ~causal_mask(5, 7) if masked else None
    float_mask = None if hidden is None else torch.zeros(5, 7).masked_fill(hidden, float("-inf"))
    theirs = bench.fairseq_attention(ours, q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1), float_mask)
    assert torch.allclose(ours(q, kv, kv, None if hidden is None else ~hidden), theirs.transpose(0, 1), atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_reference_structure_mult_gives_our_outputs_and_gradients(causal):
    torch.manual_seed(0)
    model = MulT({"text": 6, "audio": 5, "vision": 4}, d=8, num_heads=2, layers=2, kernel_sizes=(1, 3, 1),
                 causal_mask=causal).eval()
    reference = bench.ReferenceStructureMulT(model).eval()
    batch = {"text": torch.randn(3, 7, 6), "audio": torch.randn(3, 9, 5), "vision": torch.randn(3, 6, 4),
             "labels": torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]]).float()}
    assert torch.allclose(model(batch), reference(batch), atol=1e-5)
    model.training_loss(batch).backward()
    reference.training_loss(batch).backward()
    for (name, ours), theirs in zip(model.named_parameters(), reference.mult.parameters()):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-5), name


def test_ratios_pair_rounds_not_medians():
    a = {"rounds": {"train_step": [1.0, 4.0, 2.0], "inference": [1.0, 1.0, 1.0]}}
    b = {"rounds": {"train_step": [2.0, 2.0, 4.0], "inference": [2.0, 1.0, 0.5]}}
    out = bench.ratio(a, b)
    assert out["train_step_ratio"] == 0.5 and out["train_step_ratio_range"] == [0.5, 2.0]  # medians would give 1.0
    assert out["inference_ratio"] == 1.0 and out["inference_ratio_range"] == [0.5, 2.0]


def test_median_seconds_warms_up_then_times_each_repeat():
    calls = []
    assert bench.median_seconds(lambda: calls.append(1), repeats=3, warmup=2) >= 0
    assert len(calls) >= 5  # 2 warm-up calls, then the Timer's own warm-up and timed call per repeat


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
           "mult_reference": [{"config": "reference", "d": 30, "batch_size": 32, "train_step_ratio": 0.8,
                               "train_step_ratio_range": [0.7, 0.9], "inference_ratio": 0.7,
                               "max_abs_output_difference": 1e-7}],
           "data_pipeline": {"dataset": "caer_s", "loader_to_model_ratio": {"0": 2.0, "2": 3.5}}, "suite": None,
           "evaluation_batch": [{"model": "caernet + CLEF", "batch_size": 32, "against": 256, "identical_logits": True,
                                 "inference_ratio": 0.6, "inference_ratio_range": [0.5, 0.7]}]}
    text = bench.format_table(out)
    assert "| caernet + CLEF | 32 vs 256 | 0.60 (0.50–0.70) | yes |" in text
    assert "| CCIM | caernet | smoke | 1.25 | 1.50 |" in text and "| MulT | reference | 30 | 32 | 0.80 (0.70–0.90) | 0.70 | 1.0e-07 |" in text
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
    assert min(calls.values()) >= 6  # every round times each model's train step and inference (blocks of calls)
    assert all(len(v["rounds"][k]) == 3 for v in out.values() for k in ("train_step", "inference"))
