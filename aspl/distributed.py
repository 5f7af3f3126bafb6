"""Import and embedding on a Ray cluster: decoding, MTCNN and the backbone run as Ray Data ``map_batches``
over an actor pool; this process (the driver) keeps every database write.

The driver does what needs the library: it lists the photos, refuses what the local import refuses before
reading (non-regular files, links out of the import folder), hashes each file and skips those the library
holds (or that this run already listed), exactly like :class:`aspl.importer.Importer`. The new photos go to
the cluster as ``(row, path)`` items; each actor loads the detector and the backbone once and returns, per
photo, either a rejection (reason and detail, as the local import records them) or its faces (boxes,
landmarks, probabilities, aligned crops and embeddings) as an ``.npz`` payload (arrays only: nothing that
runs code when read). The driver writes each photo in its own transaction, in file order, through the same
:meth:`Importer._store` as a local import, so dedupe, seed labels from folders, resumability (a stopped
import skips what it committed) and bad-file records are the local import's. GPUs are requested for the
actors when the cluster has some.

Code on the cluster: the actors import ``aspl``, ``models`` and ``storage``; a local cluster (``--ray``
without an address) gets them through ``PYTHONPATH``; nodes of a remote cluster need the same code and
packages installed (the project's image, see ``docker-compose.yml``).
"""
from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .imageio import REASON_DETECTION, REASON_EMBEDDING, REASON_UNREADABLE, BadImageError
from .importer import Importer, ImportSummary, ProgressFn, embed_faces, isolated, open_inside, shown_path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

__all__ = ["connect", "ClusterUnavailableError", "RayImporter", "embed_library_ray", "analyse_photos"]


