"""Fusion of branch logits and the counterfactual algebra shared by CLEF and CausalMER.

Both methods follow CF-VQA: a *main* branch carries the indirect path (CLEF: the baseline's Y_e
through the ensemble E; CausalMER: MulT's z_m through the multimodal knowledge M) and one or more
*direct* branches carry the shortcut (CLEF: the context-only Y_c; CausalMER: z_t, z_a, z_v). A fusion
phi turns the branch logits into one score per class, and a counterfactual replaces a branch by a
learned constant at logit level ("void" input; :func:`void_like`).

Fusion modes, all element-wise over the class dimension, on LOGITS (never on probabilities:
adding softmax outputs was the first bug of the CENG501 re-implementation of CLEF):

* ``sum``: log sigmoid(main + sum(direct)). CLEF Eq. 11; CF-VQA and CausalMER "sum". Computed with
  ``logsigmoid``; the references write log(sigmoid(.) + 1e-12), which only differs below about -27.6,
  where theirs flattens out and ours keeps its slope.
* ``hm`` (harmonic): u = prod_i sigmoid(x_i) over main and direct; log(u / (1 + u)). CF-VQA and
  CausalMER "hm" (log(u + 1e-12) - log1p(u)). Computed exactly and stably as
  logsigmoid(sum_i logsigmoid(x_i)): with s = log u, s - log(1 + e^s) = logsigmoid(s). Finite for
  any finite input; no epsilon.
* ``mask``: main * sigmoid(sum(direct)). CausalMER's "mask" (z_m * sigmoid(z_t + z_a + z_v), the
  mode of its released script).
* ``rubi``: the same formula under CF-VQA's name (z_k * sigmoid(z_q)). CF-VQA defines it for one
  direct branch; with several we sum their logits inside the gate, as CausalMER's "mask" does. It is
  kept as a separate name only so that configurations written either way run.
* ``tanh``: main + sum(tanh(direct)). CausalMER's "tanh" mode.

``sum`` and ``hm`` give log-probabilities (<= 0); ``mask``, ``rubi`` and ``tanh`` give unbounded logits.
All of them serve as the logits of a softmax cross-entropy for single-label targets (as in CF-VQA and
CausalMER). For multi-label targets :func:`bernoulli_log_probs` gives the per-class probability each
mode stands for; the reading for each mode is recorded there.

Counterfactual algebra (CLEF Eq. 6, 7, 9; CausalMER's TIE = TE - NDE_t - NDE_a - NDE_v), on scores that
are already fused: the factual F (every branch factual), a counterfactual C_k (only direct branch k
factual) and the reference R (nothing factual):

    TE = F - R,        NDE_k = C_k - R,        TIE = TE - sum_k NDE_k = F - sum_k C_k + (n - 1) R.

With one direct path (CLEF) R cancels and TIE = F - C, so R never needs computing.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

FUSION_MODES = ("sum", "hm", "mask", "rubi", "tanh")
# below this, log p is treated as log(1 - 1e-30) so that log(1 - p) stays finite (see _log1mexp)
_MAX_LOG_P = -1e-30
_LOG2 = 0.6931471805599453


def check_mode(mode: str) -> str:
    """``mode`` itself if it names a fusion, else a ValueError listing the valid modes."""
    if mode not in FUSION_MODES:
        raise ValueError(f"unknown fusion mode {mode!r}; valid modes: {', '.join(FUSION_MODES)}")
    return mode


def _split(main: torch.Tensor, direct: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    if not direct:
        raise ValueError("a fusion needs the main logits and at least one direct-path logits tensor")
    return (main, *direct)


def fuse_sum(main: torch.Tensor, *direct: torch.Tensor) -> torch.Tensor:
    """log sigmoid(main + sum(direct)) (CLEF Eq. 11)."""
    return F.logsigmoid(sum(_split(main, direct)))


def fuse_hm(main: torch.Tensor, *direct: torch.Tensor) -> torch.Tensor:
    """log(u / (1 + u)) with u = prod sigmoid(x_i), as logsigmoid(sum logsigmoid(x_i))."""
    return F.logsigmoid(sum(F.logsigmoid(x) for x in _split(main, direct)))


def fuse_mask(main: torch.Tensor, *direct: torch.Tensor) -> torch.Tensor:
    """main * sigmoid(sum(direct)) (CausalMER "mask", CF-VQA "rubi")."""
    _split(main, direct)
    return main * torch.sigmoid(sum(direct))


def fuse_tanh(main: torch.Tensor, *direct: torch.Tensor) -> torch.Tensor:
    """main + sum(tanh(direct)) (CausalMER "tanh")."""
    _split(main, direct)
    return main + sum(torch.tanh(x) for x in direct)


_FUSIONS = {"sum": fuse_sum, "hm": fuse_hm, "mask": fuse_mask, "rubi": fuse_mask, "tanh": fuse_tanh}


def fuse(mode: str, main: torch.Tensor, *direct: torch.Tensor) -> torch.Tensor:
    """Fused scores of the main (indirect-path) logits and the direct-path logits; shapes broadcast.

    ``sum`` and ``hm`` are symmetric in their inputs; for ``mask``/``rubi``/``tanh`` the order matters:
    ``main`` is the multiplied / un-squashed branch.
    """
    return _FUSIONS[check_mode(mode)](main, *direct)


def _log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_p)) for log_p < 0, accurate on both sides of -log 2 (Maechler's split).

    ``log_p`` is first capped at -1e-30 (p = 1 - 1e-30): log(1 - p) then stays finite (>= -69) and
    the gradient through the cap is zero instead of NaN. Each branch of the split is evaluated on an
    input clamped into its own half, so the branch not taken cannot put a NaN into the gradient.
    """
    log_p = log_p.clamp(max=_MAX_LOG_P)
    near_one = torch.log(-torch.expm1(log_p.clamp(min=-_LOG2)))
    far_from_one = torch.log1p(-torch.exp(log_p.clamp(max=-_LOG2)))
    return torch.where(log_p > -_LOG2, near_one, far_from_one)


