"""CLEF and the shared fusion algebra: TIE, losses, KL gradient routing, ablations, frozen schedule, engine."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from reprolib.causal.clef import CLEF, ContextOnly, NoContext, context_branch
from reprolib.causal.fusion import (FUSION_MODES, bernoulli_log_probs, fuse, natural_direct_effect, total_effect,
                                    total_indirect_effect, void_like)
from reprolib.engine import fit, predict

B, K, D = 5, 4, 6


class FromBatch(nn.Module):
    """A fake baseline whose logits are given in the batch (``y_e``)."""

    target_key = "label"
    views = ("subject",)

    def forward(self, batch):
        return batch["y_e"]


class LinearBaseline(nn.Module):
    """A fake baseline with parameters: BatchNorm + Linear on a small subject vector."""

    views = ("subject",)

    def __init__(self, multilabel=False, in_dim=D):
        super().__init__()
        self.target_key = "labels" if multilabel else "label"
        self.norm = nn.BatchNorm1d(in_dim)
        self.classifier = nn.Linear(in_dim, K)

    def forward(self, batch):
        return self.classifier(self.norm(batch["subject"].flatten(1)))


def vector_batch(multilabel=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {"subject": torch.randn(B, D, generator=g), "context": torch.randn(B, D, generator=g),
             "image": torch.randn(B, D, generator=g), "y_e": torch.randn(B, K, generator=g)}
    if multilabel:
        batch["labels"] = (torch.rand(B, K, generator=g) > 0.5).float()
    else:
        batch["label"] = torch.randint(0, K, (B,), generator=g)
    return batch


def linear_clef(multilabel=False, **kw):
    torch.manual_seed(0)
    clef = CLEF(LinearBaseline(multilabel), nn.Linear(D, K), K, multilabel=multilabel, **kw)
    with torch.no_grad():
        clef.y_e_star.uniform_(-1, 1)  # away from 0 so that mask fusion and the checks are not degenerate
    return clef


# ---- fusion and effects ------------------------------------------------------------------------------

def test_fusion_formulas():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randn(3, K, generator=g) for _ in range(3))
    assert torch.allclose(fuse("sum", a, b, c), torch.log(torch.sigmoid(a + b + c)), atol=1e-6)
    u = torch.sigmoid(a) * torch.sigmoid(b)
    assert torch.allclose(fuse("hm", a, b), torch.log(u / (1 + u)), atol=1e-6)
    assert torch.allclose(fuse("hm", b, a), fuse("hm", a, b))
    assert torch.allclose(fuse("mask", a, b, c), a * torch.sigmoid(b + c))
    assert torch.equal(fuse("rubi", a, b), fuse("mask", a, b))
    assert torch.allclose(fuse("tanh", a, b, c), a + torch.tanh(b) + torch.tanh(c))


def test_hm_is_finite_with_finite_gradients_for_large_inputs():
    x = torch.tensor([[-1e4, -80.0, 0.0, 80.0, 1e4]], requires_grad=True)
    y = torch.tensor([[-1e4, 50.0, 0.0, 80.0, 1e4]])
    out = fuse("hm", x, y)
    assert torch.isfinite(out).all()
    assert out[0, -1].item() == pytest.approx(-math.log(2), abs=1e-6)  # u -> 1: log(1/2)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_bernoulli_log_probs_per_mode():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, K, generator=g), torch.randn(3, K, generator=g)
    log_p, log_not_p = bernoulli_log_probs("sum", a, b)
    assert torch.allclose(log_p.exp(), torch.sigmoid(a + b), atol=1e-6)
    u = torch.sigmoid(a) * torch.sigmoid(b)
    log_p, log_not_p = bernoulli_log_probs("hm", a, b)
    assert torch.allclose(log_p.exp(), u, atol=1e-6) and torch.allclose(log_not_p.exp(), 1 - u, atol=1e-6)
    log_p, _ = bernoulli_log_probs("tanh", a, b)
    assert torch.allclose(log_p.exp(), torch.sigmoid(a + torch.tanh(b)), atol=1e-6)
    big = torch.full((1, 3), 200.0, requires_grad=True)  # p = 1 in float: still finite, no NaN gradient
    log_p, log_not_p = bernoulli_log_probs("hm", big, big)
    (log_p + log_not_p).sum().backward()
    assert torch.isfinite(log_not_p).all() and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("bad", ["lm", "SUM", ""])
def test_unknown_fusion_mode_is_refused(bad):
    with pytest.raises(ValueError, match="valid modes: sum, hm, mask, rubi, tanh"):
        fuse(bad, torch.zeros(1, K), torch.zeros(1, K))
    with pytest.raises(ValueError, match="unknown fusion mode"):
        CLEF(FromBatch(), nn.Identity(), K, fusion=bad)
    with pytest.raises(ValueError, match="at least one direct"):
        fuse("sum", torch.zeros(1, K))


def test_effects_algebra_one_and_three_direct_paths():
    g = torch.Generator().manual_seed(3)
    fact, ref, *cfs = (torch.randn(2, K, generator=g) for _ in range(5))
    te, nde = total_effect(fact, ref), natural_direct_effect(cfs[0], ref)
    assert torch.allclose(total_indirect_effect(fact, cfs[0]), te - nde)
    # CausalMER: TIE = TE - NDE_t - NDE_a - NDE_v = F - C_t - C_a - C_v + 2 R
    tie = total_indirect_effect(fact, *cfs, reference=ref)
    manual = te - sum(natural_direct_effect(c, ref) for c in cfs)
    assert torch.allclose(tie, manual, atol=1e-6)
    assert torch.allclose(tie, fact - sum(cfs) + 2 * ref, atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        total_indirect_effect(fact, *cfs)


def test_void_like_broadcasts_and_keeps_the_gradient():
    star = nn.Parameter(torch.arange(K, dtype=torch.float32))
    void = void_like(torch.zeros(3, K), star)
    assert void.shape == (3, K) and torch.equal(void[0], void[2])
    void.sum().backward()
    assert torch.equal(star.grad, torch.full((K,), 3.0))
    assert torch.equal(void_like(torch.zeros(2, K), 0.5), torch.full((2, K), 0.5))


# ---- CLEF outputs ------------------------------------------------------------------------------------

def test_tie_is_the_difference_of_log_sigmoids():
    batch = vector_batch()
    clef = CLEF(FromBatch(), nn.Identity(), K)
    with torch.no_grad():
        clef.y_e_star.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    y_c, y_e, star = batch["context"][:, :K], batch["y_e"], clef.y_e_star
    batch_k = dict(batch, context=y_c)
    out = clef.outputs(batch_k)
    expected = F.logsigmoid(y_c + y_e) - F.logsigmoid(y_c + star)
    assert torch.allclose(out["tie"], expected, atol=1e-6)
    assert torch.allclose(out["fused"], F.logsigmoid(y_c + y_e))
    assert torch.allclose(out["counterfactual"], F.logsigmoid(y_c + star))
    assert torch.equal(clef(batch_k), out["tie"])
    assert torch.equal(clef.factual_scores(batch_k), out["fused"])
    assert out["y_e_star"].shape == (B, K) and torch.equal(out["y_e_star"][0], out["y_e_star"][-1])
    assert clef.views == ("subject", "context")


def test_tie_vanishes_for_a_class_the_context_explains():
    batch = vector_batch()
    y_c = torch.zeros(B, K)
    y_c[:, 2] = 50.0
    clef = CLEF(FromBatch(), nn.Identity(), K)
    with torch.no_grad():
        clef.y_e_star.fill_(-1.0)
    tie = clef(dict(batch, context=y_c))
    assert tie[:, 2].abs().max() < 1e-6
    assert tie[:, [0, 1, 3]].abs().max() > 1e-2


def test_y_e_star_starts_at_the_uniform_logits_and_is_sized_by_num_classes():
    clef = CLEF(FromBatch(), nn.Identity(), 7)
    assert isinstance(clef.y_e_star, nn.Parameter) and torch.equal(clef.y_e_star, torch.zeros(7))
    assert torch.allclose(torch.softmax(clef.y_e_star, 0), torch.full((7,), 1 / 7))
    drawn = CLEF(FromBatch(), nn.Identity(), 7, star_init="rand").y_e_star
    assert drawn.shape == (7,) and (drawn >= 0).all() and (drawn < 1).all()
    assert "y_e_star" in clef.state_dict()
    with pytest.raises(ValueError, match="star_init"):
        CLEF(FromBatch(), nn.Identity(), 7, star_init="randn")


def test_no_mask_ablation_reads_the_whole_image():
    batch = vector_batch()
    masked = CLEF(FromBatch(), nn.Identity(), K)
    whole = CLEF(FromBatch(), nn.Identity(), K, mask_context=False)
    short = {k: (v[:, :K] if k in ("context", "image") else v) for k, v in batch.items()}
    assert torch.equal(masked.outputs(short)["y_c"], short["context"])
    assert torch.equal(whole.outputs(short)["y_c"], short["image"])
    assert whole.views == ("subject", "image")


def test_wrong_branch_shapes_and_targets_are_refused():
    batch = vector_batch()
    with pytest.raises(ValueError, match="context branch must return"):
        CLEF(FromBatch(), nn.Linear(D, K + 1), K).outputs(batch)
    with pytest.raises(ValueError, match="factual branch must return"):
        CLEF(FromBatch(), nn.Linear(D, K), K + 1).outputs(batch)
    with pytest.raises(ValueError, match="trains on 'label'"):
        CLEF(FromBatch(), nn.Identity(), K, multilabel=True)
    single, multi = linear_clef(), linear_clef(multilabel=True)
    with pytest.raises(ValueError, match="class indices"):
        single.loss(single.outputs(batch), torch.zeros(B, K))
    with pytest.raises(ValueError, match="multi-hot"):
        multi.loss(multi.outputs(batch), torch.zeros(B, dtype=torch.long))


# ---- losses ------------------------------------------------------------------------------------------

def test_single_label_loss_terms():
    batch = vector_batch()
    clef = linear_clef()
    out = clef.outputs(batch)
    losses = clef.loss(out, batch["label"])
    y = batch["label"]
    assert torch.allclose(losses["task_fused"], F.cross_entropy(F.logsigmoid(out["y_c"] + out["y_e"]), y))
    assert torch.allclose(losses["task_counterfactual"],
                          F.cross_entropy(F.logsigmoid(out["y_c"] + clef.y_e_star), y))
    target = torch.softmax(out["fused"], 1)
    cf = F.logsigmoid(out["y_c"] + clef.y_e_star)
    assert torch.allclose(losses["kl"], F.kl_div(F.log_softmax(cf, 1), target, reduction="batchmean"), atol=1e-6)
    assert losses["kl"] >= 0
    assert torch.allclose(losses["total"], losses["task_fused"] + losses["task_counterfactual"] + losses["kl"])
    assert torch.allclose(clef.training_loss(batch), losses["total"])


def test_multilabel_loss_is_per_class_bce_on_the_summed_logits():
    batch = vector_batch(multilabel=True)
    clef = linear_clef(multilabel=True)
    out = clef.outputs(batch)
    losses = clef.loss(out, batch["labels"])
    t = batch["labels"]
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(losses["task_fused"], bce(out["y_c"] + out["y_e"], t), atol=1e-6)
    assert torch.allclose(losses["task_counterfactual"], bce(out["y_c"] + clef.y_e_star, t), atol=1e-6)
    p, q = torch.sigmoid(out["y_c"] + out["y_e"]), torch.sigmoid(out["y_c"] + clef.y_e_star)
    kl = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    assert torch.allclose(losses["kl"], kl.mean(), atol=1e-6)
    assert torch.allclose(losses["total"], losses["task_fused"] + losses["task_counterfactual"] + losses["kl"])
    assert out["tie"].shape == (B, K) and torch.isfinite(out["tie"]).all()


@pytest.mark.parametrize("multilabel", [False, True])
def test_kl_false_drops_the_term(multilabel):
    batch = vector_batch(multilabel)
    clef = linear_clef(multilabel, kl=False)
    losses = clef.loss(clef.outputs(batch), batch[clef.target_key])
    assert losses["kl"].item() == 0.0
    assert torch.allclose(losses["total"], losses["task_fused"] + losses["task_counterfactual"])


@pytest.mark.parametrize("mode", FUSION_MODES)
@pytest.mark.parametrize("multilabel", [False, True])
def test_kl_gradient_reaches_only_y_e_star(mode, multilabel):
    batch = vector_batch(multilabel)
    clef = linear_clef(multilabel, fusion=mode)
    losses = clef.loss(clef.outputs(batch), batch[clef.target_key])
    assert all(torch.isfinite(v) for v in losses.values())
    losses["kl"].backward()
    assert clef.y_e_star.grad is not None and clef.y_e_star.grad.abs().sum() > 0
    for name, p in clef.named_parameters():
        if name != "y_e_star":
            assert p.grad is None or not p.grad.any(), name


@pytest.mark.parametrize("mode", FUSION_MODES)
def test_task_terms_train_every_part(mode):
    batch = vector_batch()
    clef = linear_clef(fusion=mode)
    clef.training_loss(batch).backward()
    assert clef.factual.classifier.weight.grad.abs().sum() > 0
    assert clef.context.weight.grad.abs().sum() > 0
    assert clef.y_e_star.grad.abs().sum() > 0


# ---- schedule and engine -----------------------------------------------------------------------------

def test_frozen_factual_gets_no_gradient_and_stays_in_eval_mode():
    batch = vector_batch()
    clef = linear_clef().freeze_factual()
    clef.train()
    assert clef.training and clef.context.training and not clef.factual.training
    assert not clef.factual.norm.training
    stats = clef.factual.norm.running_mean.clone()
    clef.training_loss(batch).backward()
    assert torch.equal(clef.factual.norm.running_mean, stats)
    assert all(p.grad is None and not p.requires_grad for p in clef.factual.parameters())
    assert clef.context.weight.grad is not None and clef.y_e_star.grad is not None
    clef.freeze_factual(False)
    assert clef.factual.training and all(p.requires_grad for p in clef.factual.parameters())


class TinyBaseline(nn.Module):
    """Linear on the flattened 8x8 subject image."""

    views = ("subject",)

    def __init__(self, multilabel):
        super().__init__()
        self.target_key = "labels" if multilabel else "label"
        self.classifier = nn.Linear(3 * 8 * 8, K)

    def forward(self, batch):
        return self.classifier(batch["subject"].flatten(1))


def image_dataset(n, multilabel, seed):
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        item = {v: torch.rand(3, 8, 8, generator=g) for v in ("subject", "context", "image")}
        if multilabel:
            item["labels"] = (torch.rand(K, generator=g) > 0.5).float()
        else:
            item["label"] = torch.tensor(i % K)
        items.append(item)
    return items


@pytest.mark.parametrize("multilabel", [False, True])
def test_engine_fits_and_predicts_tie_scores(multilabel):
    torch.manual_seed(0)
    clef = CLEF(TinyBaseline(multilabel), context_branch(K, widths=(4, 8)), K, multilabel=multilabel)
    train, val = image_dataset(16, multilabel, 0), image_dataset(8, multilabel, 1)
    result = fit(clef, train, val, epochs=1, batch_size=8, device="cpu", num_workers=0, target_key=clef.target_key)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["train_loss"])
    scores, targets = predict(clef, val, target_key=clef.target_key, device="cpu", num_workers=0)
    assert scores.shape == (8, K) and torch.isfinite(scores).all()
    clef.eval()
    with torch.no_grad():
        batch = {k: torch.stack([item[k] for item in val]) for k in val[0]}
        assert torch.allclose(scores, clef.outputs(batch)["tie"], atol=1e-6)


def test_engine_with_frozen_factual_leaves_the_baseline_unchanged():
    torch.manual_seed(0)
    clef = CLEF(TinyBaseline(False), context_branch(K, widths=(4, 8)), K).freeze_factual()
    before = {k: v.clone() for k, v in clef.factual.state_dict().items()}
    star = clef.y_e_star.detach().clone()
    fit(clef, image_dataset(16, False, 0), image_dataset(8, False, 1), epochs=1, batch_size=8, device="cpu",
        num_workers=0)
    assert all(torch.equal(before[k], v) for k, v in clef.factual.state_dict().items())
    assert not torch.equal(clef.y_e_star.detach(), star)


def test_context_branch_maps_an_image_to_logits():
    branch = context_branch(K, widths=(4, 8))
    assert branch(torch.rand(2, 3, 8, 8)).shape == (2, K)
    with pytest.raises(ValueError, match="unknown encoder"):
        context_branch(K, backbone="vgg")


def test_y_e_star_alone_takes_no_weight_decay():
    from reprolib.engine import without_decay

    clef = linear_clef()
    groups = without_decay(clef, [p for p in clef.parameters() if p.requires_grad])
    exempt = [g["params"] for g in groups if g.get("weight_decay") == 0.0]
    assert len(exempt) == 1 and len(exempt[0]) == 1 and exempt[0][0] is clef.y_e_star


def test_average_star_tracks_the_mean_factual_output_and_is_not_learned():
    clef = CLEF(FromBatch(), nn.Identity(), K, star="average")
    assert "y_e_star" not in dict(clef.named_parameters()) and "y_e_star" in clef.state_dict()
    assert clef.no_weight_decay() == ()
    batch = vector_batch()
    batch["context"] = batch["context"][:, :K]
    for _ in range(200):
        clef.train().outputs(batch)
    assert torch.allclose(clef.y_e_star, batch["y_e"].mean(0), atol=1e-4)
    frozen = clef.y_e_star.clone()
    clef.eval().outputs(dict(batch, y_e=batch["y_e"] + 5))  # evaluation reads it and leaves it alone
    assert torch.equal(clef.y_e_star, frozen)


def test_random_star_is_fixed_and_seeded():
    torch.manual_seed(0)
    first = CLEF(FromBatch(), nn.Identity(), K, star="random")
    torch.manual_seed(0)
    again = CLEF(FromBatch(), nn.Identity(), K, star="random")
    assert torch.equal(first.y_e_star, again.y_e_star) and first.y_e_star.abs().sum() > 0
    assert not first.y_e_star.requires_grad and first.no_weight_decay() == ()
    with pytest.raises(ValueError, match="star must be one of"):
        CLEF(FromBatch(), nn.Identity(), K, star="mean")


def test_without_the_context_branch_tie_is_the_baseline_against_y_e_star():
    clef = CLEF(FromBatch(), NoContext(K), K)
    batch = vector_batch()
    out = clef.outputs(batch)
    assert torch.equal(out["y_c"], torch.zeros(B, K))
    assert torch.allclose(out["tie"], F.logsigmoid(batch["y_e"]) - F.logsigmoid(out["y_e_star"]))


def test_context_only_reads_the_masked_context():
    model = ContextOnly(nn.Linear(D, K))
    batch = vector_batch()
    assert torch.equal(model(batch), model.context(batch["context"]))
    assert model.views == ("context",)