class ClusterUnavailableError(RuntimeError):
    """No Ray cluster at the address given."""


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, float]:
    """Join the Ray cluster at ``address`` (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``), or start a
    local one (None or ``"local"``; ``num_cpus`` caps it). Returns the cluster's resources (CPU, GPU, ...).

    Raises :class:`ClusterUnavailableError` naming the address when there is no cluster there.
    """
    import ray

    if not ray.is_initialized():
        local = address in (None, "", "local")
        if not local:
            _probe(str(address))
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)}}
        try:
            ray.init(address=None if local else address, num_cpus=num_cpus if local else None,
                     runtime_env=env, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ClusterUnavailableError(f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}: {e}); "
                                          "start one with `ray start --head` or import without --ray") from e
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar counts photos; Ray's would interleave with it
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return dict(ray.cluster_resources())


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at a ``HOST:PORT`` (or ``ray://HOST:PORT``)
    address (Ray itself retries for minutes). ``auto`` is left to Ray (it looks for a local cluster)."""
    import socket

    hostport = address.split("://", 1)[-1]
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as e:
        raise ClusterUnavailableError(f"cannot reach a Ray cluster at {address!r} ({type(e).__name__}: {e}); "
                                      "start one with `ray start --head` or import without --ray") from e


# ------------------------------------------------------------------ worker side
def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _unnpz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class _Item:
    """One photo in a worker: its row, path and, once decoded, image."""

    def __init__(self, row: int, path: Path):
        self.row, self.path, self.img = row, path, None


def analyse_photos(detector, embedder, rows: Sequence[int], paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Decode, detect and embed photos (the worker's job; also callable without Ray).

    One dict per photo, in order: ``{"row", "status": "ok", "payload"}`` (an npz of ``size``, ``boxes``,
    ``landmarks``, ``probs``, ``crops``, ``vectors``) or ``{"row", "status": "rejected", "reason",
    "detail"}``, with the reasons and details of the local import.
    """
    from .imageio import check_dimensions, load_image

    out: dict[int, dict[str, Any]] = {}

    def reject(it: _Item, reason: str, detail: str) -> None:
        out[it.row] = {"row": it.row, "status": "rejected", "reason": reason, "detail": detail}

    todo = []
    for r, p in zip(rows, paths):
        it = _Item(int(r), Path(p))
        try:
            it.img = load_image(it.path)
            check_dimensions(it.path, it.img.width, it.img.height, min_side=getattr(detector, "min_face_size", 1))
        except BadImageError as e:
            reject(it, e.reason, e.detail)
            continue
        except OSError as e:
            reject(it, REASON_UNREADABLE, e.strerror or str(e))
            continue
        todo.append(it)
    detected = isolated(detector.detect, todo, [it.img for it in todo], REASON_DETECTION,
                        lambda it, d: reject(it, REASON_DETECTION, d))
    embedded = isolated(lambda fl: embed_faces(embedder, fl), [it for it, _ in detected],
                        [faces for _, faces in detected], REASON_EMBEDDING,
                        lambda it, d: reject(it, REASON_EMBEDDING, d))
    faces_of = {it.row: faces for it, faces in detected}
    for it, vectors in embedded:
        faces = faces_of[it.row]
        crops = np.stack([f.crop for f in faces]) if faces else np.zeros((0, 1, 1, 3), np.uint8)
        out[it.row] = {"row": it.row, "status": "ok", "payload": _npz(
            size=np.array([it.img.width, it.img.height], np.int64),
            boxes=np.array([f.box for f in faces], np.float64).reshape(len(faces), 4),
            landmarks=np.array([np.asarray(f.landmarks, np.float32) for f in faces], np.float32).reshape(
                len(faces), 5, 2),
            probs=np.array([f.prob for f in faces], np.float64),
            crops=crops, vectors=np.asarray(vectors, np.float32))}
    return [out[int(r)] for r in rows]


class PhotoWorker:
    """A Ray Data actor: the detector and the backbone loaded once, a batch of photos analysed per call."""

    def __init__(self, backbone: str, detector_kw: dict[str, Any] | None = None):
        from models import create_backbone
        from models.detection import FaceDetector

        self.detector = FaceDetector(**(detector_kw or {}))
        self.embedder = create_backbone(backbone)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [Path(os.fsdecode(bytes(p))) for p in batch["path"]]
        res = analyse_photos(self.detector, self.embedder, batch["row"].tolist(), paths)
        return {"row": np.array([r["row"] for r in res], np.int64),
                "status": np.array([r["status"] for r in res], dtype=object),
                "reason": np.array([r.get("reason", "") for r in res], dtype=object),
                "detail": np.array([r.get("detail", "") for r in res], dtype=object),
                "payload": np.array([r.get("payload", b"") for r in res], dtype=object)}


def _actor_options(resources: dict[str, float], workers: int | None) -> tuple[int, dict[str, float]]:
    """How many actors and what each asks for: one per GPU when the cluster has GPUs, else one per CPU."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    return workers or max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}


def _ordered(ds) -> None:
    ds.context.execution_options.preserve_order = True


# ------------------------------------------------------------------ driver side
class RayImporter(Importer):
    """:class:`~aspl.importer.Importer` whose decoding, detection and embedding run on a Ray cluster.

    Same constructor as the local importer plus ``address`` (None: a local cluster), ``workers`` (actors;
    default one per CPU or GPU of the cluster) and ``detector_kw`` (the workers' ``FaceDetector`` settings;
    the local ``detector`` is used only for its ``min_face_size``).
    """

    def __init__(self, library, indexes, address: str | None = None, workers: int | None = None,
                 detector_kw: dict[str, Any] | None = None, num_cpus: int | None = None, **kw):
        super().__init__(library, indexes, **kw)
        self.address, self.workers, self.num_cpus = address, workers, num_cpus
        self.detector_kw = dict(detector_kw or {})

    def run(self, path: str | os.PathLike, labels_from_folders: bool = False, progress: bool = True,
            on_progress: ProgressFn | None = None) -> ImportSummary:
        import ray

        t0 = time.perf_counter()
        resources = connect(self.address, self.num_cpus)
        root, files, s, index = self._begin(path)
        bar = tqdm(total=len(files), desc="importing (ray)", unit="photo", disable=not progress)
        done = 0

        def tick(n: int = 1) -> None:
            nonlocal done
            done += n
            bar.update(n)
            bar.set_postfix(faces=s.faces, rejected=sum(s.rejected.values()))
            if on_progress:
                on_progress(done, len(files), s.progress_message(done, len(files)))

        if on_progress:
            on_progress(0, len(files), s.progress_message(0, len(files)))
        try:
            todo = []  # (file, sha, size) of the photos to analyse, in file order
            seen: dict[str, Path] = {}
            for f in files:
                got = self._hash(f, root, s, seen)
                if got is None:
                    tick()
                else:
                    todo.append(got)
            if todo:
                n_actors, opts = _actor_options(resources, self.workers)
                ds = ray.data.from_items([{"row": i, "path": os.fsencode(f)} for i, (f, _, _) in enumerate(todo)])
                _ordered(ds)
                out = ds.map_batches(PhotoWorker, fn_constructor_kwargs={"backbone": self.backbone,
                                                                        "detector_kw": self.detector_kw},
                                     batch_size=self.batch_size, batch_format="numpy",
                                     compute=ray.data.ActorPoolStrategy(size=min(n_actors, len(todo))), **opts)
                for row in out.iter_rows():
                    f, sha, size = todo[int(row["row"])]
                    if row["status"] == "rejected":
                        self._reject(s, f, sha, size, str(row["reason"]), str(row["detail"]))
                    else:
                        self._store_payload(f, sha, size, _unnpz(row["payload"]), root, labels_from_folders,
                                            s, index)
                    tick()
        finally:
            bar.close()
            self.indexes.save(self.backbone)
            s.seconds = time.perf_counter() - t0
            self.library.log_event("import", self.annotator, path=str(root), backbone=self.backbone, ray=True,
                                   **{k: v for k, v in s.as_dict().items()
                                      if k not in ("seconds", "without_face_files", "duplicate_files")})
        return s

    def _hash(self, f: Path, root: Path, s: ImportSummary, seen: dict[str, Path]) -> tuple[Path, str, int] | None:
        """The local import's checks before decoding: regular file, inside the folder, not stored yet."""
        from .imageio import sha256_file

        sha, size = None, 0
        try:
            with open_inside(f, root) as (fh, size):
                sha = sha256_file(fh)
        except BadImageError as e:
            self._reject(s, f, sha, size, e.reason, e.detail)
            return None
        except OSError as e:
            self._reject(s, f, sha, size, REASON_UNREADABLE, e.strerror or str(e))
            return None
        existing = self.library.image_by_sha(sha)
        if existing is not None or sha in seen:
            s.note_duplicate(shown_path(f, root), existing["path"] if existing is not None
                             else shown_path(seen[sha], root))
            return None
        seen[sha] = f
        return f, sha, size

    def _store_payload(self, f: Path, sha: str, size: int, z: dict[str, np.ndarray], root: Path,
                       labels_from_folders: bool, s: ImportSummary, index) -> None:
        from models.detection import DetectedFace

        faces = [DetectedFace(tuple(float(v) for v in z["boxes"][j]), z["landmarks"][j], float(z["probs"][j]),
                              z["crops"][j]) for j in range(len(z["probs"]))]
        w, h = (int(v) for v in z["size"])
        self._store(f, sha, size, (w, h), faces, z["vectors"], root, labels_from_folders, s, index)


# ------------------------------------------------------------------ embedding
class EmbedWorker:
    """A Ray Data actor: the backbone loaded once; JPEG crops in, embeddings out."""

    def __init__(self, backbone: str):
        from models import create_backbone

        self.embedder = create_backbone(backbone)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from storage.faces import decode_crop

        crops = [decode_crop(bytes(c)) for c in batch["crop"]]
        X = np.asarray(self.embedder.embed(crops), np.float32)
        return {"face_id": np.asarray(batch["face_id"], np.int64),
                "vector": np.array([x.tobytes() for x in X], dtype=object)}


def _chunks(ids: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def embed_library_ray(library, indexes, backbone: str, address: str | None = None, workers: int | None = None,
                      batch_size: int = 64, chunk: int = 20_000, progress: bool = True,
                      on_progress: ProgressFn | None = None, num_cpus: int | None = None) -> int:
    """:func:`aspl.importer.embed_library` on a Ray cluster: the faces without a ``backbone`` embedding,
    ``chunk`` at a time (their JPEG crops read here, embedded by an actor pool, written here), then the
    index rebuilt. Returns how many faces were embedded."""
    import ray

    from models import backbone_info

    resources = connect(address, num_cpus)
    dim = backbone_info(backbone).embedding_dim
    todo = library.faces_missing_embedding(backbone)
    bar = tqdm(total=len(todo), desc=f"embedding ({backbone}, ray)", unit="face", disable=not progress)
    n_actors, opts = _actor_options(resources, workers)
    done = 0
    for part in _chunks(todo, chunk):
        ds = ray.data.from_items([{"face_id": int(f), "crop": library.face_crop_jpeg(int(f))} for f in part])
        _ordered(ds)
        out = ds.map_batches(EmbedWorker, fn_constructor_kwargs={"backbone": backbone}, batch_size=batch_size,
                             batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(n_actors, len(part))),
                             **opts)
        for b in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
            X = np.stack([np.frombuffer(bytes(v), np.float32) for v in b["vector"]]).reshape(-1, dim)
            library.put_embeddings(backbone, [int(f) for f in b["face_id"]], X)
            done += len(X)
            bar.update(len(X))
            if on_progress:
                on_progress(done, len(todo), f"embedding with {backbone} on Ray")
    bar.close()
    indexes.rebuild(backbone, dim=dim)
    library.log_event("embedded", "admin", backbone=backbone, faces=len(todo), ray=True)
    return len(todo)
