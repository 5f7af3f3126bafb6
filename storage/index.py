"""FAISS indexes of face embeddings, one per backbone.

The database is the source of truth; an index is derived from it. Each index
file stores the FAISS index together with the face ids it holds, written
atomically (temporary file + rename). On open, the ids are compared with the
database's; when they disagree (a crash between a commit and a save, a file
from another library) the index is rebuilt from the database.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .db import Library

log = logging.getLogger(__name__)

#: Past this many vectors, a rebuilt index is IVF (approximate) instead of exact.
IVF_THRESHOLD = 50_000


def gpu_count() -> int:
    """GPUs that this faiss build can use (0 for faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


class FaceIndex:
    """Inner-product search over unit vectors with face ids as FAISS ids.

    Exact (``IndexFlatIP``) below ``ivf_threshold`` vectors, ``IndexIVFFlat``
    (``nlist`` about 4 sqrt(n), ``nprobe`` lists searched) above. Searches run on
    the GPU when faiss sees one (``use_gpu=None``), else on the CPU.
    """

    def __init__(self, dim: int, ivf_threshold: int = IVF_THRESHOLD, nprobe: int = 16, use_gpu: bool | None = None):
        if dim <= 0:
            raise ValueError(f"index dimension must be positive, got {dim}")
        self.dim = int(dim)
        self.ivf_threshold = ivf_threshold
        self.nprobe = nprobe
        self.use_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._ids = np.zeros(0, np.int64)
        self._gpu: faiss.Index | None = None

    # ------------------------------------------------------------- building
    @classmethod
    def build(cls, ids: np.ndarray, X: np.ndarray, **kw) -> "FaceIndex":
        """A new index over ``X`` with ids ``ids`` (IVF when large)."""
        X = np.ascontiguousarray(X, np.float32)
        ids = np.ascontiguousarray(ids, np.int64)
        idx = cls(X.shape[1] if X.ndim == 2 and X.shape[1] else kw.pop("dim"), **kw)
        if len(ids) >= idx.ivf_threshold:
            nlist = int(4 * np.sqrt(len(ids)))
            quant = faiss.IndexFlatIP(idx.dim)
            ivf = faiss.IndexIVFFlat(quant, idx.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = X[rng.choice(len(X), size=min(len(X), nlist * 64), replace=False)]
            ivf.train(sample)
            ivf.nprobe = idx.nprobe
            idx._index = ivf
            idx._quantizer = quant  # keep the quantizer alive alongside the IVF index
        idx.add(ids, X)
        return idx

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """Face ids held, sorted."""
        return np.sort(self._ids)

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, np.float32)
        ids = np.ascontiguousarray(ids, np.int64).ravel()
        if len(ids) == 0:
            return
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {X.shape}")
        if len(ids) != len(X):
            raise ValueError(f"{len(ids)} ids but {len(X)} vectors")
        dup = np.intersect1d(ids, self._ids)
        if len(dup):
            self.remove(dup)
        self._index.add_with_ids(X, ids)
        self._ids = np.concatenate([self._ids, ids])
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, np.int64).ravel()
        n = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        self._ids = self._ids[~np.isin(self._ids, ids)]
        self._gpu = None
        return n

    def reconstruct(self, face_id: int) -> np.ndarray:
        """The stored vector of ``face_id`` (flat indexes and IVF with direct map)."""
        if self.kind == "ivf":
            self._index.make_direct_map()
        return self._index.reconstruct(int(face_id))

    # --------------------------------------------------------------- search
    def _searcher(self) -> faiss.Index:
        if not self.use_gpu:
            return self._index
        if self._gpu is None:
            self._gpu = faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu

    def search(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each (n, k); missing neighbours have id -1."""
        X = np.ascontiguousarray(np.atleast_2d(X), np.float32)
        if X.shape[1] != self.dim:
            raise ValueError(f"query dimension {X.shape[1]} != index dimension {self.dim}")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if self.ntotal == 0:
            return np.full((len(X), k), -np.inf, np.float32), np.full((len(X), k), -1, np.int64)
        return self._searcher().search(X, k)

    # -------------------------------------------------------------- on disk
    def save(self, path: str | Path) -> None:
        """Write index and ids to ``path`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, index=faiss.serialize_index(self._index), ids=self._ids, dim=np.int64(self.dim))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, **kw) -> "FaceIndex":
        with np.load(Path(path), allow_pickle=False) as z:
            idx = cls(int(z["dim"]), **kw)
            idx._index = faiss.deserialize_index(z["index"])
            idx._ids = z["ids"].astype(np.int64)
        if idx._index.ntotal != len(idx._ids):
            raise ValueError(f"index file {path} is inconsistent: {idx._index.ntotal} vectors, {len(idx._ids)} ids")
        if isinstance(idx._index, faiss.IndexIVF):
            idx._index.nprobe = idx.nprobe
        return idx


def _safe_name(backbone: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", backbone):
        raise ValueError(f"backbone name {backbone!r} is not a safe file name")
    return backbone


class IndexStore:
    """The per-backbone indexes of a :class:`~storage.db.Library`, kept in step with it."""

    def __init__(self, library: "Library", **index_kw):
        self.library = library
        self.index_kw = index_kw
        self._open: dict[str, FaceIndex] = {}

    def path(self, backbone: str) -> Path | None:
        d = self.library.index_dir
        return None if d is None else d / f"{_safe_name(backbone)}.faiss.npz"

    def get(self, backbone: str, dim: int | None = None) -> FaceIndex:
        """The index for ``backbone``, loaded from disk and checked against the database.

        ``dim`` is needed only to create the empty index of a backbone with no embeddings yet.
        """
        if backbone in self._open:
            return self._open[backbone]
        db_ids = self.library.embedding_ids(backbone)
        p = self.path(backbone)
        idx = None
        if p is not None and p.is_file():
            try:
                idx = FaceIndex.load(p, **self.index_kw)
            except (ValueError, OSError, RuntimeError, KeyError) as e:
                log.warning("index %s unreadable (%s); rebuilding from the database", p, e)
                idx = None
            if idx is not None and not np.array_equal(idx.ids, db_ids):
                log.warning("index %s holds %d faces, database %d; rebuilding", p, idx.ntotal, len(db_ids))
                idx = None
        if idx is None:
            idx = self.rebuild(backbone, dim)
        self._open[backbone] = idx
        return idx

    def rebuild(self, backbone: str, dim: int | None = None) -> FaceIndex:
        """Build the index for ``backbone`` from the database and save it."""
        ids, X = self.library.embeddings(backbone)
        if len(ids) == 0:
            if dim is None:
                raise ValueError(f"no embeddings for backbone {backbone!r} yet; import faces with it first")
            idx = FaceIndex(dim, **self.index_kw)
        else:
            idx = FaceIndex.build(ids, X, **self.index_kw)
        self._open[backbone] = idx
        self.save(backbone)
        return idx

    def add(self, backbone: str, ids: np.ndarray, X: np.ndarray) -> None:
        self.get(backbone, dim=np.asarray(X).shape[-1]).add(ids, X)

    def save(self, backbone: str) -> None:
        p = self.path(backbone)
        if p is not None and backbone in self._open:
            self._open[backbone].save(p)

    def in_sync(self, backbone: str) -> bool:
        """Whether the on-disk index holds exactly the database's faces."""
        p = self.path(backbone)
        if p is None or not p.is_file():
            return len(self.library.embedding_ids(backbone)) == 0
        try:
            return np.array_equal(FaceIndex.load(p).ids, self.library.embedding_ids(backbone))
        except (ValueError, OSError, RuntimeError, KeyError):
            return False
