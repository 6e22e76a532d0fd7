"""Missing-modality study and modality contribution: the scenario set, the zeroed view, drops and their std
on a model that reads only text, drop shares, integrated gradients (completeness, an ignored modality) and
an end-to-end smoke run on a tiny MulT over make_mult data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from reprolib.causal.modalities import (SCENARIOS, ZeroedModalities, as_scenario, drop_share, iemocap_mean_acc,
                                        integrated_gradients, missing_modality_study,
                                        modality_attribution, target_output)
from reprolib.data.mult import load_mult
from reprolib.data.synthetic import make_mult
from reprolib.models.mult import MulT

MODS = ("text", "audio", "vision")
DIMS = {"text": 6, "audio": 5, "vision": 4}
T = 5


class DictData(Dataset):
    """A tiny in-memory dataset serving MulT-style dicts with a scalar ``label``."""

    target_key = "label"

    def __init__(self, n: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = {m: torch.randn(n, T, DIMS[m], generator=g) for m in MODS}
        self.y = torch.zeros(n)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {**{m: self.x[m][i] for m in MODS}, "label": self.y[i], "index": i}


class TextOnly(nn.Module):
    """Output = a linear read-out of the time-averaged text; audio and vision are ignored."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(DIMS["text"], 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.linspace(-1.0, 1.0, DIMS["text"]).view(1, -1))
            self.lin.bias.fill_(0.3)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.lin(batch["text"].mean(1))


