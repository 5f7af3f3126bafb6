"""Helpers for the tests of aspl.methods: small real-face subsets and libraries built from cached crops."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def real_crops(lfw_dev: Path, people: int = 4, per: int = 10):
    """Aligned crops of the first ``people`` lfw-dev people with >= ``per`` photos (cached in .cache/crops)."""
    from aspl.methods.data import folder_crops

    return folder_crops(lfw_dev, people=people, max_per_person=per, min_per_person=per)


def library_from_crops(lib, indexes, fc, embedder=None, label: bool = True) -> list[int]:
    """Store each crop as a one-face image (labelled with its person) without running detection."""
    from storage.db import NewFace

    X = embedder.embed(list(fc.crops)) if embedder is not None else None
    ids = []
    for i, (crop, name, path) in enumerate(zip(fc.crops, fc.labels, fc.paths)):
        emb = {embedder.info.name: X[i]} if embedder is not None else {}
        face = NewFace((10.0, 10.0, 150.0, 150.0), np.zeros((5, 2), np.float32), 0.99, crop, embeddings=emb,
                       seed_person=name if label else None)
        sha = hashlib.sha256(f"{path}:{i}".encode()).hexdigest()
        _, fids = lib.add_image(path, sha, 1000, 160, 160, [face], annotator="test")
        ids += fids
    if embedder is not None:
        indexes.rebuild(embedder.info.name, dim=embedder.info.embedding_dim)
    return ids
