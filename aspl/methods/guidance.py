"""Guided pretraining ("Training the Untrainable", Subramaniam et al. 2024) with linear CKA.

The target network is trained so that its layer representations align with a
frozen guide's: loss = sum over evenly mapped layer pairs of ``1 - CKA``. When
the guide is not a torch network (dlib-resnet, the usual offline case) or as
an extra term, the target's embedding is distilled into the guide's embedding
space directly (:func:`embedding_distillation_loss`): a linear head (dropped
afterwards) maps the target's features to the guide's dimension and is trained
with ``1 - cosine`` to each face's own guide embedding plus a symmetric InfoNCE
across the batch (each face's student embedding must be nearest its own guide
embedding), and a relational term matches the centred cosine-similarity
matrices of the target's features and the guide's embeddings. Unlike CKA or a
plain regression, none of these terms is blind to the features' mean: an
earlier CKA-only alignment collapsed every face onto one direction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cka import linear_cka
from .layers import capture, conv_layers, even_pairs, recalibrate_batchnorm

__all__ = ["GuidanceSettings", "GuidanceResult", "guide_target", "embedding_distillation_loss",
           "centred_cosine"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuidanceSettings:
    """Adam settings; ``batch_size`` >= 32 (CKA on small batches is noisy); ``max_pairs`` layer pairs.

    ``embedding_weight`` scales the whole embedding distillation (0: layers only);
    within it, ``contrastive_weight`` the InfoNCE term (``temperature``),
    ``similarity_weight`` the centred relational term and ``unit_similarity_weight``
    the match of the target's unit embeddings' cosines to the guide's (what the SVMs see);
    the cosine term has weight 1.
    """

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 32
    max_pairs: int = 6
    layer_weight: float = 1.0
    embedding_weight: float = 1.0
    contrastive_weight: float = 1.0
    similarity_weight: float = 1.0
    unit_similarity_weight: float = 1.0
    temperature: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 32:
            raise ValueError(f"need epochs >= 1 and batch_size >= 32, got {self.epochs!r}, {self.batch_size!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")


@dataclass
class GuidanceResult:
    losses: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)


def _is_torch(e: Any) -> bool:
    return isinstance(e, nn.Module) and hasattr(e, "net")


def centred_cosine(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (n x n) of the rows of ``x`` after subtracting their batch mean."""
    c = F.normalize(x - x.mean(0, keepdim=True), dim=1)
    return c @ c.T


def embedding_distillation_loss(feats: torch.Tensor, head: nn.Module, g: torch.Tensor,
                                contrastive_weight: float = 1.0, similarity_weight: float = 1.0,
                                temperature: float = 0.1, g_mean: torch.Tensor | None = None,
                                unit_similarity_weight: float = 0.0) -> torch.Tensor:
    """Distil guide embeddings ``g`` (n x Dg) into target features ``feats`` (n x D) through ``head``.

    ``1 - cos(head(f), g - g_mean)`` + ``contrastive_weight`` x symmetric InfoNCE (own guide
    embedding against the batch's others) + ``similarity_weight`` x MSE of the centred cosine
    matrices + ``unit_similarity_weight`` x MSE of the plain cosine matrices. ``g_mean``: the guide's
    mean embedding over all faces (default: the batch's); centring the targets matters, as guide
    embeddings such as dlib's share a large common direction (mean cosine ~0.84).
    """
    z = F.normalize(head(feats), dim=1)
    gn = F.normalize(g - (g.mean(0, keepdim=True) if g_mean is None else g_mean), dim=1)
    loss = 1 - (z * gn).sum(1).mean()
    if contrastive_weight > 0:
        logits = z @ gn.T / temperature
        idx = torch.arange(z.shape[0], device=z.device)
        loss = loss + contrastive_weight * 0.5 * (F.cross_entropy(logits, idx) + F.cross_entropy(logits.T, idx))
    if similarity_weight > 0:
        loss = loss + similarity_weight * F.mse_loss(centred_cosine(feats), centred_cosine(g))
    if unit_similarity_weight > 0:
        e, u = F.normalize(feats, dim=1), F.normalize(g, dim=1)
        loss = loss + unit_similarity_weight * F.mse_loss(e @ e.T, u @ u.T)
    return loss


def guide_target(target: Any, crops: Sequence[np.ndarray], guide: Any = None,
                 guide_embeddings: np.ndarray | None = None,
                 settings: GuidanceSettings | None = None) -> GuidanceResult:
    """Train ``target`` (a TorchEmbedder) in place towards ``guide``.

    ``guide``: a torch TorchEmbedder (layer CKA, plus embedding alignment) or any
    embedder; ``guide_embeddings`` (N x D, aligned with ``crops``) are used for
    the embedding term (computed with ``guide.embed`` when missing).
    """
    s = settings or GuidanceSettings()
    if not _is_torch(target):
        raise ValueError(f"the target must be a torch backbone, got {type(target).__name__}")
    n = len(crops)
    if n < s.batch_size:
        raise ValueError(f"guidance needs at least batch_size={s.batch_size} faces, got {n}")
    if guide is None and guide_embeddings is None:
        raise ValueError("pass a guide backbone or its embeddings")
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    dev = target.device
    torch_guide = guide is not None and _is_torch(guide)
    if guide_embeddings is None and s.embedding_weight > 0:
        guide_embeddings = guide.embed(list(crops))
    G = torch.from_numpy(np.asarray(guide_embeddings, np.float32)) if guide_embeddings is not None else None
    xt = target.preprocess(list(crops))
    pairs: list[tuple[int, int]] = []
    t_layers: list[nn.Module] = []
    g_layers: list[nn.Module] = []
    if torch_guide and s.layer_weight > 0:
        guide.eval()
        for p in guide.parameters():
            p.requires_grad_(False)
        xg = guide.preprocess(list(crops))
        t_layers, g_layers = conv_layers(target.net), conv_layers(guide.net)
        pairs = even_pairs(len(t_layers), len(g_layers), s.max_pairs)
    proj = None
    g_mean = G.mean(0, keepdim=True).to(dev) if G is not None else None
    params = list(target.parameters())
    if G is not None and s.embedding_weight > 0:
        proj = nn.Linear(target.info.embedding_dim, G.shape[1]).to(dev)
        params += list(proj.parameters())
    opt = torch.optim.Adam(params, lr=s.lr)
    losses: list[float] = []
    target.train()
    try:
        for ep in range(s.epochs):
            order = rng.permutation(n)
            tot, nb = 0.0, 0
            for i in range(0, n - s.batch_size + 1, s.batch_size):  # full batches only
                b = torch.from_numpy(order[i:i + s.batch_size])
                loss = torch.zeros((), device=dev)
                with capture(t_layers) as t_out:
                    feats = target.features(xt[b].to(dev))
                if pairs:
                    with torch.no_grad(), capture(g_layers) as g_out:
                        guide.features(xg[b].to(guide.device))
                    for ti, gi in pairs:
                        loss = loss + s.layer_weight * (1 - linear_cka(t_out[ti], g_out[gi].to(dev)))
                if G is not None and proj is not None:
                    loss = loss + s.embedding_weight * embedding_distillation_loss(
                        feats, proj, G[b].to(dev), s.contrastive_weight, s.similarity_weight, s.temperature,
                        g_mean, s.unit_similarity_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach())
                nb += 1
            losses.append(tot / max(nb, 1))
            log.info("guidance epoch %d: loss %.4f", ep + 1, losses[-1])
    finally:
        target.eval()
    recalibrate_batchnorm(target.net, xt)
    return GuidanceResult(losses, pairs)
