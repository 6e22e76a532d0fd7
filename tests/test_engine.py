"""The training engine: learning, best-epoch selection, reproducibility, NaN stop, checkpoint/resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import Dataset

from reprolib.engine import CHECKPOINT_NAME, NonFiniteLossError, WithDefaultLoss, fit, predict
from reprolib.metrics import accuracy
from reprolib.seed import seed_everything


class Blobs(Dataset):
    """Two Gaussian blobs as 'images' [3, 4, 4]: label = which blob."""

    def __init__(self, n: int, seed: int, shift: float = 2.0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % 2
        self.x = torch.randn(n, 3, 4, 4, generator=g) + shift * self.label.view(-1, 1, 1, 1).float()

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"context": self.x[i], "label": self.label[i]}


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(48, 2)

    def forward(self, batch):
        return self.classifier(batch["context"].flatten(1))


def test_fit_learns_keeps_best_val_epoch_and_is_reproducible():
    train, val = Blobs(200, 0), Blobs(100, 1)
    results = []
    for _ in range(2):
        seed_everything(0)
        model = Linear()
        res = fit(model, train, val, epochs=4, lr=1e-2, batch_size=32, seed=0)
        results.append((res, model.classifier.weight.detach().clone()))
    res, weight = results[0]
    assert len(res.history) == 4 and res.best_val == max(h["val"] for h in res.history)
    assert accuracy(*predict(model, val)) == pytest.approx(res.best_val)  # restored best weights
    assert res.best_val > 0.75  # chance is 0.5
    assert torch.equal(weight, results[1][1])


def test_nan_loss_stops_with_epoch_and_step():
    def exploding(logits, target):
        return logits.sum() * float("nan")

    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        fit(Linear(), Blobs(64, 0), Blobs(16, 1), epochs=1, loss_fn=exploding, desc="nan test")


class SmallConvNet(nn.Module):
    """Conv + BatchNorm + Dropout, so resuming must restore running stats and the dropout RNG too."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3))
        self.classifier = nn.Linear(8, 2)

    def forward(self, batch):
        return self.classifier(self.body(batch["context"]))


class Interrupt(Exception):
    pass


def _stop_after(epoch):
    def hook(record):
        if record["epoch"] == epoch:
            raise Interrupt
    return hook


def test_resume_after_interrupt_ends_like_an_uninterrupted_run(tmp_path):
    train, val = Blobs(96, 0, shift=0.7), Blobs(48, 1, shift=0.7)
    kwargs = dict(epochs=5, lr=5e-2, batch_size=16, seed=3, optimizer="sgd", lr_step=2)

    seed_everything(3)
    straight = SmallConvNet()
    straight_fit = fit(straight, train, val, **kwargs)

    seed_everything(3)
    with pytest.raises(Interrupt):
        fit(SmallConvNet(), train, val, checkpoint_dir=tmp_path, on_epoch_end=_stop_after(3), **kwargs)
    assert (tmp_path / CHECKPOINT_NAME).exists()

    seed_everything(99)  # a different fresh model: everything must come from the checkpoint
    resumed = SmallConvNet()
    resumed_fit = fit(resumed, train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)

    assert resumed_fit.resumed_from == 3
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]
    assert strip(resumed_fit.history) == strip(straight_fit.history)
    assert resumed_fit.best_epoch == straight_fit.best_epoch
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    train, val = Blobs(32, 0), Blobs(16, 1)
    fit(SmallConvNet(), train, val, epochs=1, lr=1e-2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint was written with"):
        fit(SmallConvNet(), train, val, epochs=2, lr=1e-3, checkpoint_dir=tmp_path, resume=True)


def test_checkpoint_loads_with_weights_only(tmp_path):
    fit(SmallConvNet(), Blobs(32, 0), Blobs(16, 1), epochs=1, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_multilabel_targets_train_with_bce_and_score_with_map():
    class MultiBlobs(Blobs):
        def __getitem__(self, i):
            return {"context": self.x[i], "labels": torch.stack([self.label[i], 1 - self.label[i]]).float()}

    seed_everything(0)
    res = fit(Linear(), MultiBlobs(64, 0), MultiBlobs(32, 1), epochs=2, target_key="labels", lr=1e-2)
    assert 0.5 < res.best_val <= 1.0


def test_with_default_loss_trains_the_same_logits_on_the_default_loss():
    class OwnLoss(Linear):
        target_key, views = "label", ("context",)

        def training_loss(self, batch):
            raise AssertionError("the control must not train with the model's own loss")

    model = OwnLoss()
    control = WithDefaultLoss(model)
    data = Blobs(8, 0)
    batch = {"context": data.x, "label": data.label}
    assert torch.equal(control(batch), model(batch))
    assert not hasattr(control, "training_loss") and control.views == ("context",)
    seed_everything(0)
    res = fit(control, Blobs(64, 0), Blobs(32, 1), epochs=2, lr=1e-2)
    assert res.best_val > 0.75


def test_predict_collects_dict_outputs_in_dataset_order():
    model, data = Linear(), Blobs(40, 0)
    logits, targets = predict(model, data, batch_size=16)
    outs, same_targets = predict(model, data, batch_size=16,
                                 forward=lambda batch: {"logits": model(batch), "double": 2 * model(batch)})
    assert set(outs) == {"logits", "double"} and outs["logits"].shape == (40, 2)
    assert torch.allclose(outs["logits"], logits) and torch.allclose(outs["double"], 2 * logits)
    assert torch.equal(same_targets, targets)


def test_param_groups_give_parts_their_own_learning_rate():
    model = Linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = lambda m: [{"params": [m.classifier.weight], "lr": 0.05}, {"params": [m.classifier.bias], "lr": 0.0}]
    fit(model, Blobs(64, 0), Blobs(32, 1), epochs=1, batch_size=16, weight_decay=0.0, param_groups=groups)
    assert torch.equal(model.classifier.bias, before["classifier.bias"])  # lr 0: untouched
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])


