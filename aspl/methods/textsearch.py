"""Text queries over faces: an image-text joint embedding (bidirectional max-margin ranking loss).

Each face's text is its person's name plus the annotator notes on the face and
on the person. Texts are encoded as hashed bags of words and character
3-grams (names split on ``_``, lower case); small MLP heads map the text
features and a backbone's stored face embeddings into a shared unit sphere.
Training uses the bidirectional ranking loss of Wang et al. (CVPR 2016) / VSE:
for each matching (face, text) pair, sampled in-batch negatives with a
different text must score ``margin`` below it in both directions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TextEncoder", "JointModel", "TextSearchSettings", "face_texts", "train_joint", "ranking_loss",
           "TextSearch"]

log = logging.getLogger(__name__)


class TextEncoder:
    """Hashed bag of words + character 3-grams (padded words), L2-normalised, ``dim`` buckets."""

    def __init__(self, dim: int = 4096):
        self.dim = dim

    @staticmethod
    def tokens(text: str) -> list[str]:
        words = [w for w in re.split(r"[^0-9a-z]+", text.lower().replace("_", " ")) if w]
        out = [f"w:{w}" for w in words]
        for w in words:
            padded = f"#{w}#"
            out += [f"c:{padded[i:i + 3]}" for i in range(max(1, len(padded) - 2))]
        return out

    def _bucket(self, tok: str) -> int:
        return int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little") % self.dim

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        x = torch.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            for tok in self.tokens(t):
                x[i, self._bucket(tok)] += 2.0 if tok.startswith("w:") else 1.0
        return F.normalize(x, dim=1)


class JointModel(nn.Module):
    """Two MLP heads into a ``joint``-d unit sphere: faces (backbone embeddings) and texts (hashed features)."""

    def __init__(self, image_dim: int, text_dim: int = 4096, hidden: int = 256, joint: int = 64):
        super().__init__()
        self.image = nn.Sequential(nn.Linear(image_dim, hidden), nn.ReLU(), nn.Linear(hidden, joint))
        self.text = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, joint))

    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(x), dim=1)

    def embed_texts(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(t), dim=1)


@dataclass(frozen=True)
class TextSearchSettings:
    epochs: int = 60
    lr: float = 1e-3
    batch_size: int = 64
    margin: float = 0.2
    negatives: int = 10
    seed: int = 0


def ranking_loss(img: torch.Tensor, txt: torch.Tensor, group: torch.Tensor, margin: float = 0.2,
                 negatives: int = 10, gen: torch.Generator | None = None) -> torch.Tensor:
    """Bidirectional max-margin ranking loss over a batch of matching rows.

    ``group``: text identity per row (rows with the same group are not negatives of each other).
    For each row, up to ``negatives`` sampled rows of other groups as negative texts (image -> text)
    and as negative images (text -> image).
    """
    s = img @ txt.T
    pos = s.diag()
    valid = group.view(-1, 1) != group.view(1, -1)
    noise = torch.rand(s.shape, generator=gen).to(s.device)
    noise = noise.masked_fill(~valid, -1.0)
    k = min(negatives, s.shape[1])
    pick = noise.topk(k, dim=1).indices  # sampled negatives per row (invalid ones masked below)
    ok = valid.gather(1, pick).float()
    i2t = torch.clamp(margin - pos.view(-1, 1) + s.gather(1, pick), min=0) * ok
    t2i = torch.clamp(margin - pos.view(-1, 1) + s.T.gather(1, pick), min=0) * ok
    return (i2t.sum() + t2i.sum()) / max(1.0, float(ok.sum()))


def face_texts(lib: Any) -> dict[int, str]:
    """Face id -> text (person name + notes on the face and on its person) for labelled or noted faces."""
    names = {int(p["id"]): str(p["name"]) for p in lib.people()}
    person_of = {int(r["face_id"]): int(r["person_id"]) for r in lib.labels()}
    face_notes: dict[int, list[str]] = {}
    person_notes: dict[int, list[str]] = {}
    for n in lib.notes():
        if n["face_id"] is not None:
            face_notes.setdefault(int(n["face_id"]), []).append(n["text"])
        if n["person_id"] is not None:
            person_notes.setdefault(int(n["person_id"]), []).append(n["text"])
    out = {}
    for fid in set(person_of) | set(face_notes):
        parts = []
        p = person_of.get(fid)
        if p is not None:
            parts.append(names.get(p, ""))
            parts += person_notes.get(p, [])
        parts += face_notes.get(fid, [])
        text = " ".join(x for x in parts if x).strip()
        if text:
            out[fid] = text
    return out


def train_joint(X: np.ndarray, texts: Sequence[str], settings: TextSearchSettings | None = None,
                encoder: TextEncoder | None = None) -> tuple[JointModel, list[float]]:
    """Train a :class:`JointModel` on face embeddings ``X`` paired with ``texts``; returns it and epoch losses."""
    s = settings or TextSearchSettings()
    enc = encoder or TextEncoder()
    if len(X) != len(texts) or len(X) < 2:
        raise ValueError(f"need at least 2 aligned faces and texts, got {len(X)} and {len(texts)}")
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    xi = torch.from_numpy(np.asarray(X, np.float32))
    uniq = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    group = torch.tensor([uniq[t] for t in texts])
    xt = enc.encode(list(texts))
    model = JointModel(xi.shape[1], enc.dim)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=1e-5)
    losses = []
    for _ in range(s.epochs):
        order = torch.randperm(len(texts), generator=gen)
        tot, nb = 0.0, 0
        for i in range(0, len(order), s.batch_size):
            b = order[i:i + s.batch_size]
            if b.numel() < 2:
                continue
            loss = ranking_loss(model.embed_images(xi[b]), model.embed_texts(xt[b]), group[b], s.margin,
                                s.negatives, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach())
            nb += 1
        losses.append(tot / max(nb, 1))
    model.eval()
    return model, losses


class TextSearch:
    """A trained joint model for one library and backbone; cached in the library folder."""

    def __init__(self, model: JointModel, backbone: str, fingerprint: str, encoder: TextEncoder | None = None):
        self.model, self.backbone, self.fingerprint = model, backbone, fingerprint
        self.encoder = encoder or TextEncoder()

    @staticmethod
    def fingerprint_of(texts: dict[int, str], backbone: str) -> str:
        blob = json.dumps([backbone, sorted(texts.items())]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def for_library(cls, lib: Any, backbone: str, settings: TextSearchSettings | None = None,
                    cache: str | Path | None = None, retrain: bool = False) -> "TextSearch":
        """Load the cached model when the library's labels and notes are unchanged; train it otherwise."""
        texts = face_texts(lib)
        if len(texts) < 2:
            raise ValueError("text search needs at least 2 labelled or noted faces in the library")
        fp = cls.fingerprint_of(texts, backbone)
        path = Path(cache) if cache else (lib.root / f"textsearch-{backbone}.pt" if lib.root else None)
        if path is not None and path.is_file() and not retrain:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("fingerprint") == fp:
                m = JointModel(int(state["image_dim"]))
                m.load_state_dict(state["model"])
                m.eval()
                return cls(m, backbone, fp)
        ids = sorted(texts)
        got, X = lib.embeddings(backbone, ids)
        if len(got) < 2:
            raise ValueError(f"the labelled faces have no {backbone} embeddings; run: python -m aspl embed "
                             f"--backbone {backbone}")
        model, losses = train_joint(X, [texts[int(i)] for i in got], settings)
        log.info("text search model trained on %d faces: loss %.4f -> %.4f", len(got), losses[0], losses[-1])
        if path is not None:
            torch.save({"fingerprint": fp, "image_dim": int(X.shape[1]), "model": model.state_dict()}, path)
        return cls(model, backbone, fp)

    @torch.no_grad()
    def search(self, lib: Any, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Top ``k`` ``(face_id, score)`` among every face with a stored embedding."""
        if not query.strip():
            raise ValueError("empty query")
        ids, X = lib.embeddings(self.backbone)
        if len(ids) == 0:
            return []
        q = self.model.embed_texts(self.encoder.encode([query]))
        s = (self.model.embed_images(torch.from_numpy(np.asarray(X, np.float32))) @ q.T).view(-1).numpy()
        top = np.argsort(-s, kind="stable")[:k]
        return [(int(ids[i]), float(s[i])) for i in top]
