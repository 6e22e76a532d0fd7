"""The baselines: the shared interface (features -> h, classifier(h) -> logits), shapes, losses."""

from __future__ import annotations

import pytest
import torch

from reprolib.models.caernet import CAERNetS
from reprolib.models.emotnet import EMOTNet, discrete_loss, dynamic_weights

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
