"""EmotiCon (Mittal et al., CVPR 2020): three interpretations of context, concatenated.

The paper (reported EMOTIC AP 35.48, GroupWalk AP 65.83) reads context three ways:

1. **multiple modalities of the person**: a face stream and a pose/gait stream, trained with a
   *multiplicative* fusion loss so that an unreliable modality does not drag the other down; their
   encodings, concatenated, form ``h1``;
2. **semantic context**: the image with the agent masked, through a CNN with self-attention, ``h2``;
3. **socio-dynamic context**: a depth map of the scene (who stands near whom), through a CNN, ``h3``.

``h1``, ``h2`` and ``h3`` are concatenated and a Linear -> 256 -> ReLU -> Dropout layer gives the
joint feature ``h`` that ``classifier`` reads and that CCIM and CLEF wrap.

Decisions where the public description is thin or the inputs cannot be had here:

* the face stream is a CNN on the subject crop (the body crop on EMOTIC data, whose persons carry
  no separate face box); the paper used facial landmarks;
* the pose stream is an MLP on the body keypoints of :mod:`reprolib.data.emotic` (x, y relative to the
  body box, and a confidence), standing in for OpenPose keypoints of a single image;
* the self-attention CNN is a spatial attention over the encoder's feature map, the same block as
  CAER-Net-S's context attention (:class:`reprolib.models.caernet.SpatialAttention`);
* the depth map comes with the data (the synthetic generator knows its scene; for real images, run a
  monocular depth estimator once and store one PNG per image); the depth CNN is the repo's small CNN
  on one channel;
* the multiplicative loss follows Liu et al. (2018, "Learn to combine modalities in multimodal deep
  learning"): modality i's log-loss is weighted by (prod over the other modalities j of
  (1 - p_j))^(beta / (M - 1)), where p is the probability given to the true label, so a modality is
  pushed hardest on the samples that the others get wrong. Multi-label targets use the per-class
  Bernoulli probability of the true value. It is added to the main loss with weight ``mult_weight``;
* on CAER-S-style data (faces only, no bodies, no depth) ``use_pose`` and ``use_depth`` are off and
  EmotiCon reduces to its face and semantic-context streams.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.backbones import build_encoder
from reprolib.models.caernet import SpatialAttention

JOINT_DIM = 256
MODALITY_DIM = 64


def multiplicative_loss(modality_logits: list[torch.Tensor], target: torch.Tensor, beta: float = 2.0,
                        multilabel: bool = False) -> torch.Tensor:
    """Liu et al.'s multiplicative combination loss over M >= 2 modalities' logits."""
    if len(modality_logits) < 2:
        raise ValueError("the multiplicative loss needs at least two modalities")
    if multilabel:
        target = target.float()
        probs = [torch.where(target > 0.5, torch.sigmoid(z), 1 - torch.sigmoid(z)) for z in modality_logits]
    else:
        probs = [torch.softmax(z, dim=1).gather(1, target[:, None]).squeeze(1) for z in modality_logits]
    exponent = beta / (len(probs) - 1)
    total = 0.0
    for i, p in enumerate(probs):
        others = torch.stack([1 - q for j, q in enumerate(probs) if j != i]).prod(dim=0).detach()
        total = total - (others ** exponent * torch.log(p.clamp_min(1e-6))).mean()
    return total


class EmotiCon(nn.Module):
    """Face + pose (multiplicative fusion), masked context with attention, depth -> 256-d -> classes."""

    def __init__(self, num_classes: int, *, multilabel: bool = False, backbone: str = "small",
                 context_weights=None, use_pose: bool = True, use_depth: bool = True, n_joints: int = 10,
                 beta: float = 2.0, mult_weight: float = 1.0, dropout: float = 0.5):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.beta, self.mult_weight = beta, mult_weight
        self.views = ("subject", "context") + (("pose",) if use_pose else ()) + (("depth",) if use_depth else ())

        self.face_encoder = build_encoder(backbone)
        self.face_proj = nn.Sequential(nn.Linear(self.face_encoder.out_dim, MODALITY_DIM), nn.ReLU(inplace=True))
        self.face_head = nn.Linear(MODALITY_DIM, num_classes)
        self.pose_encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(n_joints * 3, 128), nn.ReLU(inplace=True),
            nn.Linear(128, MODALITY_DIM), nn.ReLU(inplace=True)) if use_pose else None
        self.pose_head = nn.Linear(MODALITY_DIM, num_classes) if use_pose else None

        self.context_encoder = build_encoder(backbone, weights=context_weights)
        self.context_attention = SpatialAttention(self.context_encoder.out_dim)
        self.depth_encoder = build_encoder("small", in_channels=1) if use_depth else None

        width = MODALITY_DIM * (2 if use_pose else 1) + self.context_encoder.out_dim
        width += self.depth_encoder.out_dim if use_depth else 0
        self.fusion = nn.Sequential(nn.Linear(width, JOINT_DIM), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.feature_dim = JOINT_DIM
        self.classifier = nn.Linear(JOINT_DIM, num_classes)

    def encodings(self, batch: dict) -> dict[str, torch.Tensor]:
        """The per-interpretation encodings: ``face``, ``pose`` (h1 = both), ``context`` (h2), ``depth`` (h3)."""
        out = {"face": self.face_proj(self.face_encoder(batch["subject"]))}
        if self.pose_encoder is not None:
            out["pose"] = self.pose_encoder(batch["pose"])
        out["context"], _ = self.context_attention(self.context_encoder.feature_map(batch["context"]))
        if self.depth_encoder is not None:
            out["depth"] = self.depth_encoder(batch["depth"])
        return out

    def joint_feature(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        """h from the encodings (exposed so analyses can ablate one interpretation of context)."""
        return self.fusion(torch.cat([enc[k] for k in ("face", "pose", "context", "depth") if k in enc], dim=1))

    def features(self, batch: dict) -> torch.Tensor:
        return self.joint_feature(self.encodings(batch))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))

    def training_loss(self, batch: dict) -> torch.Tensor:
        enc = self.encodings(batch)
        logits = self.classifier(self.joint_feature(enc))
        target = batch[self.target_key]
        if self.multilabel:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target.float())
        else:
            loss = nn.functional.cross_entropy(logits, target)
        if self.pose_head is not None and self.mult_weight:
            modality = [self.face_head(enc["face"]), self.pose_head(enc["pose"])]
            loss = loss + self.mult_weight * multiplicative_loss(modality, target, self.beta, self.multilabel)
        return loss