# --------------------------------------------------------------------------- the official loops' options


class WithVoid(Linear):
    """Linear plus a learned "void" value that the loss sees with zero gradient (as CausalMER's
    constants at initialisation): only weight decay can move it."""

    def __init__(self, exempt: bool):
        super().__init__()
        self.void = nn.Parameter(torch.tensor(0.5))
        self.exempt = exempt

    def forward(self, batch):
        return self.classifier(batch["context"].flatten(1)) + 0.0 * self.void

    def no_weight_decay(self):
        return ("void",) if self.exempt else ()


def test_no_weight_decay_names_are_exempt_from_decay_and_nothing_else():
    moved = {}
    for exempt in (False, True):
        seed_everything(0)
        model = WithVoid(exempt)
        weight = model.classifier.weight.detach().clone()
        fit(model, Blobs(64, 0), Blobs(32, 1), epochs=2, batch_size=16, lr=1e-2, weight_decay=0.1)
        moved[exempt] = (model.void.item(), model.classifier.weight.detach().clone(), weight)
    assert moved[False][0] != 0.5  # decay alone moves it
    assert moved[True][0] == 0.5  # exempt: untouched
    assert torch.equal(moved[False][1], moved[True][1])  # the other parameters train exactly as before


def test_no_weight_decay_applies_inside_given_groups_and_refuses_unknown_names():
    from reprolib.engine import without_decay

    model = WithVoid(True)
    groups = without_decay(model, [{"params": list(model.parameters()), "lr": 0.3}])
    assert [(len(g["params"]), g["lr"], g.get("weight_decay")) for g in groups] == [(2, 0.3, None), (1, 0.3, 0.0)]
    model.no_weight_decay = lambda: ("nothing_here",)
    with pytest.raises(ValueError, match="nothing_here"):
        without_decay(model, list(model.parameters()))


