"""CLEF, Counterfactual Emotion Inference (Yang et al., CVPR 2024), around any baseline of this repo.

Causal graph: image X, subject S, context C, ensemble E, prediction Y. X -> C -> Y is the harmful
direct context path, C/S -> E -> Y the indirect one. Two branches and one learned vector:

* Y_e = factual(batch): the unchanged baseline N_{C,S} (its usual views), class logits [B, K];
* Y_c = context(image): a context-only branch N_C on the subject-masked image ``batch["context"]``
  (the subject painted black before normalisation), logits [B, K];
* Y_e* = ``y_e_star`` [K]: the "void" ensemble, one learned vector shared by all samples, because a
  network cannot take a void input.

Quantities (paper Eq. 5-9, 11), element-wise over the classes, with phi the fusion (:mod:`fusion`):

    Y_{c,e}  = phi(Y_c, Y_e)  = log sigmoid(Y_c + Y_e)       (Eq. 5, 11; factual, "fused")
    Y_{c,e*} = phi(Y_c, Y_e*) = log sigmoid(Y_c + Y_e*)      (Eq. 8; counterfactual)
    TE  = Y_{c,e} - Y_{c*,e*},  NDE = Y_{c,e*} - Y_{c*,e*}   (Eq. 6, 7)
    TIE = TE - NDE = Y_{c,e} - Y_{c,e*}                      (Eq. 9; Y_{c*,e*} cancels)

Inference scores are TIE (``forward``), so ``engine.predict`` ranks and argmaxes TIE. Under the
paper's ``sum`` fusion a class that the context alone explains (Y_c,k >> 0) gets TIE_k -> 0; the other
fusions lack this property (``hm``: TIE_k -> logsigmoid(logsigmoid(Y_e,k)) - logsigmoid(logsigmoid(Y_e*,k));
``mask``: TIE_k -> Y_e,k - Y_e*,k). The fused factual score (TE up to the per-class constant Y_{c*,e*}) is kept
as a diagnostic, :meth:`CLEF.factual_scores`.

Training (Eq. 12-14): L = CE(Y_{c,e}, y) + CE(Y_{c,e*}, y) + KL, every weight 1. The KL (Eq. 13)
only regularises Y_e*, so, as in CF-VQA's criterion, its target, the factual distribution, is
detached and so is Y_c inside its counterfactual: the gradient of the KL reaches ``y_e_star`` alone.

Decisions where the paper is silent (each recorded here so that runs can cite it):

* **"Initialised by the uniform distribution"**: Y_e* starts at the logits of the uniform
  distribution, the zero vector (softmax(0) = 1/K; for multi-label, sigmoid(0) = 1/2 per class). A
  void input should carry no class preference, and 0 is CF-VQA's and CausalMER's initial constant.
  The other reading, U(0, 1) samples, is ``star_init="rand"``; it gives the classes a random
  preference of up to one logit.
* **Which branch is "main" in phi**: ``fuse(mode, Y_e, Y_c)``. For ``sum``/``hm`` the order is
  irrelevant; for ``mask`` the baseline is gated by the context (Y_e * sigmoid(Y_c)) and for ``tanh``
  the context is squashed (Y_e + tanh(Y_c)), as CausalMER treats its multimodal (main) and unimodal
  (direct) branches. Under ``tanh``, TIE = Y_e - Y_e*: the context then only acts through training.
* **Single-label loss**: softmax cross-entropy with the fused scores as logits (CF-VQA's reading).
* **Multi-label loss** (EMOTIC; the paper speaks only of CE): per-class binary cross-entropy on the
  probability each fusion stands for (:func:`fusion.bernoulli_log_probs`): for ``sum`` that is
  ``binary_cross_entropy_with_logits`` on Y_c + Y_e and on Y_c + Y_e*. Mean over samples and classes,
  as the repo's default multi-label loss.
* **KL**: KL(p_fact || p_cf), p_fact = softmax(Y_{c,e}) detached (the target, as in CF-VQA),
  p_cf = softmax(phi(Y_c detached, Y_e*)), batch mean. CF-VQA writes the cross-entropy
  -sum p_fact log p_cf, which differs by the entropy of the detached target: same gradient, but our
  term is 0 when the distributions agree. Multi-label: the same per class with Bernoulli
  distributions (p from :func:`fusion.bernoulli_log_probs`), mean over samples and classes, so it is
  on the scale of the BCE terms. ``kl=False`` drops the term (ablation); it is then reported as 0.
* **Y_e* in the paper's Table 4** (``star``): ``"learned"`` (the default, the vector above);
  ``"average"``, the average factual output: a buffer tracking the mean of Y_e over training
  batches (momentum 0.1, as BatchNorm's running mean), not learned, used as it stands at test time;
  ``"random"``, a fixed N(0, 1) vector drawn at construction, not learned. The KL, whose gradient
  reaches Y_e* alone, then trains nothing; the counterfactual cross-entropy still trains the context branch.
* **Context input**: ``mask_context=True`` reads ``batch["context"]`` at training and test time;
  ``False`` reads the unmasked ``batch["image"]`` (the no-mask ablation).
* **Schedule**: end to end by default (``engine.fit`` trains everything through
  :meth:`CLEF.training_loss`). :meth:`CLEF.freeze_factual` gives the "baseline first" schedule:
  the trained baseline keeps its weights and stays in evaluation mode (BatchNorm statistics, no
  dropout) while only the context branch and Y_e* learn; call it before ``engine.fit``, which
  optimises only parameters that require gradients.

Mistakes of the CENG501 re-implementation avoided (notes section 2.8): fusion on logits, never on
softmax/sigmoid outputs; no softmax before the cross-entropy; TIE as a difference of log-sigmoids, not
of probabilities; Y_e* sized by ``num_classes`` and not drawn from randn; KL gradients restricted to
Y_e*; no log(sigmoid(a) + sigmoid(b)) multi-label fusion; KL on distributions (softmax over classes,
or per-class Bernoulli), never on raw sigmoid vectors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from reprolib.causal.fusion import bernoulli_log_probs, check_mode, fuse, total_indirect_effect, void_like
from reprolib.models.backbones import build_encoder

STAR_INITS = ("uniform", "rand")
STARS = ("learned", "average", "random")
AVERAGE_MOMENTUM = 0.1


class ContextBranch(nn.Module):
    """N_C: an image encoder and a linear head, image [B, 3, H, W] -> class logits [B, K]."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(image))


