"""Fine-tune a trainable torch backbone on human + weighted pseudo labels.

A cosine classification head (one row per person, resized to the current
number of people; rows of new people imprinted from their mean embedding) sits
on the backbone's L2-normalised embedding. The loss is cross-entropy weighted
per face (human labels weight 1, pseudo-labels their self-paced weight v).
SGD with momentum 0.9 and weight decay 5e-4, small learning rate, as in the
released code. ``loss="svm"`` swaps the softmax for a CNN-SVM output layer
(Tang 2013): an unnormalised linear head trained with the one-vs-rest squared
hinge (L2-SVM) loss, its L2 penalty being the weight decay. Frozen backbones (``info.trainable`` false, e.g. dlib) and
non-torch embedders are skipped. Afterwards the caller re-embeds every face
and rebuilds its index.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: the engine works without it for frozen backbones
    import torch

__all__ = ["FINETUNE_LOSSES", "squared_hinge_loss", "FineTuneSettings", "FineTuneResult", "is_trainable",
           "finetune_embedder", "CropFinetuner"]

log = logging.getLogger(__name__)

#: ``softmax``: cross-entropy over scaled cosine logits (default); ``svm``: L2-SVM (squared hinge) head.
FINETUNE_LOSSES = ("softmax", "svm")


def squared_hinge_loss(scores: "torch.Tensor", target: "torch.Tensor", margin: float = 1.0) -> "torch.Tensor":
    """Per-row multiclass L2-SVM loss (Weston-Watkins, squared), averaged over the other classes:
    ``mean_{k != y} max(0, m - (s_y - s_k))^2``.

    The relative form matters here: with the one-vs-rest form ``max(0, 1 - t_k s_k)^2`` on
    bounded cosine scores, the K-1 negative terms are cheapest to satisfy by pointing
    every embedding away from all classes at once, and fine-tuning collapsed the
    embeddings onto one direction (measured: mean pairwise cosine 1.000, SVM accuracy
    halved). Margins between the true score and each other score cannot be met that way.
    """
    import torch

    true = scores.gather(1, target.view(-1, 1))
    viol = torch.clamp(margin - (true - scores), min=0).pow(2)
    mask = torch.ones_like(scores)
    mask.scatter_(1, target.view(-1, 1), 0.0)
    return (viol * mask).sum(1) / max(scores.shape[1] - 1, 1)


@dataclass(frozen=True)
class FineTuneSettings:
    """Optimiser settings (SGD; momentum and weight decay from the released code)."""

    epochs: int = 1
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    logit_scale: float = 16.0
    seed: int = 0
    loss: str = "softmax"

    def __post_init__(self) -> None:
        if self.loss not in FINETUNE_LOSSES:
            raise ValueError(f"unknown fine-tuning loss {self.loss!r}; valid choices: {', '.join(FINETUNE_LOSSES)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs!r}, {self.batch_size!r}")
        if not self.lr > 0 or self.logit_scale <= 0:
            raise ValueError(f"need lr > 0 and logit_scale > 0, got {self.lr!r}, {self.logit_scale!r}")


@dataclass
class FineTuneResult:
    """The (same, updated in place) ``embedder``; the ``head`` and the ``persons`` of its rows;
    mean weighted loss per epoch; ``skipped`` when the backbone is frozen."""

    embedder: Any
    head: Any = None
    persons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    losses: list[float] = field(default_factory=list)
    skipped: bool = False


def is_trainable(embedder: Any) -> bool:
    """True for a torch module whose ``info.trainable`` is set."""
    import torch

    info = getattr(embedder, "info", None)
    return isinstance(embedder, torch.nn.Module) and bool(getattr(info, "trainable", False))


def _imprint(embedder: Any, x: "torch.Tensor", y: np.ndarray, persons: np.ndarray, batch_size: int) -> "torch.Tensor":
    import torch

    embedder.eval()
    with torch.no_grad():
        emb = torch.cat([embedder(x[i:i + batch_size].to(embedder.device)).cpu()
                         for i in range(0, x.shape[0], batch_size)])
    rows = [emb[torch.from_numpy(y == p)].mean(0) for p in persons]
    return torch.nn.functional.normalize(torch.stack(rows), dim=1)


def finetune_embedder(embedder: Any, crops: Sequence[np.ndarray], labels: np.ndarray,
                      weights: np.ndarray | None = None, settings: FineTuneSettings | None = None,
                      head: Any = None, head_persons: np.ndarray | None = None) -> FineTuneResult:
    """Fine-tune ``embedder`` (a :class:`models.torch_base.TorchEmbedder`) in place.

    ``crops``: aligned uint8 face crops; ``labels``: person id per crop (rows
    with -1 or weight 0 are ignored); ``weights``: per-crop loss weights
    (default 1). Pass the previous ``head`` and ``head_persons`` to keep the
    rows of people seen before; the head is resized to the people in ``labels``.
    """
    import torch
    import torch.nn.functional as F

    s = settings or FineTuneSettings()
    if not is_trainable(embedder):
        name = getattr(getattr(embedder, "info", None), "name", type(embedder).__name__)
        log.info("backbone %s is frozen: fine-tuning skipped", name)
        return FineTuneResult(embedder, head, np.asarray(head_persons if head_persons is not None else [],
                                                          dtype=np.int64), skipped=True)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    w = np.ones(y.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(crops) != y.shape[0] or w.shape[0] != y.shape[0]:
        raise ValueError(f"crops, labels and weights differ in length: {len(crops)}, {y.shape[0]}, {w.shape[0]}")
    keep = np.flatnonzero((y >= 0) & (w > 0))
    persons = np.unique(y[keep])
    if persons.size < 2:
        log.info("fine-tuning needs faces of at least 2 people, got %d: skipped", persons.size)
        return FineTuneResult(embedder, head, persons, skipped=True)
    torch.manual_seed(s.seed)
    gen = np.random.default_rng(s.seed)
    x = embedder.preprocess([crops[i] for i in keep])
    y, w = y[keep], w[keep]
    target = torch.from_numpy(np.searchsorted(persons, y))
    wt = torch.from_numpy(w).float()

    rows = _imprint(embedder, x, y, persons, s.batch_size)
    if head is not None and head_persons is not None:
        old = {int(p): i for i, p in enumerate(np.asarray(head_persons).reshape(-1))}
        with torch.no_grad():
            for j, p in enumerate(persons.tolist()):
                if p in old:
                    rows[j] = F.normalize(head.weight[old[p]].detach().cpu(), dim=0)
    new_head = torch.nn.Linear(rows.shape[1], persons.size, bias=False)
    with torch.no_grad():
        new_head.weight.copy_(rows)
    new_head.to(embedder.device)

    params = list(embedder.parameters()) + list(new_head.parameters())
    opt = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    embedder.train()
    losses = []
    try:
        for _ in range(s.epochs):
            order = gen.permutation(keep.size)
            total, mass = 0.0, 0.0
            for i in range(0, order.size, s.batch_size):
                b = torch.from_numpy(order[i:i + s.batch_size])
                if b.numel() < 2:  # batch norm cannot train on one face
                    continue
                emb = embedder(x[b].to(embedder.device))
                if s.loss == "svm":
                    # A plain linear SVM layer (W unconstrained, kept small by weight decay).
                    ce = squared_hinge_loss(F.linear(emb, new_head.weight), target[b].to(embedder.device))
                else:
                    logits = s.logit_scale * F.linear(emb, F.normalize(new_head.weight, dim=1))
                    ce = F.cross_entropy(logits, target[b].to(embedder.device), reduction="none")
                wb = wt[b].to(embedder.device)
                loss = (ce * wb).sum() / wb.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * float(wb.sum())
                mass += float(wb.sum())
            losses.append(total / max(mass, 1e-12))
    finally:
        embedder.eval()
    log.info("fine-tuned %s on %d faces of %d people: loss %s", embedder.info.name, keep.size, persons.size,
             " -> ".join(f"{v:.3f}" for v in losses))
    return FineTuneResult(embedder, new_head, persons, losses)


class CropFinetuner:
    """Fine-tunes a trainable embedder on targets by row of ``crops`` and returns new embeddings of every crop.

    The callable the simulation's loop uses (see :data:`aspl.engine.simulate.Finetuner`); the
    classification head is carried from one call to the next. ``copy`` fine-tunes a deep copy,
    leaving the caller's embedder as it was.
    """

    def __init__(self, embedder: Any, crops: Sequence[np.ndarray], settings: FineTuneSettings | None = None,
                 copy: bool = True):
        import copy as _copy

        self.embedder = _copy.deepcopy(embedder) if copy else embedder
        self.crops = crops
        self.settings = settings or FineTuneSettings()
        self.head: Any = None
        self.persons: np.ndarray | None = None
        self.calls = 0

    def __call__(self, rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        res = finetune_embedder(self.embedder, [self.crops[i] for i in rows], labels, weights, self.settings,
                                self.head, self.persons)
        self.head, self.persons = res.head, res.persons
        self.calls += 1
        return self.embedder.embed(list(self.crops))
