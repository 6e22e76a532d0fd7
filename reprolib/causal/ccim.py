"""CCIM, the Contextual Causal Intervention Module (Yang et al., CVPR 2023).

The context is treated as a confounder ``z`` of image and emotion. Backdoor adjustment asks for
P(Y | do(X)) = sum_z P(Y | X, z) P(z); CCIM approximates it (NWGM) by adding to the baseline's joint
feature ``h`` an attention-weighted, prior-weighted average of the confounder prototypes,

    g(h) = sum_i lambda_i(h) * P(z_i) * z_i,        logits = head(block(h W_h + g W_g)),

so CCIM *replaces* the baseline's classifier. Shapes and layers follow the paper's module:

* ``query`` = Linear(d_h -> 256, no bias), ``key`` = Linear(d_z -> 256, no bias);
* dot-product attention: softmax(Q K^T / sqrt(d_z)) -- the scale uses the *dictionary* width d_z, as
  in the paper's code, not the attention width;
* additive attention: softmax(w_t(tanh(Q + K))) with ``w_t`` = Linear(256 -> 1, no bias);
* W_h [d_h, 128] and W_g [d_z, 128] (xavier-normal, no bias), then a residual block
  x + 0.3 * Dropout(Linear(Dropout(GELU(Linear(BN(x)))))) with 128 -> 512 -> 128, then the head.

``Z`` and ``P`` are buffers: they move with ``.to()``, are saved in the state dict and never trained.
Decisions where the paper is silent: only the head for this dataset is built (the paper's module
carries all three dataset heads); a training batch of one uses the BatchNorm running statistics
instead of failing.

Option beyond the paper, ``relative_prior=True``: weight the prototypes by N * P(z_i) (mean 1) instead
of P(z_i) (mean 1/N). The weighting between prototypes is the same; only the 1/N shrinkage of ``g``
goes. With the paper's weights ``g`` is a few per cent of ``h W_h`` (notebook 08 measures it), so
the attention gets almost no gradient and stays uniform, which makes ``g`` a constant.

Ablation of the paper's Table 4, ``attention=False`` ("without lambda_i"): every lambda_i = 1, so
g = sum_i P(z_i) z_i, the prior-weighted mean prototype, the same vector for every sample (the query
and key layers are then unused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reprolib.causal.dictionary import ConfounderDictionary
from reprolib.engine import to_device
from reprolib.progress import progress

STRATEGIES = ("dot_product", "additive")
ATTENTION_DIM = 256
HIDDEN_DIM = 128
EXPAND_DIM = 512
RESIDUAL_SCALE = 0.3

Strategy = Literal["dot_product", "additive"]


class CCIM(nn.Module):
    """h [B, d_h] -> class logits [B, K], intervening with the dictionary ``Z`` [N, d_z] and prior ``P`` [N]."""

    def __init__(self, joint_dim: int, dictionary: torch.Tensor | np.ndarray, prior: torch.Tensor | np.ndarray,
                 num_classes: int, strategy: Strategy = "dot_product", *, relative_prior: bool = False,
                 attention: bool = True, dropout: float = 0.5):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        Z = torch.as_tensor(np.asarray(dictionary), dtype=torch.float32)
        P = torch.as_tensor(np.asarray(prior), dtype=torch.float32).reshape(-1, 1)
        if Z.ndim != 2 or P.shape[0] != Z.shape[0]:
            raise ValueError(f"dictionary must be [N, d_z] and prior [N]; got {tuple(Z.shape)} and {tuple(P.shape)}")
        self.strategy = strategy
        self.relative_prior = relative_prior
        self.use_attention = attention
        self.register_buffer("dictionary", Z)
        self.register_buffer("prior", P * Z.shape[0] if relative_prior else P)
        d_z = Z.shape[1]
        self.query = nn.Linear(joint_dim, ATTENTION_DIM, bias=False)
        self.key = nn.Linear(d_z, ATTENTION_DIM, bias=False)
        self.w_t = nn.Linear(ATTENTION_DIM, 1, bias=False) if strategy == "additive" else None
        self.W_h = nn.Parameter(nn.init.xavier_normal_(torch.empty(joint_dim, HIDDEN_DIM)))
        self.W_g = nn.Parameter(nn.init.xavier_normal_(torch.empty(d_z, HIDDEN_DIM)))
        self.norm = nn.BatchNorm1d(HIDDEN_DIM)
        self.expand = nn.Sequential(nn.Linear(HIDDEN_DIM, EXPAND_DIM), nn.GELU(approximate="tanh"),
                                    nn.Dropout(dropout), nn.Linear(EXPAND_DIM, HIDDEN_DIM), nn.Dropout(dropout))
        self.head = nn.Linear(HIDDEN_DIM, num_classes)

    @property
    def size(self) -> int:
        """N, the number of prototypes."""
        return int(self.dictionary.shape[0])

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """Unnormalised attention scores [B, N] of each sample over the prototypes."""
        q = self.query(h)  # [B, A]
        k = self.key(self.dictionary)  # [N, A]
        if self.w_t is None:
            return q @ k.T / math.sqrt(self.dictionary.shape[1])
        return self.w_t(torch.tanh(q[:, None, :] + k[None, :, :])).squeeze(-1)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        """lambda(h) [B, N]: each row sums to 1."""
        return torch.softmax(self.scores(h), dim=-1)

    def intervene(self, h: torch.Tensor) -> torch.Tensor:
        """g(h) = sum_i lambda_i * P(z_i) * z_i  -> [B, d_z] (N * P(z_i) with ``relative_prior``;
        every lambda_i = 1 without ``attention``)."""
        weighted = self.prior * self.dictionary  # [N, d_z]
        if not self.use_attention:
            return weighted.sum(dim=0).expand(h.shape[0], -1)
        return self.attention(h) @ weighted

    def parts(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two summands before the block, h W_h and g W_g (each [B, 128]), for diagnostics."""
        return h @ self.W_h, self.intervene(h) @ self.W_g

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        from_h, from_g = self.parts(h)
        x = from_h + from_g
        if self.training and x.shape[0] == 1:  # BatchNorm cannot estimate batch statistics from one row
            normed = nn.functional.batch_norm(x, self.norm.running_mean, self.norm.running_var,
                                              self.norm.weight, self.norm.bias, training=False, eps=self.norm.eps)
        else:
            normed = self.norm(x)
        return self.head(x + RESIDUAL_SCALE * self.expand(normed))


