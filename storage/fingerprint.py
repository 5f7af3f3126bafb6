"""Order-independent fingerprints of a set of embeddings: which exact vectors, under which face ids.

A row's hash is the first 8 bytes of BLAKE2b over the face id (int64,
little-endian) followed by the vector's float32 bytes; a set's fingerprint is
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

import hashlib
from typing import Iterable

import numpy as np

MASK = (1 << 64) - 1


def row_hash(face_id: int, vector: bytes) -> int:
    """The 64-bit hash of one ``(face id, float32 vector bytes)`` row."""
    h = hashlib.blake2b(int(face_id).to_bytes(8, "little", signed=True), digest_size=8)
    h.update(vector)
    return int.from_bytes(h.digest(), "little")


def row_hashes(ids: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per-row hashes (uint64) of ``ids`` with the rows of ``X`` taken as float32."""
    X = np.ascontiguousarray(X, np.float32)
    ids = np.asarray(ids, np.int64).ravel()
    if len(ids) != len(X):
        raise ValueError(f"{len(ids)} ids but {len(X)} vectors")
    return np.fromiter((row_hash(int(i), x.tobytes()) for i, x in zip(ids, X)), np.uint64, len(ids))


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