def context_branch(num_classes: int, backbone: str = "small", weights: str | Path | None = None, *,
                   widths: tuple[int, ...] | None = None) -> ContextBranch:
    """The context-only branch: ``build_encoder(backbone, weights=..., widths=...)`` + Linear(-> K).

    ``weights``: a local Places365 checkpoint (ResNets only), as for the baselines' context streams.
    """
    return ContextBranch(build_encoder(backbone, weights=weights, widths=widths), num_classes)


class NoContext(nn.Module):
    """Y_c = 0 for every class: CLEF "without the extra context branch" (the paper's Table 4). The
    fusion then reduces to the baseline alone, TIE = log sigmoid(Y_e) - log sigmoid(Y_e*)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.new_zeros(image.shape[0], self.num_classes)


class ContextOnly(nn.Module):
    """The context branch trained alone on the subject-masked image, batch -> logits [B, K]: CLEF
    "without the CAER model" (the paper's Table 4), the score of the harmful direct path alone."""

    views = ("context",)

    def __init__(self, context: nn.Module):
        super().__init__()
        self.context = context

    def forward(self, batch: dict) -> torch.Tensor:
        return self.context(batch["context"])


class CLEF(nn.Module):
    """Baseline (Y_e) + context branch (Y_c) + void vector Y_e*; ``forward`` gives the TIE scores [B, K]."""

    def __init__(self, factual: nn.Module, context: nn.Module, num_classes: int, multilabel: bool = False,
                 fusion: str = "sum", kl: bool = True, mask_context: bool = True, *, star_init: str = "uniform",
                 star: str = "learned"):
        super().__init__()
        check_mode(fusion)
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if star_init not in STAR_INITS:
            raise ValueError(f"star_init must be one of {STAR_INITS}, got {star_init!r}")
        if star not in STARS:
            raise ValueError(f"star must be one of {STARS}, got {star!r}")
        self.target_key = "labels" if multilabel else "label"
        own_key = getattr(factual, "target_key", None)
        if own_key is not None and own_key != self.target_key:
            raise ValueError(f"the factual baseline trains on {own_key!r} but CLEF(multilabel={multilabel}) "
                             f"would read {self.target_key!r}; build both for the same target type")
        self.factual = factual
        self.context = context
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.fusion = fusion
        self.kl = kl
        self.mask_context = mask_context
        self.context_key = "context" if mask_context else "image"
        self.views = tuple(dict.fromkeys((*getattr(factual, "views", ()), self.context_key)))
        self.star = star
        if star == "learned":
            init = torch.zeros(num_classes) if star_init == "uniform" else torch.rand(num_classes)
            self.y_e_star = nn.Parameter(init)
        else:  # not learned: a buffer (saved, moved with .to(), never optimised)
            self.register_buffer("y_e_star", torch.zeros(num_classes) if star == "average" else torch.randn(num_classes))
        self.factual_frozen = False

    def _check(self, name: str, logits: torch.Tensor, batch_size: int | None = None) -> None:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes or (
                batch_size is not None and logits.shape[0] != batch_size):
            raise ValueError(f"the {name} branch must return [B, {self.num_classes}] logits"
                             + (f" with B = {batch_size}" if batch_size is not None else "")
                             + f", got {tuple(logits.shape)}")

    def outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """y_e, y_c, y_e_star (broadcast [B, K]), fused Y_{c,e}, counterfactual Y_{c,e*}, tie."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.factual_frozen):
            y_e = self.factual(batch)
        self._check("factual", y_e)
        if self.star == "average" and self.training:
            self.y_e_star.lerp_(y_e.detach().float().mean(dim=0), AVERAGE_MOMENTUM)
        y_c = self.context(batch[self.context_key])
        self._check("context", y_c, y_e.shape[0])
        star = void_like(y_e, self.y_e_star)
        fused = fuse(self.fusion, y_e, y_c)
        counterfactual = fuse(self.fusion, star, y_c)
        return {"y_e": y_e, "y_c": y_c, "y_e_star": star, "fused": fused, "counterfactual": counterfactual,
                "tie": total_indirect_effect(fused, counterfactual)}

    def forward(self, batch: dict) -> torch.Tensor:
        """TIE = Y_{c,e} - Y_{c,e*} [B, K], the inference scores (Eq. 9)."""
        return self.outputs(batch)["tie"]

    def factual_scores(self, batch: dict) -> torch.Tensor:
        """The fused factual Y_{c,e} [B, K] (the TE / "factual-only" diagnostic)."""
        return self.outputs(batch)["fused"]

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``total`` = ``task_fused`` + ``task_counterfactual`` + ``kl`` (Eq. 12-14, weights 1)."""
        fused, counterfactual = out["fused"].float(), out["counterfactual"].float()
        y_c, star = out["y_c"].detach().float(), out["y_e_star"].float()
        if self.multilabel:
            if target.shape != fused.shape:
                raise ValueError(f"multi-label CLEF needs multi-hot targets of shape {tuple(fused.shape)}, "
                                 f"got {tuple(target.shape)}")
            target = target.float()
            log_p, log_not_p = bernoulli_log_probs(self.fusion, out["y_e"].float(), out["y_c"].float())
            log_q, log_not_q = bernoulli_log_probs(self.fusion, star, out["y_c"].float())
            task_fused = -(target * log_p + (1 - target) * log_not_p).mean()
            task_cf = -(target * log_q + (1 - target) * log_not_q).mean()
            if self.kl:
                log_q, log_not_q = bernoulli_log_probs(self.fusion, star, y_c)
                log_p, log_not_p = log_p.detach(), log_not_p.detach()
                kl = (log_p.exp() * (log_p - log_q) + log_not_p.exp() * (log_not_p - log_not_q)).mean()
        else:
            if target.dim() != 1 or target.shape[0] != fused.shape[0] or target.is_floating_point():
                raise ValueError(f"single-label CLEF needs class indices of shape ({fused.shape[0]},), "
                                 f"got {target.dtype} {tuple(target.shape)}")
            task_fused = F.cross_entropy(fused, target)
            task_cf = F.cross_entropy(counterfactual, target)
            if self.kl:
                log_p = F.log_softmax(fused.detach(), dim=1)
                log_q = F.log_softmax(fuse(self.fusion, star, y_c), dim=1)
                kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
        if not self.kl:
            kl = fused.new_zeros(())
        return {"total": task_fused + task_cf + kl, "task_fused": task_fused, "task_counterfactual": task_cf,
                "kl": kl}

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.loss(self.outputs(batch), batch[self.target_key])["total"]

    def no_weight_decay(self) -> tuple[str, ...]:
        """Y_e* takes no weight decay in :func:`reprolib.engine.fit`: it is the learned "no emotion
        cue" input of the counterfactual, and decay would pull it towards 0, a value with no meaning here.
        A Y_e* that is not learned (``star`` "average" or "random") is a buffer: nothing to exempt."""
        return ("y_e_star",) if self.star == "learned" else ()

    def freeze_factual(self, frozen: bool = True) -> "CLEF":
        """The "baseline first" schedule: the factual baseline stops learning and stays in eval mode.

        Its parameters get ``requires_grad=False`` (so ``engine.fit``, which optimises only parameters
        that require gradients, leaves them and their weight decay alone) and :meth:`train` keeps it in
        evaluation mode (frozen BatchNorm statistics, no dropout). ``frozen=False`` undoes it.
        Returns the model.
        """
        for p in self.factual.parameters():
            p.requires_grad_(not frozen)
        self.factual_frozen = frozen
        return self.train(self.training)

    def train(self, mode: bool = True) -> "CLEF":
        super().train(mode)
        if self.factual_frozen:
            self.factual.eval()
        return self


def clef_around(factual: nn.Module, data, backbone: str = "small", context_weights: str | Path | None = None,
                context: type[nn.Module] | None = None, **options) -> CLEF:
    """CLEF around a baseline as the notebooks and sweeps train it: ``factual`` is Y_e, the context branch
    N_C is a fresh ``context_branch`` of the baselines' ``backbone`` family (``context_weights``: a local
    Places365 checkpoint), or ``context(num_classes)`` (e.g. :class:`NoContext`); ``data`` gives the number
    of classes and whether it is multi-label; ``options`` go to :class:`CLEF` (fusion, kl, mask_context, star)."""
    branch = context(data.num_classes) if context else context_branch(data.num_classes, backbone, context_weights)
    return CLEF(factual, branch, data.num_classes, multilabel=data.multilabel, **options)
