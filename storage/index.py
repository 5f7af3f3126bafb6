"""FAISS indexes of face embeddings, one per backbone.

The database is the source of truth; an index is derived from it. Each index
file stores the FAISS index, the face ids it holds and the fingerprint of its
exact ``(face id, vector)`` rows (:mod:`storage.fingerprint`), written
atomically (temporary file + rename). Loading recomputes the fingerprint from
the vectors in the file. On open, row count and fingerprint are compared with
the database's; an unreadable or damaged file, or one that disagrees (a crash
between a commit and a save, vectors re-embedded, a file from another
library) is logged and rebuilt from the database.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from . import fingerprint as fpr

if TYPE_CHECKING:  # pragma: no cover
    from .db import Library

log = logging.getLogger(__name__)

#: Past this many vectors, a rebuilt index is IVF (approximate) instead of exact.
IVF_THRESHOLD = 50_000
#: Library setting holding the index structure: ``{"factory": "auto"}`` or a FAISS index factory string.
INDEX_SETTING = "index"
#: The default structure: exact below :data:`IVF_THRESHOLD` vectors, ``IVF{4 sqrt(n)},Flat`` above.
AUTO = "auto"
#: Most vectors used to train a factory index (k-means of IVF lists, PQ codebooks).
TRAIN_SAMPLE = 262_144


def check_factory(factory: str, dim: int) -> str:
    """``factory`` if it is ``"auto"`` or a FAISS index factory string that builds a ``dim``-dimensional
    inner-product index (e.g. ``"IVF4096,PQ32"``, ``"IVF1024,Flat"``, ``"HNSW32"``); ValueError otherwise."""
    spec = " ".join(str(factory or "").split())
    if spec == AUTO:
        return spec
    if not spec:
        raise ValueError(f"empty index factory; valid choices: {AUTO!r} or a FAISS factory string "
                         f"such as 'IVF4096,PQ32' or 'IVF1024,Flat'")
    try:
        faiss.index_factory(int(dim), spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:  # faiss reports a bad string or a size that does not fit dim this way
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ValueError(f"FAISS cannot build index {spec!r} for {dim}-d vectors ({first}); valid choices: "
                         f"{AUTO!r} or a factory string such as 'IVF4096,PQ32' (PQ m must divide {dim})") from e
    return spec


def _new_factory_index(factory: str, X: np.ndarray, use_gpu: bool) -> faiss.Index:
    """An index built by ``factory`` and trained on a sample of ``X`` (on the GPUs when faiss sees some)."""
    n, d = X.shape
    ix = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not ix.is_trained:
        rng = np.random.default_rng(0)
        sample = X if n <= TRAIN_SAMPLE else X[np.sort(rng.choice(n, TRAIN_SAMPLE, replace=False))]
        if use_gpu:
            gpu = faiss.index_cpu_to_all_gpus(ix)
            gpu.train(np.ascontiguousarray(sample))
            ix = faiss.index_gpu_to_cpu(gpu)
        else:
            ix.train(np.ascontiguousarray(sample))
    if not isinstance(ix, (faiss.IndexIVF, faiss.IndexIDMap, faiss.IndexIDMap2)):
        ix = faiss.IndexIDMap2(ix)  # face ids as FAISS ids for structures without their own (Flat, HNSW)
    return ix


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
        # ids held and their fingerprint row hashes, as appended chunks (an add never copies what is held);
        # a set of the ids for duplicate checks, and the running fingerprint
        self._id_chunks: list[np.ndarray] = []
        self._hash_chunks: list[np.ndarray] = []
        self._idset: set[int] = set()
        self._fp = np.uint64(0)
        self._gpu: faiss.Index | None = None
        self.factory = AUTO  # the structure it was built with (AUTO: flat or IVF-Flat by size)

    def _set_rows(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        """Replace the bookkeeping of held rows (after a load or a removal)."""
        self._id_chunks, self._hash_chunks = [np.asarray(ids, np.int64)], [np.asarray(hashes, np.uint64)]
        self._idset = set(self._id_chunks[0].tolist())
        self._fp = np.uint64(fpr.combine(self._hash_chunks[0]))

    @property
    def _ids(self) -> np.ndarray:
        if len(self._id_chunks) != 1:
            self._id_chunks = [np.concatenate(self._id_chunks) if self._id_chunks else np.zeros(0, np.int64)]
        return self._id_chunks[0]

    @property
    def _hashes(self) -> np.ndarray:
        if len(self._hash_chunks) != 1:
            self._hash_chunks = [np.concatenate(self._hash_chunks) if self._hash_chunks
                                 else np.zeros(0, np.uint64)]
        return self._hash_chunks[0]

    # ------------------------------------------------------------- building
    @classmethod
    def build(cls, ids: np.ndarray, X: np.ndarray, factory: str = AUTO, **kw) -> "FaceIndex":
        """A new index over ``X`` with ids ``ids``: by default exact, IVF when large; else the FAISS
        ``factory`` structure (see :func:`check_factory`), trained on a sample of ``X``."""
        X = np.ascontiguousarray(X, np.float32)
        ids = np.ascontiguousarray(ids, np.int64)
        idx = cls(X.shape[1] if X.ndim == 2 and X.shape[1] else kw.pop("dim"), **kw)
        factory = check_factory(factory, idx.dim)
        if factory != AUTO:
            if len(ids) == 0:
                raise ValueError(f"index {factory!r} needs vectors to train on; none given")
            idx._index = _new_factory_index(factory, X, idx.use_gpu)
            if isinstance(idx._index, faiss.IndexIVF):
                idx._index.nprobe = idx.nprobe
            idx.factory = factory
        elif len(ids) >= idx.ivf_threshold:
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
        """``flat`` or ``ivf`` (the default structures), else the factory string it was built with."""
        if self.factory != AUTO:
            return self.factory
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "flat"

    @property
    def exact_vectors(self) -> bool:
        """Whether the structure holds the vectors as they were added (Flat codes), so that
        :meth:`stored` and :meth:`matrix` can give them back; False for compressed codes (PQ, SQ)."""
        ix = self._index
        if isinstance(ix, faiss.IndexIVF):
            return ix.invlists.code_size == 4 * self.dim
        if isinstance(ix, faiss.IndexIDMap2):
            inner = faiss.downcast_index(ix.index)
            return isinstance(inner, faiss.IndexFlat) or (
                isinstance(inner, faiss.IndexHNSWFlat))
        return False

    def _held_ids(self) -> np.ndarray:
        """The ids in the FAISS structures themselves (storage order), for any structure."""
        ix = self._index
        if isinstance(ix, faiss.IndexIVF):
            invl = ix.invlists
            parts = [faiss.rev_swig_ptr(invl.get_ids(lst), n).astype(np.int64)
                     for lst in range(ix.nlist) if (n := int(invl.list_size(lst)))]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if isinstance(ix, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            return faiss.vector_to_array(ix.id_map).astype(np.int64)
        raise ValueError(f"unsupported FAISS index type {type(ix).__name__}")

    def memory_bytes(self) -> int:
        """Bytes of the serialised index (vectors or codes, lists, quantiser; not the id bookkeeping)."""
        return int(faiss.serialize_index(self._index).size)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """Face ids held, sorted."""
        return np.sort(self._ids)

    @property
    def fingerprint(self) -> int:
        """Fingerprint of the ``(face id, vector)`` rows held (compare with the database's)."""
        return int(self._fp)

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        """Add (or replace) the vectors of ``ids``."""
        X = np.ascontiguousarray(X, np.float32)
        ids = np.ascontiguousarray(ids, np.int64).ravel()
        if len(ids) == 0:
            return
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {X.shape}")
        if len(ids) != len(X):
            raise ValueError(f"{len(ids)} ids but {len(X)} vectors")
        _, last = np.unique(ids[::-1], return_index=True)
        if len(last) != len(ids):  # an id listed twice: its last vector wins
            keep = np.sort(len(ids) - 1 - last)
            ids, X = ids[keep], X[keep]
        held = self._idset
        dup = [i for i in ids.tolist() if i in held]  # O(batch), not a scan of every id held
        if dup:
            self.remove(np.array(dup, np.int64))
        hashes = fpr.row_hashes(ids, X)
        self._index.add_with_ids(X, ids)
        self._id_chunks.append(ids.copy())
        self._hash_chunks.append(hashes)
        held.update(ids.tolist())
        with np.errstate(over="ignore"):
            self._fp = np.uint64(self._fp + np.uint64(fpr.combine(hashes)))
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (those held); returns how many were removed."""
        ids = np.ascontiguousarray(ids, np.int64).ravel()
        n = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        keep = ~np.isin(self._ids, ids)
        self._set_rows(self._ids[keep], self._hashes[keep])
        self._gpu = None
        return n

    def stored(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` as held by the FAISS structures themselves (not the bookkeeping), in storage order."""
        ix = self._index
        if isinstance(ix, faiss.IndexIVF):
            invl = ix.invlists
            if invl.code_size != 4 * self.dim:
                raise ValueError(f"an IVF index ({self.kind}) with {invl.code_size}-byte codes does not hold the "
                                 f"raw vectors")
            sizes = [int(invl.list_size(lst)) for lst in range(ix.nlist)]
            ids = np.empty(sum(sizes), np.int64)
            X = np.empty((ids.size, self.dim), np.float32)  # filled list by list: one copy, no temporaries
            at = 0
            for lst, n in enumerate(sizes):
                if n:
                    ids[at:at + n] = faiss.rev_swig_ptr(invl.get_ids(lst), n)
                    codes = faiss.rev_swig_ptr(invl.get_codes(lst), n * invl.code_size)
                    X[at:at + n] = codes.view(np.float32).reshape(n, self.dim)
                    at += n
            return ids, X
        if isinstance(ix, faiss.IndexIDMap2) and self.exact_vectors:
            ids = faiss.vector_to_array(ix.id_map).astype(np.int64)
            X = ix.index.reconstruct_n(0, ix.ntotal) if ix.ntotal else np.zeros((0, self.dim), np.float32)
            return ids, np.ascontiguousarray(X, np.float32)
        raise ValueError(f"a {type(ix).__name__} index ({self.kind}) does not hold the raw vectors")

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` of every vector held, sorted by face id (as :meth:`Library.embeddings`), read from the
        FAISS structures in one copy: no database read."""
        ix = self._index
        if isinstance(ix, faiss.IndexIVF) and self.exact_vectors:  # written straight to their sorted rows
            invl = ix.invlists
            sizes = [int(invl.list_size(lst)) for lst in range(ix.nlist)]
            held = self._held_ids()
            order = np.argsort(held, kind="stable")
            row = np.empty(held.size, np.int64)
            row[order] = np.arange(held.size)
            X = np.empty((held.size, self.dim), np.float32)  # the only large allocation
            at = 0
            for lst, n in enumerate(sizes):
                if n:
                    codes = faiss.rev_swig_ptr(invl.get_codes(lst), n * invl.code_size)
                    X[row[at:at + n]] = codes.view(np.float32).reshape(n, self.dim)
                    at += n
            return held[order], X
        ids, X = self.stored()
        if ids.size > 1 and not (np.diff(ids) > 0).all():
            order = np.argsort(ids, kind="stable")
            ids, X = ids[order], X[order]
        return ids, X

    def reconstruct(self, face_id: int) -> np.ndarray:
        """The stored vector of ``face_id`` (KeyError if it is not held; ValueError for compressed codes)."""
        if isinstance(self._index, faiss.IndexIDMap2) and self.exact_vectors:
            if not np.isin(face_id, self._ids):
                raise KeyError(f"face {face_id} is not in the index")
            return self._index.reconstruct(int(face_id))
        ids, X = self.stored()
        hit = np.flatnonzero(ids == int(face_id))
        if not len(hit):
            raise KeyError(f"face {face_id} is not in the index")
        return X[hit[0]].copy()

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
        if len(X) > 1 or self.use_gpu:
            return self._searcher().search(X, k)
        threads = faiss.omp_get_max_threads()  # one query: threads cost more than they save
        faiss.omp_set_num_threads(1)
        try:
            return self._searcher().search(X, k)
        finally:
            faiss.omp_set_num_threads(threads)

    # -------------------------------------------------------------- on disk
    def save(self, path: str | Path) -> None:
        """Write index, ids and fingerprint to ``path`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                extra = {} if self.exact_vectors else {"hashes": self._hashes}  # codes cannot be re-hashed
                np.savez(f, index=faiss.serialize_index(self._index), ids=self._ids, dim=np.int64(self.dim),
                         fingerprint=np.uint64(self.fingerprint), factory=np.str_(self.factory), **extra)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path, **kw) -> "FaceIndex":
        """Read an index file and check it; ValueError (or the reader's error) when it is damaged.

        The fingerprint is recomputed from the vectors in the file and must
        match the recorded one (files written before fingerprints had none).
        """
        path = Path(path)
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError(f"{path} is not an index file (a bare array)")
            missing = {"index", "ids", "dim"} - set(z.files)
            if missing:
                raise ValueError(f"index file {path} lacks {', '.join(sorted(missing))}")
            dim, raw, ids = int(z["dim"]), z["index"], z["ids"].astype(np.int64)
            recorded = int(z["fingerprint"]) if "fingerprint" in z.files else None
            factory = str(z["factory"]) if "factory" in z.files else AUTO
            hashes = z["hashes"].astype(np.uint64) if "hashes" in z.files else None
        idx = cls(dim, **kw)
        idx._index = faiss.deserialize_index(raw)
        if idx._index.d != dim or idx._index.ntotal != len(ids):
            raise ValueError(f"index file {path} is inconsistent: {idx._index.ntotal} vectors of dimension "
                             f"{idx._index.d}, {len(ids)} ids of dimension {dim}")
        idx.factory = factory
        if idx.exact_vectors:
            held, X = idx.stored()
            if not np.array_equal(np.sort(held), np.sort(ids)):
                raise ValueError(f"index file {path} is inconsistent: its id list differs from the ids in its index")
            idx._set_rows(held, fpr.row_hashes(held, X))
        else:  # compressed codes: the row hashes recorded at add time (the zip's CRCs guard the file)
            if hashes is None or hashes.shape != ids.shape:
                raise ValueError(f"index file {path} holds compressed codes but no row hashes")
            if not np.array_equal(np.sort(idx._held_ids()), np.sort(ids)):
                raise ValueError(f"index file {path} is inconsistent: its id list differs from the ids in its index")
            idx._set_rows(ids, hashes)
        if recorded is not None and idx.fingerprint != recorded:
            raise ValueError(f"index file {path} is damaged: its vectors do not match its recorded fingerprint")
        if isinstance(idx._index, faiss.IndexIVF):
            idx._index.nprobe = idx.nprobe
        return idx