class Smooth(nn.Module):
    """A smooth non-linear model of text and audio (vision ignored), one output per sample."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.t = nn.Linear(DIMS["text"], 3)
        self.a = nn.Linear(DIMS["audio"], 3)
        self.out = nn.Linear(3, 1)

    def forward(self, batch: dict) -> torch.Tensor:
        h = torch.tanh(self.t(batch["text"]).mean(1)) * torch.sigmoid(self.a(batch["audio"]).mean(1))
        return self.out(h + 0.5 * torch.tanh(self.a(batch["audio"])).pow(2).mean(1))


def sign_accuracy(data: DictData, model: nn.Module):
    """A score against the model's own full-input decision, so the full score is exactly 1."""
    with torch.no_grad():
        truth = model({m: data.x[m] for m in MODS})[:, 0] > 0

    def score(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(((outputs[:, 0] > 0) == truth).float().mean())
    return score


def test_scenarios_are_the_seven_of_the_study():
    assert len(SCENARIOS) == 7
    assert [s.name for s in SCENARIOS] == ["full", "no text", "no audio", "no vision", "no text+audio",
                                           "no text+vision", "no audio+vision"]
    removed = {frozenset(s.removed) for s in SCENARIOS}
    assert removed == {frozenset(c) for k in range(3) for c in itertools.combinations(MODS, k)}
    assert SCENARIOS[0].is_full and SCENARIOS[4].code == "ta" and SCENARIOS[6].kept == ("text",)
    assert as_scenario("va") == SCENARIOS[6] and as_scenario(["text"]) == SCENARIOS[1]
    assert as_scenario("no text+vision") == SCENARIOS[5] and as_scenario("") == SCENARIOS[0]
    with pytest.raises(ValueError, match="unknown modality"):
        as_scenario("x")


def test_zeroing_touches_only_the_chosen_modalities_and_not_the_source():
    data = DictData(n=4)
    before = {m: data.x[m].clone() for m in MODS}
    view = ZeroedModalities(data, "ta")
    assert len(view) == 4 and view.target_key == "label"
    for i in range(4):
        item, orig = view[i], data[i]
        assert not item["text"].any() and not item["audio"].any()
        assert torch.equal(item["vision"], orig["vision"]) and item["index"] == i
        assert torch.equal(item["label"], orig["label"])
    full = ZeroedModalities(data, SCENARIOS[0])[0]
    assert all(torch.equal(full[m], data[0][m]) for m in MODS)
    assert all(torch.equal(data.x[m], before[m]) for m in MODS)


def test_study_on_a_text_only_model():
    data, model = DictData(), TextOnly()
    score = sign_accuracy(data, model)
    study = missing_modality_study(model, data, score, batch_size=10)
    rec = study["scenarios"]
    assert study["full"] == 1.0 and rec["full"]["drop"] == 0.0
    for name in ("no audio", "no vision", "no audio+vision"):
        assert rec[name]["drop"] == 0.0 and rec[name]["score"] == 1.0
    # without text the output is the bias (0.3 > 0): every sample is "positive"
    with torch.no_grad():
        positive = float((model({m: data.x[m] for m in MODS})[:, 0] > 0).float().mean())
    full_drop = 1.0 - positive
    assert full_drop > 0.2
    for name in ("no text", "no text+audio", "no text+vision"):
        assert rec[name]["drop"] == pytest.approx(full_drop)
    drops = [rec[s.name]["drop"] for s in SCENARIOS[1:]]
    summary = study["summary"]
    assert summary["n"] == 6 and summary["std"] == "population" and summary["ddof"] == 0
    assert summary["mean_drop"] == pytest.approx(full_drop / 2)
    assert summary["std_drop"] == pytest.approx(float(np.std(drops)))
    assert summary["std_drop"] == pytest.approx(full_drop / 2)  # three at full_drop, three at 0
    single = study["summary_single"]
    assert single["n"] == 3 and single["std_drop"] == pytest.approx(np.std([full_drop, 0.0, 0.0]))
    sample = missing_modality_study(model, data, score, scenarios=SCENARIOS[1:4], ddof=1)
    assert list(sample["scenarios"]) == ["full", "no text", "no audio", "no vision"]  # full added
    assert sample["summary"]["std"] == "sample"
    assert sample["summary"]["std_drop"] == pytest.approx(np.std([full_drop, 0.0, 0.0], ddof=1))
    assert drop_share(study) == {"text": 1.0, "audio": 0.0, "vision": 0.0}


def _study(text: float, audio: float, vision: float) -> dict:
    return {"scenarios": {f"no {m}": {"removed": [m], "drop": d}
                          for m, d in zip(MODS, (text, audio, vision))}}


def test_drop_share_rules():
    assert drop_share(_study(0.3, 0.1, 0.0)) == pytest.approx({"text": 0.75, "audio": 0.25, "vision": 0.0})
    assert drop_share(_study(0.2, -0.1, 0.2)) == pytest.approx({"text": 0.5, "audio": 0.0, "vision": 0.5})
    assert all(math.isnan(v) for v in drop_share(_study(0.0, -0.1, 0.0)).values())
    with pytest.raises(ValueError, match="no vision"):
        drop_share({"scenarios": {"no text": {"removed": ["text"], "drop": 0.1}}})


def test_integrated_gradients_completeness_and_an_ignored_modality():
    data, model = DictData(n=6), Smooth().eval()
    batch = {m: data.x[m] * 1.5 for m in MODS}
    with torch.no_grad():
        delta = model(batch)[:, 0] - model({m: torch.zeros_like(batch[m]) for m in MODS})[:, 0]
    for method, steps, tol in (("gausslegendre", 16, 1e-4), ("riemann_middle", 64, 5e-3)):
        attr = integrated_gradients(model, batch, steps=steps, method=method)
        total = sum(attr[m].flatten(1).sum(1) for m in MODS)
        assert torch.allclose(total, delta, atol=tol), (method, (total - delta).abs().max())
        assert not attr["vision"].any() and attr["text"].abs().sum() > 0 and attr["audio"].abs().sum() > 0
    # linear in its input: IG is exactly weight x input
    lin = TextOnly()
    attr = integrated_gradients(lin, batch, steps=2)
    expected = batch["text"] * lin.lin.weight.view(1, 1, -1) / T
    assert torch.allclose(attr["text"], expected, atol=1e-6)
    assert lin.lin.weight.grad is None  # no parameter gradients
    result = modality_attribution(model, data, steps=16, batch_size=4)
    assert result["shares"]["vision"] == 0.0 and sum(result["shares"].values()) == pytest.approx(1.0)
    assert result["completeness_gap"] < 1e-4 and result["n"] == 6
    assert modality_attribution(TextOnly(), data, steps=4)["shares"] == {"text": 1.0, "audio": 0.0, "vision": 0.0}


def test_target_output_rules():
    out = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.5, 0.5, -1.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    # present: +(1-0); absent: -(0-2); present: +(0.5-0.5); absent: -(1-(-1))
    assert target_output(out, {"labels": labels}, "labels").item() == pytest.approx(1 + 2 + 0 - 2)
    onehot = torch.stack([1 - labels, labels], dim=-1)
    assert target_output(out, {"labels": onehot}, "labels").item() == pytest.approx(1.0)
    assert torch.equal(target_output(torch.tensor([[0.1, 0.9, 0.3]]), {"y": torch.tensor([2])}, "y"),
                       torch.tensor([0.3]))
    assert torch.equal(target_output(torch.tensor([[2.5]]), {}), torch.tensor([2.5]))
    with pytest.raises(KeyError, match="need the targets"):
        target_output(out, {}, "labels")


def test_smoke_tiny_mult_end_to_end(tmp_path):
    path = make_mult(tmp_path / "iemocap.pkl", "iemocap", seed=0, sizes={"train": 4, "valid": 2, "test": 12},
                     dims={"text": 8, "audio": 6, "vision": 5}, lengths=6)
    test = load_mult(path, "iemocap")["test"]
    torch.manual_seed(0)
    model = MulT.for_data(test, d=4, num_heads=2, layers=1, kernel_sizes=(1, 1, 1), positions="all").train()
    study = missing_modality_study(model, test, iemocap_mean_acc, batch_size=8)
    assert model.training  # mode restored
    assert list(study["scenarios"]) == [s.name for s in SCENARIOS]
    assert all(0.0 <= r["score"] <= 1.0 for r in study["scenarios"].values())
    assert math.isfinite(study["summary"]["std_drop"])
    shares = drop_share(study)
    assert all(math.isnan(v) for v in shares.values()) or sum(shares.values()) == pytest.approx(1.0)
    result = modality_attribution(model, test, steps=4, batch_size=8, max_samples=6)
    assert result["n"] == 6 and sum(result["shares"].values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in result["shares"].values()) and math.isfinite(result["completeness_gap"])


# --------------------------------------------------------------------------- Captum against the hand-written quadrature


def _hand_written_ig(model, batch, steps, method="gausslegendre"):
    """The quadrature this module computed before it used Captum: sum_k w_k * grad f(alpha_k x) * x."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
    else:
        alphas, weights = [(k + 0.5) / steps for k in range(steps)], [1.0 / steps] * steps
    totals = {m: torch.zeros_like(batch[m]) for m in MODS}
    for alpha, weight in zip(alphas, weights):
        scaled = {m: (batch[m] * float(alpha)).requires_grad_(True) for m in MODS}
        grads = torch.autograd.grad(model(scaled)[:, 0].sum(), [scaled[m] for m in MODS], allow_unused=True)
        for m, g in zip(MODS, grads):
            if g is not None:
                totals[m] += float(weight) * g
    return {m: batch[m] * totals[m] for m in MODS}


@pytest.mark.parametrize("method, steps", [("gausslegendre", 16), ("riemann_middle", 8)])
def test_captum_integrated_gradients_equal_the_hand_written_quadrature(method, steps):
    data, model = DictData(n=6), Smooth().eval()
    batch = {**{m: data.x[m] * 1.5 for m in MODS}, "label": data.y, "index": torch.arange(6)}
    ours = integrated_gradients(model, batch, steps=steps, method=method)
    reference = _hand_written_ig(model, {m: batch[m] for m in MODS}, steps, method)
    for m in MODS:
        torch.testing.assert_close(ours[m], reference[m], rtol=1e-5, atol=1e-6)


def test_shapley_values_add_up_and_give_an_ignored_modality_nothing():
    from reprolib.causal.modalities import shapley_attribution

    data, model = DictData(n=10), Smooth().eval()
    result = shapley_attribution(model, data, batch_size=4)
    assert result["n"] == 10 and result["efficiency_gap"] < 1e-5 and result["mean_abs_delta"] > 0
    assert result["shares"]["vision"] == 0.0 and sum(result["shares"].values()) == pytest.approx(1.0)
    # one modality only: its Shapley value is f(x) - f(0), so the text takes the whole share
    assert shapley_attribution(TextOnly(), data)["shares"] == {"text": 1.0, "audio": 0.0, "vision": 0.0}


def test_shapley_values_of_two_players_are_the_textbook_ones():
    """f = text term x audio term: with x = both present and 0 = both absent, each of the two gets half of
    the interaction (f(t, 0) = f(0, a) = f(0, 0) = 0 here), by symmetry."""
    from reprolib.causal.modalities import shapley_attribution

    class Product(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, batch):
            return (batch["text"].sum((1, 2)) * batch["audio"].sum((1, 2)) * self.w).view(-1, 1)

    data = DictData(n=5)
    result = shapley_attribution(Product(), data)
    f_x = (data.x["text"].sum((1, 2)) * data.x["audio"].sum((1, 2))).abs().mean()
    assert result["mean_abs"]["text"] == pytest.approx(float(f_x) / 2, rel=1e-5)
    assert result["mean_abs"]["audio"] == pytest.approx(float(f_x) / 2, rel=1e-5)
    assert result["mean_abs"]["vision"] == 0.0


def test_shapley_from_the_corners_equals_captum_shapley_values():
    """The 2^3 corners scored once give Captum's ShapleyValues (all 3! orders), per sample."""
    from captum.attr import ShapleyValues

    from reprolib.causal.modalities import _as_function, shapley_attribution, target_output

    data, model = DictData(n=7), Smooth().eval()
    batch = {**{m: data.x[m] for m in MODS}, "label": data.y, "index": torch.arange(7)}
    inputs = tuple(batch[m] for m in MODS)
    masks = tuple(torch.full((1, *x.shape[1:]), i, dtype=torch.long) for i, x in enumerate(inputs))
    calls = []

    def counted(b):
        calls.append(1)
        return model(b)

    with torch.no_grad():
        phi = ShapleyValues(_as_function(counted, batch, MODS, lambda out, b: target_output(out, b, "label"))).attribute(
            inputs, baselines=tuple(torch.zeros_like(x) for x in inputs), feature_mask=masks)
    reference = {m: p.flatten(1)[:, 0] for m, p in zip(MODS, phi)}
    ours = shapley_attribution(model, data, batch_size=7)
    for m in MODS:
        assert ours["mean_signed"][m] == pytest.approx(float(reference[m].mean()), rel=1e-5, abs=1e-7)
        assert ours["mean_abs"][m] == pytest.approx(float(reference[m].abs().mean()), rel=1e-5, abs=1e-7)
    assert len(calls) == 19  # what the docstring says Captum needs; the corners take 8


def test_studies_of_several_outputs_equal_one_study_per_output():
    from reprolib.causal.modalities import missing_modality_studies

    data, model = DictData(n=12), Smooth().eval()
    score = sign_accuracy(data, model)
    both = lambda b: {"plain": model(b), "negated": -model(b)}
    studies, (full, targets) = missing_modality_studies(model, data, score, forward=both, keys=("plain", "negated"),
                                                        batch_size=5)
    assert studies["plain"] == missing_modality_study(model, data, score, batch_size=5)
    assert studies["negated"] == missing_modality_study(model, data, score, batch_size=5, forward=lambda b: -model(b))
    torch.testing.assert_close(full["plain"], model({m: data.x[m] for m in MODS}))
    assert len(targets) == 12
