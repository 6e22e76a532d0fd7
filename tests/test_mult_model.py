"""MulT backbone: shapes on make_mult data (aligned / unaligned, IEMOCAP / MOSEI), the reference-code quirk
options (unpadded convolutions, causal masks, positional-embedding rule), the attention maths, gradients,
determinism and the task losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import default_collate

from reprolib.data.mult import load_mult
from reprolib.data.synthetic import make_mult
from reprolib.metrics import iemocap_metrics
from reprolib.models.mult import (MulT, MultiheadAttention, causal_mask, sinusoidal_positions, task_for,
                                  task_loss)

DIMS = {"text": 12, "audio": 10, "vision": 8}
LENGTHS = {True: 8, False: {"text": 8, "audio": 14, "vision": 12}}
SMALL = dict(d=8, num_heads=2, layers=1)


def _data(tmp_path, dataset="iemocap", aligned=True, seed=0):
    path = make_mult(tmp_path / f"{dataset}_{aligned}.pkl", dataset, seed=seed,
                     sizes={"train": 6, "valid": 2, "test": 2}, dims=DIMS, aligned=aligned,
                     lengths=LENGTHS[aligned], left_pad=0.3)
    return load_mult(path, dataset)["train"]


def _batch(ds, n=4):
    return default_collate([ds[i] for i in range(n)])


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    return _data(tmp_path_factory.mktemp("mult"), "iemocap", True)


@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
@pytest.mark.parametrize("aligned", [True, False])
def test_output_shapes(tmp_path, dataset, aligned):
    ds = _data(tmp_path, dataset, aligned)
    batch = _batch(ds)
    torch.manual_seed(0)
    model = MulT.for_data(ds, **SMALL)
    assert model.views == ("text", "audio", "vision")
    assert model.target_key == ds.target_key
    logits = model(batch)
    assert logits.shape == (4, 8 if dataset == "iemocap" else 1)
    assert model.features(batch).shape == (4, 6 * 8) == (4, model.feature_dim)
    loss = model.training_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    if dataset == "mosei":
        cls = MulT.for_data(ds, mosei_task="cls", **SMALL)
        assert cls.target_key == "label_cls" and cls(batch).shape == (4, 7)
        assert torch.isfinite(cls.training_loss(batch))


def test_defaults_follow_the_notes():
    m = MulT({"text": 300, "audio": 74, "vision": 35})
    assert (m.d, m.mem_layers, m.output_dim, m.target_key) == (40, 5, 8, "labels")
    assert m.kernel_sizes == {"text": 3, "audio": 5, "vision": 3}
    assert not m.causal_mask and m.positions == "reference" and m.conv_padding == "valid"
    assert sorted(m.cross) == sorted(["text_from_audio", "text_from_vision", "audio_from_text",
                                      "audio_from_vision", "vision_from_text", "vision_from_audio"])
    assert m.cross["text_from_audio"].layers[0].attn.dropout == 0.0     # source audio -> attn_dropout_a
    assert m.cross["audio_from_text"].layers[0].attn.dropout == 0.2     # source text -> attn_dropout
    assert m.mem["text"].layers[0].attn.dropout == 0.2 and m.mem["text"].dim == 80
    mosei = MulT({"text": 300, "audio": 74, "vision": 35}, task=task_for("mosei_senti"))
    assert mosei.kernel_sizes == {"text": 1, "audio": 3, "vision": 3} and mosei.output_dim == 1
    assert MulT(DIMS, layers=2).mem_layers == 3


def test_unpadded_convolutions_shorten_time(iemocap):
    batch = _batch(iemocap)
    kernels = (3, 5, 3)
    valid = MulT(DIMS, kernel_sizes=kernels, **SMALL).eval()
    same = MulT(DIMS, kernel_sizes=kernels, conv_padding="same", **SMALL).eval()
    for k, m in zip(kernels, ("text", "audio", "vision")):
        assert valid.project(batch)[m].shape[1] == 8 - k + 1
        assert same.project(batch)[m].shape[1] == 8
        assert valid.hidden_states(batch)[m].shape == (4, 8 - k + 1, 16)
    short = dict(batch, audio=batch["audio"][:, :4])
    with pytest.raises(ValueError, match="fewer than its unpadded temporal kernel"):
        valid(short)
    assert same(short).shape == (4, 8)


def test_causal_mask_rule():
    assert torch.equal(causal_mask(3, 3), torch.tril(torch.ones(3, 3, dtype=torch.bool)))
    m = causal_mask(2, 5)  # offset |5 - 2| = 3: query i sees keys j <= i + 3
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert causal_mask(5, 2).all()  # never a fully masked row


@pytest.mark.parametrize("masked", [True, False])
def test_causal_mask_makes_step_t_independent_of_later_steps(iemocap, masked):
    batch = _batch(iemocap)
    torch.manual_seed(0)
    model = MulT(DIMS, kernel_sizes=1, causal_mask=masked, positions="all", **SMALL).eval()
    t = 4
    later = {m: batch[m].clone() for m in ("text", "audio", "vision")}
    for m in later:
        later[m][:, t + 1:] += torch.randn_like(later[m][:, t + 1:])
    with torch.no_grad():
        before = model.hidden_states(batch)
        after = model.hidden_states(dict(batch, **later))
    for m in before:
        same_prefix = torch.allclose(before[m][:, :t + 1], after[m][:, :t + 1], atol=1e-6)
        assert same_prefix == masked
        assert not torch.allclose(before[m][:, t + 1:], after[m][:, t + 1:])


def test_sinusoidal_positions_reference_rule():
    x = torch.randn(2, 5, 7)
    x[0, :2, 0] = 0.0  # two left-padded steps (first channel exactly 0)
    pe = sinusoidal_positions(x, "reference")
    assert pe.shape == (2, 5, 7) and not pe.requires_grad
    assert torch.all(pe[0, :2] == 0) and torch.all(pe[:, :, -1] == 0)  # padding rows; odd width: zero column
    half = 3
    freqs = torch.exp(torch.arange(half) * -(math.log(10000.0) / (half - 1)))
    for pos in (3, 5):  # positions count every step, padded or not: step index t+1 -> position t+1
        expect = torch.cat([torch.sin(pos * freqs), torch.cos(pos * freqs), torch.zeros(1)])
        assert torch.allclose(pe[0, pos - 1], expect, atol=1e-6)
        assert torch.allclose(pe[1, pos - 1], expect, atol=1e-6)
    every = sinusoidal_positions(x, "all")
    assert torch.allclose(every[0, :2], every[1, :2])  # "all": the padded steps get positions 1, 2 too
    assert torch.allclose(every[:, 2:], pe[:, 2:])
    assert sinusoidal_positions(x, "none") is None
    with pytest.raises(ValueError, match="position rule"):
        sinusoidal_positions(x, "learned")


def test_position_rule_acts_through_padded_steps(iemocap):
    batch = _batch(iemocap)
    padded = (batch["text"] == 0).all(dim=-1)  # make_mult's left padding: whole steps zeroed
    assert padded.any() and not padded.all()
    outs = {}
    for rule in ("reference", "all", "none"):
        torch.manual_seed(0)
        # kernel 1: a padded input step gives an exactly-zero projected step, whose position is then 0
        model = MulT(DIMS, positions=rule, kernel_sizes=1, **SMALL).eval()
        outs[rule] = model(batch)
    assert torch.equal(model.project(batch)["text"][..., 0] == 0, padded)
    assert not torch.allclose(outs["reference"], outs["none"])
    assert not torch.allclose(outs["reference"], outs["all"])
    # without padded steps the reference rule and "all" agree exactly
    unpadded = {m: torch.where(batch[m] == 0, torch.ones_like(batch[m]), batch[m]) for m in ("text", "audio", "vision")}
    same = []
    for rule in ("reference", "all"):
        torch.manual_seed(0)
        same.append(MulT(DIMS, positions=rule, kernel_sizes=1, **SMALL).eval()(dict(batch, **unpadded)))
    assert torch.allclose(*same)


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = MultiheadAttention(8, 2).eval()
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.in_proj_weight)
        ref.in_proj_bias.copy_(ours.in_proj_bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    q, kv = torch.randn(3, 4, 8), torch.randn(3, 6, 8)
    mask = causal_mask(4, 6)
    expected, _ = ref(q, kv, kv, attn_mask=~mask, need_weights=False)  # torch: True = NOT allowed
    assert torch.allclose(ours(q, kv, kv, mask), expected, atol=1e-5)


def test_gradients_reach_every_parameter(iemocap):
    batch = _batch(iemocap)
    torch.manual_seed(0)
    model = MulT(DIMS, **SMALL)
    model.training_loss(batch).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_deterministic_under_a_seed(iemocap):
    batch = _batch(iemocap)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = MulT(DIMS, **SMALL).train()
        runs.append((model.state_dict(), model(batch)))  # dropout active: same seed, same masks
    (s1, y1), (s2, y2) = runs
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert torch.equal(y1, y2)
    torch.manual_seed(7)
    assert not torch.equal(MulT(DIMS, **SMALL).train()(batch), y1)


def test_task_losses_read_targets_as_the_notes_say():
    logits = torch.randn(3, 8)
    labels = torch.tensor([[1., 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    expected = F.cross_entropy(logits.view(-1, 2), labels.long().view(-1))
    assert torch.allclose(task_loss("iemocap", logits, labels), expected)
    one_hot = torch.stack([1 - labels, labels], dim=-1)
    assert torch.allclose(task_loss("iemocap", logits, one_hot), expected)
    # the [B, 8] layout is the one the metrics read: pair e = (absent, present) of emotion e
    perfect = torch.stack([-labels, labels], dim=-1).reshape(3, 8)
    assert iemocap_metrics(perfect, labels)["mean_acc"] == 1.0
    y = torch.tensor([0.5, -1.0, 2.0])
    assert torch.allclose(task_loss("regression", torch.zeros(3, 1), y), y.abs().mean())
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        task_loss("iemocap", torch.randn(3, 4), labels)
    with pytest.raises(ValueError, match="integer indices"):
        task_loss("classes", torch.randn(3, 7), y)


def test_subset_of_targets_and_bad_input(iemocap):
    batch = _batch(iemocap)
    text_only = MulT(DIMS, targets=("text",), **SMALL)
    assert text_only.feature_dim == 16 and text_only.features(batch).shape == (4, 16)
    assert sorted(text_only.cross) == ["text_from_audio", "text_from_vision"]
    with pytest.raises(ValueError, match="targets"):
        MulT(DIMS, targets=("speech",), **SMALL)
    with pytest.raises(ValueError, match=r"\[B, T, 10\]"):
        MulT(DIMS, **SMALL)(dict(batch, audio=batch["audio"][..., :5]))
    with pytest.raises(KeyError, match="vision"):
        MulT(DIMS, **SMALL)({k: v for k, v in batch.items() if k != "vision"})
    with pytest.raises(ValueError, match="divisible"):
        MulT(DIMS, d=10, num_heads=4)
