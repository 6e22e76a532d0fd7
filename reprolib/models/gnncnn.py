"""GNN-CNN (Zhang, Liang, Ma, ICME 2019): a CNN on the body and a graph network over context regions.

The paper describes (at abstract level; no code is public) context regions found by a region proposal
network as the nodes of an "affective graph", a GCN reasoning over that graph, a CNN encoding the body,
and the two outputs combined to predict the 26 EMOTIC categories (and VAD); reported EMOTIC mAP 28.42.
This re-implementation:

* body stream: an encoder (:func:`reprolib.models.backbones.build_encoder`) on the ``subject`` crop,
  globally pooled to a vector;
* context nodes: a second encoder on the ``context`` view (subject box painted black); its last
  feature map is adaptive-average-pooled to a ``grid`` x ``grid`` map (default 4 x 4 = 16 nodes), each
  cell is projected Linear(C -> ``node_dim`` = 128) and gets a learned positional embedding;
* graph: a learned, input-dependent adjacency A = softmax_j((X W_q)(X W_k)^T / sqrt(node_dim)), then
  Â = row-normalised (A + I) (every row sums to 1, self-loops kept); two GCN layers
  H' = H + ReLU(LayerNorm(Â H W)), width ``node_dim``, on that same Â; readout = mean over the nodes;
* fusion: [body ; readout] -> Linear(-> 256) -> BatchNorm -> ReLU -> Dropout(0.5): the 256-d joint
  feature ``h`` that ``classifier`` (Linear 256 -> K) reads and that CCIM wraps.

Decisions, where the paper is silent or where the offline setting forces them:

* no detector can be downloaded, so the nodes are grid cells of a CNN feature map rather than region
  proposals; on real data a detector's (RoI-pooled) region features would replace the cells, and the
  graph code would stay the same. When the feature map is smaller than the grid (smoke-size inputs: a
  48 px context gives a 3 x 3 map on the small encoder, 64 px a 2 x 2 map on a ResNet), adaptive
  pooling repeats cells, and the positional embeddings are what tells them apart;
* the adjacency is learned from the node features (the paper's edge definition is not given); it is
  shared by both GCN layers and exposed by :meth:`GNNCNN.graph` for analysis;
* the residual connection and LayerNorm in each GCN layer, the mean readout and the fusion MLP are
  choices of this re-implementation (the fusion mirrors EMOT-Net's, so the two share ``h``'s width);
* categories only: no VAD head; the loss is the engine's default (cross-entropy on single-label
  CAER-S-style data, BCE-with-logits on multi-label EMOTIC-style data);
* ``widths`` narrows both small encoders for smoke runs (``backbone="small"`` only).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reprolib.models.backbones import build_encoder

JOINT_DIM = 256


class GCNLayer(nn.Module):
    """H' = H + ReLU(LayerNorm(Â H W)) for a row-normalised adjacency Â ``[B, N, N]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return h + torch.relu(self.norm(adjacency @ self.weight(h)))


class AffectiveGraph(nn.Module):
    """Learned adjacency over the nodes, two residual GCN layers, mean readout."""

    def __init__(self, dim: int, layers: int = 2):
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.layers = nn.ModuleList(GCNLayer(dim) for _ in range(layers))
        self.scale = 1.0 / math.sqrt(dim)

    def adjacency(self, nodes: torch.Tensor) -> torch.Tensor:
        """Â = row-normalised (softmax_j(q_i . k_j / sqrt(d)) + I): ``[B, N, N]``, rows sum to 1."""
        scores = (self.query(nodes) @ self.key(nodes).transpose(1, 2)) * self.scale
        a = torch.softmax(scores.float(), dim=-1)
        a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        return (a / a.sum(dim=-1, keepdim=True)).to(nodes.dtype)

    def forward(self, nodes: torch.Tensor) -> dict[str, torch.Tensor]:
        adjacency = self.adjacency(nodes)
        h = nodes
        for layer in self.layers:
            h = layer(h, adjacency)
        return {"adjacency": adjacency, "updated": h, "readout": h.mean(dim=1)}


class GNNCNN(nn.Module):
    """Body CNN + GCN over a grid of masked-context cells, fused to 256-d -> classes."""

    views = ("subject", "context")

    def __init__(self, num_classes: int, *, multilabel: bool = False, backbone: str = "small",
                 context_weights=None, grid: int = 4, node_dim: int = 128, gcn_layers: int = 2,
                 widths=None, dropout: float = 0.5):
        super().__init__()
        self.multilabel = multilabel
        self.target_key = "labels" if multilabel else "label"
        self.grid, self.num_nodes = grid, grid * grid
        self.body_encoder = build_encoder(backbone, widths=widths)
        self.context_encoder = build_encoder(backbone, weights=context_weights, widths=widths)
        self.cells = nn.AdaptiveAvgPool2d(grid)
        self.node_proj = nn.Linear(self.context_encoder.out_dim, node_dim)
        self.node_pos = nn.Parameter(torch.randn(1, self.num_nodes, node_dim) * 0.02)
        self.graph_net = AffectiveGraph(node_dim, gcn_layers)
        self.fusion = nn.Sequential(
            nn.Linear(self.body_encoder.out_dim + node_dim, JOINT_DIM),
            nn.BatchNorm1d(JOINT_DIM), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.feature_dim = JOINT_DIM
        self.classifier = nn.Linear(JOINT_DIM, num_classes)

    def nodes(self, context: torch.Tensor) -> torch.Tensor:
        """Node features ``[B, grid * grid, node_dim]`` (row-major cells) from the masked context view."""
        cells = self.cells(self.context_encoder.feature_map(context))  # [B, C, grid, grid]
        return self.node_proj(cells.flatten(2).transpose(1, 2)) + self.node_pos

    def graph(self, batch: dict) -> dict[str, torch.Tensor]:
        """For analysis: ``nodes`` (input node features), ``adjacency`` Â ``[B, N, N]`` (rows sum to 1),
        ``updated`` (node features after the GCN) and ``readout`` (their mean, ``[B, node_dim]``)."""
        nodes = self.nodes(batch["context"])
        return {"nodes": nodes, **self.graph_net(nodes)}

    def features(self, batch: dict) -> torch.Tensor:
        readout = self.graph_net(self.nodes(batch["context"]))["readout"]
        return self.fusion(torch.cat([self.body_encoder(batch["subject"]), readout], dim=1))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))
