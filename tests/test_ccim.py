"""CCIM's algebra and the confounder dictionary: shapes, identities, buffers, save/load, bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from reprolib.causal.ccim import CCIM, STRATEGIES, inspect_ccim, with_ccim
from reprolib.causal.dictionary import ConfounderDictionary, build_dictionary, dictionary_backbone

N, D_Z, D_H, K = 6, 10, 12, 4


def make_ccim(strategy="dot_product", **kw):
    torch.manual_seed(0)
    Z = torch.rand(N, D_Z)
    P = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.15, 0.1])
    return CCIM(D_H, Z, P, K, strategy, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_shapes_and_attention_rows_sum_to_one(strategy):
    ccim = make_ccim(strategy).eval()
    h = torch.randn(5, D_H)
    att = ccim.attention(h)
    assert att.shape == (5, N)
    assert torch.allclose(att.sum(dim=1), torch.ones(5))
    assert (att >= 0).all()
    assert ccim.intervene(h).shape == (5, D_Z)
    assert ccim(h).shape == (5, K)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_hot_attention_returns_prior_times_prototype(strategy, monkeypatch):
    ccim = make_ccim(strategy).eval()
    i = 2
    one_hot = torch.zeros(3, N)
    one_hot[:, i] = 1.0
    monkeypatch.setattr(ccim, "attention", lambda h: one_hot)
    g = ccim.intervene(torch.randn(3, D_H))
    expected = ccim.prior[i] * ccim.dictionary[i]
    assert torch.allclose(g, expected.expand(3, -1))


def test_intervention_is_the_attention_weighted_prior_weighted_sum():
    ccim = make_ccim().eval()
    h = torch.randn(4, D_H)
    att = ccim.attention(h)
    manual = sum(att[:, j:j + 1] * ccim.prior[j] * ccim.dictionary[j] for j in range(N))
    assert torch.allclose(ccim.intervene(h), manual, atol=1e-6)


def test_without_attention_g_is_the_prior_weighted_sum_of_every_prototype():
    """Table 4's "without lambda_i": every lambda_i = 1, so g = sum_i P(z_i) z_i for every sample."""
    ccim = make_ccim(attention=False).eval()
    h = torch.randn(3, D_H)
    expected = (ccim.prior * ccim.dictionary).sum(dim=0)
    assert torch.allclose(ccim.intervene(h), expected.expand(3, -1))
    assert torch.allclose(ccim.intervene(h), ccim.intervene(torch.randn(3, D_H)))  # no dependence on h
    assert not torch.allclose(make_ccim().eval().intervene(h), ccim.intervene(h))
    assert ccim(h).shape == (3, K)


def test_dot_product_scores_are_scaled_by_sqrt_of_the_dictionary_width():
    ccim = make_ccim().eval()
    h = torch.randn(3, D_H)
    raw = ccim.query(h) @ ccim.key(ccim.dictionary).T
    assert torch.allclose(ccim.scores(h), raw / math.sqrt(D_Z))
    assert not torch.allclose(ccim.scores(h), raw / math.sqrt(256))


def test_additive_scores_use_tanh_and_w_t():
    ccim = make_ccim("additive").eval()
    h = torch.randn(3, D_H)
    manual = ccim.w_t(torch.tanh(ccim.query(h)[:, None] + ccim.key(ccim.dictionary)[None])).squeeze(-1)
    assert torch.allclose(ccim.scores(h), manual)
    assert make_ccim().w_t is None


def test_paper_layer_names_and_shapes():
    ccim = make_ccim("additive")
    names = dict(ccim.named_parameters())
    assert names["query.weight"].shape == (256, D_H)
    assert names["key.weight"].shape == (256, D_Z)
    assert names["w_t.weight"].shape == (1, 256)
    assert names["W_h"].shape == (D_H, 128) and names["W_g"].shape == (D_Z, 128)
    assert "query.bias" not in names and "key.bias" not in names


