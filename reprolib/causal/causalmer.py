"""CausalMER (Kim, Hong, Choi, Applied Sciences 2024): counterfactual modality debiasing around MulT.

Causal graph: text T, audio A, vision V, multimodal knowledge M, prediction Y. The direct paths T -> Y,
A -> Y, V -> Y carry unimodal shortcuts (bias); {T, A, V} -> M -> Y is the multimodal, indirect effect
that inference keeps. Four branches, all [B, K] logits on the same raw inputs:

* z_m: the fused backbone, a :class:`reprolib.models.mult.MulT` (any module mapping a batch to [B, K]
  works; a MulT also gives its ``features``, the paper code's ``mult_last_hs``);
* z_t: :class:`TextBranch`, Linear(d_t -> 128) -> an ALBERT-shaped transformer fed the projection as
  ``inputs_embeds`` -> mean over time (padding included, no attention mask, as the reference) -> Linear;
* z_a, z_v: :class:`SequenceImageBranch`, the feature sequence read as a one-channel image [B, 1, T, F]
  through a randomly initialised ResNet-18 whose stem takes one channel, then Linear(512 -> K);
* c_t, c_a, c_v: three learned scalars (``constant_t/a/v``), initialised to ``constant`` = 0.0: the
  "void" input, applied at logit level (:func:`reprolib.causal.fusion.void_like`).

Fused quantities (fusion phi from :mod:`reprolib.causal.fusion`; main = z_m, direct = (z_t, z_a, z_v)):

    Z_fact = phi(z_m, z_t, z_a, z_v)                  every branch factual
    Z_T    = phi(c_t, z_t, c_t, c_t)                  only text factual; c_t replaces every other logit
    Z_A    = phi(c_a, c_a, z_a, c_a),  Z_V = phi(c_v, c_v, c_v, z_v)
    Z_0    = phi(c, c, c, c),  c = c_t + c_a + c_v    nothing factual (reference)
    TIE    = Z_fact - Z_T - Z_A - Z_V + 2 Z_0         (:func:`fusion.total_indirect_effect`)

For ``mask`` (the released script's mode) Z_T = c_t sigmoid(z_t + 2 c_t) and Z_0 = c sigmoid(3 c). Inference
scores are TIE (``forward``), computed with detached copies of the constants as in the paper code. With the
constants at 0 and ``mask`` fusion every counterfactual is 0 and TIE = Z_fact: the debiasing exists only as
far as the constants move.

Training loss, the paper code's (notes 1.6), L = alpha L_cls + beta L_kl with alpha = 0.1, beta = 1.0:

* L_cls = CE(Z_fact) + CE(z_t) + CE(z_a) + CE(z_v) with the task loss of :func:`reprolib.models.mult.task_loss`
  (IEMOCAP: cross-entropy over the [B * 4, 2] view of the [B, 8] scores against the multi-hot ``labels``;
  MOSEI regression: L1 against ``label``; MOSEI ``cls``: cross-entropy against ``label_cls``). The raw MulT
  logits z_m are never supervised on their own; CE(Z_fact) trains MulT and, through the fusion, the branches;
* L_kl = H(te, nde) + [H(nde_t, nde_a) + H(nde_a, nde_v) + H(nde_v, nde_t)] / 3 + H(te, nde_t) + H(te, nde_a)
  + H(te, nde_v), with H(p, q) = mean over the batch of -sum_classes p log q, a cross-entropy between
  distributions (not ``kl_div``), **nothing detached inside it**, on te = Z_fact(detached branches) - Z_0(c),
  nde_k = Z_k(detached z_k; c_k) - Z_0(c), nde = nde_t + nde_a + nde_v. The branches enter detached and the
  constants live, so **the KL trains only c_t, c_a, c_v**, and only the KL trains them.

Decisions where the paper / its code leave a choice, each recorded here:

* **IEMOCAP outputs**: K = 8 logits = 4 emotions (Neutral, Happy, Sad, Angry) x (absent, present), pairs
  adjacent, as MulT; the loader's multi-hot ``labels`` [B, 4] are the class indices (1 = present) of the
  4 binary tasks. TIE is [B, 8] as well and :func:`reprolib.metrics.iemocap_metrics` reads it (argmax per
  pair); a pair's arg-max is what the paper evaluates, so no [B, 4] reduction is made here.
* **KL distribution** (``kl``): ``"joint"``, the paper code: softmax over the last dimension, i.e. over all
  8 IEMOCAP logits jointly, not per emotion pair; ``"pairs"``: softmax per emotion pair (IEMOCAP only, the
  reading that matches the per-emotion CE); ``"bernoulli"``: each output read as a Bernoulli logit,
  H = -sum_k [p_k log q_k + (1 - p_k) log(1 - q_k)] with p = sigmoid(.); ``"off"``: no KL (then the
  constants never train). ``"auto"`` (default) = ``"joint"`` except for a **one-output task** (MOSEI
  regression), where the softmax of a single logit is identically 1, L_kl is identically 0, the constants
  get no gradient and TIE = Z_fact forever: there ``"auto"`` takes ``"bernoulli"`` (the sentiment score read
  as the logit of "positive", the binary task MOSEI is scored on). ``kl="joint"`` on such a task keeps the
  faithful zero and warns (:class:`DegenerateKLWarning`); ``degenerate_kl`` tells which case a model is in.
  log q is always ``log_softmax`` / ``logsigmoid`` (exact; no epsilon).
* **sum / hm on regression**: these fusions give log-probabilities (<= 0), so Z_fact cannot fit a positive
  sentiment under the L1 loss (the paper code has the same property); use ``mask`` (default) or ``tanh``.
* **Text branch**: pretrained ALBERT ``albert-base-v2`` cannot be fetched here. :class:`TextBranch` has
  ALBERT's structure (learned positions, embedding LayerNorm, embedding -> hidden mapping, post-LayerNorm
  layers with tanh-GELU, cross-layer sharing) and its parameter names, so a local ALBERT checkpoint
  (``text_weights``: a PyTorch state dict, ``pytorch_model.bin`` style, keys with or without the
  ``albert.`` prefix; ``.safetensors`` when that package is installed) loads into it with
  ``TextEncoderConfig.albert_base_v2()``. Without weights it starts from random init: a **documented
  deviation** (the paper's text branch starts pretrained). The default size is small
  (``TextEncoderConfig()``: 128 / 128 hidden / 2 shared layers / 4 heads) for CPU runs.
* **Per-module learning rates**: the paper trains the text branch at 1e-6 (to keep ALBERT near its
  pretrained weights), everything else at 2e-3. :meth:`CausalMER.parameter_groups` builds such groups
  for a custom optimiser; ``engine.fit`` uses one learning rate for all, which is the sensible choice for
  a randomly initialised text branch.
* **ResNet branches**: the repo's :class:`reprolib.models.backbones.ResNetEncoder` with a one-channel
  stem (kaiming-normal init of the new stem; the paper code keeps PyTorch's default init there).
  ``encoder="small"`` (the repo's small CNN, one input channel) is an option for smoke runs. Both contain
  BatchNorm: train with batches of at least 2.
* **Missing modalities**: :func:`zero_modalities` zeroes raw inputs for every consumer (MulT and the
  branch), as the paper's inference does (without its CPU-only bug).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from reprolib.causal.fusion import (check_mode, fuse, natural_direct_effect, total_effect, total_indirect_effect,
                                    void_like)
from reprolib.models.backbones import build_encoder, state_dict_mismatch
from reprolib.models.mult import MODALITIES, TASK_OUTPUT_DIM, TASK_TARGET_KEY, MulT, check_task, task_for, task_loss

__all__ = ["KL_MODES", "CausalMER", "DegenerateKLWarning", "SequenceImageBranch", "TextBranch", "TextEncoderConfig",
           "AlbertLikeEncoder", "build_causalmer", "load_text_weights", "zero_modalities"]

KL_MODES = ("auto", "joint", "pairs", "bernoulli", "off")
BRANCHES = ("text", "audio", "vision")
_SHORT = {"text": "t", "audio": "a", "vision": "v"}


class DegenerateKLWarning(UserWarning):
    """The KL regulariser is identically zero for this configuration (one output under a softmax)."""


# ---------------------------------------------------------------------------------------------------
# Text branch: an ALBERT-shaped encoder
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes of the ALBERT-shaped text encoder. ``albert_base_v2()`` gives the paper's ALBERT sizes."""

    embedding_size: int = 128
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_positions: int = 512
    share_layers: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-12

    @classmethod
    def albert_base_v2(cls) -> "TextEncoderConfig":
        """albert-base-v2: embedding 128, hidden 768, 12 shared layers, 12 heads, FFN 3072, 512 positions,
        no dropout."""
        return cls(embedding_size=128, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072)


