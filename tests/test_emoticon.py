"""EmotiCon: streams present or absent by data, the multiplicative loss, the shared interface."""

from __future__ import annotations

import math

import pytest
import torch

from reprolib.models.emoticon import EmotiCon, multiplicative_loss

B = 4


def _batch(multilabel: bool, k: int, pose: bool = True, depth: bool = True) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {"subject": torch.rand(B, 3, 48, 32, generator=g), "context": torch.rand(B, 3, 48, 72, generator=g)}
    if pose:
        batch["pose"] = torch.rand(B, 10, 3, generator=g)
    if depth:
        batch["depth"] = torch.rand(B, 1, 48, 72, generator=g)
    if multilabel:
        batch["labels"] = (torch.rand(B, k, generator=g) > 0.7).float()
    else:
        batch["label"] = torch.randint(0, k, (B,), generator=g)
    return batch


@pytest.mark.parametrize("multilabel, k, pose, depth", [(True, 26, True, True), (False, 7, False, False),
                                                        (False, 7, True, False)])
def test_interface_with_and_without_optional_streams(multilabel, k, pose, depth):
    model = EmotiCon(k, multilabel=multilabel, use_pose=pose, use_depth=depth).eval()
    batch = _batch(multilabel, k, pose, depth)
    h = model.features(batch)
    assert h.shape == (B, model.feature_dim)
    assert torch.allclose(model.classifier(h), model(batch))
    assert set(model.views) == {"subject", "context"} | ({"pose"} if pose else set()) | ({"depth"} if depth else set())
    loss = model.training_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_multiplicative_loss_by_hand():
    # two modalities, one sample, true class 0: p_a = 0.8, p_b = 0.5 (beta = 2, exponent 2 / (2 - 1) = 2)
    za = torch.log(torch.tensor([[0.8, 0.2]]))
    zb = torch.log(torch.tensor([[0.5, 0.5]]))
    target = torch.tensor([0])
    expected = -((1 - 0.5) ** 2 * math.log(0.8) + (1 - 0.8) ** 2 * math.log(0.5))
    assert multiplicative_loss([za, zb], target, beta=2.0).item() == pytest.approx(expected, rel=1e-5)


def test_multiplicative_loss_spares_what_the_other_modality_already_knows():
    target = torch.tensor([0])
    weak = torch.tensor([[0.0, 0.0]])
    confident_other = torch.tensor([[6.0, -6.0]])
    unsure_other = torch.tensor([[0.0, 0.0]])
    spared = multiplicative_loss([weak, confident_other], target)
    pushed = multiplicative_loss([weak, unsure_other], target)
    assert spared < pushed


def test_multiplicative_loss_multilabel_and_needs_two_modalities():
    z = torch.zeros(2, 3)
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    value = multiplicative_loss([z, z], target, beta=2.0, multilabel=True)
    assert value.item() == pytest.approx(-2 * 0.25 * math.log(0.5), rel=1e-5)
    with pytest.raises(ValueError, match="at least two"):
        multiplicative_loss([z], target, multilabel=True)
