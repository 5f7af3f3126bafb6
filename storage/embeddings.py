"""Face embeddings: one float32 vector per (face, backbone)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._common import _Host


class EmbeddingsMixin(_Host):
    """Owns the ``embeddings`` table."""

    def _put_embedding(self, face_id: int, backbone: str, vec: np.ndarray) -> None:
        v = np.ascontiguousarray(vec, dtype=np.float32).ravel()
        self._insert("embeddings", {"face_id": face_id, "backbone": backbone, "dim": int(v.size),
                                    "vector": v.tobytes()}, replace=True)

    def put_embeddings(self, backbone: str, face_ids: Sequence[int], X: np.ndarray) -> None:
        """Store (or replace) embeddings of ``face_ids`` for ``backbone`` atomically."""
        X = np.asarray(X, np.float32)
        if len(face_ids) != len(X):
            raise ValueError(f"{len(face_ids)} face ids but {len(X)} embeddings")
        with self.transaction():
            for fid, v in zip(face_ids, X):
                self._put_embedding(int(fid), backbone, v)

    def embeddings(self, backbone: str, face_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` for ``backbone``, ordered by face id (optionally only ``face_ids``)."""
        rows = self.db.execute("SELECT face_id, dim, vector FROM embeddings WHERE backbone = ? ORDER BY face_id",
                               [backbone]).fetchall()
        if face_ids is not None:
            keep = set(int(f) for f in face_ids)
            rows = [r for r in rows if r[0] in keep]
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        X = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), rows[0][1]).copy()
        return ids, X

    def embedding(self, face_id: int, backbone: str) -> np.ndarray | None:
        """One face's embedding for ``backbone`` (None if it has none)."""
        row = self.db.execute("SELECT dim, vector FROM embeddings WHERE face_id = ? AND backbone = ?",
                              [face_id, backbone]).fetchone()
        return None if row is None else np.frombuffer(row[1], np.float32).copy()

    def embedding_ids(self, backbone: str) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.execute(
            "SELECT face_id FROM embeddings WHERE backbone = ? ORDER BY face_id", [backbone])), np.int64)

    def embedding_count(self, backbone: str) -> int:
        """Faces embedded with ``backbone``."""
        return int(self._one("SELECT COUNT(*) FROM embeddings WHERE backbone = ?", [backbone]) or 0)

    def faces_missing_embedding(self, backbone: str) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT f.id FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id AND e.backbone = ? "
            "WHERE e.face_id IS NULL ORDER BY f.id", [backbone])]

    def backbones_embedded(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT backbone, COUNT(*) FROM embeddings GROUP BY backbone")}
