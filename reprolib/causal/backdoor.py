"""The exact backdoor adjustment over a confounder dictionary: the quantity CCIM approximates.

P(Y | do(X)) = sum_z P(Y | X, z) P(z). When the confounder can be *separated* from the input (here:
the subject crop is X, and the context enters only as its nearest dictionary prototype z), the sum can
be computed exactly instead of approximated:

* training fits P(Y | s, z) with z = the prototype of the sample's own (masked) context, so the
  scene's share of the evidence is absorbed by z and the subject encoder learns what remains;
* prediction averages over *every* prototype with its prior, sum_i P(z_i) P(Y | s, z_i), so the
  context actually seen in the test image no longer matters.

This is a teaching reference for notebook 08, not a published method: it shows what the adjustment
does where its assumption holds, next to CCIM, whose joint feature h still carries the context.
The prototype of a context is the nearest row of ``Z`` (Euclidean, in the dictionary's feature
units) under the dictionary's own feature extractor.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.causal.dictionary import ConfounderDictionary
from reprolib.models.backbones import build_encoder

Z_EMBED_DIM = 32


class BackdoorAdjusted(nn.Module):
    """Subject encoder + learned embedding of the context prototype; predicts sum_z P(z) P(y | s, z)."""

    views = ("subject", "context")

    def __init__(self, num_classes: int, dictionary: ConfounderDictionary, context_features: nn.Module, *,
                 multilabel: bool = False, backbone: str = "small"):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.subject_encoder = build_encoder(backbone)
        self.context_features = context_features.eval().requires_grad_(False)
        self.register_buffer("dictionary", torch.as_tensor(dictionary.Z))
        self.register_buffer("prior", torch.as_tensor(dictionary.P))
        self.z_embedding = nn.Embedding(dictionary.size, Z_EMBED_DIM)
        self.feature_dim = self.subject_encoder.out_dim
        self.classifier = nn.Linear(self.feature_dim + Z_EMBED_DIM, num_classes)

    @torch.no_grad()
    def prototype_of(self, context: torch.Tensor) -> torch.Tensor:
        """Index of the nearest dictionary prototype to each context image [B]."""
        return torch.cdist(self.context_features(context).float(), self.dictionary).argmin(dim=1)

    def features(self, batch: dict) -> torch.Tensor:
        return self.subject_encoder(batch["subject"])

    def conditional_logits(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits of P(y | s, z) for subject features [B, d] and prototype indices [B]."""
        return self.classifier(torch.cat([s, self.z_embedding(z)], dim=1))

    def training_loss(self, batch: dict) -> torch.Tensor:
        logits = self.conditional_logits(self.features(batch), self.prototype_of(batch["context"]))
        if self.multilabel:
            return nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"].float())
        return nn.functional.cross_entropy(logits, batch["label"])

    def forward(self, batch: dict) -> torch.Tensor:
        """Scores of the adjusted prediction: log sum_z P(z) P(y | s, z) (per class; logit of it for multi-label)."""
        s = self.features(batch)
        n, b = self.dictionary.shape[0], s.shape[0]
        every_z = torch.arange(n, device=s.device).repeat(b)  # [B*N]: each sample with every prototype
        logits = self.conditional_logits(s.repeat_interleave(n, dim=0), every_z).view(b, n, -1)
        log_prior = self.prior.clamp_min(1e-12).log().view(1, n, 1)
        if self.multilabel:
            p = (torch.sigmoid(logits) * self.prior.view(1, n, 1)).sum(dim=1).clamp(1e-6, 1 - 1e-6)
            return torch.logit(p)
        return torch.logsumexp(torch.log_softmax(logits, dim=-1) + log_prior, dim=1)
