"""The baselines: the shared interface (features -> h, classifier(h) -> logits), shapes, losses."""

from __future__ import annotations

import pytest
import torch

from reprolib.models.backbones import build_encoder, stage_features, stage_widths
from reprolib.models.caernet import CAERNetS
from reprolib.models.cdnet import CDNet, TubalBlock
from reprolib.models.emotnet import EMOTNet, discrete_loss, dynamic_weights
from reprolib.models.gnncnn import GNNCNN

B = 4


def _batch(multilabel: bool, k: int) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {"subject": torch.rand(B, 3, 32, 32, generator=g), "context": torch.rand(B, 3, 48, 48, generator=g),
             "image": torch.rand(B, 3, 48, 48, generator=g)}
    if multilabel:
        batch["labels"] = (torch.rand(B, k, generator=g) > 0.7).float()
        batch["vad"] = torch.rand(B, 3, generator=g)
    else:
        batch["label"] = torch.randint(0, k, (B,), generator=g)
    return batch


BUILDERS = {
    "emotnet": lambda k, ml: EMOTNet(k, multilabel=ml),
    "caernet": lambda k, ml: CAERNetS(k, multilabel=ml, widths=(8, 8, 16, 16, 16)),
    "gnncnn": lambda k, ml: GNNCNN(k, multilabel=ml, widths=(8, 8, 16, 16), node_dim=32),
    "cdnet": lambda k, ml: CDNet(k, multilabel=ml, widths=(8, 8, 16, 16), dim=32, ff_dim=64),
    "cdnet_transformer": lambda k, ml: CDNet(k, multilabel=ml, widths=(8, 8, 16, 16), dim=32, ff_dim=64,
                                             mixer="transformer"),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("multilabel, k", [(False, 7), (True, 26)])
def test_interface_features_then_classifier(name, multilabel, k):
    model = BUILDERS[name](k, multilabel).eval()
    batch = _batch(multilabel, k)
    h = model.features(batch)
    assert h.shape == (B, model.feature_dim)
    assert torch.allclose(model.classifier(h), model(batch))
    assert model(batch).shape == (B, k)
    assert model.target_key == ("labels" if multilabel else "label")
    loss = model.training_loss(batch) if hasattr(model, "training_loss") else None
    if loss is not None:
        assert loss.dim() == 0 and torch.isfinite(loss)


def test_emotnet_dynamic_weights_favour_rare_classes():
    targets = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float)
    w = dynamic_weights(targets)
    assert w[0] == pytest.approx(1 / torch.log(torch.tensor(4.2)).item())
    assert w[1] > w[0] and w[2] == pytest.approx(1e-4)


def test_emotnet_discrete_loss_is_a_weighted_sum():
    scores = torch.zeros(2, 2)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    expected = 2 * (1 / torch.log(torch.tensor(3.2))).item()  # two squared errors of 1 on class 0
    assert discrete_loss(scores, targets).item() == pytest.approx(expected)


def test_emotnet_multilabel_loss_includes_vad():
    model = EMOTNet(26, multilabel=True).eval()
    batch = _batch(True, 26)
    with_vad = model.training_loss(batch)
    del batch["vad"]
    assert model.training_loss(batch) < with_vad


def test_caernet_fusion_weights_and_attention_are_distributions():
    model = CAERNetS(7, widths=(8, 8, 16, 16, 16)).eval()
    streams = model.streams(_batch(False, 7))
    assert torch.allclose(streams["weights"].sum(1), torch.ones(B))
    assert torch.allclose(streams["attention"].sum(dim=(1, 2, 3)), torch.ones(B), atol=1e-5)


def test_caernet_runs_on_a_resnet_encoder():
    model = CAERNetS(7, encoder="resnet18").eval()
    batch = _batch(False, 7)
    batch["subject"] = torch.rand(B, 3, 64, 64)
    batch["context"] = torch.rand(B, 3, 64, 64)
    assert model(batch).shape == (B, 7)


def _resnet_batch(k: int = 7) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"subject": torch.rand(2, 3, 64, 64, generator=g), "context": torch.rand(2, 3, 64, 64, generator=g),
            "image": torch.rand(2, 3, 64, 64, generator=g), "label": torch.randint(0, k, (2,), generator=g)}


