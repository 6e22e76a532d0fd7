"""MulT, the Multimodal Transformer (Tsai et al., ACL 2019), as CausalMER uses it for its fused branch z_m.

Data flow for a batch ``{"text": [B, T_t, d_t], "audio": [B, T_a, d_a], "vision": [B, T_v, d_v]}``
(feature widths are read from the data; the real files have 300 / 74 / 35):

1. text only: dropout with ``embed_dropout`` on the raw features;
2. per modality a temporal ``Conv1d(d_m -> d, kernel k_m, bias=False)``; by default **unpadded**, as in the
   reference code, so a sequence of T steps comes out with T - k_m + 1 (``conv_padding="same"`` keeps T);
3. six cross-modal transformers, one per ordered pair target <- source (query = target, key/value =
   source): text <- audio, text <- vision, audio <- text, audio <- vision, vision <- text, vision <- audio;
   ``layers`` layers each, width d. The keys/values of every layer are the source's projected features;
4. per target the two cross-modal outputs are concatenated (width 2d, order as listed above) and fed to
   a self-attention transformer (the "memory", ``mem_layers`` layers, width 2d);
5. the **last time step** of each memory, h_text, h_audio, h_vision (2d each), concatenated: the
   features ``last_hs`` [B, 6d] (:meth:`MulT.features`, CausalMER's ``mult_last_hs``);
6. the residual head (:class:`MulTHead`): h' = proj2(dropout(relu(proj1(h)), out_dropout)) + h,
   logits = out_layer(h') [B, output_dim].

Transformer encoder (fairseq style, pre-LayerNorm), the same for cross-modal and memory nets:

* embedding step on the query stream and, separately, on the key and the value streams (each with its own
  dropout mask): x = dropout(sqrt(width) * x_in + PE(x_in), embed_dropout);
* layer: x = x + dropout(MHA(LN0(x), LN0(k), LN0(v)), res_dropout) (LN0 shared by q, k, v; for self
  attention k = v = x), then x = x + dropout(fc2(dropout(relu(fc1(LN1(x))), relu_dropout)), res_dropout),
  fc1: width -> 4 width; after the last layer a final LayerNorm;
* multi-head attention: one packed input projection (3 width x width, with bias) and an output projection,
  xavier-uniform weights and zero biases; softmax(q k^T / sqrt(head_dim) + mask) v with dropout on the
  attention weights, in the reference's order (q scaled first, ``bmm``, softmax in float32), and one
  packed projection for self attention as the reference's ``qkv_same`` path;
* attention dropout is chosen by the **source** modality: source text and the memories use ``attn_dropout``,
  source audio ``attn_dropout_a``, source vision ``attn_dropout_v`` (the reference's routing).

Reference-code quirks, each an option (the paper itself is silent on all three):

* ``causal_mask`` (default **off**; on in the reference, whose ``--attn_mask`` flag is ``store_false``): query
  step i may not attend to key step j >= i + 1 + |T_k - T_q| (for self attention the usual causal mask; for
  cross-modal attention shifted by the length difference). With it, output step t depends on no later step
  of its own stream;
* ``positions``: ``"reference"`` (default): fairseq sinusoidal positions 1..T, except that a step whose
  **first channel is exactly 0** counts as padding and gets position 0, whose embedding is all zeros
  (the "tokens" are x_in[..., 0]). Left-padded steps (and a whole modality zeroed to simulate its absence)
  then get no positional signal. ``"all"``: positions 1..T for every step; ``"none"``: no positional
  embedding. The table: f_i = exp(-i ln(10000) / (d/2 - 1)), PE(pos) = [sin(pos f), cos(pos f)]
  concatenated (not interleaved), a zero column appended for odd widths, not learned;
* ``conv_padding``: ``"valid"`` (default, the reference: unpadded, T shrinks by k - 1, so aligned
  modalities come out with unequal lengths, e.g. IEMOCAP 20 -> 18 / 16 / 18) or ``"same"`` (T kept).
  An input shorter than its kernel is an error under ``"valid"``.

Defaults and decisions where the paper / notes leave a choice:

* d = 40 (paper Table 5, CausalMER; the upstream code has 30), ``num_heads`` = 10 for every net (CausalMER
  hard-codes 10 and ignores its flag; the paper uses 10 for IEMOCAP and 8 for MOSEI), ``layers`` = 5
  (CausalMER's script; the paper's D is 4), ``mem_layers`` = max(layers, 3) (the reference's rule: 5, not 3);
* kernel sizes (text, audio, vision): IEMOCAP (3, 5, 3), MOSEI / MOSI (1, 3, 3), CausalMER's values (the
  paper: L/V/A 3/3/5 and (1 or 3)/3/3);
* dropouts: CausalMER's released IEMOCAP script: attn 0.2, attn_a 0.0, attn_v 0.0, relu 0.1, res 0.1,
  embed 0.25, out 0.1;
* the reference skips the temporal convolution when a modality's width already equals d; here every
  modality is always projected (the skip only happens by coincidence of widths);
* ``targets``: which modalities get a memory (default all three). A subset gives the paper's
  single-target ablations ([V, A -> L] etc.; ``features`` then has 2d per target). Every modality is
  still read, as a source;
* ``task`` fixes output width, target key and the MulT loss (:func:`task_loss`): ``"iemocap"``: 8 logits =
  4 emotions (Neutral, Happy, Sad, Angry) x (absent, present), cross-entropy per emotion on the logits
  viewed as [B * 4, 2] against the multi-hot ``labels`` [B, 4] (mean over B * 4), exactly MulT's
  loss; ``"regression"`` (MOSEI / MOSI): 1 output, L1 loss against ``label``; ``"classes"``
  (CausalMER's ``--mosei_task cls``): 7 logits, cross-entropy against ``label_cls`` (0..6). The IEMOCAP
  logits are laid out as :func:`reprolib.metrics.iemocap_metrics` reads an [N, 8] score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MODALITIES", "POSITION_RULES", "CONV_PADDINGS", "TASKS", "TASK_OUTPUT_DIM", "TASK_TARGET_KEY",
           "DEFAULT_KERNELS", "MulT", "MulTHead", "CrossmodalEncoder", "EncoderLayer", "MultiheadAttention",
           "sinusoidal_positions", "causal_mask", "additive_mask", "check_task", "iemocap_pair_targets", "task_for", "task_loss"]

MODALITIES = ("text", "audio", "vision")
POSITION_RULES = ("reference", "all", "none")
CONV_PADDINGS = ("valid", "same")
TASKS = ("iemocap", "regression", "classes")
TASK_OUTPUT_DIM = {"iemocap": 8, "regression": 1, "classes": 7}
TASK_TARGET_KEY = {"iemocap": "labels", "regression": "label", "classes": "label_cls"}
# (text, audio, vision) temporal-convolution kernels, CausalMER's per-dataset values
DEFAULT_KERNELS = {"iemocap": (3, 5, 3), "regression": (1, 3, 3), "classes": (1, 3, 3)}


# ---------------------------------------------------------------------------------------------------
# Tasks: what the outputs mean and how they are trained
# ---------------------------------------------------------------------------------------------------

def task_for(dataset: str, mosei_task: str = "regression") -> str:
    """The task of a MulT dataset name: ``iemocap`` -> ``"iemocap"``; ``mosei`` / ``mosei_senti`` / ``mosi``
    -> ``"regression"`` or, with ``mosei_task="cls"`` (CausalMER's flag), ``"classes"``."""
    name = str(dataset).lower()
    if name == "iemocap":
        return "iemocap"
    if name in ("mosei", "mosei_senti", "mosi"):
        if mosei_task in ("regression", "reg"):
            return "regression"
        if mosei_task in ("cls", "classes", "classification"):
            return "classes"
        raise ValueError(f"mosei_task must be 'regression' or 'cls', got {mosei_task!r}")
    raise ValueError(f"unknown MulT dataset {dataset!r}; expected 'iemocap', 'mosei' (or 'mosei_senti') or 'mosi'")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def iemocap_pair_targets(target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Multi-hot presence [B, 4] (or the file's one-hot pairs [B, 4, 2]) -> class indices [B * 4] in {0, 1}."""
    if target.dim() == 3 and target.shape[1:] == (4, 2):
        target = target.argmax(dim=-1)
    if target.dim() != 2 or target.shape != (batch_size, 4):
        raise ValueError(f"IEMOCAP targets must be presence [B, 4] (0/1, the loader's 'labels') or one-hot pairs "
                         f"[B, 4, 2] with B = {batch_size}, got {tuple(target.shape)}")
    return target.round().long().reshape(-1)


def task_loss(task: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The MulT / CausalMER supervised loss of one output tensor.

    ``"iemocap"``: ``cross_entropy(logits.view(-1, 2), target.view(-1))`` with logits [B, 8] and presence
    targets [B, 4] (mean over the B * 4 binary tasks); ``"regression"``: ``l1_loss`` of [B, 1] against the
    sentiment [B] (or [B, 1]); ``"classes"``: ``cross_entropy`` of [B, 7] against class indices [B].
    """
    check_task(task)
    logits = logits.float()
    b = logits.shape[0]
    if task == "iemocap":
        if logits.dim() != 2 or logits.shape[1] != 8:
            raise ValueError(f"IEMOCAP outputs must be [B, 8] (4 emotions x (absent, present)), "
                             f"got {tuple(logits.shape)}")
        return F.cross_entropy(logits.reshape(-1, 2), iemocap_pair_targets(target, b))
    if task == "regression":
        if logits.dim() != 2 or logits.shape[1] != 1:
            raise ValueError(f"regression outputs must be [B, 1], got {tuple(logits.shape)}")
        if target.numel() != b:
            raise ValueError(f"regression targets must hold one value per sample (B = {b}), got {tuple(target.shape)}")
        return F.l1_loss(logits, target.float().reshape(b, 1))
    if target.dim() != 1 or target.shape[0] != b or target.is_floating_point():
        raise ValueError(f"class targets must be integer indices of shape ({b},), "
                         f"got {target.dtype} {tuple(target.shape)}")
    return F.cross_entropy(logits, target)


# ---------------------------------------------------------------------------------------------------
# Positions and masks
# ---------------------------------------------------------------------------------------------------

def sinusoidal_positions(x: torch.Tensor, rule: str = "reference") -> torch.Tensor | None:
    """The fairseq sinusoidal positional embedding for ``x`` [B, T, D], as float32 [B, T, D] (or None).

    ``rule="reference"``: position t (1-based) for a step whose first channel is non-zero, 0 (an all-zero
    embedding) where ``x[..., 0] == 0``; ``"all"``: 1..T everywhere; ``"none"``: None. Never learned.
    """
    if rule not in POSITION_RULES:
        raise ValueError(f"unknown position rule {rule!r}; valid rules: {', '.join(POSITION_RULES)}")
    if rule == "none":
        return None
    b, t, dim = x.shape
    half = dim // 2
    step = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * -step)
    pos = torch.arange(1, t + 1, device=x.device, dtype=torch.float32).expand(b, t)
    if rule == "reference":
        pos = pos * (x[..., 0].detach() != 0)
    angles = pos.unsqueeze(-1) * freqs
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb * (pos != 0).unsqueeze(-1)  # position 0 (padding) has the zero embedding


def causal_mask(t_query: int, t_key: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean [T_q, T_k], True = may attend: key j is hidden from query i iff j >= i + 1 + |T_k - T_q|.

    The reference's ``buffered_future_mask``: the usual causal mask for self attention, shifted by the length
    difference for cross-modal attention (so no row is ever fully masked).
    """
    offset = abs(t_key - t_query)
    i = torch.arange(t_query, device=device).unsqueeze(1)
    j = torch.arange(t_key, device=device).unsqueeze(0)
    return j < i + 1 + offset


# ---------------------------------------------------------------------------------------------------
# Transformer pieces
# ---------------------------------------------------------------------------------------------------

def additive_mask(allowed: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """A boolean mask (True = may attend) as the float mask attention adds to its weights (0 or -inf)."""
    if allowed is None or allowed.is_floating_point():
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


class MultiheadAttention(nn.Module):
    """Multi-head attention with fairseq's parameters and arithmetic, batch-first.

    Parameters: ``in_proj_weight`` [3 dim, dim] and ``in_proj_bias`` [3 dim] (q, k, v in that order),
    ``out_proj``; xavier-uniform weights, zero biases. Inputs are [B, T, dim]. Self attention (query, key
    and value the same tensor) takes one packed projection, as the reference does; q is scaled by
    head_dim^-0.5, the weights are ``bmm(q, k^T)`` plus the mask, softmax in float32, dropout, ``bmm``
    with v. Written out rather than with ``scaled_dot_product_attention``: at MulT's head widths (3 to 8)
    torch's fused CPU kernel is slower than two ``bmm`` calls, and the reference's order of operations
    gives the reference's numbers.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.dim, self.num_heads, self.dropout = dim, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None, *, time_first: bool = False) -> torch.Tensor:
        """``mask`` [T_q, T_k]: boolean (True = may attend) or additive float (0 / -inf), or None.

        ``time_first``: inputs and output are [T, B, dim] (what the encoders use inside: the heads are then
        views, as in the reference, instead of copies)."""
        if query is key and key is value:
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)
            q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        if not time_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        t_q, b, _ = q.shape
        head_dim = self.dim // self.num_heads

        def heads(x: torch.Tensor) -> torch.Tensor:  # [T, B, dim] -> [B * heads, T, head_dim]
            return x.contiguous().view(x.shape[0], b * self.num_heads, head_dim).transpose(0, 1)

        q, k, v = heads(q * head_dim ** -0.5), heads(k), heads(v)
        mask = additive_mask(mask, q.dtype)
        weights = torch.bmm(q, k.transpose(1, 2)) if mask is None else torch.baddbmm(mask, q, k.transpose(1, 2))
        weights = F.softmax(weights.float(), dim=-1).type_as(weights)
        weights = F.dropout(weights, self.dropout, self.training)
        out = self.out_proj(torch.bmm(weights, v).transpose(0, 1).contiguous().view(t_q, b, self.dim))
        return out if time_first else out.transpose(0, 1)


class EncoderLayer(nn.Module):
    """One pre-LayerNorm layer: attention (LN0 shared by q, k, v) then a ReLU feed-forward of width 4 dim."""

    def __init__(self, dim: int, num_heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.attn = MultiheadAttention(dim, num_heads, attn_dropout)
        self.ln0 = nn.LayerNorm(dim)
        self.ln1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None, *, time_first: bool = False) -> torch.Tensor:
        """``x`` [B, T, dim] (``time_first``: [T, B, dim]); ``kv`` the cross-modal keys and values."""
        h = self.ln0(x)
        if kv is None:
            k = v = h
        else:
            k, v = self.ln0(kv[0]), self.ln0(kv[1])
        x = x + F.dropout(self.attn(h, k, v, mask, time_first=time_first), self.res_dropout, self.training)
        h = F.dropout(F.relu(self.fc1(self.ln1(x))), self.relu_dropout, self.training)
        return x + F.dropout(self.fc2(h), self.res_dropout, self.training)


class CrossmodalEncoder(nn.Module):
    """A stack of :class:`EncoderLayer` with the fairseq embedding step and a final LayerNorm.

    ``forward(x)`` is self attention over ``x`` [B, T, dim]; ``forward(x, source)`` is cross-modal
    attention with ``x`` as queries and ``source`` [B, T_s, dim] as keys and values (the same, unchanged
    source for every layer). Returns [B, T, dim].
    """

    def __init__(self, dim: int, num_heads: int, layers: int, *, attn_dropout: float = 0.0,
                 relu_dropout: float = 0.0, res_dropout: float = 0.0, embed_dropout: float = 0.0,
                 causal: bool = False, positions: str = "reference"):
        super().__init__()
        if layers < 1:
            raise ValueError(f"a transformer needs at least one layer, got {layers}")
        if positions not in POSITION_RULES:
            raise ValueError(f"unknown position rule {positions!r}; valid rules: {', '.join(POSITION_RULES)}")
        self.dim = dim
        self.embed_scale = math.sqrt(dim)
        self.embed_dropout = embed_dropout
        self.causal = causal
        self.positions = positions
        self.layers = nn.ModuleList(EncoderLayer(dim, num_heads, attn_dropout, relu_dropout, res_dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """dropout(sqrt(dim) x + PE(x)); a fresh dropout mask on every call."""
        out = self.embed_scale * x
        pe = sinusoidal_positions(x, self.positions)
        if pe is not None:
            out = out + pe.to(out.dtype)
        return F.dropout(out, self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        bad_source = source is not None and (source.dim() != 3 or source.shape[-1] != self.dim)
        if x.dim() != 3 or x.shape[-1] != self.dim or bad_source:
            raise ValueError(f"encoder of width {self.dim} needs [B, T, {self.dim}] inputs, got {tuple(x.shape)}"
                             + (f" and source {tuple(source.shape)}" if source is not None else ""))
        # the layers run time-first [T, B, dim], as the reference does: attention heads are then views
        h = self.embed(x).transpose(0, 1).contiguous()
        kv = None if source is None else tuple(self.embed(source).transpose(0, 1).contiguous() for _ in range(2))
        t_k = x.shape[1] if source is None else source.shape[1]
        mask = additive_mask(causal_mask(x.shape[1], t_k, x.device), h.dtype) if self.causal else None
        for layer in self.layers:
            h = layer(h, kv, mask, time_first=True)
        return self.norm(h).transpose(0, 1)


class MulTHead(nn.Module):
    """The residual output head: out_layer(proj2(dropout(relu(proj1(h)))) + h)."""

    def __init__(self, dim: int, output_dim: int, out_dropout: float = 0.0):
        super().__init__()
        self.proj1 = nn.Linear(dim, dim)
        self.proj2 = nn.Linear(dim, dim)
        self.out_layer = nn.Linear(dim, output_dim)
        self.out_dropout = out_dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.proj2(F.dropout(F.relu(self.proj1(h)), self.out_dropout, self.training))
        return self.out_layer(r + h)


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------

def _per_modality(value: Any, name: str, cast: type = int) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [m for m in MODALITIES if m not in value]
        if missing:
            raise ValueError(f"{name} must name every modality {MODALITIES}, missing {missing}")
        return {m: cast(value[m]) for m in MODALITIES}
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == len(MODALITIES):
        return {m: cast(v) for m, v in zip(MODALITIES, value)}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {m: cast(value) for m in MODALITIES}
    raise ValueError(f"{name} must be a dict over {MODALITIES} or a (text, audio, vision) triple, got {value!r}")


class MulT(nn.Module):
    """The Multimodal Transformer on a batch dict; ``forward`` -> logits [B, output_dim].

    ``dims``: input feature widths per modality ({"text": 300, "audio": 74, "vision": 35} or a
    (text, audio, vision) triple; read them from the data, e.g. :meth:`for_data`). ``task``:
    ``"iemocap"`` / ``"regression"`` / ``"classes"`` (see the module docstring); ``output_dim`` defaults to
    the task's (8 / 1 / 7) and ``kernel_sizes`` (text, audio, vision) to the task's dataset values.

    Interface shared with the repo's other models: ``views``, ``target_key``, ``feature_dim``,
    ``features(batch)`` -> [B, feature_dim] (the concatenated last hidden states, before the head),
    ``classifier`` (:class:`MulTHead`), ``loss(logits, target)`` and ``training_loss(batch)`` (MulT's
    published loss: per-emotion cross-entropy / L1 / cross-entropy).
    """

    views = MODALITIES

    def __init__(self, dims: Mapping[str, int] | Sequence[int], output_dim: int | None = None, *,
                 task: str = "iemocap", d: int = 40, num_heads: int = 10, layers: int = 5,
                 mem_layers: int | None = None, kernel_sizes: Mapping[str, int] | Sequence[int] | None = None,
                 attn_dropout: float = 0.2, attn_dropout_a: float = 0.0, attn_dropout_v: float = 0.0,
                 relu_dropout: float = 0.1, res_dropout: float = 0.1, embed_dropout: float = 0.25,
                 out_dropout: float = 0.1, causal_mask: bool = False, positions: str = "reference",
                 conv_padding: str = "valid", targets: Sequence[str] = MODALITIES):
        super().__init__()
        self.task = check_task(task)
        self.target_key = TASK_TARGET_KEY[task]
        self.dims = _per_modality(dims, "dims")
        self.kernel_sizes = _per_modality(DEFAULT_KERNELS[task] if kernel_sizes is None else kernel_sizes,
                                          "kernel_sizes")
        self.output_dim = TASK_OUTPUT_DIM[task] if output_dim is None else int(output_dim)
        if positions not in POSITION_RULES:
            raise ValueError(f"unknown position rule {positions!r}; valid rules: {', '.join(POSITION_RULES)}")
        if conv_padding not in CONV_PADDINGS:
            raise ValueError(f"conv_padding must be one of {CONV_PADDINGS}, got {conv_padding!r}")
        targets = tuple(targets)
        if not targets or any(t not in MODALITIES for t in targets) or len(set(targets)) != len(targets):
            raise ValueError(f"targets must be a non-empty subset of {MODALITIES} without repeats, got {targets}")
        if d % num_heads:
            raise ValueError(f"d = {d} is not divisible by num_heads = {num_heads}")
        if min(self.dims.values()) < 1 or min(self.kernel_sizes.values()) < 1 or self.output_dim < 1:
            raise ValueError(f"dims, kernel sizes and output_dim must be positive, got {self.dims}, "
                             f"{self.kernel_sizes}, {self.output_dim}")
        self.targets = tuple(m for m in MODALITIES if m in targets)  # view order
        self.d = d
        self.mem_layers = max(layers, 3) if mem_layers is None else mem_layers
        self.embed_dropout = embed_dropout
        self.conv_padding = conv_padding
        self.causal_mask = causal_mask
        self.positions = positions

        self.proj = nn.ModuleDict({
            m: nn.Conv1d(self.dims[m], d, self.kernel_sizes[m], bias=False,
                         padding=0 if conv_padding == "valid" else "same")
            for m in MODALITIES})
        source_dropout = {"text": attn_dropout, "audio": attn_dropout_a, "vision": attn_dropout_v}
        common = dict(relu_dropout=relu_dropout, res_dropout=res_dropout, embed_dropout=embed_dropout,
                      causal=causal_mask, positions=positions)
        self.cross = nn.ModuleDict()
        for target in self.targets:
            for source in self.sources(target):
                self.cross[f"{target}_from_{source}"] = CrossmodalEncoder(
                    d, num_heads, layers, attn_dropout=source_dropout[source], **common)
        self.mem = nn.ModuleDict({
            target: CrossmodalEncoder(2 * d, num_heads, self.mem_layers, attn_dropout=attn_dropout, **common)
            for target in self.targets})
        self.feature_dim = 2 * d * len(self.targets)
        self.classifier = MulTHead(self.feature_dim, self.output_dim, out_dropout)

    # -- construction helpers ------------------------------------------------------------------------
    @classmethod
    def for_data(cls, data: Any, *, mosei_task: str = "regression", **kwargs: Any) -> "MulT":
        """A MulT sized for a :class:`reprolib.data.mult.MulTDataset` (its ``dims`` and ``dataset``)."""
        kwargs.setdefault("task", task_for(data.dataset, mosei_task))
        return cls(data.dims, **kwargs)

    @staticmethod
    def sources(target: str) -> tuple[str, str]:
        """The two source modalities of a target, in view order (text <- audio, vision; ...)."""
        return tuple(m for m in MODALITIES if m != target)  # type: ignore[return-value]

    # -- forward ---------------------------------------------------------------------------------------
    def _check_input(self, batch: dict) -> None:
        for m in MODALITIES:
            if m not in batch:
                raise KeyError(f"MulT needs batch[{m!r}] ([B, T, {self.dims[m]}]); the batch has {sorted(batch)}")
            x = batch[m]
            if x.dim() != 3 or x.shape[-1] != self.dims[m]:
                raise ValueError(f"batch[{m!r}] must be [B, T, {self.dims[m]}], got {tuple(x.shape)}")
            if self.conv_padding == "valid" and x.shape[1] < self.kernel_sizes[m]:
                raise ValueError(f"batch[{m!r}] has {x.shape[1]} time steps, fewer than its unpadded temporal "
                                 f"kernel {self.kernel_sizes[m]}; use longer sequences, a smaller kernel or "
                                 f"conv_padding='same'")

    def project(self, batch: dict) -> dict[str, torch.Tensor]:
        """The temporal-convolution outputs [B, T'_m, d] per modality (text after its input dropout)."""
        self._check_input(batch)
        out = {}
        for m in MODALITIES:
            x = batch[m].float() if not batch[m].is_floating_point() else batch[m]
            if m == "text":
                x = F.dropout(x, self.embed_dropout, self.training)
            out[m] = self.proj[m](x.transpose(1, 2)).transpose(1, 2)
        return out

    def hidden_states(self, batch: dict) -> dict[str, torch.Tensor]:
        """The memory outputs [B, T'_target, 2d] per target modality."""
        proj = self.project(batch)
        out = {}
        for target in self.targets:
            crossed = [self.cross[f"{target}_from_{s}"](proj[target], proj[s]) for s in self.sources(target)]
            out[target] = self.mem[target](torch.cat(crossed, dim=-1))
        return out

    def features(self, batch: dict) -> torch.Tensor:
        """last_hs [B, feature_dim]: the last time step of each target's memory, concatenated in view order."""
        return torch.cat([h[:, -1] for h in self.hidden_states(batch).values()], dim=-1)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))

    # -- training --------------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MulT's loss for this task (:func:`task_loss`)."""
        return task_loss(self.task, logits, target)

    def training_loss(self, batch: dict) -> torch.Tensor:
        return self.loss(self(batch), batch[self.target_key])
