"""CausalMER: the TIE identity for every fusion, the counterfactual terms, the paper-code loss and its KL
gradient routing, the MOSEI one-output KL case (fixed and faithful), training on make_mult data, the text
branch's local weights and the missing-modality helper."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import default_collate

from reprolib.causal.causalmer import (AlbertLikeEncoder, CausalMER, DegenerateKLWarning, TextBranch,
                                       TextEncoderConfig, build_causalmer, zero_modalities)
from reprolib.causal.fusion import FUSION_MODES, fuse
from reprolib.data.mult import load_mult
from reprolib.data.synthetic import make_mult
from reprolib.engine import fit, predict
from reprolib.metrics import iemocap_metrics

DIMS = {"text": 12, "audio": 10, "vision": 8}
TEXT = TextEncoderConfig(embedding_size=8, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                         max_positions=32)
MULT = dict(d=8, num_heads=2, layers=1, attn_dropout=0.0, relu_dropout=0.0, res_dropout=0.0,
            embed_dropout=0.0, out_dropout=0.0)


def _data(root, dataset, n_train=8):
    path = make_mult(root / f"{dataset}.pkl", dataset, seed=0, sizes={"train": n_train, "valid": 4, "test": 2},
                     dims=DIMS, lengths=8, left_pad=0.2)
    return load_mult(path, dataset)


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    return _data(tmp_path_factory.mktemp("causalmer"), "iemocap")


@pytest.fixture(scope="module")
def mosei(tmp_path_factory):
    return _data(tmp_path_factory.mktemp("causalmer"), "mosei")


def _model(data, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("branch_encoder", "small")
    kw.setdefault("branch_widths", (4, 4))
    return build_causalmer(data, mult=MULT, text=TEXT, **kw)


def _batch(ds, n=4):
    return default_collate([ds[i] for i in range(n)])


def _set_constants(model, values=(0.7, -0.4, 0.3)):
    with torch.no_grad():
        for c, v in zip(model.constants(), values):
            c.fill_(v)


def _hand_fused(mode, out, c_t, c_a, c_v):
    """Z_fact, Z_T, Z_A, Z_V, Z_0 written out from the notes (section 1.3 / 1.5)."""
    z_m, z_t, z_a, z_v = out["z_m"], out["z_t"], out["z_a"], out["z_v"]
    full = torch.full_like
    c = c_t + c_a + c_v
    return (fuse(mode, z_m, z_t, z_a, z_v),
            fuse(mode, full(z_m, c_t), z_t, full(z_a, c_t), full(z_v, c_t)),
            fuse(mode, full(z_m, c_a), full(z_t, c_a), z_a, full(z_v, c_a)),
            fuse(mode, full(z_m, c_v), full(z_t, c_v), full(z_a, c_v), z_v),
            fuse(mode, *(full(z_m, c) for _ in range(4))))


@pytest.mark.parametrize("mode", FUSION_MODES)
def test_tie_identity(iemocap, mode):
    batch = _batch(iemocap["train"])
    model = _model(iemocap["train"], fusion=mode).eval()
    _set_constants(model)
    with torch.no_grad():
        out = model.outputs(batch)
        tie = model(batch)
    assert tie.shape == (4, 8)
    by_hand = _hand_fused(mode, out, 0.7, -0.4, 0.3)
    for key, expected in zip(("Z_fact", "Z_T", "Z_A", "Z_V", "Z_0"), by_hand):
        assert torch.allclose(out[key], expected, atol=1e-6), key
    z_fact, z_t, z_a, z_v, z_0 = by_hand
    assert torch.allclose(tie, z_fact - z_t - z_a - z_v + 2 * z_0, atol=1e-5)
    # TIE = TE - NDE_T - NDE_A - NDE_V with the loss-side te / nde (same constants, so same values)
    assert torch.allclose(tie, out["te"] - out["nde"], atol=1e-5)
    assert torch.allclose(out["nde_t"], z_t - z_0, atol=1e-6)


def test_mask_fusion_written_out(iemocap):
    batch = _batch(iemocap["train"])
    model = _model(iemocap["train"]).eval()
    _set_constants(model)
    with torch.no_grad():
        out = model.outputs(batch)
    c_t, c = 0.7, 0.7 - 0.4 + 0.3
    assert torch.allclose(out["Z_T"], c_t * torch.sigmoid(out["z_t"] + 2 * c_t), atol=1e-6)
    assert torch.allclose(out["Z_0"], torch.full_like(out["Z_0"], c * torch.sigmoid(torch.tensor(3 * c)).item()))
    assert torch.allclose(out["Z_fact"], out["z_m"] * torch.sigmoid(out["z_t"] + out["z_a"] + out["z_v"]))
    # constants at their initial 0: every counterfactual vanishes and TIE = Z_fact (notes 1.5)
    _set_constants(model, (0.0, 0.0, 0.0))
    with torch.no_grad():
        out = model.outputs(batch)
    assert torch.equal(out["tie"], out["Z_fact"])


def test_outputs_and_inference_metrics(iemocap):
    model = _model(iemocap["train"])
    assert model.target_key == "labels" and model.views == ("text", "audio", "vision")
    out = model.outputs(_batch(iemocap["train"]))
    assert out["features"].shape == (4, 48)
    assert all(v.shape[0] == 4 for v in out.values())
    assert out["Z_0"].grad_fn is None and out["te"].requires_grad  # constants: detached for TIE, live for te
    scores, targets = predict(model, iemocap["val"], target_key="labels")
    assert scores.shape == (4, 8)
    assert set(iemocap_metrics(scores, targets)) >= {"mean_acc", "acc_neutral"}


def test_loss_keys_and_total(iemocap):
    batch = _batch(iemocap["train"])
    model = _model(iemocap["train"])
    _set_constants(model)
    out = model.outputs(batch)
    loss = model.loss(out, batch["labels"])
    assert set(loss) == {"total", "cls_fact", "cls_text", "cls_audio", "cls_vision", "kl"}
    assert torch.allclose(loss["total"], sum(v for k, v in loss.items() if k != "total"))
    target = batch["labels"].long().view(-1)
    assert torch.allclose(loss["cls_fact"], 0.1 * F.cross_entropy(out["Z_fact"].view(-1, 2), target))
    assert torch.allclose(loss["cls_audio"], 0.1 * F.cross_entropy(out["z_a"].view(-1, 2), target))
    # the KL of the paper code: cross-entropies between softmaxes over all 8 logits jointly
    def h(p, q):
        return -(F.softmax(p, -1) * F.log_softmax(q, -1)).sum(-1).mean()
    te, t, a, v = out["te"], out["nde_t"], out["nde_a"], out["nde_v"]
    kl = h(te, t + a + v) + (h(t, a) + h(a, v) + h(v, t)) / 3 + h(te, t) + h(te, a) + h(te, v)
    assert torch.allclose(loss["kl"], kl)
    assert torch.allclose(model.training_loss(batch), loss["total"])  # dropout is 0 in these tiny models


def test_kl_gradient_reaches_only_the_constants(iemocap):
    batch = _batch(iemocap["train"])
    model = _model(iemocap["train"])
    _set_constants(model)
    loss = model.loss(model.outputs(batch), batch["labels"])
    loss["kl"].backward(retain_graph=True)
    constants = {id(c) for c in model.constants()}
    for name, p in model.named_parameters():
        if id(p) in constants:
            assert p.grad is not None and p.grad.abs() > 0, name
        else:
            assert p.grad is None or not p.grad.any(), name
    model.zero_grad(set_to_none=True)
    (loss["total"] - loss["kl"]).backward()  # the classification terms: branches, never the constants
    for c in model.constants():
        assert c.grad is None or c.grad == 0
    for part in (model.backbone, model.text, model.audio, model.vision):
        assert any(p.grad is not None and p.grad.any() for p in part.parameters())


def test_mosei_one_output_kl_is_fixed_by_default(mosei):
    batch = _batch(mosei["train"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateKLWarning)
        model = _model(mosei["train"])
    assert (model.task, model.target_key, model.kl_mode) == ("regression", "label", "bernoulli")
    assert not model.degenerate_kl
    out = model.outputs(batch)
    assert out["tie"].shape == (4, 1)
    loss = model.loss(out, batch["label"])
    assert torch.allclose(loss["cls_fact"], 0.1 * (out["Z_fact"].squeeze(1) - batch["label"]).abs().mean())
    assert loss["kl"] > 0
    loss["kl"].backward()
    assert all(c.grad is not None and c.grad.abs() > 0 for c in model.constants())


def test_mosei_faithful_kl_is_identically_zero(mosei):
    batch = _batch(mosei["train"])
    with pytest.warns(DegenerateKLWarning, match="identically"):
        model = _model(mosei["train"], kl="joint")
    assert model.degenerate_kl
    _set_constants(model)
    loss = model.loss(model.outputs(batch), batch["label"])
    assert loss["kl"].item() == 0.0
    loss["total"].backward()
    assert all(c.grad is None or c.grad == 0 for c in model.constants())  # the constants never train


def test_other_kl_modes(iemocap, mosei):
    batch = _batch(iemocap["train"])
    pairs = _model(iemocap["train"], kl="pairs")
    _set_constants(pairs)
    out = pairs.outputs(batch)
    p, q = out["te"].view(4, 4, 2), out["nde"].view(4, 4, 2)
    expected = -(F.softmax(p, -1) * F.log_softmax(q, -1)).sum((-1, -2)).mean()
    assert torch.allclose(pairs.cross_entropy(out["te"], out["nde"]), expected)
    off = _model(iemocap["train"], kl="off")
    assert off.loss(off.outputs(batch), batch["labels"])["kl"] == 0
    with pytest.raises(ValueError, match="IEMOCAP"):
        _model(mosei["train"], kl="pairs")
    with pytest.raises(ValueError, match="kl must be"):
        _model(iemocap["train"], kl="mse")
    cls = _model(mosei["train"], mosei_task="cls")
    assert cls.target_key == "label_cls" and cls.kl_mode == "joint"
    mb = _batch(mosei["train"])
    assert torch.isfinite(cls.training_loss(mb)) and cls(mb).shape == (4, 7)


@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
def test_two_optimisation_steps_decrease_the_loss(iemocap, mosei, dataset):
    data = {"iemocap": iemocap, "mosei": mosei}[dataset]["train"]
    batch = _batch(data, 8)
    model = _model(data).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model.training_loss(batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[0]


def test_engine_fit_runs(iemocap):
    model = _model(iemocap["train"])
    result = fit(model, iemocap["train"], iemocap["val"], epochs=1, batch_size=4, target_key="labels",
                 metric=lambda s, t: iemocap_metrics(s, t)["mean_acc"], device="cpu")
    assert len(result.history) == 1 and 0.0 <= result.best_val <= 1.0


def test_resnet_branches_and_parameter_groups(iemocap):
    model = _model(iemocap["train"], branch_encoder="resnet18", branch_widths=None)
    batch = _batch(iemocap["train"])
    assert model.audio(batch["audio"]).shape == (4, 8)  # ResNet-18 on a [4, 1, 8, 10] "image"
    assert model.audio.encoder.conv1.in_channels == 1
    groups = model.parameter_groups(2e-3, text_lr=1e-6)
    assert [g["name"] for g in groups] == ["backbone", "text", "audio", "vision", "constants"]
    assert groups[1]["lr"] == 1e-6 and groups[0]["lr"] == 2e-3
    flat = [id(p) for g in groups for p in g["params"]]
    assert sorted(flat) == sorted(id(p) for p in model.parameters())


def test_text_branch_loads_local_albert_weights(tmp_path):
    torch.manual_seed(0)
    source = AlbertLikeEncoder(TEXT)
    hf = {f"albert.{k}": v for k, v in source.state_dict().items()}
    hf["albert.embeddings.word_embeddings.weight"] = torch.randn(30, 8)  # unused by inputs_embeds
    hf["albert.pooler.weight"] = torch.randn(8, 8)                      # not part of the branch
    torch.save(hf, tmp_path / "pytorch_model.bin")
    branch = TextBranch(12, 8, TEXT, weights=tmp_path / "pytorch_model.bin")
    assert all(torch.equal(branch.encoder.state_dict()[k], v) for k, v in source.state_dict().items())
    torch.save(branch.state_dict(), tmp_path / "branch.pt")  # this repo's whole-branch checkpoint
    again = TextBranch(12, 8, TEXT, weights=tmp_path / "branch.pt")
    x = torch.randn(2, 5, 12)
    assert torch.equal(branch(x), again(x))
    with pytest.raises(ValueError, match="pytorch_model.bin.*do not fit"):
        TextBranch(12, 8, TextEncoderConfig(embedding_size=8, hidden_size=16, num_heads=2),
                   weights=tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="missing"):
        TextBranch(12, 8, TEXT, weights=tmp_path / "nope.bin")
    unshared = TextEncoderConfig(embedding_size=8, hidden_size=8, num_layers=3, num_heads=2, intermediate_size=16,
                                 share_layers=False)
    assert len(AlbertLikeEncoder(unshared).encoder.albert_layer_groups) == 3
    assert TextEncoderConfig.albert_base_v2().hidden_size == 768


def test_zero_modalities_and_bad_branches(iemocap):
    batch = _batch(iemocap["train"])
    out = zero_modalities(batch, "ta")
    assert not out["text"].any() and not out["audio"].any() and torch.equal(out["vision"], batch["vision"])
    assert not zero_modalities(batch, ["vision"])["vision"].any() and batch["vision"].any()
    with pytest.raises(ValueError, match="unknown modality"):
        zero_modalities(batch, "x")
    model = _model(iemocap["train"])
    with torch.no_grad():
        assert torch.isfinite(model(zero_modalities(batch, "tav"))).all()
    wrong = CausalMER(model.backbone, model.text, model.audio, torch.nn.Linear(8, 3), task="iemocap")
    with pytest.raises(ValueError, match="vision branch must return"):
        wrong.outputs(batch)