@pytest.mark.parametrize("grid", [4, 2])
def test_gnncnn_adjacency_is_row_stochastic(grid):
    model = GNNCNN(7, widths=(8, 8, 16, 16), node_dim=32, grid=grid).eval()
    with torch.no_grad():
        g = model.graph(_batch(False, 7))
    n = grid * grid
    assert g["adjacency"].shape == (B, n, n)
    assert g["nodes"].shape == g["updated"].shape == (B, n, 32) and g["readout"].shape == (B, 32)
    assert (g["adjacency"] >= 0).all()
    torch.testing.assert_close(g["adjacency"].sum(-1), torch.ones(B, n))
    # self-loops: the diagonal carries at least half of each row (A is a softmax, rows of A + I sum to 2)
    assert (torch.diagonal(g["adjacency"], dim1=1, dim2=2) >= 0.5 - 1e-6).all()


def test_gnncnn_runs_on_a_resnet_encoder():
    model = GNNCNN(7, backbone="resnet18").eval()
    with torch.no_grad():
        out, g = model(_resnet_batch()), model.graph(_resnet_batch())
    assert out.shape == (2, 7) and g["adjacency"].shape == (2, 16, 16)


def test_stage_features_small_and_resnet18():
    x = torch.rand(2, 3, 64, 64)
    for name, widths in [("small", [64, 64]), ("resnet18", [256, 512])]:
        enc = build_encoder(name).eval()
        assert stage_widths(enc) == widths and stage_widths(enc, 1) == widths[-1:]
        with torch.no_grad():
            feats = stage_features(enc, x)
            assert [tuple(f.shape) for f in feats] == [(2, w) for w in widths]
            torch.testing.assert_close(feats[-1], enc(x))  # the last stage is the encoder's own output
    with pytest.raises(ValueError):
        stage_widths(build_encoder("small"), 5)
    with pytest.raises(TypeError):
        stage_features(CAERNetS(7).face_encoder, x)


@pytest.mark.parametrize("subject_hw, scene_hw", [((32, 32), (48, 48)), ((48, 32), (48, 72))])
def test_cdnet_works_at_both_smoke_view_sizes(subject_hw, scene_hw):
    model = CDNet(26, multilabel=True, widths=(8, 8, 16, 16), dim=32, ff_dim=64).eval()
    batch = {"subject": torch.rand(B, 3, *subject_hw), "context": torch.rand(B, 3, *scene_hw),
             "image": torch.rand(B, 3, *scene_hw)}
    with torch.no_grad():
        tokens, enhanced, out = model.tokens(batch), model.enhanced(batch), model(batch)
    assert [tuple(t.shape) for t in tokens] == [(B, 3, 32)] * 2 == [tuple(t.shape) for t in enhanced]
    assert out.shape == (B, 26) and torch.isfinite(out).all()


def test_cdnet_runs_on_a_resnet_encoder():
    model = CDNet(7, backbone="resnet18").eval()
    with torch.no_grad():
        assert model(_resnet_batch()).shape == (2, 7)


def test_cdnet_gradients_reach_all_three_encoders():
    model = CDNet(7, widths=(8, 8, 16, 16), dim=32, ff_dim=64).train()
    batch = _batch(False, 7)
    torch.nn.functional.cross_entropy(model(batch), batch["label"]).backward()
    for name in ("subject", "context", "image"):
        grad = model.encoders[name].body[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_tubal_block_mixes_streams_and_keeps_shape():
    torch.manual_seed(0)
    block = TubalBlock(16, heads=4, ff_dim=32, dropout=0.0).eval()
    x = torch.randn(3, 3, 16)
    y = block(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    x2 = x.clone()
    x2[:, 0] = torch.randn(3, 16)  # change only the first stream's token ...
    with torch.no_grad():
        delta = (block.mix(x2) - block.mix(x)).abs().sum(dim=(0, 2))
    assert (delta[1:] > 1e-4).all()  # ... and the mixing term of the other two streams changes too
