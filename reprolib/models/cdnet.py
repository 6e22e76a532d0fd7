"""CD-Net (Wang, Lao, Zhang, Li, Zhang, Cui, J. Vis. Commun. Image Represent. 2022): context-dependent
emotion recognition from three streams, a "tubal transformer" and hierarchical feature fusion.

The paper describes (at abstract level; no code is public) face, body and context features, a tubal
transformer that forms a shared space for the interactions among them, and a hierarchical fusion that
recombines enhanced multi-scale features for classification; it is evaluated on CAER-S and EMOTIC.
This re-implementation:

* three streams, each with its own encoder: ``subject`` (the annotated person crop), ``context`` (the
  whole image with the subject box painted black) and ``image`` (the whole image, the global stream);
* multi-scale: the globally pooled outputs of the last ``scales`` (default 2) stages of each encoder
  (:func:`reprolib.models.backbones.stage_features`: SmallCNN blocks 3 and 4, ResNet layer3 and
  layer4), each projected Linear(C_s -> d = 128), plus a learned stream-type embedding: per scale a
  token matrix ``[B, 3 streams, d]``;
* tubal transformer, one per scale (:class:`TubalBlock` x ``depth``, default 2): the t-product works in
  the Fourier domain along the tube axis, and here the tube axis is the stream axis. Each block
  takes the DFT of the (LayerNorm-ed) tokens over the 3 streams (``torch.fft.fft(dim=1)``), stacks the
  real and imaginary parts as features (``[B, 3 frequencies, 2d]``), lets the frequency components
  attend to each other with one standard ``nn.MultiheadAttention`` (4 heads), maps the result back to
  the stream domain with the inverse DFT (real part), and adds it to the tokens (residual); a
  pre-norm feed-forward layer (d -> 256 -> d) follows, as in a standard transformer block.
  ``mixer="transformer"`` instead uses a plain 2-layer ``nn.TransformerEncoder`` (d_model 128, 4
  heads, feed-forward 256, dropout 0.1, pre-norm) over the three stream tokens, for comparison;
* hierarchical fusion: per scale the 3 enhanced tokens are concatenated -> Linear(3d -> d) -> ReLU; the
  scales are concatenated -> Linear(S*d -> 256) -> BatchNorm -> ReLU -> Dropout(0.5): the 256-d joint
  feature ``h`` that ``classifier`` (Linear 256 -> K) reads and that CCIM wraps.

Decisions, where the paper is silent or where our data force them:

* our datasets annotate one person crop each: the face on CAER-S data, the body on EMOTIC data. The
  ``subject`` stream is therefore the face *or* the body, never both; the paper's separate face and
  body streams collapse into one, and the whole image takes the third place (the global stream);
* the "tubal transformer" is rendered as attention between the Fourier components along the stream
  axis (described above), a simple reading of "t-product attention", not the paper's exact layer,
  whose definition we do not have. The inverse DFT of the attended spectrum is not Hermitian-
  symmetric in general; its real part is kept. The DFT runs in float32 even under autocast
  (cuFFT has no bf16 and needs power-of-two sizes in fp16);
* stream-type embeddings are added before the mixer in both variants (the DFT is order-dependent,
  so the tubal variant would see the stream order anyway; the embeddings let it also tell the
  streams apart through their content);
* ``context_weights`` (a local Places365 checkpoint) initialises both scene encoders, ``context`` and
  ``image``; the ``subject`` encoder starts from scratch;
* ``widths`` narrows the three small encoders for smoke runs (``backbone="small"`` only); ``dim``
  changes d; ``depth`` the number of blocks per scale.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.backbones import build_encoder, stage_features, stage_widths

JOINT_DIM = 256
STREAMS = ("subject", "context", "image")


class TubalBlock(nn.Module):
    """Pre-norm block whose token mixing is self-attention between DFT components along the stream axis.

    ``x [B, S, d]`` -> LayerNorm -> DFT over S -> [real ; imag] ``[B, S, 2d]`` -> multi-head
    self-attention -> back to complex -> inverse DFT over S (real part) -> residual add; then
    x + FFN(LayerNorm(x)).
    """

    def __init__(self, dim: int, heads: int = 4, ff_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(2 * dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, dim), nn.Dropout(dropout))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """The token-mixing term alone (before dropout and residual): ``[B, S, d]`` -> ``[B, S, d]``."""
        spectrum = torch.fft.fft(self.norm1(x).float(), dim=1)
        z = torch.cat([spectrum.real, spectrum.imag], dim=-1)
        z, _ = self.attn(z, z, z, need_weights=False)
        z = z.float()
        mixed = torch.fft.ifft(torch.complex(z[..., :self.dim], z[..., self.dim:]), dim=1).real
        return mixed.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mix(x))
        return x + self.ff(self.norm2(x))


def _mixer(kind: str, dim: int, depth: int, heads: int, ff_dim: int, dropout: float) -> nn.Module:
    if kind == "tubal":
        return nn.Sequential(*(TubalBlock(dim, heads, ff_dim, dropout) for _ in range(depth)))
    if kind == "transformer":
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff_dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    raise ValueError(f"unknown mixer {kind!r}; choose 'tubal' or 'transformer'")


class CDNet(nn.Module):
    """Subject + masked context + whole image, multi-scale tokens, tubal transformer, hierarchical fusion."""

    views = STREAMS

    def __init__(self, num_classes: int, *, multilabel: bool = False, backbone: str = "small",
                 context_weights=None, scales: int = 2, dim: int = 128, depth: int = 2, heads: int = 4,
                 ff_dim: int = 256, mixer: str = "tubal", widths=None, dropout: float = 0.5,
                 attn_dropout: float = 0.1):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.scales, self.mixer = scales, mixer
        self.encoders = nn.ModuleDict({
            "subject": build_encoder(backbone, widths=widths),
            "context": build_encoder(backbone, weights=context_weights, widths=widths),
            "image": build_encoder(backbone, weights=context_weights, widths=widths)})
        # projections[stream][s]: Linear(C_s -> d), s = 0 the shallower scale
        self.projections = nn.ModuleDict({
            name: nn.ModuleList(nn.Linear(c, dim) for c in stage_widths(enc, scales))
            for name, enc in self.encoders.items()})
        self.stream_embed = nn.Parameter(torch.randn(scales, len(STREAMS), dim) * 0.02)
        self.mixers = nn.ModuleList(_mixer(mixer, dim, depth, heads, ff_dim, attn_dropout)
                                    for _ in range(scales))
        self.scale_fusion = nn.ModuleList(
            nn.Sequential(nn.Linear(len(STREAMS) * dim, dim), nn.ReLU(inplace=True)) for _ in range(scales))
        self.fusion = nn.Sequential(
            nn.Linear(scales * dim, JOINT_DIM), nn.BatchNorm1d(JOINT_DIM), nn.ReLU(inplace=True),
            nn.Dropout(dropout))
        self.feature_dim = JOINT_DIM
        self.classifier = nn.Linear(JOINT_DIM, num_classes)

    def tokens(self, batch: dict) -> list[torch.Tensor]:
        """Per scale (shallowest first) the projected stream tokens ``[B, 3, d]`` (subject, context,
        image), stream-type embeddings included, before the tubal transformer."""
        per_stream = {name: stage_features(enc, batch[name], self.scales) for name, enc in self.encoders.items()}
        return [torch.stack([self.projections[name][s](per_stream[name][s]) for name in STREAMS], dim=1)
                + self.stream_embed[s] for s in range(self.scales)]

    def enhanced(self, batch: dict) -> list[torch.Tensor]:
        """Per scale the stream tokens after the tubal transformer, ``[B, 3, d]``."""
        return [mixer(tokens) for mixer, tokens in zip(self.mixers, self.tokens(batch))]

    def features(self, batch: dict) -> torch.Tensor:
        per_scale = [fuse(tokens.flatten(1)) for fuse, tokens in zip(self.scale_fusion, self.enhanced(batch))]
        return self.fusion(torch.cat(per_scale, dim=1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))