def test_clip_grad_norm_bounds_the_global_norm_at_every_step():
    norms = {}

    def record(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    for clip in (None, 0.05):
        seen = []
        handle = register_optimizer_step_pre_hook(record)
        try:
            seed_everything(0)
            fit(Linear(), Blobs(64, 0, shift=5.0), Blobs(32, 1), epochs=1, batch_size=16, lr=1e-2,
                clip_grad_norm=clip)
        finally:
            handle.remove()
        norms[clip] = seen
    assert max(norms[None]) > 0.05  # the bound bites
    assert len(norms[0.05]) == 4 and max(norms[0.05]) <= 0.05 * (1 + 1e-5)


def test_plateau_schedule_lowers_the_rate_when_the_validation_loss_stalls():
    seed_everything(0)
    res = fit(Linear(), Blobs(64, 0), Blobs(32, 1), epochs=5, batch_size=16, lr=1e-7, plateau_patience=1,
              lr_gamma=0.1)
    lrs = [h["lr"] for h in res.history]
    # epoch 1 sets the best loss; a rate of 1e-7 cannot improve it by the relative 1e-4 the schedule asks, so
    # after 1 + patience epochs the rate falls
    assert lrs[:3] == [1e-7] * 3 and lrs[3] == pytest.approx(1e-8) and lrs[4] == pytest.approx(1e-8), lrs
    assert all("val_loss" in h for h in res.history)
    with pytest.raises(ValueError, match="give one of them"):
        fit(Linear(), Blobs(64, 0), Blobs(32, 1), epochs=1, lr_step=1, plateau_patience=1)


def test_resume_with_clipping_and_plateau_ends_like_an_uninterrupted_run(tmp_path):
    train, val = Blobs(96, 0, shift=0.7), Blobs(48, 1, shift=0.7)
    kwargs = dict(epochs=5, lr=5e-2, batch_size=16, seed=3, clip_grad_norm=0.5, plateau_patience=1, lr_gamma=0.5)
    seed_everything(3)
    straight_fit = fit(SmallConvNet(), train, val, **kwargs)
    seed_everything(3)
    with pytest.raises(Interrupt):
        fit(SmallConvNet(), train, val, checkpoint_dir=tmp_path, on_epoch_end=_stop_after(3), **kwargs)
    seed_everything(99)
    resumed_fit = fit(SmallConvNet(), train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]
    assert strip(resumed_fit.history) == strip(straight_fit.history)


def test_early_stopping_ends_after_epochs_without_a_better_val_and_keeps_the_same_best(tmp_path):
    """With a learning rate too small to change any prediction, val never beats epoch 1: early_stopping=2
    stops after epoch 3, and the kept weights are those the full run keeps (epoch 1's)."""
    train, val = Blobs(64, 0), Blobs(32, 1)
    kwargs = dict(epochs=8, lr=1e-9, batch_size=16, seed=0)
    seed_everything(0)
    full_model = Linear()
    full = fit(full_model, train, val, **kwargs)
    seed_everything(0)
    early_model = Linear()
    early = fit(early_model, train, val, early_stopping=2, **kwargs)
    assert len(full.history) == 8 and not full.stopped_early
    assert [h["epoch"] for h in early.history] == [1, 2, 3] and early.stopped_early
    assert early.best_epoch == full.best_epoch == 1
    assert torch.equal(early_model.classifier.weight, full_model.classifier.weight)
    # a run that keeps improving is not cut short
    seed_everything(0)
    learning = fit(Linear(), train, val, epochs=3, lr=1e-2, batch_size=16, seed=0, early_stopping=5)
    assert len(learning.history) == 3 and not learning.stopped_early


def test_early_stopping_resumes_to_the_same_stop(tmp_path):
    train, val = Blobs(64, 0), Blobs(32, 1)
    kwargs = dict(epochs=8, lr=1e-9, batch_size=16, seed=0, early_stopping=2)
    seed_everything(0)
    straight = fit(Linear(), train, val, **kwargs)
    seed_everything(0)
    with pytest.raises(Interrupt):
        fit(Linear(), train, val, checkpoint_dir=tmp_path, on_epoch_end=_stop_after(2), **kwargs)
    resumed = fit(Linear(), train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert resumed.resumed_from == 2 and resumed.stopped_early
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]
    assert strip(resumed.history) == strip(straight.history)
    # a checkpoint of a run that already stopped trains nothing more
    again = fit(Linear(), train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert strip(again.history) == strip(straight.history) and again.stopped_early


def test_predict_batch_size_default_follows_the_device():
    from reprolib.engine import EVAL_BATCH_SIZE, eval_batch_size

    assert eval_batch_size("cpu") == EVAL_BATCH_SIZE["cpu"] and eval_batch_size("cuda:0") == EVAL_BATCH_SIZE["cuda"]
    seed_everything(0)
    model, data = Linear(), Blobs(70, 1)
    by_default, _ = predict(model, data)
    at_256, _ = predict(model, data, batch_size=256)
    assert torch.allclose(by_default, at_256, atol=1e-6)