def test_dictionary_and_prior_are_buffers_not_parameters():
    ccim = make_ccim()
    buffers = dict(ccim.named_buffers())
    assert "dictionary" in buffers and "prior" in buffers
    assert all(p is not ccim.dictionary for p in ccim.parameters())
    state = ccim.state_dict()
    assert torch.equal(state["dictionary"], ccim.dictionary) and state["prior"].shape == (N, 1)
    moved = ccim.to(torch.float64)
    assert moved.dictionary.dtype == torch.float64 and moved.prior.dtype == torch.float64
    if torch.cuda.is_available():
        assert ccim.to("cuda").dictionary.is_cuda


def test_dictionary_is_not_trained():
    ccim = make_ccim().train()
    before = ccim.dictionary.clone()
    opt = torch.optim.SGD(ccim.parameters(), lr=1.0)
    ccim(torch.randn(8, D_H)).sum().backward()
    opt.step()
    assert torch.equal(ccim.dictionary, before)
    assert ccim.W_g.grad is not None and ccim.query.weight.grad is not None


def test_batch_of_one_at_evaluation_and_in_training():
    ccim = make_ccim()
    ccim.eval()
    assert ccim(torch.randn(1, D_H)).shape == (1, K)
    ccim.train()
    out = ccim(torch.randn(1, D_H))
    assert out.shape == (1, K) and torch.isfinite(out).all()


def test_relative_prior_multiplies_the_prior_by_n():
    plain, relative = make_ccim(), make_ccim(relative_prior=True)
    assert torch.allclose(relative.prior, plain.prior * N)


def test_bad_strategy_and_shapes_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        make_ccim("cosine")
    with pytest.raises(ValueError, match="prior"):
        CCIM(D_H, torch.rand(N, D_Z), torch.ones(N + 1) / (N + 1), K)