def bernoulli_log_probs(mode: str, main: torch.Tensor, *direct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log(1 - p)) per class: the Bernoulli probability that a fused score stands for.

    Used by multi-label losses (per-class binary cross-entropy and Bernoulli KL). Readings:

    * ``sum``: p = sigmoid(main + sum(direct)) = exp(fused), so the binary cross-entropy is exactly
      ``binary_cross_entropy_with_logits`` on the summed logits (the CLEF reading for EMOTIC);
    * ``hm``: p = u = prod sigmoid(x_i), the product of experts that ``hm`` renormalises. Not
      exp(fused) = u / (1 + u): that is at most 1/2 and could never fit a positive label (the same
      flaw as the CENG501 log(sigmoid(a) + sigmoid(b)) fusion);
    * ``mask``, ``rubi``, ``tanh``: the fused score is a logit (RUBi and CausalMER train it with
      cross-entropy as one), so p = sigmoid(fused).
    """
    check_mode(mode)
    if mode == "sum":
        s = sum(_split(main, direct))
        return F.logsigmoid(s), F.logsigmoid(-s)
    if mode == "hm":
        log_u = sum(F.logsigmoid(x) for x in _split(main, direct))
        return log_u, _log1mexp(log_u)
    z = fuse(mode, main, *direct)
    return F.logsigmoid(z), F.logsigmoid(-z)


def void_like(logits: torch.Tensor, value: torch.Tensor | float) -> torch.Tensor:
    """The counterfactual ("void") logits: ``value`` (a scalar or a per-class [K] vector, learned)
    broadcast to the shape of ``logits``, so every sample shares it and gradients reach ``value``."""
    if not isinstance(value, torch.Tensor):
        return torch.full_like(logits, float(value))
    return value.to(logits.device).expand(logits.shape)  # keeps value's dtype (and its autograd link)


def total_effect(factual: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """TE = Y_{c,e} - Y_{c*,e*} (CLEF Eq. 6): fused factual minus the fused all-counterfactual scores."""
    return factual - reference


def natural_direct_effect(counterfactual: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """NDE = Y_{c,e*} - Y_{c*,e*} (CLEF Eq. 7): only the direct path factual, minus the reference."""
    return counterfactual - reference


def total_indirect_effect(factual: torch.Tensor, *counterfactuals: torch.Tensor,
                          reference: torch.Tensor | None = None) -> torch.Tensor:
    """TIE = TE - sum_k NDE_k (CLEF Eq. 9; CausalMER with its three direct paths).

    One counterfactual: Y_{c,e} - Y_{c,e*}, the reference cancels and is not needed. Several:
    F - sum_k C_k + (n - 1) R, which needs the fused all-counterfactual ``reference`` R.
    """
    if not counterfactuals:
        raise ValueError("total_indirect_effect needs at least one counterfactual score tensor")
    if len(counterfactuals) == 1:
        return factual - counterfactuals[0]
    if reference is None:
        raise ValueError(f"with {len(counterfactuals)} direct paths the reference (nothing factual) scores "
                         f"do not cancel; pass reference=")
    return factual - sum(counterfactuals) + (len(counterfactuals) - 1) * reference
