"""Order-independent fingerprints of a set of embeddings: which exact vectors, under which face ids.

A row's hash mixes the face id with a random-weighted sum of the vector's
64-bit words (splitmix64 finaliser; fixed odd weights), computed for all rows
at once with numpy (about 0.2 s per million 128-d rows); a set's fingerprint is
the sum of its rows' hashes modulo 2**64. The sum does not depend on row
order, so it is kept up to date row by row: adding a row adds its hash,
replacing a row subtracts the old hash and adds the new one.

The database keeps one fingerprint per backbone (table
``embedding_fingerprints``, updated in the same transaction as the
embeddings) and every index file records the fingerprint of the vectors it
holds; an index agrees with the database when row counts and fingerprints are
equal. (64 bits: an accidental collision is out of the question; this is a
consistency check, not a defence against forged files.)
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

MASK = (1 << 64) - 1


_WEIGHTS = (np.random.default_rng(0x5EED).integers(1, 2 ** 63, 4096, dtype=np.uint64) * np.uint64(2)
            + np.uint64(1))  # odd, fixed forever: stored fingerprints depend on them


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_hash(face_id: int, vector: bytes) -> int:
    """The 64-bit hash of one ``(face id, float32 vector bytes)`` row."""
    x = np.frombuffer(vector, np.float32)
    return int(row_hashes(np.array([face_id], np.int64), x.reshape(1, -1))[0])


def row_hashes(ids: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per-row hashes (uint64) of ``ids`` with the rows of ``X`` taken as float32 (vectorised)."""
    X = np.ascontiguousarray(X, np.float32)
    ids = np.asarray(ids, np.int64).ravel()
    if len(ids) != len(X):
        raise ValueError(f"{len(ids)} ids but {len(X)} vectors")
    if X.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array, got shape {X.shape}")
    if X.shape[1] % 2:  # whole 64-bit words
        X = np.concatenate([X, np.zeros((len(X), 1), np.float32)], axis=1)
    words = X.view(np.uint64)  # no copy: pairs of float32
    if words.shape[1] > len(_WEIGHTS):
        raise ValueError(f"vectors of {X.shape[1]} dimensions; at most {2 * len(_WEIGHTS)} supported")
    w = _WEIGHTS[:words.shape[1]]
    inner = np.empty(len(ids), np.uint64)
    with np.errstate(over="ignore"):
        for r0 in range(0, len(ids), 16384):  # bounded temporaries
            inner[r0:r0 + 16384] = (words[r0:r0 + 16384] * w).sum(axis=1, dtype=np.uint64)
        dims = np.uint64(X.shape[1])
        return _mix(inner ^ _mix(ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + dims))


def combine(hashes: Iterable[int] | np.ndarray) -> int:
    """The fingerprint of a set of rows from their hashes (sum modulo 2**64)."""
    if isinstance(hashes, np.ndarray):
        return int(np.sum(hashes.astype(np.uint64, copy=False), dtype=np.uint64))
    return sum(int(h) for h in hashes) & MASK


def to_text(fingerprint: int) -> str:
    """The fingerprint as stored in the database (16 hex digits)."""
    return f"{fingerprint & MASK:016x}"


def from_text(text: str) -> int:
    return int(text, 16) & MASK
