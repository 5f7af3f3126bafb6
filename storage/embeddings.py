"""Face embeddings: one float32 vector per (face, backbone), and each backbone's fingerprint.

Every write keeps ``embedding_fingerprints`` (see :mod:`storage.fingerprint`)
exact in the same transaction. Triggers (migration ``m007``) count every write
to ``embeddings``, including writes made outside this API; a fingerprint whose
count of writes is behind is stale and is recomputed from the rows.
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Any, Sequence

import numpy as np

from . import fingerprint as fpr
from ._common import _Host

log = logging.getLogger(__name__)

_CHUNK = 500  # face ids per "IN (...)" query (SQLite's variable limit is 999 on old builds)
_FEW_IDS = 20 * _CHUNK  # up to this many wanted ids: IN queries; more: one read of the backbone, filtered
_READ_BATCH = 65536  # rows fetched (and held as Python objects) at a time by a full read


class EmbeddingsMixin(_Host):
    """Owns the ``embeddings`` and ``embedding_fingerprints`` tables."""

    def _put_embedding(self, face_id: int, backbone: str, vec: np.ndarray) -> None:
        """Store (or replace) one embedding and update the backbone's fingerprint (same transaction)."""
        self._write_embeddings(backbone, [(int(face_id), vec)])

    def put_embeddings(self, backbone: str, face_ids: Sequence[int], X: np.ndarray) -> None:
        """Store (or replace) embeddings of ``face_ids`` for ``backbone`` atomically."""
        X = np.asarray(X, np.float32)
        if len(face_ids) != len(X):
            raise ValueError(f"{len(face_ids)} face ids but {len(X)} embeddings")
        self._write_embeddings(backbone, [(int(f), v) for f, v in zip(face_ids, X)])

    def _write_embeddings(self, backbone: str, rows: Sequence[tuple[int, np.ndarray]]) -> None:
        new: dict[int, np.ndarray] = {}  # a face listed twice: the last vector wins
        for fid, vec in rows:
            new[int(fid)] = np.ascontiguousarray(vec, dtype=np.float32).ravel()
        if not new:
            return
        with self.transaction():
            state = self._fingerprint_row(backbone)
            exact = state is not None and state["writes"] == state["synced_writes"]
            old = self._row_hashes_of(backbone, list(new)) if exact else []
            for fid, v in new.items():
                self._insert("embeddings", {"face_id": fid, "backbone": backbone, "dim": int(v.size),
                                            "vector": v.tobytes()}, replace=True)
            if exact:
                added = fpr.combine(fpr.row_hash(fid, v.tobytes()) for fid, v in new.items())
                n = state["row_count"] - len(old) + len(new)
                fp = (fpr.from_text(state["fingerprint"]) - fpr.combine(old) + added) & fpr.MASK
            else:
                n, fp = self._fingerprint_from_rows(backbone)
            self._store_fingerprint(backbone, n, fp)

    # ----------------------------------------------------------- fingerprints
    def _fingerprint_row(self, backbone: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT row_count, fingerprint, writes, synced_writes FROM embedding_fingerprints "
                          "WHERE backbone = ?", [backbone])
        return rows[0] if rows else None

    def _row_hashes_of(self, backbone: str, face_ids: Sequence[int]) -> list[int]:
        """Hashes of the stored rows of ``face_ids`` (those that have one)."""
        out = []
        for i in range(0, len(face_ids), _CHUNK):
            part = list(face_ids[i:i + _CHUNK])
            marks = ",".join("?" * len(part))
            out += [fpr.row_hash(r[0], r[1]) for r in self.db.execute(
                f"SELECT face_id, vector FROM embeddings WHERE backbone = ? AND face_id IN ({marks})",
                [backbone, *part])]
        return out

    def _fingerprint_from_rows(self, backbone: str) -> tuple[int, int]:
        """``(rows, fingerprint)`` computed from every stored row of ``backbone`` (a full scan)."""
        n, total = 0, 0
        for fid, vec in self.db.execute("SELECT face_id, vector FROM embeddings WHERE backbone = ?", [backbone]):
            n += 1
            total += fpr.row_hash(fid, vec)
        return n, total & fpr.MASK

    def _store_fingerprint(self, backbone: str, n: int, fp: int) -> None:
        self.db.execute(
            "INSERT INTO embedding_fingerprints (backbone, row_count, fingerprint, writes, synced_writes) "
            "VALUES (?, ?, ?, 0, 0) ON CONFLICT(backbone) DO UPDATE SET row_count = excluded.row_count, "
            "fingerprint = excluded.fingerprint, synced_writes = embedding_fingerprints.writes",
            [backbone, n, fpr.to_text(fp)])

    def embedding_fingerprint(self, backbone: str, recompute: bool = False) -> tuple[int, int]:
        """``(rows, fingerprint)`` of ``backbone``'s stored embeddings (see :mod:`storage.fingerprint`).

        Normally one row read. The fingerprint is recomputed from the rows (and
        stored again) when it is missing, when rows were written outside this
        API, or with ``recompute=True`` (a full check, e.g. for ``stats``).
        """
        state = self._fingerprint_row(backbone)
        if not recompute and state is not None and state["writes"] == state["synced_writes"]:
            return int(state["row_count"]), fpr.from_text(state["fingerprint"])
        try:
            with self.transaction():
                n, fp = self._fingerprint_from_rows(backbone)
                state = self._fingerprint_row(backbone)
                if state is not None and state["writes"] == state["synced_writes"] \
                        and (state["row_count"], fpr.from_text(state["fingerprint"])) != (n, fp):
                    log.warning("stored fingerprint of the %s embeddings was wrong (%d rows recorded, %d found); "
                                "corrected", backbone, state["row_count"], n)
                if n or state is not None:
                    self._store_fingerprint(backbone, n, fp)
        except sqlite3.OperationalError as e:  # read-only file, or locked past the busy timeout
            log.warning("could not store the recomputed fingerprint of the %s embeddings (%s)", backbone, e)
            n, fp = self._fingerprint_from_rows(backbone)
        return n, fp

    # ------------------------------------------------------------------ reads
    def embeddings(self, backbone: str, face_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` for ``backbone``, ordered by face id (optionally only ``face_ids``).

        One query over the backbone (or ``IN`` queries for a few ids); the vectors are joined into one
        buffer in batches of rows and viewed as a float32 matrix (no per-row arrays), sorted by id in numpy.
        """
        if face_ids is not None:
            want = np.unique(np.fromiter((int(f) for f in face_ids), np.int64))
            if want.size <= _FEW_IDS:
                return self._read_vectors([
                    (f"SELECT face_id, dim, vector FROM embeddings WHERE backbone = ? AND face_id IN "
                     f"({','.join('?' * len(part))})", [backbone, *part.tolist()])
                    for part in np.array_split(want, -(-want.size // _CHUNK))] if want.size else [])
            ids, X = self.embeddings(backbone)
            keep = np.isin(ids, want)
            return (ids, X) if keep.all() else (ids[keep], X[keep])
        return self._read_vectors([("SELECT face_id, dim, vector FROM embeddings WHERE backbone = ?", [backbone])])

    def _read_vectors(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` of the ``(face_id, dim, vector)`` rows of ``queries``, sorted by face id."""
        ids: list[np.ndarray] = []
        dims: list[np.ndarray] = []
        buf = bytearray()
        for sql, params in queries:
            cur = self.db.execute(sql, params)
            while rows := cur.fetchmany(_READ_BATCH):
                ids.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
                dims.append(np.fromiter((r[1] for r in rows), np.int64, len(rows)))
                buf += b"".join([r[2] for r in rows])
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        fid, dim = np.concatenate(ids), np.concatenate(dims)
        if (dim != dim[0]).any() or len(buf) != 4 * int(dim.sum()):
            raise ValueError(f"embeddings of one backbone differ in size: dims {sorted(set(dim.tolist()))[:5]}, "
                             f"{len(buf)} bytes for {fid.size} rows")
        X = np.frombuffer(buf, np.float32).reshape(fid.size, int(dim[0]))  # writable: a bytearray
        if fid.size > 1 and not (np.diff(fid) > 0).all():
            order = np.argsort(fid, kind="stable")
            fid, X = fid[order], X[order]
        return fid, X

    def embedding(self, face_id: int, backbone: str) -> np.ndarray | None:
        """One face's embedding for ``backbone`` (None if it has none)."""
        row = self.db.execute("SELECT dim, vector FROM embeddings WHERE face_id = ? AND backbone = ?",
                              [face_id, backbone]).fetchone()
        return None if row is None else np.frombuffer(row[1], np.float32).copy()

    def embedding_ids(self, backbone: str) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.execute(
            "SELECT face_id FROM embeddings WHERE backbone = ? ORDER BY face_id", [backbone])), np.int64)

    def embedding_dim(self, backbone: str) -> int | None:
        """The dimension of ``backbone``'s embeddings (None before the first)."""
        row = self.db.execute("SELECT dim FROM embeddings WHERE backbone = ? LIMIT 1", [backbone]).fetchone()
        return None if row is None else int(row[0])

    def embedding_count(self, backbone: str) -> int:
        """Faces embedded with ``backbone`` (one row read: the count kept with the fingerprint)."""
        return self.embedding_fingerprint(backbone)[0]

    def faces_missing_embedding(self, backbone: str) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT f.id FROM faces f LEFT JOIN embeddings e ON e.face_id = f.id AND e.backbone = ? "
            "WHERE e.face_id IS NULL ORDER BY f.id", [backbone])]

    def backbones_embedded(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT backbone, COUNT(*) FROM embeddings GROUP BY backbone")}