def _safe_name(backbone: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", backbone):
        raise ValueError(f"backbone name {backbone!r} is not a safe file name")
    return backbone


class IndexStore:
    """The per-backbone indexes of a :class:`~storage.db.Library`, kept in step with it.

    An index is used only while its row count and fingerprint equal the
    database's; anything else (no file, a damaged file, other ids or other
    vectors) is logged and the index rebuilt from the database's embeddings.
    """

    def __init__(self, library: "Library", **index_kw):
        self.library = library
        self.index_kw = index_kw
        self._open: dict[str, FaceIndex] = {}

    def path(self, backbone: str) -> Path | None:
        d = self.library.index_dir
        return None if d is None else d / f"{_safe_name(backbone)}.faiss.npz"

    def get(self, backbone: str, dim: int | None = None) -> FaceIndex:
        """The index for ``backbone``, checked against the database (rebuilt from it when they disagree).

        ``dim`` is needed only to create the empty index of a backbone with no embeddings yet.
        """
        rows, fp = self.library.embedding_fingerprint(backbone)
        idx = self._open.get(backbone)
        if idx is not None:
            if idx.ntotal == rows and idx.fingerprint == fp:
                return idx
            log.info("the %s index in memory (%d faces) disagrees with the database (%d faces, or other "
                     "vectors); reloading", backbone, idx.ntotal, rows)
            del self._open[backbone]
        idx = self._load_agreeing(backbone, rows, fp)
        if idx is None:
            idx = self.rebuild(backbone, dim)
        self._open[backbone] = idx
        return idx

    def peek(self, backbone: str) -> FaceIndex | None:
        """The index for ``backbone`` if one agreeing with the database is open or on disk; never builds one
        (None: a rebuild is needed, see :meth:`rebuild`)."""
        rows, fp = self.library.embedding_fingerprint(backbone)
        idx = self._open.get(backbone)
        if idx is not None and idx.ntotal == rows and idx.fingerprint == fp:
            return idx
        idx = self._load_agreeing(backbone, rows, fp)
        if idx is not None:
            self._open[backbone] = idx
        return idx

    def matrix(self, backbone: str, library: "Library | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, X)`` of ``backbone`` sorted by face id: from the index open in memory when it agrees with
        the database (one copy of the FAISS vectors, 10x faster than reading them from SQLite at 100k faces),
        else from the database. Never loads or builds an index (a load costs as much as the database read).

        ``library``: the connection to check agreement on (a background job's own; default this store's).
        """
        lib = library or self.library
        idx = self._open.get(backbone)
        if idx is not None:
            rows, fp = lib.embedding_fingerprint(backbone)
            if idx.ntotal == rows and idx.fingerprint == fp:
                try:
                    return idx.matrix()
                except ValueError as e:  # codes that are not raw vectors (a compressed index)
                    log.info("the %s index cannot give its vectors back (%s); reading the database", backbone, e)
        return lib.embeddings(backbone)

    def _load_agreeing(self, backbone: str, rows: int, fp: int) -> FaceIndex | None:
        """The index file of ``backbone`` if it is readable and holds exactly the database's rows, else None."""
        p = self.path(backbone)
        if p is None or not p.exists():
            return None
        try:
            idx = FaceIndex.load(p, **self.index_kw)
        except Exception as e:  # noqa: BLE001 - any damage to a derived file means: rebuild it
            log.warning("index file %s is damaged or unreadable (%s: %s); rebuilding it from the database",
                        p, type(e).__name__, e)
            return None
        if idx.ntotal != rows or idx.fingerprint != fp:
            log.warning("index file %s (%d faces, fingerprint %s) disagrees with the database (%d faces, "
                        "fingerprint %s); rebuilding it", p, idx.ntotal, fpr.to_text(idx.fingerprint), rows,
                        fpr.to_text(fp))
            return None
        return idx

    def rebuild(self, backbone: str, dim: int | None = None) -> FaceIndex:
        """Build the index for ``backbone`` from the database and save it."""
        ids, X = self.library.embeddings(backbone)
        if len(ids) == 0:
            if dim is None:
                raise ValueError(f"no embeddings for backbone {backbone!r} yet; import faces with it first")
            idx = FaceIndex(dim, **self.index_kw)
        else:
            factory = self.factory()
            try:
                idx = FaceIndex.build(ids, X, factory=factory, **self.index_kw)
            except (ValueError, RuntimeError) as e:  # e.g. too few vectors to train the lists yet
                log.warning("could not build the %s index as %r (%s); building the default one", backbone,
                            factory, e)
                idx = FaceIndex.build(ids, X, **self.index_kw)
        log.info("rebuilt the %s index from the database (%d faces)", backbone, idx.ntotal)
        self._open[backbone] = idx
        self.save(backbone)
        return idx

    def factory(self) -> str:
        """The library's index structure: ``"auto"`` or a FAISS factory string (setting ``index``)."""
        return str((self.library.get_setting(INDEX_SETTING) or {}).get("factory", AUTO))

    def add(self, backbone: str, ids: np.ndarray, X: np.ndarray) -> None:
        """Add vectors already stored in the database to the open index (saved by :meth:`save`)."""
        self.get(backbone, dim=np.asarray(X).shape[-1]).add(ids, X)

    def save(self, backbone: str) -> bool:
        """Write the open index of ``backbone`` to its file; False (logged) when that fails.

        A failed save costs a rebuild at the next open, never data: the database is the source of truth.
        """
        p = self.path(backbone)
        if p is None or backbone not in self._open:
            return False
        try:
            self._open[backbone].save(p)
        except OSError as e:
            log.error("could not save the %s index to %s (%s); it will be rebuilt at the next open", backbone, p, e)
            return False
        return True

    def in_sync(self, backbone: str, deep: bool = False) -> bool:
        """Whether the index file holds exactly the database's rows (same ids, same vectors).

        ``deep`` recomputes the database's fingerprint from the embeddings
        instead of trusting the stored one.
        """
        rows, fp = self.library.embedding_fingerprint(backbone, recompute=deep)
        p = self.path(backbone)
        if p is None or not p.exists():
            return rows == 0
        try:
            idx = FaceIndex.load(p, use_gpu=False)
        except Exception as e:  # noqa: BLE001 - a damaged file is simply not in sync
            log.info("index file %s is unreadable (%s: %s)", p, type(e).__name__, e)
            return False
        return idx.ntotal == rows and idx.fingerprint == fp