class _AlbertEmbeddings(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.embedding_size)
        self.token_type_embeddings = nn.Embedding(2, cfg.embedding_size)
        self.LayerNorm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        t = inputs_embeds.shape[1]
        if t > self.position_embeddings.num_embeddings:
            raise ValueError(f"text of {t} steps exceeds the encoder's "
                             f"{self.position_embeddings.num_embeddings} positions")
        pos = torch.arange(t, device=inputs_embeds.device)
        x = inputs_embeds + self.position_embeddings(pos) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class _AlbertAttention(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        h = cfg.hidden_size
        if h % cfg.num_heads:
            raise ValueError(f"hidden_size {h} is not divisible by num_heads {cfg.num_heads}")
        self.num_heads = cfg.num_heads
        self.query, self.key, self.value, self.dense = (nn.Linear(h, h) for _ in range(4))
        self.LayerNorm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.attention_dropout = cfg.attention_dropout
        self.output_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(b, t, self.num_heads, h // self.num_heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)),
                                             dropout_p=self.attention_dropout if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(b, t, h)
        return self.LayerNorm(x + self.output_dropout(self.dense(ctx)))


class _AlbertLayer(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.attention = _AlbertAttention(cfg)
        self.ffn = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_output = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.full_layer_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        h = self.ffn_output(F.gelu(self.ffn(a), approximate="tanh"))
        return self.full_layer_layer_norm(a + self.dropout(h))


class _AlbertGroup(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([_AlbertLayer(cfg)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.albert_layers:
            x = layer(x)
        return x


class _AlbertTransformer(nn.Module):
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.embedding_hidden_mapping_in = nn.Linear(cfg.embedding_size, cfg.hidden_size)
        groups = 1 if cfg.share_layers else cfg.num_layers
        self.albert_layer_groups = nn.ModuleList(_AlbertGroup(cfg) for _ in range(groups))
        self.num_layers = cfg.num_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding_hidden_mapping_in(x)
        groups = len(self.albert_layer_groups)
        for i in range(self.num_layers):
            x = self.albert_layer_groups[i * groups // self.num_layers](x)
        return x


class AlbertLikeEncoder(nn.Module):
    """ALBERT's encoder fed with ``inputs_embeds`` [B, T, embedding_size] -> last hidden state [B, T, hidden].

    Parameter names follow the Hugging Face ``AlbertModel`` (``embeddings.*``, ``encoder.*``) so that an
    ALBERT checkpoint loads without renaming; word embeddings and the pooler are not part of it (the
    branch feeds embeddings directly and pools by a mean).
    """

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        if cfg.num_layers < 1:
            raise ValueError(f"the text encoder needs at least one layer, got {cfg.num_layers}")
        self.config = cfg
        self.embeddings = _AlbertEmbeddings(cfg)
        self.encoder = _AlbertTransformer(cfg)
        for module in self.modules():  # ALBERT's initialiser: N(0, 0.02) weights, zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear):
                    nn.init.zeros_(module.bias)

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embeddings(inputs_embeds))


class TextBranch(nn.Module):
    """z_t: Linear(in_dim -> embedding_size) -> :class:`AlbertLikeEncoder` -> mean over time -> Linear(-> out_dim).

    Input: the text features [B, T, in_dim] (GloVe 300 in the real data). No attention mask and no
    masking in the mean, as in the paper code (left padding is attended to and averaged).
    """

    def __init__(self, in_dim: int, out_dim: int, config: TextEncoderConfig | Mapping[str, Any] | None = None,
                 weights: str | Path | None = None):
        super().__init__()
        cfg = config if isinstance(config, TextEncoderConfig) else TextEncoderConfig(**dict(config or {}))
        self.config = cfg
        self.proj = nn.Linear(in_dim, cfg.embedding_size)
        self.encoder = AlbertLikeEncoder(cfg)
        self.head = nn.Linear(cfg.hidden_size, out_dim)
        if weights is not None:
            load_text_weights(self, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text-encoder weights file is missing")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"{path}: reading .safetensors needs the 'safetensors' package; install it or "
                             f"convert the file to a PyTorch state dict (.bin / .pt)") from None
        return dict(load_file(str(path)))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable / unsafe file gets the same clear message
        raise ValueError(f"{path}: not a readable PyTorch state dict ({type(err).__name__}: {err})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor)")
    return obj


def load_text_weights(branch: TextBranch, path: str | Path) -> TextBranch:
    """Load local weights into a :class:`TextBranch` and return it.

    Two kinds of file are recognised: a whole-branch state dict of this repo (keys ``proj.*``,
    ``encoder.*``, ``head.*``), or a Hugging Face ALBERT checkpoint (``AlbertModel`` keys
    ``embeddings.*`` / ``encoder.*``, optionally under ``albert.``); for the latter only the encoder is
    loaded (word embeddings, pooler and pre-training heads are ignored; ``proj`` and ``head`` stay new),
    and the branch must have been built with matching sizes (``TextEncoderConfig.albert_base_v2()``).
    Missing keys or wrong shapes are a ValueError naming the file.
    """
    path = Path(path)
    state = _read_state_dict(path)
    if any(k.startswith(("proj.", "head.")) for k in state):
        target, prefix_note = branch, "text branch"
    else:
        target, prefix_note = branch.encoder, "ALBERT encoder"
        stripped = {(k[len("albert."):] if k.startswith("albert.") else k): v for k, v in state.items()}
        state = {k: v for k, v in stripped.items()
                 if k.startswith(("embeddings.", "encoder.")) and k not in (
                     "embeddings.word_embeddings.weight", "embeddings.position_ids", "embeddings.token_type_ids")}
        if not state:
            raise ValueError(f"{path}: no ALBERT encoder weights (embeddings.* / encoder.*) and no text-branch "
                             f"weights (proj.* / encoder.* / head.*) found")
    detail = state_dict_mismatch(target.state_dict(), state)
    if detail:
        raise ValueError(f"{path}: weights do not fit the {prefix_note} ({'; '.join(detail)}); "
                         f"build it with the checkpoint's sizes (e.g. TextEncoderConfig.albert_base_v2())")
    target.load_state_dict(state)
    return branch


# ---------------------------------------------------------------------------------------------------
# Audio / vision branches
# ---------------------------------------------------------------------------------------------------

class SequenceImageBranch(nn.Module):
    """z_a / z_v: features [B, T, F] as a one-channel image [B, 1, T, F] -> 2-D CNN -> Linear(-> out_dim).

    ``encoder``: ``"resnet18"`` (the paper: randomly initialised, one-channel stem) or any name
    :func:`reprolib.models.backbones.build_encoder` knows (``"small"`` with ``widths`` for smoke runs).
    """

    def __init__(self, out_dim: int, encoder: str = "resnet18", widths: tuple[int, ...] | None = None):
        super().__init__()
        self.encoder = build_encoder(encoder, in_channels=1, widths=widths)
        self.head = nn.Linear(self.encoder.out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected a feature sequence [B, T, F], got {tuple(x.shape)}")
        return self.head(self.encoder(x.unsqueeze(1)))


# ---------------------------------------------------------------------------------------------------
# CausalMER
# ---------------------------------------------------------------------------------------------------

def zero_modalities(batch: dict, remove: str | Iterable[str]) -> dict:
    """A shallow copy of ``batch`` with the named modalities' raw features replaced by zeros.

    ``remove``: a string of letters (``"t"``, ``"av"``, ...) or modality names (``["text"]``). The paper's
    missing-modality test: every consumer (MulT and the branch) sees the zeros.
    """
    letters = {"t": "text", "a": "audio", "v": "vision"}
    if isinstance(remove, str):
        names = [remove] if remove in MODALITIES else [letters.get(ch, ch) for ch in remove]
    else:
        names = [letters.get(r, r) for r in remove]
    bad = [n for n in names if n not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modality {bad}; use 't', 'a', 'v' or {MODALITIES}")
    out = dict(batch)
    for name in names:
        out[name] = torch.zeros_like(batch[name])
    return out


class CausalMER(nn.Module):
    """Backbone (z_m) + text, audio, vision branches + learned constants; ``forward`` = TIE scores [B, K].

    ``backbone(batch) -> [B, K]`` (a :class:`MulT`: its ``features`` are then returned too); ``text``,
    ``audio``, ``vision``: modules mapping the modality's features [B, T, F] to [B, K]. ``task``:
    ``"iemocap"`` (K = 8, target ``labels``), ``"regression"`` (K = 1, ``label``) or ``"classes"`` (K = 7,
    ``label_cls``). ``fusion``: a mode of :data:`reprolib.causal.fusion.FUSION_MODES` (default ``mask``,
    the released script's). ``alpha`` / ``beta``: weights of L_cls / L_kl. ``constant``: initial value of
    c_t, c_a, c_v. ``kl``: see the module docstring (:data:`KL_MODES`).
    """

    views = MODALITIES

    def __init__(self, backbone: nn.Module, text: nn.Module, audio: nn.Module, vision: nn.Module, *,
                 task: str = "iemocap", output_dim: int | None = None, fusion: str = "mask", alpha: float = 0.1,
                 beta: float = 1.0, constant: float = 0.0, kl: str = "auto"):
        super().__init__()
        self.task = check_task(task)
        self.fusion = check_mode(fusion)
        self.target_key = TASK_TARGET_KEY[task]
        self.output_dim = TASK_OUTPUT_DIM[task] if output_dim is None else int(output_dim)
        own = getattr(backbone, "target_key", None)
        if own is not None and own != self.target_key:
            raise ValueError(f"the backbone trains on {own!r} but a CausalMER for task {task!r} reads "
                             f"{self.target_key!r}; build both for the same task")
        self.backbone, self.text, self.audio, self.vision = backbone, text, audio, vision
        self.alpha, self.beta = float(alpha), float(beta)
        self.constant_t = nn.Parameter(torch.tensor(float(constant)))
        self.constant_a = nn.Parameter(torch.tensor(float(constant)))
        self.constant_v = nn.Parameter(torch.tensor(float(constant)))
        if kl not in KL_MODES:
            raise ValueError(f"kl must be one of {KL_MODES}, got {kl!r}")
        if kl == "pairs" and task != "iemocap":
            raise ValueError("kl='pairs' (softmax per emotion pair) applies to the IEMOCAP task only")
        self.kl_request = kl
        self.kl_mode = ("bernoulli" if self.output_dim == 1 else "joint") if kl == "auto" else kl
        self.degenerate_kl = self.kl_mode == "joint" and self.output_dim == 1
        if self.degenerate_kl:
            warnings.warn("CausalMER: with one output the softmax in the KL term is identically 1, so the KL is "
                          "identically 0, the constants never train and TIE = Z_fact (the paper code's behaviour "
                          "on MOSEI regression); kl='auto' or 'bernoulli' gives it a gradient",
                          DegenerateKLWarning, stacklevel=2)

    # -- construction ------------------------------------------------------------------------------------
    def constants(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_t, c_a, c_v), the learned void logits (0-dim parameters)."""
        return self.constant_t, self.constant_a, self.constant_v

    def no_weight_decay(self) -> tuple[str, ...]:
        """The constants take no weight decay in :func:`reprolib.engine.fit` (the paper code has no
        decay at all): decay would pull each void logit c towards 0, the initial value, not a prior."""
        return ("constant_t", "constant_a", "constant_v")

    def parameter_groups(self, lr: float, *, backbone_lr: float | None = None, text_lr: float | None = None,
                         audio_lr: float | None = None, vision_lr: float | None = None,
                         constant_lr: float | None = None) -> list[dict]:
        """Optimizer parameter groups as in the paper code (one per module; the paper: text 1e-6, rest 2e-3).

        Each unspecified rate falls back to ``lr``. Parameters that do not require gradients are left out.
        """
        spec = [("backbone", self.backbone.parameters(), backbone_lr), ("text", self.text.parameters(), text_lr),
                ("audio", self.audio.parameters(), audio_lr), ("vision", self.vision.parameters(), vision_lr),
                ("constants", iter(self.constants()), constant_lr)]
        groups = []
        for name, params, rate in spec:
            params = [p for p in params if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params, "lr": lr if rate is None else rate})
        return groups

    # -- forward -----------------------------------------------------------------------------------------
    def _check(self, name: str, z: torch.Tensor, batch_size: int | None) -> None:
        if z.dim() != 2 or z.shape[1] != self.output_dim or (batch_size is not None and z.shape[0] != batch_size):
            raise ValueError(f"the {name} branch must return [B, {self.output_dim}] logits"
                             + (f" with B = {batch_size}" if batch_size is not None else "")
                             + f", got {tuple(z.shape)}")

    def _only(self, k: int, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """phi with direct branch k (0 text, 1 audio, 2 vision) factual and c everywhere else."""
        void = void_like(z, c)
        direct = [void, void, void]
        direct[k] = z
        return fuse(self.fusion, void, *direct)

    def _reference(self, like: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        void = void_like(like, c)
        return fuse(self.fusion, void, void, void, void)

    def branch_logits(self, batch: dict) -> dict[str, torch.Tensor]:
        """z_m, z_t, z_a, z_v [B, K] (and ``features`` when the backbone has them)."""
        out: dict[str, torch.Tensor] = {}
        if hasattr(self.backbone, "features") and hasattr(self.backbone, "classifier"):
            out["features"] = self.backbone.features(batch)
            out["z_m"] = self.backbone.classifier(out["features"])
        else:
            out["z_m"] = self.backbone(batch)
        self._check("backbone", out["z_m"], None)
        b = out["z_m"].shape[0]
        for name in BRANCHES:
            if name not in batch:
                raise KeyError(f"CausalMER needs batch[{name!r}]; the batch has {sorted(batch)}")
            z = getattr(self, name)(batch[name])
            self._check(name, z, b)
            out[f"z_{_SHORT[name]}"] = z
        return out

    def outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """Every branch and fused quantity, each [B, ...]:

        ``z_m``, ``z_t``, ``z_a``, ``z_v`` (branch logits), ``features`` (MulT's last_hs, if any);
        ``Z_fact``, ``Z_T``, ``Z_A``, ``Z_V``, ``Z_0`` and ``tie`` (inference side, constants detached);
        ``te``, ``nde_t``, ``nde_a``, ``nde_v``, ``nde`` (loss side: branches detached, constants live);
        ``c_t``, ``c_a``, ``c_v`` (the constants broadcast to [B, K]).
        """
        out = self.branch_logits(batch)
        z_m, z_t, z_a, z_v = out["z_m"], out["z_t"], out["z_a"], out["z_v"]
        c_t, c_a, c_v = self.constants()
        z_fact = fuse(self.fusion, z_m, z_t, z_a, z_v)
        # inference side (the paper code uses .clone().detach() copies of the constants here)
        d_t, d_a, d_v = c_t.detach(), c_a.detach(), c_v.detach()
        z_cf = [self._only(0, z_t, d_t), self._only(1, z_a, d_a), self._only(2, z_v, d_v)]
        z_0 = self._reference(z_m, d_t + d_a + d_v)
        out.update(Z_fact=z_fact, Z_T=z_cf[0], Z_A=z_cf[1], Z_V=z_cf[2], Z_0=z_0,
                   tie=total_indirect_effect(z_fact, *z_cf, reference=z_0))
        # loss side: detached branch logits, live constants (only the constants get the KL's gradient)
        ref = self._reference(z_m, c_t + c_a + c_v)
        out["te"] = total_effect(z_fact.detach(), ref)
        for k, (key, z, c) in enumerate((("t", z_t, c_t), ("a", z_a, c_a), ("v", z_v, c_v))):
            out[f"nde_{key}"] = natural_direct_effect(self._only(k, z.detach(), c), ref)
        out["nde"] = out["nde_t"] + out["nde_a"] + out["nde_v"]
        for key, c in (("t", c_t), ("a", c_a), ("v", c_v)):
            out[f"c_{key}"] = void_like(z_m, c)
        return out

    def forward(self, batch: dict) -> torch.Tensor:
        """TIE = Z_fact - Z_T - Z_A - Z_V + 2 Z_0 [B, K], the inference scores."""
        return self.outputs(batch)["tie"]

    def factual_scores(self, batch: dict) -> torch.Tensor:
        """Z_fact [B, K], the fused factual scores (the "no counterfactual inference" diagnostic)."""
        return self.outputs(batch)["Z_fact"]

    # -- loss --------------------------------------------------------------------------------------------
    def cross_entropy(self, p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
        """H(p, q) = mean over the batch of -sum p log q, with p, q read as :attr:`kl_mode` says."""
        p_logits, q_logits = p_logits.float(), q_logits.float()
        if self.kl_mode == "bernoulli":
            p = torch.sigmoid(p_logits)
            h = -(p * F.logsigmoid(q_logits) + (1 - p) * F.logsigmoid(-q_logits))
            return h.sum(dim=-1).mean()
        if self.kl_mode == "pairs":
            if p_logits.shape[-1] % 2:
                raise ValueError(f"kl='pairs' needs an even number of outputs, got {p_logits.shape[-1]}")
            p_logits = p_logits.reshape(p_logits.shape[0], -1, 2)
            q_logits = q_logits.reshape(q_logits.shape[0], -1, 2)
        h = -(F.softmax(p_logits, dim=-1) * F.log_softmax(q_logits, dim=-1))
        return h.reshape(h.shape[0], -1).sum(dim=-1).mean()

    def kl_term(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_kl of the paper code (unweighted); 0 when ``kl="off"``."""
        if self.kl_mode == "off":
            return out["te"].new_zeros((), dtype=torch.float32)
        h = self.cross_entropy
        te, nde, t, a, v = out["te"], out["nde"], out["nde_t"], out["nde_a"], out["nde_v"]
        return (h(te, nde) + (h(t, a) + h(a, v) + h(v, t)) / 3
                + h(te, t) + h(te, a) + h(te, v))

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``total`` = ``cls_fact`` + ``cls_text`` + ``cls_audio`` + ``cls_vision`` + ``kl``.

        Every entry already carries its weight: ``cls_*`` = alpha x the task loss of Z_fact / z_t / z_a / z_v,
        ``kl`` = beta x L_kl (see the module docstring).
        """
        terms = {
            "cls_fact": self.alpha * task_loss(self.task, out["Z_fact"], target),
            "cls_text": self.alpha * task_loss(self.task, out["z_t"], target),
            "cls_audio": self.alpha * task_loss(self.task, out["z_a"], target),
            "cls_vision": self.alpha * task_loss(self.task, out["z_v"], target),
            "kl": self.beta * self.kl_term(out),
        }
        return {"total": sum(terms.values()), **terms}

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.loss(self.outputs(batch), batch[self.target_key])["total"]


# ---------------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------------

def build_causalmer(dims: Mapping[str, int] | Any, *, task: str | None = None, mosei_task: str = "regression",
                    fusion: str = "mask", alpha: float = 0.1, beta: float = 1.0, constant: float = 0.0,
                    kl: str = "auto", mult: Mapping[str, Any] | None = None,
                    text: TextEncoderConfig | Mapping[str, Any] | None = None, text_weights: str | Path | None = None,
                    branch_encoder: str = "resnet18", branch_widths: tuple[int, ...] | None = None) -> CausalMER:
    """A CausalMER with a :class:`MulT` backbone and the paper's branches.

    ``dims``: feature widths per modality, or a :class:`reprolib.data.mult.MulTDataset` (its ``dims``, and
    its dataset name picks the task unless ``task`` is given; ``mosei_task="cls"`` for 7 classes). ``task``
    defaults to ``"iemocap"`` for a plain dict. ``mult``: keyword arguments for :class:`MulT` (d, layers,
    dropouts, quirk options ...). ``text``: the text encoder's sizes (:class:`TextEncoderConfig` or a
    dict; default small), ``text_weights``: a local ALBERT / text-branch checkpoint. ``branch_encoder``:
    the audio / vision CNN (``"resnet18"`` as the paper, ``"small"`` with ``branch_widths`` for smoke runs).
    """
    if hasattr(dims, "dims") and hasattr(dims, "dataset"):
        task = task or task_for(dims.dataset, mosei_task)
        dims = dims.dims
    task = check_task(task or "iemocap")
    mult_kw = dict(mult or {})
    mult_kw.setdefault("task", task)
    backbone = MulT(dims, **mult_kw)
    k = backbone.output_dim
    text_cfg = text if isinstance(text, TextEncoderConfig) else TextEncoderConfig(**dict(text or {}))
    return CausalMER(backbone,
                     TextBranch(backbone.dims["text"], k, text_cfg, weights=text_weights),
                     SequenceImageBranch(k, branch_encoder, branch_widths),
                     SequenceImageBranch(k, branch_encoder, branch_widths),
                     task=task, output_dim=k, fusion=fusion, alpha=alpha, beta=beta, constant=constant, kl=kl)