class TinyBaseline(nn.Module):
    """The baseline interface: features(batch) -> h, classifier(h) -> logits, its own loss."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, self.feature_dim)
        self.classifier = nn.Linear(self.feature_dim, K)

    def features(self, batch):
        return self.encoder(batch["x"])

    def forward(self, batch):
        return self.classifier(self.features(batch))

    def training_loss(self, batch):
        return nn.functional.cross_entropy(self.classifier(self.features(batch)), batch["label"])


def tiny_dictionary(n=N, dim=D_Z):
    P = np.arange(1, n + 1, dtype=np.float32)
    return ConfounderDictionary(np.random.default_rng(0).random((n, dim)), P / P.sum(), {"backbone": "test"})


def test_with_ccim_replaces_the_classifier_and_keeps_features_and_loss():
    model = TinyBaseline()
    encoder_before = model.encoder
    with_ccim(model, tiny_dictionary(), "additive")
    assert isinstance(model.classifier, CCIM) and model.encoder is encoder_before
    batch = {"x": torch.randn(5, 3), "label": torch.randint(0, K, (5,))}
    assert model(batch).shape == (5, K)
    model.training_loss(batch).backward()
    assert model.encoder.weight.grad is not None


def test_with_ccim_uniform_prior_and_inspect_ccim():
    model = with_ccim(TinyBaseline(), tiny_dictionary(), uniform_prior=True)
    assert torch.allclose(model.classifier.prior, torch.full((N, 1), 1 / N))
    data = [{"x": torch.randn(3), "label": 0} for _ in range(7)]
    report = inspect_ccim(model, data, batch_size=3)
    assert report.attention.shape == (7, N) and np.allclose(report.attention.sum(1), 1, atol=1e-5)
    assert report.h_norm > 0 and 0 < report.g_share and 0 < report.entropy_ratio <= 1 + 1e-6
    uniform = type(report)(np.full((2, N), 1 / N), 1.0, 0.5)
    assert uniform.entropy_ratio == pytest.approx(1.0) and uniform.g_share == 0.5
    one_hot = type(report)(np.eye(N)[:2], 1.0, 0.0)
    assert one_hot.entropy_ratio == pytest.approx(0.0, abs=1e-6)


def test_random_dictionary_keeps_size_prior_and_column_scale_but_not_the_prototypes():
    real = ConfounderDictionary(np.random.default_rng(1).normal(5.0, 2.0, (64, D_Z)), np.full(64, 1 / 64),
                                {"backbone": "test"})
    fake = real.randomised(seed=3)
    assert fake.Z.shape == real.Z.shape and np.array_equal(fake.P, real.P)
    assert np.allclose(fake.Z.mean(0), real.Z.mean(0), atol=1.0) and np.allclose(fake.Z.std(0), real.Z.std(0), rtol=0.4)
    assert np.abs(fake.Z - real.Z).mean() > 1.0
    assert np.array_equal(fake.Z, real.randomised(seed=3).Z) and not np.array_equal(fake.Z, real.randomised(seed=4).Z)
    assert fake.provenance["prototypes"] == "random (seed 3)"


def test_with_ccim_without_attention_passes_through():
    model = with_ccim(TinyBaseline(), tiny_dictionary(), attention=False)
    assert model.classifier.use_attention is False


def test_with_ccim_refuses_a_model_without_a_linear_classifier():
    model = TinyBaseline()
    model.classifier = nn.Sequential(nn.Linear(8, K))
    with pytest.raises(TypeError, match="classifier"):
        with_ccim(model, tiny_dictionary())
    with pytest.raises(TypeError, match="no CCIM"):
        inspect_ccim(TinyBaseline(), [{"x": torch.randn(3)}])


def test_every_baseline_takes_ccim():
    from reprolib.sweeps import baseline_builders
    from reprolib.experiments import DataBundle

    for name, (kind, build) in baseline_builders("smoke").items():
        bundle = DataBundle(kind, None, {}, tuple(f"c{i}" for i in range(K)), kind == "emotic", True)
        model = build(bundle, "small")
        d_h = model.feature_dim
        with_ccim(model, tiny_dictionary())
        assert model.classifier.query.in_features == d_h, name
        assert model.classifier.head.out_features == K, name


# --- the confounder dictionary ---------------------------------------------------------------------

def clustered_features(n_per=30, centres=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.3, size=(n_per, 2)) for c in centres]).astype(np.float32)


def test_build_dictionary_finds_the_clusters_and_their_shares():
    feats = np.concatenate([clustered_features(), clustered_features(n_per=10, centres=((20, 20),))])
    dictionary, clusters = build_dictionary(feats, 5, seed=0, provenance={"backbone": "test"})
    assert dictionary.Z.shape == (5, 2) and dictionary.P.shape == (5,)
    assert abs(dictionary.P.sum() - 1) < 1e-6
    assert sorted(np.round(dictionary.P * len(feats)).astype(int).tolist()) == [10, 30, 30, 30, 30]
    small = int(np.argmin(dictionary.P))
    assert np.allclose(dictionary.Z[small], (20, 20), atol=0.5)
    prov = dictionary.provenance
    assert prov["n"] == 5 and prov["seed"] == 0 and prov["samples"] == 130 and prov["backbone"] == "test"
    assert clusters.assign(feats).shape == (130,)


def test_build_dictionary_is_deterministic_given_the_seed():
    feats = clustered_features()
    a, _ = build_dictionary(feats, 4, seed=3)
    b, _ = build_dictionary(feats, 4, seed=3)
    assert np.array_equal(a.Z, b.Z) and np.array_equal(a.P, b.P)


def test_dictionary_round_trips_without_pickle(tmp_path):
    dictionary = tiny_dictionary()
    path = dictionary.save(tmp_path / "dict.npz")
    loaded = ConfounderDictionary.load(path)
    assert np.array_equal(loaded.Z, dictionary.Z) and np.array_equal(loaded.P, dictionary.P)
    assert loaded.provenance == dictionary.provenance
    uniform = loaded.with_uniform_prior()
    assert np.allclose(uniform.P, 1 / N) and uniform.provenance["prior"] == "uniform"


def test_dictionary_refuses_bad_files_and_arrays(tmp_path):
    with pytest.raises(FileNotFoundError):
        ConfounderDictionary.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "pickled.npz", Z=np.array([object()], dtype=object), P=np.ones(1), provenance=np.array("{}"))
    with pytest.raises(ValueError, match="not a confounder dictionary"):
        ConfounderDictionary.load(tmp_path / "pickled.npz")
    np.savez(tmp_path / "partial.npz", Z=np.ones((2, 3)))
    with pytest.raises(ValueError, match="missing"):
        ConfounderDictionary.load(tmp_path / "partial.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a confounder dictionary"):
        ConfounderDictionary.load(tmp_path / "garbage.npz")
    with pytest.raises(ValueError, match="sum to 1"):
        ConfounderDictionary(np.ones((2, 3)), np.array([0.7, 0.7]))
    with pytest.raises(ValueError, match="one share per prototype"):
        ConfounderDictionary(np.ones((2, 3)), np.array([1.0]))
    with pytest.raises(ValueError, match="NaN"):
        ConfounderDictionary(np.full((1, 3), np.nan), np.array([1.0]))


def test_too_few_samples_for_the_dictionary_size():
    with pytest.raises(ValueError, match="cannot form"):
        build_dictionary(clustered_features(n_per=1), 8)


def test_default_backbone_is_label_free_colour_layout():
    encoder, description = dictionary_backbone()
    assert description["backbone"] == "ColourLayout" and description["weights"] is None
    out = encoder(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3 * 16 + 6)


def test_places365_backbone_is_used_when_weights_are_given(tmp_path):
    import torchvision

    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None, num_classes=365)
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    encoder, description = dictionary_backbone(str(path), arch="resnet18")
    assert description["backbone"] == "resnet18-places365" and description["weights"] == str(path)
    encoder.eval()
    x = torch.rand(2, 3, 40, 60)  # any view size: resized to 224 and ImageNet-normalised inside
    net.eval()
    expected = nn.Sequential(*list(net.children())[:-1])(
        (nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
         - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ).flatten(1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), expected, rtol=1e-4, atol=1e-4)


def test_backdoor_adjustment_averages_over_every_prototype_with_its_prior():
    from reprolib.causal.backdoor import BackdoorAdjusted

    dictionary = ConfounderDictionary(np.eye(3, 5, dtype=np.float32), np.array([0.5, 0.3, 0.2]))
    model = BackdoorAdjusted(K, dictionary, nn.Flatten()).eval()
    batch = {"subject": torch.rand(2, 3, 16, 16), "context": torch.rand(2, 5, 1, 1)}
    scores = model(batch)
    s = model.features(batch)
    manual = sum(dictionary.P[i] * torch.softmax(model.conditional_logits(s, torch.full((2,), i)), dim=-1)
                 for i in range(3))
    assert torch.allclose(scores.exp(), manual, atol=1e-6)
    # the context actually seen does not change the adjusted prediction
    other = {**batch, "context": torch.rand(2, 5, 1, 1) * 10}
    assert torch.allclose(model(other), scores)
    # training conditions on the sample's own prototype
    near_1 = torch.zeros(1, 5, 1, 1)
    near_1[0, 1] = 1.0
    assert model.prototype_of(near_1).tolist() == [1]
    model.train()
    loss = model.training_loss({**batch, "context": near_1.expand(2, -1, -1, -1), "label": torch.tensor([0, 1])})
    loss.backward()
    assert model.z_embedding.weight.grad[1].abs().sum() > 0 and model.z_embedding.weight.grad[0].abs().sum() == 0


def test_backdoor_adjustment_multilabel_is_a_mixture_of_sigmoids():
    from reprolib.causal.backdoor import BackdoorAdjusted

    dictionary = ConfounderDictionary(np.eye(2, 4, dtype=np.float32), np.array([0.25, 0.75]))
    model = BackdoorAdjusted(K, dictionary, nn.Flatten(), multilabel=True).eval()
    batch = {"subject": torch.rand(3, 3, 16, 16), "context": torch.rand(3, 4, 1, 1)}
    s = model.features(batch)
    manual = sum(dictionary.P[i] * torch.sigmoid(model.conditional_logits(s, torch.full((3,), i))) for i in range(2))
    assert torch.allclose(torch.sigmoid(model(batch)), manual, atol=1e-5)
