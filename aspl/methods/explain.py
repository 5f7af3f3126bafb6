"""LinearScope explanations of a library face: which pixels drove the suggested identity.

The suggested person is the one whose centroid (mean unit embedding of their
labelled faces, under the explaining backbone) is nearest the face; the
explanation is the row of the network's linear interpreter ``A(x)`` for that
centroid's direction (:func:`models.linearscope.heatmap_for_crop`).
dlib-resnet is not a torch network: explain with a torch backbone instead
(``backbone=``, e.g. a guided or fine-tuned one loaded with ``weights=``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Explanation", "explain_face", "save_heatmap_png"]

log = logging.getLogger(__name__)


@dataclass
class Explanation:
    """``heatmap`` (H x W float32, the crop's shape; positive supports ``person_name``), the ``crop``,
    the suggested person, its cosine ``similarity`` and the explained ``score`` (direction . features)."""

    face_id: int
    heatmap: np.ndarray
    crop: np.ndarray
    person_id: int | None
    person_name: str | None
    similarity: float
    score: float
    backbone: str


def _torch_embedder(backbone: str, weights: str | None) -> Any:
    from models import create_backbone
    from models.torch_base import TorchEmbedder

    kw = {"weights": weights} if weights else {}
    emb = create_backbone(backbone, **kw)
    if not isinstance(emb, TorchEmbedder):
        raise ValueError(f"LinearScope needs a torch ReLU/max-pool network; {backbone!r} is not one "
                         f"(dlib-resnet is a dlib model): pass a torch backbone such as simplenet-v1-050 or "
                         f"overfeat-fast-025, with --weights from 'python -m aspl pretrain'")
    return emb


def explain_face(lib: Any, face_id: int, backbone: str = "simplenet-v1-050", weights: str | None = None,
                 person_id: int | None = None, mode: str = "contribution", embedder: Any = None,
                 max_per_person: int = 20) -> Explanation:
    """Heatmap of what drove the suggested identity of ``face_id`` (the app's Annotate page calls this)."""
    from models.linearscope import heatmap_for_crop

    emb = embedder if embedder is not None else _torch_embedder(backbone, weights)
    crop = lib.face_crop(face_id)
    by: dict[int, list[int]] = {}
    for r in lib.labels():
        fid = int(r["face_id"])
        if fid != face_id and len(by.setdefault(int(r["person_id"]), [])) < max_per_person:
            by[int(r["person_id"])].append(fid)
    f = emb.embed([crop])[0]
    names = {int(p["id"]): p["name"] for p in lib.people()}
    if by:
        persons = sorted(by)
        cents = []
        for p in persons:
            c = emb.embed(lib.face_crops(by[p])).mean(0)
            cents.append(c / (np.linalg.norm(c) or 1.0))
        C = np.stack(cents)
        sims = C @ f
        j = persons.index(person_id) if person_id in by else int(np.argmax(sims))
        if person_id is not None and person_id not in by:
            raise ValueError(f"person {person_id} has no labelled faces; people with labels: {persons}")
        pid, direction, sim = persons[j], C[j], float(sims[j])
    else:  # nothing labelled: explain the face's own embedding direction
        if person_id is not None:
            raise ValueError(f"person {person_id} has no labelled faces (the library has no labels)")
        pid, direction, sim = None, f, 1.0
    heat, score = heatmap_for_crop(emb, crop, direction, mode=mode)
    return Explanation(face_id, heat, crop, pid, names.get(pid) if pid is not None else None, sim, score,
                       emb.info.name)


def save_heatmap_png(ex: Explanation, path: str | Path) -> Path:
    """Write the crop and its overlay side by side as a PNG."""
    from PIL import Image

    from models.linearscope import overlay

    img = np.concatenate([ex.crop, overlay(ex.crop, ex.heatmap)], axis=1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(p)
    return p
