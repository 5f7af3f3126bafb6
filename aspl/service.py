"""The labelling service: applies the engine's decisions to storage, for the app's pages.

No Streamlit here. The pages call a :class:`Service`; it calls storage verbs
(:class:`storage.db.Library`) and :mod:`aspl.engine` (which knows nothing of
SQL). What it does:

* rounds: embeddings of the current backbone + live human/seed labels -> one
  engine step -> auto-labels (minus rejected pairs and non-faces), the ranked
  query queue, flagged human labels, per-round metrics; the engine's state is
  kept between rounds (per backbone) in the library;
* annotating: the next face for an annotator under a short lease (several
  annotators get different faces), top-5 suggestions, confirm / new person /
  not a face / skip, batch acceptance, undo of the annotator's last action;
* review of auto-labels (random + lowest confidence sample), a precision
  estimate with a Wilson interval, flagged human labels;
* people: rename, merge, move a face, remove a label (a rejected face is never
  suggested or auto-labelled for that person again); all undoable and logged;
* import (folders, uploads, zips), backbone swap, export, the admin password.

Long work (rounds, imports, re-embedding) runs as background jobs
(:class:`aspl.jobs.JobRegistry`) on their own database connection.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from storage import IndexStore, LabelConflictError, Library, NotFoundError, StateFormatError
from storage.index import FaceIndex

from .engine.loop import ActiveLoop, StateError
from .jobs import Job, JobBusyError, JobRegistry, ProgressFn
from .uploads import SaveResult, safe_name, save_uploads

log = logging.getLogger(__name__)

SCOPE_ANNOTATE, SCOPE_REVIEW, SCOPE_PEOPLE = "annotate", "review", "people"
SCOPES = (SCOPE_ANNOTATE, SCOPE_REVIEW, SCOPE_PEOPLE)
REVIEW_SAMPLES = ("random", "low")
MIN_PASSWORD_LENGTH = 8
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


class ServiceError(Exception):
    """A request the service cannot carry out (the message says why)."""


class NothingToUndoError(ServiceError):
    """The annotator has no action left to undo in that scope."""


class FaceClosedError(ServiceError):
    """The face cannot take this decision (not a face, or already labelled)."""


# ---------------------------------------------------------------- settings
@dataclass
class LoopSettings:
    """The labelling loop's settings (stored in the ``loop`` setting).

    ``method`` and ``engine`` (overrides of the method's settings dataclass)
    build the engine; ``lease_seconds``: how long a shown face stays reserved
    for its annotator; ``review_random`` / ``review_low``: review sample sizes;
    ``batch_size``: faces per batch grid; ``cluster_similarity``: cosine
    similarity above which unclear faces are grouped for batch labelling.
    """

    method: str = "aspl-margin"  # margin queries: fewer labels than the paper rule (bench/results/engine.md)
    engine: dict[str, Any] = field(default_factory=lambda: {"query_size": 50, "min_labels": 2})
    lease_seconds: float = 120.0
    review_random: int = 12
    review_low: int = 12
    batch_size: int = 24
    cluster_similarity: float = 0.82
    center: bool = False

    def validate(self) -> None:
        from .engine import make_engine

        make_engine(self.method, **self.engine)  # raises ValueError naming the bad setting / method
        if not self.lease_seconds > 0:
            raise ValueError(f"lease_seconds must be > 0, got {self.lease_seconds!r}")
        for k in ("review_random", "review_low", "batch_size"):
            v = getattr(self, k)
            if int(v) != v or v < 0:
                raise ValueError(f"{k} must be an integer >= 0, got {v!r}")
        if not -1.0 <= self.cluster_similarity <= 1.0:
            raise ValueError(f"cluster_similarity must be in [-1, 1], got {self.cluster_similarity!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "LoopSettings":
        d = dict(d or {})
        valid = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - valid)
        if bad:
            raise ValueError(f"unknown loop setting(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
        return cls(**d)


# ------------------------------------------------------------- view objects
@dataclass
class Suggestion:
    """A person proposed for a face: ``source`` is ``classifier`` (SVM score) or ``neighbours`` (cosine)."""

    person_id: int
    name: str
    score: float
    source: str
    thumb_face_id: int | None


@dataclass
class FaceView:
    """What the Annotate page shows about one face."""

    face_id: int
    path: str
    box: tuple[float, float, float, float]
    prob: float
    status: str
    human: dict | None
    auto: dict | None
    queue_rank: int | None


@dataclass
class BatchGroup:
    """Faces to label in one action: ``kind`` ``person`` (the model's auto-labels of one person)
    or ``cluster`` (similar unclear faces, unnamed)."""

    key: str
    kind: str
    title: str
    face_ids: list[int]
    person_id: int | None = None
    scores: dict[int, float] = field(default_factory=dict)


@dataclass
class ReviewItem:
    """An auto-label to re-certify."""

    face_id: int
    person_id: int
    name: str
    confidence: float
    sample: str
    label_id: int
    round: int | None


@dataclass
class ExportResult:
    folder: Path
    csv: Path
    parquet: Path
    crops: Path | None
    crops_zip: Path | None
    rows: int
    people: int


# ------------------------------------------------------------------ service
class Service:
    """The labelling workflow over one library (thread-safe; one per app process).

    ``detector_factory()`` and ``embedder_factory(name)`` provide the heavy
    models for imports and backbone swaps (the app passes cached ones).
    """

    def __init__(self, library: Library, indexes: IndexStore | None = None,
                 detector_factory: Callable[[], Any] | None = None,
                 embedder_factory: Callable[[str], Any] | None = None,
                 jobs: JobRegistry | None = None):
        self.library = library
        self.indexes = indexes or IndexStore(library)
        self.jobs = jobs or JobRegistry()
        self._lock = library.lock  # the library's re-entrant lock: one service call at a time
        self._detector_factory = detector_factory
        self._embedder_factory = embedder_factory
        self._detector_obj: Any = None
        self._embedders: dict[str, Any] = {}
        self._index_cache: tuple[str, int, FaceIndex] | None = None
        self._model_cache: tuple[Any, Any] | None = None
        self._cluster_cache: tuple[Any, list[BatchGroup]] | None = None

    # ---------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def _worker_library(self) -> Iterator[Library]:
        """A library connection for a background job: its own on a file library, else the shared one."""
        if self.library.root is None:
            with self._lock:
                yield self.library
            return
        lib = Library(self.library.root)
        try:
            yield lib
        finally:
            lib.close()

    def _detector(self) -> Any:
        if self._detector_factory is not None:
            return self._detector_factory()
        if self._detector_obj is None:
            from models.detection import FaceDetector

            self._detector_obj = FaceDetector()
        return self._detector_obj

    def _embedder(self, name: str) -> Any:
        if self._embedder_factory is not None:
            return self._embedder_factory(name)
        if name not in self._embedders:
            from models import create_backbone

            self._embedders[name] = create_backbone(name)
        return self._embedders[name]

    def _after_write_job(self, job: Job) -> None:
        """A job changed embeddings/indexes on disk: drop in-memory copies so the next call reloads."""
        with self._lock:
            self.indexes = IndexStore(self.library)
            self._index_cache = None
            self._model_cache = None
            self._cluster_cache = None

    @staticmethod
    def _check_annotator(annotator: str) -> str:
        name = " ".join(str(annotator or "").split())
        if not name:
            raise ServiceError("an annotator name is required (it is recorded on every label)")
        return name

    # ---------------------------------------------------------- settings
    @property
    def backbone(self) -> str:
        """The library's current backbone: the ``backbone`` setting, else the most embedded one, else the default."""
        return self._backbone(self.library)

    @staticmethod
    def _backbone(lib: Library) -> str:
        b = lib.get_setting("backbone")
        if b:
            return str(b)
        counts = lib.backbones_embedded()
        if counts:
            return max(counts, key=lambda k: (counts[k], k))
        from models import default_backbone

        return default_backbone()

    def loop_settings(self) -> LoopSettings:
        return LoopSettings.from_dict(self.library.get_setting("loop"))

    def set_loop_settings(self, settings: LoopSettings | dict[str, Any], actor: str = "admin") -> LoopSettings:
        """Validate and store the loop settings (ValueError names a bad value)."""
        s = settings if isinstance(settings, LoopSettings) else LoopSettings.from_dict(settings)
        s.validate()
        self.library.set_setting("loop", s.as_dict(), actor)
        return s

    # ------------------------------------------------------------- rounds
    def start_round(self, actor: str = "admin") -> Job:
        """Run a round as a background job (see :meth:`run_round`)."""
        return self.jobs.submit("round", "labelling round", lambda progress: self.run_round(actor, progress),
                                on_done=lambda job: self._forget_model())

    def _forget_model(self) -> None:
        self._model_cache = None
        self._cluster_cache = None

    def run_round(self, actor: str = "admin", on_progress: ProgressFn | None = None) -> dict[str, Any]:
        """One engine round; writes auto-labels, the queue, flags and metrics. Returns the metrics."""
        with self._worker_library() as lib:
            metrics = self._run_round(lib, actor, on_progress or (lambda *a: None))
        self._forget_model()
        return metrics

    def _run_round(self, lib: Library, actor: str, progress: ProgressFn) -> dict[str, Any]:
        t0 = time.perf_counter()
        backbone = self._backbone(lib)
        loop = self.loop_settings_of(lib)
        progress(0, 5, f"loading {backbone} embeddings")
        ids, X = lib.embeddings(backbone)
        if len(ids) == 0:
            raise ServiceError(f"no faces are embedded with {backbone!r} yet; import photos first")
        not_face = set(lib.face_ids("not_face"))
        row_of = {int(f): i for i, f in enumerate(ids)}
        human_rows = lib.label_rows(("human", "seed"))
        labels = np.full(len(ids), -1, np.int64)
        for r in human_rows:
            i = row_of.get(r["face_id"])
            if i is not None and r["face_id"] not in not_face:
                labels[i] = r["person_id"]

        progress(1, 5, "loading the engine")
        keep = np.array([int(f) not in not_face for f in ids], dtype=bool)
        ids, X, labels = ids[keep], X[keep], labels[keep]
        row_of = {int(f): i for i, f in enumerate(ids)}
        active = self._load_loop(lib, backbone)
        fresh_loop = active is None or not active.matches(loop.method, loop.engine, loop.center)
        if fresh_loop:
            if active is not None:
                log.info("loop settings changed for %s: starting a fresh engine", backbone)
            active = ActiveLoop(loop.method, loop.engine, center=loop.center)

        # Prequential accuracy: the previous model's predictions for faces labelled since it was trained.
        prev_round = lib.last_round()
        preq_ok = preq_n = 0
        if not fresh_loop and active.model_ is not None and prev_round is not None \
                and prev_round["backbone"] == backbone:
            fresh = [r for r in human_rows if r["source"] == "human" and r["created_at"] > prev_round["started_at"]
                     and r["face_id"] in row_of]
            if fresh and active.model_.n_features_in_ == X.shape[1]:
                pred = active.predict(X[[row_of[r["face_id"]] for r in fresh]])
                preq_n = len(fresh)
                preq_ok = int(sum(int(p) == r["person_id"] for p, r in zip(pred, fresh)))

        if not (labels >= 0).any():
            raise ServiceError("a round needs at least one named face: label some faces on the Annotate page first")
        progress(2, 5, "training the classifiers")
        rnd = active.step(ids, X, labels, forbidden=lib.rejections())
        result = rnd.result
        round_id = lib.start_round(backbone, loop.method, actor, loop.as_dict())

        progress(3, 5, "writing auto-labels")
        f_auto, p_auto, w_auto = rnd.auto_labels
        auto = [(int(f), int(p), float(w)) for f, p, w in zip(f_auto, p_auto, w_auto)]
        queries = [int(f) for f in rnd.queries]
        unclear = [int(f) for f in rnd.unclear]
        flagged = [int(f) for f in rnd.set_aside]
        known = labels >= 0
        agreement = None
        if known.any() and len(result.model.classes_):
            agreement = float(np.mean(active.predict(X[known]) == labels[known]))
        prec = self._precision(lib)
        metrics = {
            "faces": int(len(ids)),
            "human_labels": int(known.sum()),
            "auto_labels": 0,
            "people_known": int(len(np.unique(labels[known]))),
            "people_modelled": int(len(result.model.classes_)),
            "unclear": len(unclear),
            "ambiguous": int(len(result.ambiguous)),
            "queries": len(queries),
            "flagged": len(flagged),
            "seeded": int(sum(len(v) for v in result.seeds.values())),
            "human_agreement": agreement,
            "prequential_accuracy": (preq_ok / preq_n) if preq_n else None,
            "prequential_n": preq_n,
            "review_precision": None if prec.n == 0 else prec.precision,
            "review_n": prec.n,
            "lambda_mean": float(np.mean(list(result.lambdas.values()))) if result.lambdas else None,
            "engine_round": int(result.round),
        }
        with lib.transaction():
            labelled_now = lib.labelled_face_ids(("human", "seed"))  # answers given while the round ran
            auto = [a for a in auto if a[0] not in labelled_now]
            metrics["auto_labels"] = len(auto)
            lib.replace_auto_labels(round_id, auto)
            lib.set_queue(round_id, queries)
            lib.clear_leases()  # annotators move on to the new ranking
            lib.save_loop_state(backbone, active.state_dict(), round_id)
            metrics["seconds"] = round(time.perf_counter() - t0, 3)
            lib.finish_round(round_id, metrics, unclear, flagged)
        progress(5, 5, f"round {round_id}: {metrics['auto_labels']} auto-labels, {len(queries)} queries")
        log.info("round %d done: %s", round_id, metrics)
        return {"round": round_id, **metrics}

    @staticmethod
    def loop_settings_of(lib: Library) -> LoopSettings:
        return LoopSettings.from_dict(lib.get_setting("loop"))

    def rounds(self) -> list[dict]:
        """Finished rounds, oldest first, with their metrics."""
        return self.library.rounds()

    # ------------------------------------------------------------ indexes
    def _index(self, backbone: str) -> FaceIndex | None:
        """The FAISS index of ``backbone``. While an import or a swap runs, the copy in memory keeps serving."""
        lib = self.library
        c = self._index_cache
        writing = self.jobs.running("import") or self.jobs.running("backbone")
        if c is not None and c[0] == backbone and (writing or c[1] == lib.embedding_count(backbone)):
            return c[2]
        n = lib.embedding_count(backbone)
        if n == 0:
            return None
        if writing:
            ids, X = lib.embeddings(backbone)
            idx = FaceIndex.build(ids, X)
        else:
            idx = self.indexes.get(backbone)
            if idx.ntotal != n:
                idx = self.indexes.rebuild(backbone)
        self._index_cache = (backbone, n, idx)
        return idx

    def _model(self) -> Any:
        """The classifiers of the latest round on the current backbone (None before any round)."""
        backbone = self.backbone
        key = (backbone, self.library.last_round_id())
        if self._model_cache is not None and self._model_cache[0] == key:
            return self._model_cache[1]
        active = self._load_loop(self.library, backbone)
        model = None if active is None else active
        self._model_cache = (key, model)
        return model

    # ----------------------------------------------------------- annotate
    def person_names(self) -> list[str]:
        return sorted((p["name"] for p in self.library.people()), key=str.lower)

    def _candidates(self, annotator: str) -> list[int]:
        lib = self.library
        excl = lib.labelled_face_ids(("human", "seed")) | set(lib.face_ids("not_face"))
        skipped = lib.skipped_face_ids(annotator, lib.last_round_id())
        queue = [f for f in lib.queue() if f not in excl and f not in skipped]
        inq = set(queue)
        auto = lib.labelled_face_ids(("auto",))
        rest = [f for f in lib.face_ids("ok") if f not in excl and f not in inq and f not in skipped]
        rest.sort(key=lambda f: (f in auto, f))
        return queue + rest + sorted(skipped - excl)

    def next_face(self, annotator: str) -> int | None:
        """The face to show ``annotator`` now, leased to them (None when every face is labelled)."""
        annotator = self._check_annotator(annotator)
        with self._lock:
            return self.library.take_lease(annotator, self._candidates(annotator), self.loop_settings().lease_seconds)

    def remaining(self) -> int:
        """Faces without a human label that are not marked 'not a face'."""
        lib = self.library
        return len(set(lib.face_ids("ok")) - lib.labelled_face_ids(("human", "seed")))

    def face_view(self, face_id: int) -> FaceView:
        with self._lock:
            lib = self.library
            f = lib.face(face_id)
            labels = lib.label_rows(face_id=face_id)
            human = next((r for r in labels if r["source"] in ("human", "seed")), None)
            auto = next((r for r in labels if r["source"] == "auto"), None)
            for r in (human, auto):
                if r is not None:
                    r["name"] = lib.person_name(r["person_id"])
            q = lib.queue()
            return FaceView(face_id, f["path"], (f["x1"], f["y1"], f["x2"], f["y2"]), f["prob"], f["status"],
                            human, auto, q.index(face_id) if face_id in q else None)

    def face_crop(self, face_id: int) -> np.ndarray:
        return self.library.face_crop(face_id)

    def face_crop_jpeg(self, face_id: int) -> bytes:
        """The stored JPEG of a face crop (what the pages show, without re-encoding)."""
        return self.library.face_crop_jpeg(face_id)

    def photo_with_box(self, face_id: int, max_side: int = 720) -> Any:
        """The face's photo with its box drawn (PIL image), or None if the file is gone."""
        from PIL import Image, ImageDraw, ImageOps

        f = self.library.face(face_id)
        try:
            with Image.open(f["path"]) as im:
                img = (ImageOps.exif_transpose(im) or im).convert("RGB")
        except (OSError, ValueError) as e:
            log.info("photo of face %s unavailable: %s", face_id, e)
            return None
        s = min(1.0, max_side / max(img.size))
        if s < 1.0:
            img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
        box = [f["x1"] * s, f["y1"] * s, f["x2"] * s, f["y2"] * s]
        ImageDraw.Draw(img).rectangle(box, outline=(255, 60, 60), width=max(2, round(max(img.size) / 200)))
        return img

    def person_thumb(self, person_id: int) -> int | None:
        """A face of the person (their first human label, else the most confident auto-label)."""
        rows = self.library.person_faces(person_id, limit=1)
        return rows[0]["face_id"] if rows else None

    def suggestions(self, face_id: int, k: int = 5) -> list[Suggestion]:
        """Top-``k`` people for a face: classifier scores, then FAISS neighbours' labels; rejected people never."""
        with self._lock:
            lib = self.library
            backbone = self.backbone
            x = lib.embedding(face_id, backbone)
            if x is None:
                return []
            rejected = {p for _, p in lib.rejections(face_id)}
            names = {p["id"]: p["name"] for p in lib.people()}
            out: dict[int, Suggestion] = {}
            model = self._model()
            if model is not None and len(getattr(model, "classes_", [])) and model.n_features_in_ == x.size:
                s = model.decision_function(x[None, :])[0]
                for j in np.argsort(-s):
                    p = int(model.classes_[j])
                    if p in rejected or p not in names:
                        continue
                    out[p] = Suggestion(p, names[p], float(s[j]), "classifier", None)
                    if len(out) >= k:
                        break
            idx = self._index(backbone)
            if idx is not None and len(out) < k:
                sims, nbrs = idx.search(x, min(64, max(1, idx.ntotal)))
                valid = [(float(si), int(n)) for si, n in zip(sims[0], nbrs[0]) if n >= 0 and n != face_id]
                who = lib.face_persons([n for _, n in valid])
                for si, n in valid:
                    p = who.get(n)
                    if p is None or p in rejected or p in out or p not in names:
                        continue
                    out[p] = Suggestion(p, names[p], si, "neighbours", n)
                    if len(out) >= k:
                        break
            res = list(out.values())[:k]
            for sg in res:
                if sg.thumb_face_id is None:
                    sg.thumb_face_id = self.person_thumb(sg.person_id)
            return res

    def _open_face(self, lib: Library, face_id: int) -> None:
        f = lib.face(face_id)
        if f["status"] != "ok":
            raise FaceClosedError(f"face {face_id} is marked '{f['status']}'; undo that first")

    def _current_auto_ids(self, lib: Library, label_ids: Sequence[int]) -> list[int]:
        """Those of ``label_ids`` written by the latest round (older ones were replaced since)."""
        last = lib.last_round_id()
        return [i for i in label_ids if lib.label(i)["round"] == last]

    def _label_face(self, lib: Library, face_id: int, person_id: int, annotator: str,
                    confidence: float = 1.0) -> dict[str, Any]:
        """Human label (auto-labels on the face revoked, a rejection of that person lifted); undo payload."""
        self._open_face(lib, face_id)
        lib.person_name(person_id)
        removed_rej = lib.remove_rejection(face_id, person_id, annotator)
        revoked = lib.revoke_face_labels(face_id, ("auto",), annotator)
        lid = lib.add_label(face_id, person_id, "human", confidence=confidence, round=lib.last_round_id(),
                            annotator=annotator)
        return {"face_id": face_id, "person_id": person_id, "label_id": lid, "revoked_auto": revoked,
                "removed_rejection": removed_rej}

    def confirm(self, face_id: int, person_id: int, annotator: str, scope: str = SCOPE_ANNOTATE) -> int:
        """Label ``face_id`` as ``person_id`` (a human label); returns the label id."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            payload = self._label_face(lib, face_id, lib.resolve_person(person_id), annotator)
            lib.release_leases(annotator, [face_id])
            payload["name"] = lib.person_name(payload["person_id"])
            lib.add_action(annotator, scope, "label", payload)
            return payload["label_id"]

    def new_person(self, face_id: int, name: str, annotator: str, scope: str = SCOPE_ANNOTATE) -> int:
        """Label a face with a person's name, creating the person if new; returns the label id."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            pid = self.library.person_id(name, create=True, actor=annotator)
            return self.confirm(face_id, pid, annotator, scope)

    def not_face(self, face_id: int, annotator: str) -> None:
        """Mark a detection as not a face (its labels revoked; never shown or auto-labelled again)."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            prev = lib.set_face_status(face_id, "not_face", annotator)
            revoked = [r["id"] for r in lib.label_rows(face_id=face_id)]
            for lid in revoked:
                lib.revoke_label(lid, annotator)
            lib.release_leases(annotator, [face_id])
            lib.add_action(annotator, SCOPE_ANNOTATE, "not_face", {"face_id": face_id, "previous": prev,
                                                                    "revoked": revoked})

    def skip(self, face_id: int, annotator: str) -> None:
        """Put a face aside for this annotator until the next round (others still get it)."""
        annotator = self._check_annotator(annotator)
        with self._lock, self.library.transaction():
            lib = self.library
            lib.face(face_id)
            lib.add_skip(face_id, annotator, lib.last_round_id())
            lib.release_leases(annotator, [face_id])
            lib.add_action(annotator, SCOPE_ANNOTATE, "skip", {"face_id": face_id})
            lib.log_event("face_skipped", annotator, face_id=face_id)

    # -------------------------------------------------------------- undo
    def last_action(self, annotator: str, scope: str = SCOPE_ANNOTATE) -> dict | None:
        acts = self.library.actions(actor=annotator, scope=scope, limit=1)
        return acts[0] if acts else None

    @staticmethod
    def describe(action: dict) -> str:
        """A short human-readable line for an action."""
        p, k = action["payload"], action["kind"]
        return {
            "label": lambda: f"labelled face {p['face_id']} as {p.get('name', p['person_id'])}",
            "not_face": lambda: f"marked face {p['face_id']} as not a face",
            "skip": lambda: f"skipped face {p['face_id']}",
            "batch": lambda: f"batch-labelled {len(p['labels'])} faces as {p.get('name', p['person_id'])}",
            "review_accept": lambda: f"accepted the auto-label of face {p['face_id']}",
            "review_reject": lambda: f"rejected the auto-label of face {p['face_id']}",
            "confirm_flag": lambda: f"confirmed the flagged label of face {p['face_id']}",
            "rename": lambda: f"renamed {p['old']!r} to {p['new']!r}",
            "merge": lambda: f"merged {p['src_name']!r} into {p['dst_name']!r}",
            "move": lambda: f"moved face {p['face_id']} to {p.get('name', p['person_id'])}",
            "remove_label": lambda: f"removed the label of face {p['face_id']}",
        }.get(k, lambda: k)()

    def undo(self, annotator: str, scope: str = SCOPE_ANNOTATE) -> dict:
        """Undo ``annotator``'s latest action in ``scope``; returns that action. On the Annotate page the
        face comes back as the next one."""
        annotator = self._check_annotator(annotator)
        if scope not in SCOPES:
            raise ValueError(f"unknown undo scope {scope!r}; valid choices: {', '.join(SCOPES)}")
        with self._lock, self.library.transaction():
            lib = self.library
            act = self.last_action(annotator, scope)
            if act is None:
                raise NothingToUndoError(f"{annotator} has nothing to undo on the {scope} page")
            p = act["payload"]
            undo = getattr(self, f"_undo_{act['kind']}", None)
            if undo is None:
                raise ServiceError(f"action kind {act['kind']!r} cannot be undone")
            undo(lib, p, annotator)
            lib.mark_action_undone(act["id"], annotator)
            if scope == SCOPE_ANNOTATE and "face_id" in p:
                lib.lease(p["face_id"], annotator, self.loop_settings().lease_seconds)
            return act

    def _restore_auto(self, lib: Library, label_ids: Sequence[int], annotator: str) -> None:
        for lid in self._current_auto_ids(lib, label_ids):
            with contextlib.suppress(LabelConflictError):
                lib.unrevoke_label(lid, annotator)

    def _undo_label(self, lib: Library, p: dict, annotator: str) -> None:
        with contextlib.suppress(NotFoundError):
            lib.revoke_label(p["label_id"], annotator)
        self._restore_auto(lib, p.get("revoked_auto", []), annotator)
        if p.get("removed_rejection"):
            lib.add_rejection(p["face_id"], p["person_id"], annotator)

    def _undo_not_face(self, lib: Library, p: dict, annotator: str) -> None:
        lib.set_face_status(p["face_id"], p["previous"], annotator)
        for lid in p.get("revoked", []):
            if lib.label(lid)["source"] == "auto":
                self._restore_auto(lib, [lid], annotator)
            else:
                lib.unrevoke_label(lid, annotator)

    def _undo_skip(self, lib: Library, p: dict, annotator: str) -> None:
        lib.remove_skip(p["face_id"], annotator)

    def _undo_batch(self, lib: Library, p: dict, annotator: str) -> None:
        for lab in p["labels"]:
            self._undo_label(lib, lab, annotator)
        for f in p.get("rejections", []):
            lib.remove_rejection(f, p["person_id"], annotator)
        self._restore_auto(lib, p.get("revoked_auto", []), annotator)

    # ------------------------------------------------------------- batch
    def batch_groups(self, annotator: str, limit: int = 12) -> list[BatchGroup]:
        """Groups for batch labelling: each person's auto-labels (most first), then clusters of unclear faces."""
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            size = self.loop_settings().batch_size
            busy = set(lib.leased_faces(exclude_annotator=annotator))
            names = {p["id"]: p["name"] for p in lib.people()}
            by_person: dict[int, list[tuple[float, int]]] = {}
            for r in lib.label_rows(("auto",)):
                if r["face_id"] not in busy:
                    by_person.setdefault(r["person_id"], []).append((r["confidence"] or 0.0, r["face_id"]))
            groups = []
            for pid, rows in sorted(by_person.items(), key=lambda kv: -len(kv[1])):
                rows.sort(key=lambda t: (-t[0], t[1]))
                faces = [f for _, f in rows[:size]]
                groups.append(BatchGroup(f"person-{pid}", "person",
                                         f"{names.get(pid, pid)}: {len(rows)} auto-labelled face(s)",
                                         faces, pid, {f: c for c, f in rows[:size]}))
            groups = groups[:limit]
            for g in self._clusters(size):
                faces = [f for f in g.face_ids if f not in busy]
                if len(faces) >= 2:
                    groups.append(dataclasses.replace(g, face_ids=faces))
                if len(groups) >= 2 * limit:
                    break
            return groups

    def _clusters(self, size: int, max_faces: int = 2000, max_clusters: int = 12) -> list[BatchGroup]:
        """Groups of similar faces among those nobody labelled (the last round's unclear set)."""
        lib = self.library
        backbone = self.backbone
        excl = lib.labelled_face_ids(("human", "seed", "auto")) | set(lib.face_ids("not_face"))
        last = lib.last_round()
        pool = last["unclear"] if last else lib.face_ids("ok")
        pool = [f for f in pool if f not in excl][:max_faces]
        key = (backbone, last["id"] if last else None, len(pool), hash(tuple(pool)))
        if self._cluster_cache is not None and self._cluster_cache[0] == key:
            return self._cluster_cache[1]
        sim_min = self.loop_settings().cluster_similarity
        ids, X = lib.embeddings(backbone, pool)
        groups: list[BatchGroup] = []
        if len(ids) >= 2:
            Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
            S = Xn @ Xn.T
            alive = np.ones(len(ids), bool)
            while len(groups) < max_clusters:
                A = (S >= sim_min) & alive[None, :] & alive[:, None]
                deg = A.sum(axis=1)
                c = int(np.argmax(deg))
                if deg[c] < 2:
                    break
                members = np.flatnonzero(A[c])
                members = members[np.argsort(-S[c, members])][:size]
                alive[members] = False
                faces = [int(ids[m]) for m in members]
                groups.append(BatchGroup(f"cluster-{faces[0]}", "cluster",
                                         f"Unnamed group of {len(faces)} similar faces", faces, None,
                                         {int(ids[m]): float(S[c, m]) for m in members}))
        self._cluster_cache = (key, groups)
        return groups

    def accept_batch(self, face_ids: Sequence[int], person: int | str, annotator: str,
                     deselected: Sequence[int] = ()) -> int:
        """Label the selected faces as ``person`` (id or name; a new name creates the person) in one action.
        Deselected faces of a person's group are recorded as not that person. Returns the faces labelled."""
        annotator = self._check_annotator(annotator)
        if not face_ids:
            raise ServiceError("no faces selected")
        with self._lock, self.library.transaction():
            lib = self.library
            pid = lib.person_id(person, create=True, actor=annotator) if isinstance(person, str) \
                else lib.resolve_person(int(person))
            labelled = lib.labelled_face_ids(("human", "seed"))
            done, revoked_auto = [], []
            for f in face_ids:
                f = int(f)
                if f in labelled or lib.face(f)["status"] != "ok":
                    continue
                done.append(self._label_face(lib, f, pid, annotator))
            rejections = []
            for f in deselected:
                f = int(f)
                for r in lib.label_rows(("auto",), face_id=f):
                    if r["person_id"] == pid:
                        lib.revoke_label(r["id"], annotator)
                        revoked_auto.append(r["id"])
                if lib.add_rejection(f, pid, annotator):
                    rejections.append(f)
            lib.release_leases(annotator, [int(f) for f in face_ids])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch", {"person_id": pid, "name": lib.person_name(pid),
                                                                "labels": done, "rejections": rejections,
                                                                "revoked_auto": revoked_auto})
            self._cluster_cache = None
            return len(done)

    # ------------------------------------------------------------ review
    def review_sample(self, annotator: str) -> list[ReviewItem]:
        """Auto-labels to re-certify: a random sample (stable for this annotator and round) and the
        lowest-confidence ones, minus those already reviewed."""
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            loop = self.loop_settings()
            autos = sorted(lib.label_rows(("auto",)), key=lambda r: r["face_id"])
            done = {(r["face_id"], r["person_id"]) for r in lib.reviews()}
            names = {p["id"]: p["name"] for p in lib.people()}
            last = lib.last_round_id()
            rng = np.random.default_rng(zlib.crc32(f"{last}:{annotator}".encode()))
            items: list[ReviewItem] = []
            taken: set[int] = set()
            for i in rng.permutation(len(autos)):
                if sum(1 for it in items if it.sample == "random") >= loop.review_random:
                    break
                r = autos[int(i)]
                if (r["face_id"], r["person_id"]) in done:
                    continue
                items.append(ReviewItem(r["face_id"], r["person_id"], names.get(r["person_id"], "?"),
                                        float(r["confidence"] or 0), "random", r["id"], r["round"]))
                taken.add(r["face_id"])
            low = [r for r in sorted(autos, key=lambda r: (r["confidence"] or 0, r["face_id"]))
                   if r["face_id"] not in taken and (r["face_id"], r["person_id"]) not in done]
            for r in low[:loop.review_low]:
                items.append(ReviewItem(r["face_id"], r["person_id"], names.get(r["person_id"], "?"),
                                        float(r["confidence"] or 0), "low", r["id"], r["round"]))
            return items

    def _live_auto(self, lib: Library, face_id: int, person_id: int) -> dict:
        for r in lib.label_rows(("auto",), face_id=face_id):
            if r["person_id"] == person_id:
                return r
        raise NotFoundError(f"face {face_id} has no live auto-label for person {person_id} (a new round replaced it?)")

    def _check_review(self, annotator: str, sample: str) -> str:
        """The cleaned annotator name; an unknown review sample is a ValueError naming the valid ones."""
        annotator = self._check_annotator(annotator)
        if sample not in REVIEW_SAMPLES:
            raise ValueError(f"unknown review sample {sample!r}; valid choices: {', '.join(REVIEW_SAMPLES)}")
        return annotator

    def accept_auto(self, face_id: int, person_id: int, annotator: str, sample: str = "random") -> int:
        """The auto-label is right: it becomes a human label; counted for the precision estimate."""
        annotator = self._check_review(annotator, sample)
        with self._lock, self.library.transaction():
            lib = self.library
            auto = self._live_auto(lib, face_id, person_id)
            rid = lib.add_review(face_id, person_id, auto["round"], sample, True, annotator)
            payload = self._label_face(lib, face_id, person_id, annotator, confidence=1.0)
            payload["review_id"] = rid
            lib.add_action(annotator, SCOPE_REVIEW, "review_accept", payload)
            return payload["label_id"]

    def reject_auto(self, face_id: int, person_id: int, annotator: str, sample: str = "random") -> None:
        """The auto-label is wrong: revoked, and the face is never auto-labelled or suggested as that person."""
        annotator = self._check_review(annotator, sample)
        with self._lock, self.library.transaction():
            lib = self.library
            auto = self._live_auto(lib, face_id, person_id)
            rid = lib.add_review(face_id, person_id, auto["round"], sample, False, annotator)
            lib.revoke_label(auto["id"], annotator)
            added = lib.add_rejection(face_id, person_id, annotator)
            lib.add_action(annotator, SCOPE_REVIEW, "review_reject", {
                "face_id": face_id, "person_id": person_id, "label_id": auto["id"], "review_id": rid,
                "rejection_added": added})

    def _undo_review_accept(self, lib: Library, p: dict, annotator: str) -> None:
        self._undo_label(lib, p, annotator)
        lib.withdraw_review(p["review_id"])

    def _undo_review_reject(self, lib: Library, p: dict, annotator: str) -> None:
        if p.get("rejection_added"):
            lib.remove_rejection(p["face_id"], p["person_id"], annotator)
        self._restore_auto(lib, [p["label_id"]], annotator)
        lib.withdraw_review(p["review_id"])

    @staticmethod
    def _precision(lib: Library, sample: str = "random", confidence: float = 0.95) -> Any:
        from .engine import estimate_precision

        return estimate_precision([bool(r["correct"]) for r in lib.reviews(sample=sample)], confidence)

    def precision(self, sample: str = "random", confidence: float = 0.95) -> Any:
        """Auto-label precision from the reviewed ``sample`` (Wilson interval; random sample: unbiased)."""
        if sample not in REVIEW_SAMPLES:
            raise ValueError(f"unknown review sample {sample!r}; valid choices: {', '.join(REVIEW_SAMPLES)}")
        return self._precision(self.library, sample, confidence)

    def flagged_labels(self) -> list[dict]:
        """Human labels the last round flagged as suspicious (re-certification failed repeatedly)."""
        with self._lock:
            lib = self.library
            last = lib.last_round()
            if last is None:
                return []
            out = []
            for f in last["flagged"]:
                rows = lib.label_rows(("human", "seed"), face_id=f)
                if rows and rows[0]["created_at"] <= last["started_at"]:  # newer labels: a correction
                    r = rows[0]
                    out.append({"face_id": f, "person_id": r["person_id"], "name": lib.person_name(r["person_id"]),
                                "annotator": r["annotator"], "source": r["source"], "label_id": r["id"]})
            return out

    def _load_loop(self, lib: Library, backbone: str) -> ActiveLoop | None:
        """The stored loop of ``backbone``, or None (none stored, or unusable: logged, a fresh one follows)."""
        try:
            state = lib.loop_state(backbone)
            return None if state is None else ActiveLoop.from_state_dict(state)
        except (StateFormatError, StateError) as e:
            log.warning("stored loop state of %s unusable (%s); the next round starts a fresh engine", backbone, e)
            return None

    def _engine_recert(self, lib: Library, face_id: int, fn: str) -> None:
        backbone = self._backbone(lib)
        active = self._load_loop(lib, backbone)
        if active is None or face_id not in set(active.face_ids_.tolist()):
            return
        if fn == "confirm":
            active.confirm([face_id])
        else:
            row = int(np.flatnonzero(active.face_ids_ == face_id)[0])
            recert = getattr(active.engine_, "recert_", None)
            if recert is None:
                return
            recert.reset([row])
        last = lib.last_round_id()
        lib.save_loop_state(backbone, active.state_dict(), last)

    def confirm_flag(self, face_id: int, annotator: str) -> None:
        """The flagged human label is right: it stops being flagged and is trained on again."""
        annotator = self._check_annotator(annotator)
        if self.jobs.running("round"):
            raise ServiceError("a round is running; confirm flagged labels after it finishes")
        with self._lock, self.library.transaction():
            lib = self.library
            last = lib.last_round()
            if last is None or face_id not in last["flagged"]:
                raise NotFoundError(f"face {face_id} is not flagged")
            self._engine_recert(lib, face_id, "confirm")
            lib.set_round_flagged(last["id"], [f for f in last["flagged"] if f != face_id])
            lib.log_event("flag_confirmed", annotator, face_id=face_id)
            lib.add_action(annotator, SCOPE_REVIEW, "confirm_flag", {"face_id": face_id, "round": last["id"]})

    def _undo_confirm_flag(self, lib: Library, p: dict, annotator: str) -> None:
        last = lib.last_round()
        if last is not None and last["id"] == p["round"] and p["face_id"] not in last["flagged"]:
            lib.set_round_flagged(last["id"], last["flagged"] + [p["face_id"]])
        self._engine_recert(lib, p["face_id"], "reset")

    # ------------------------------------------------------------ people
    def people(self) -> list[dict]:
        """Live people with counts of human and auto labels."""
        return self.library.people()

    def person_faces(self, person_id: int, limit: int | None = None) -> list[dict]:
        return self.library.person_faces(person_id, limit=limit)

    def _person(self, lib: Library, person: int | str, actor: str, create: bool = True) -> int:
        if isinstance(person, str):
            return lib.person_id(person, create=create, actor=actor)
        lib.person_name(int(person))
        return lib.resolve_person(int(person))

    def rename_person(self, person_id: int, name: str, actor: str) -> None:
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            old = self.library.rename_person(person_id, name, actor)
            new = self.library.person_name(person_id)
            self.library.add_action(actor, SCOPE_PEOPLE, "rename", {"person_id": person_id, "old": old, "new": new})

    def _undo_rename(self, lib: Library, p: dict, annotator: str) -> None:
        lib.rename_person(p["person_id"], p["old"], annotator)

    def merge_people(self, src: int, dst: int, actor: str) -> int:
        """Merge person ``src`` into ``dst`` (labels and rejections move); returns the labels moved."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            src, dst = lib.resolve_person(int(src)), lib.resolve_person(int(dst))
            if src == dst:
                raise ServiceError(f"cannot merge person {src} into itself")
            src_name, dst_name = lib.person_name(src), lib.person_name(dst)
            moved = lib.person_label_ids(src)
            lib.move_labels(moved, dst, actor)
            copied = [f for f in lib.person_rejections(src) if lib.add_rejection(f, dst, actor)]
            lib.set_merged_into(src, dst, actor)
            lib.add_action(actor, SCOPE_PEOPLE, "merge", {"src": src, "dst": dst, "src_name": src_name,
                                                          "dst_name": dst_name, "label_ids": moved,
                                                          "rejections_copied": copied})
            self._model_cache = None
            return len(moved)

    def _undo_merge(self, lib: Library, p: dict, annotator: str) -> None:
        lib.set_merged_into(p["src"], None, annotator)
        lib.move_labels(p["label_ids"], p["src"], annotator)
        for f in p.get("rejections_copied", []):
            lib.remove_rejection(f, p["dst"], annotator)

    def move_face(self, face_id: int, to: int | str, actor: str) -> int:
        """Re-label a face as another person (id, or a name: created if new); the old person is rejected
        for it. Returns the new label id."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            pid = self._person(lib, to, actor)
            live = lib.label_rows(face_id=face_id)
            old = next((r for r in live if r["source"] in ("human", "seed")), None) or \
                next((r for r in live if r["source"] == "auto"), None)
            if old is not None and old["person_id"] == pid:
                raise ServiceError(f"face {face_id} is already labelled as {lib.person_name(pid)}")
            revoked = []
            rejected = False
            if old is not None:
                if old["source"] != "auto":
                    lib.revoke_label(old["id"], actor)
                    revoked.append(old["id"])
                rejected = lib.add_rejection(face_id, old["person_id"], actor)
            payload = self._label_face(lib, face_id, pid, actor)
            payload.update({"name": lib.person_name(pid), "revoked_human": revoked,
                            "rejected_person": old["person_id"] if rejected and old else None})
            lib.add_action(actor, SCOPE_PEOPLE, "move", payload)
            return payload["label_id"]

    def _undo_move(self, lib: Library, p: dict, annotator: str) -> None:
        self._undo_label(lib, p, annotator)
        for lid in p.get("revoked_human", []):
            lib.unrevoke_label(lid, annotator)
        if p.get("rejected_person") is not None:
            lib.remove_rejection(p["face_id"], p["rejected_person"], annotator)

    def remove_label(self, face_id: int, actor: str, person_id: int | None = None) -> int:
        """Remove a wrong label (human or auto) from a face; the person is rejected for it. Returns labels removed."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            rows = [r for r in lib.label_rows(face_id=face_id) if person_id is None or r["person_id"] == person_id]
            if not rows:
                who = f" for person {person_id}" if person_id else ""
                raise NotFoundError(f"face {face_id} has no live label{who}")
            rejected = []
            for r in rows:
                lib.revoke_label(r["id"], actor)
                if lib.add_rejection(face_id, r["person_id"], actor):
                    rejected.append(r["person_id"])
            lib.add_action(actor, SCOPE_PEOPLE, "remove_label",
                           {"face_id": face_id, "label_ids": [r["id"] for r in rows], "rejected": rejected})
            return len(rows)

    def _undo_remove_label(self, lib: Library, p: dict, annotator: str) -> None:
        for pid in p.get("rejected", []):
            lib.remove_rejection(p["face_id"], pid, annotator)
        for lid in p["label_ids"]:
            if lib.label(lid)["source"] == "auto":
                self._restore_auto(lib, [lid], annotator)
            else:
                lib.unrevoke_label(lid, annotator)

    def events(self, limit: int = 100) -> list[dict]:
        return self.library.events(limit=limit)

    # ------------------------------------------------------------ import
    def upload_folder(self) -> Path:
        """A new folder under ``<library>/uploads`` for one batch of uploads."""
        if self.library.root is None:
            raise ServiceError("uploads need a library folder (this library is in memory)")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        d = self.library.root / "uploads" / f"{stamp}-{secrets.token_hex(3)}"
        d.mkdir(parents=True)
        return d

    def save_uploads(self, files: Sequence[tuple[str, Any]]) -> SaveResult:
        """Save uploaded images / zips inside the library folder (zip members cannot escape it)."""
        return save_uploads(files, self.upload_folder())

    def start_import(self, path: str | os.PathLike, annotator: str = "import",
                     labels_from_folders: bool = False) -> Job:
        """Import photos under ``path`` (a server folder or an upload folder) as a background job."""
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder on the server: {p}")
        if self.jobs.running("backbone"):
            raise JobBusyError("a backbone swap is running; import after it finishes")
        root = p.resolve()

        def work(progress: ProgressFn) -> dict[str, Any]:
            from .importer import Importer

            with self._worker_library() as lib:
                backbone = self._backbone(lib)
                if not lib.get_setting("backbone"):
                    lib.set_setting("backbone", backbone, annotator)
                imp = Importer(lib, IndexStore(lib), detector=self._detector(), embedder=self._embedder(backbone),
                               annotator=annotator)
                s = imp.run(root, labels_from_folders=labels_from_folders, progress=False, on_progress=progress)
                rejected = [{"path": r["path"], "reason": r["error_reason"], "detail": r["error_detail"]}
                            for r in lib.images(status="rejected", path_prefix=str(root))]
            return {"summary": s.as_dict(), "rejected_files": rejected, "path": str(root)}

        return self.jobs.submit("import", f"import {root}", work, on_done=self._after_write_job)

    # ---------------------------------------------------------- backbone
    def backbones(self) -> list[dict]:
        """The backbone pool (metadata only), with how many faces each has embedded."""
        from models.catalog import backbone_rows

        counts = self.library.backbones_embedded()
        rows = backbone_rows()
        for r in rows:
            r["faces_embedded"] = counts.get(r["name"], 0)
        return rows

    def start_backbone_swap(self, name: str, actor: str = "admin") -> Job:
        """Re-embed the library with ``name`` in the background; the current backbone (and its index)
        serves until every face is embedded, then the ``backbone`` setting switches."""
        from models import list_backbones

        valid = list_backbones()
        if name not in valid:
            raise ValueError(f"unknown backbone {name!r}; valid choices: {', '.join(valid)}")
        if name == self.backbone:
            raise ServiceError(f"{name} is already the library's backbone")
        if self.jobs.running("import"):
            raise JobBusyError("an import is running; swap the backbone after it finishes")

        def work(progress: ProgressFn) -> dict[str, Any]:
            from .importer import embed_library

            with self._worker_library() as lib:
                emb = self._embedder(name)
                n = 0
                for _ in range(3):  # faces imported meanwhile: embed those too
                    n += embed_library(lib, IndexStore(lib), emb, progress=False, on_progress=progress)
                    if not lib.faces_missing_embedding(name):
                        break
                old = self._backbone(lib)
                lib.set_setting("backbone", name, actor)
                lib.log_event("backbone_swapped", actor, old=old, new=name, embedded=n)
            return {"backbone": name, "previous": old, "embedded": n}

        return self.jobs.submit("backbone", f"re-embed with {name}", work, on_done=self._after_write_job)

    # ------------------------------------------------------------ export
    def export_rows(self) -> list[dict]:
        """One row per labelled face: face -> person with box, source, confidence (human labels win)."""
        lib = self.library
        faces = {r["face_id"]: r for r in lib.faces_table()}
        names = {p["id"]: p["name"] for p in lib.people()}
        best: dict[int, dict] = {}
        for r in lib.label_rows():
            f = r["face_id"]
            if f not in faces:
                continue
            cur = best.get(f)
            if cur is None or (cur["source"] == "auto" and r["source"] != "auto"):
                best[f] = r
        rows = []
        for f in sorted(best):
            lab, fr = best[f], faces[f]
            rows.append({"face_id": f, "image_id": fr["image_id"], "image_path": fr["image_path"],
                         "x1": fr["x1"], "y1": fr["y1"], "x2": fr["x2"], "y2": fr["y2"],
                         "person_id": lab["person_id"], "person": names.get(lab["person_id"], ""),
                         "source": lab["source"], "confidence": lab["confidence"], "annotator": lab["annotator"],
                         "round": lab["round"], "labelled_at": lab["created_at"]})
        return rows

    def export(self, dest: str | os.PathLike | None = None, crops: bool = True, actor: str = "admin") -> ExportResult:
        """Write ``faces.csv`` and ``faces.parquet`` (and a folder per person of crops, zipped too)."""
        import pandas as pd

        with self._lock:
            lib = self.library
            if dest is None:
                if lib.root is None:
                    raise ServiceError("export needs a destination folder (this library is in memory)")
                dest = lib.root / "exports" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path(dest)
            out.mkdir(parents=True, exist_ok=True)
            rows = self.export_rows()
            cols = ["face_id", "image_id", "image_path", "x1", "y1", "x2", "y2", "person_id", "person", "source",
                    "confidence", "annotator", "round", "labelled_at"]
            df = pd.DataFrame(rows, columns=cols)
            df.to_csv(out / "faces.csv", index=False)
            df.to_parquet(out / "faces.parquet", index=False)
            crops_dir = zip_path = None
            if crops:
                crops_dir = out / "crops"
                if crops_dir.exists():
                    shutil.rmtree(crops_dir)
                folders: dict[int, str] = {}
                used: set[str] = set()
                for r in rows:
                    pid = r["person_id"]
                    if pid not in folders:
                        name = safe_name(r["person"], f"person_{pid}")
                        if name.lower() in used:
                            name = f"{name}_{pid}"
                        used.add(name.lower())
                        folders[pid] = name
                    d = crops_dir / folders[pid]
                    d.mkdir(parents=True, exist_ok=True)
                    (d / f"{r['face_id']}_{r['source']}.jpg").write_bytes(lib.face_crop_jpeg(r["face_id"]))
                zip_path = out / "crops.zip"
                with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
                    for p in sorted(crops_dir.rglob("*.jpg")):
                        zf.write(p, p.relative_to(out).as_posix())
            lib.log_event("export", actor, folder=str(out), rows=len(rows))
            return ExportResult(out, out / "faces.csv", out / "faces.parquet", crops_dir, zip_path, len(rows),
                                len({r["person_id"] for r in rows}))

    # ------------------------------------------------------------- admin
    def admin_password_is_set(self) -> bool:
        return bool(self.library.get_setting("admin_password"))

    def set_admin_password(self, password: str, actor: str = "admin") -> None:
        """Store the admin password as a salted scrypt hash."""
        if len(password or "") < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters")
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        self.library.set_private_setting("admin_password", {"algo": "scrypt", **_SCRYPT, "salt": salt.hex(),
                                                            "hash": digest.hex()}, actor)

    def check_admin_password(self, password: str) -> bool:
        rec = self.library.get_setting("admin_password")
        if not rec or not password:
            return False
        if rec.get("algo") != "scrypt":
            raise ServiceError(f"unsupported password hash {rec.get('algo')!r}; valid choices: scrypt")
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(rec["salt"]),
                                **{k: rec[k] for k in ("n", "r", "p", "dklen")})
        return hmac.compare_digest(digest.hex(), rec["hash"])

    def apply_env_password(self, env: dict[str, str] | None = None) -> bool:
        """Set the admin password from ``ASPL_ADMIN_PASSWORD`` if given and different; True if changed."""
        pw = (env if env is not None else os.environ).get("ASPL_ADMIN_PASSWORD")
        if not pw or self.check_admin_password(pw):
            return False
        self.set_admin_password(pw, actor="env")
        return True

    def stats(self) -> dict[str, Any]:
        st = self.library.stats()
        st["backbone"] = self.backbone
        st["rounds"] = len(self.library.rounds())
        st["to_label"] = self.remaining()
        return st