def with_ccim(model: nn.Module, dictionary: ConfounderDictionary, strategy: Strategy = "dot_product",
              *, uniform_prior: bool = False, relative_prior: bool = False, attention: bool = True) -> nn.Module:
    """Put CCIM on a baseline in place of its classifier and return the model.

    Every baseline computes ``classifier(features(batch))`` in ``forward`` and in its own
    ``training_loss``, so swapping ``classifier`` keeps its features, its loss (EMOT-Net's weighted
    squared error, EmotiCon's multiplicative loss, ...) and any side head (EMOT-Net's VAD) unchanged.
    ``uniform_prior`` replaces P(z) by 1/N (the prior ablation); ``relative_prior`` and ``attention``
    (False: the "without lambda_i" ablation) see :class:`CCIM`.
    """
    old = getattr(model, "classifier", None)
    if not isinstance(old, nn.Linear) or not hasattr(model, "feature_dim"):
        raise TypeError(f"{type(model).__name__} has no linear `classifier` over `feature_dim` features to replace")
    if old.in_features != model.feature_dim:
        raise ValueError(f"{type(model).__name__}: classifier takes {old.in_features} features, "
                         f"feature_dim says {model.feature_dim}")
    used = dictionary.with_uniform_prior() if uniform_prior else dictionary
    model.classifier = CCIM(model.feature_dim, used.Z, used.P, old.out_features, strategy,
                            relative_prior=relative_prior, attention=attention).to(old.weight.device)
    return model


@dataclass
class CCIMReport:
    """What CCIM did on a dataset: the attention of every sample and how much ``g`` counts."""

    attention: np.ndarray  # [n_samples, N], rows sum to 1
    h_norm: float  # mean ||h W_h|| over samples
    g_norm: float  # mean ||g W_g||

    @property
    def g_share(self) -> float:
        """||g W_g|| / ||h W_h||: near 0 means the intervention hardly moves the classifier's input."""
        return self.g_norm / max(self.h_norm, 1e-12)

    @property
    def entropy_ratio(self) -> float:
        """Mean attention entropy / log N: 1 = uniform attention (then g is the same for every sample)."""
        a = np.clip(self.attention, 1e-12, 1.0)
        n = self.attention.shape[1]
        return float((-(a * np.log(a)).sum(axis=1)).mean() / np.log(n)) if n > 1 else 0.0


@torch.no_grad()
def inspect_ccim(model: nn.Module, data: Dataset, *, batch_size: int = 256, desc: str = "attention") -> CCIMReport:
    """Run a CCIM-wrapped model over ``data`` (in order, evaluation mode) and report its attention
    [n_samples, N] and the sizes of the two summands h W_h and g W_g."""
    ccim = model.classifier
    if not isinstance(ccim, CCIM):
        raise TypeError("the model carries no CCIM; build it with with_ccim()")
    model.eval()
    device = next(model.parameters()).device
    rows, h_norms, g_norms = [], [], []
    for batch in progress(DataLoader(data, batch_size=batch_size), desc=desc, leave=False):
        h = model.features(to_device(batch, device))
        from_h, from_g = ccim.parts(h)
        rows.append(ccim.attention(h).cpu())
        h_norms.append(from_h.norm(dim=1).cpu())
        g_norms.append(from_g.norm(dim=1).cpu())
    return CCIMReport(torch.cat(rows).numpy(), float(torch.cat(h_norms).mean()), float(torch.cat(g_norms).mean()))
