"""The service's shared plumbing: connections for jobs, models, the library's backbone, caches."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

from storage import IndexStore, Library, StateFormatError
from storage.index import IVF_THRESHOLD, FaceIndex

from ..engine.loop import ActiveLoop, StateError
from ..jobs import Job, JobRegistry
from .errors import ServiceError
from .settings import SCOPE_ANNOTATE, LoopSettings
from .undo import undoable

log = logging.getLogger("aspl.service")


def library_backbone(lib: Library) -> str:
    """The library's backbone: the ``backbone`` setting (stored at the first import), else the default.

    Libraries made before the setting existed get it from migration ``m005_backbone_setting``.
    """
    b = lib.get_setting("backbone")
    if b:
        return str(b)
    from models import default_backbone

    return default_backbone()


def loop_settings_of(lib: Library) -> LoopSettings:
    """The stored loop settings of ``lib`` (defaults where none are stored)."""
    return LoopSettings.from_dict(lib.get_setting("loop"))


def load_loop(lib: Library, backbone: str) -> ActiveLoop | None:
    """The stored loop of ``backbone``, or None (none stored, or unusable: logged, a fresh one follows)."""
    try:
        state = lib.loop_state(backbone)
        return None if state is None else ActiveLoop.from_state_dict(state)
    except (StateFormatError, StateError) as e:
        log.warning("stored loop state of %s unusable (%s); the next round starts a fresh engine", backbone, e)
        return None


@undoable("unhide", lambda p: f"showed hidden face {p['face_id']}")
def _undo_unhide(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    lib.set_face_hidden(p["face_id"], True, annotator)


class ServiceCore:
    """Construction, connections for background jobs, heavy models and in-memory caches."""

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
        self._tuned_cache: dict[tuple[str, str], Any] = {}  # (backbone, weights file) -> fine-tuned embedder
        self._index_cache: tuple[str, FaceIndex] | None = None
        self._model_cache: tuple[Any, Any] | None = None
        self._cluster_cache: tuple[Any, list] | None = None
        self._mean_cache: tuple[Any, Any] | None = None
        self._groups_cache: tuple[Any, list] | None = None
        self._guess_cache: tuple[Any, dict] | None = None

    # ---------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def _worker_library(self) -> Iterator[Library]:
        """A library connection for a background job: its own on a file library, else the shared one."""
        if self.library.root is None:
            with self._lock:
                yield self.library
            return
        lib = self.library.reopen()
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
            self._tuned_cache.clear()  # a fine-tuned backbone is reloaded with its new weights
            self._forget_model()

    def _forget_model(self) -> None:
        self._model_cache = None
        self._cluster_cache = None
        self._guess_cache = None

    @staticmethod
    def _check_annotator(annotator: str) -> str:
        name = " ".join(str(annotator or "").split())
        if not name:
            raise ServiceError("an annotator name is required (it is recorded on every label)")
        return name

    # ---------------------------------------------------------- settings
    @property
    def backbone(self) -> str:
        """The library's backbone (the ``backbone`` setting; see :func:`library_backbone`)."""
        return library_backbone(self.library)

    def backbone_is_trainable(self) -> bool:
        """Whether the library's backbone can be fine-tuned (a torch network marked trainable; dlib is not)."""
        from models import UnknownBackboneError, backbone_info

        try:
            return bool(backbone_info(self.backbone).trainable)
        except UnknownBackboneError:
            return False

    def loop_settings(self) -> LoopSettings:
        """The stored loop settings."""
        return loop_settings_of(self.library)

    def set_loop_settings(self, settings: LoopSettings | dict[str, Any], actor: str = "admin") -> LoopSettings:
        """Validate and store the loop settings (ValueError names a bad value)."""
        s = settings if isinstance(settings, LoopSettings) else LoopSettings.from_dict(settings)
        s.validate()
        self.library.set_setting("loop", s.as_dict(), actor)
        self._cluster_cache = None  # a new cluster similarity applies now, not after the next round
        return s

    def face_quality(self) -> dict[str, float]:
        """The quality thresholds: ``min_px`` (shorter side of the face box, photo pixels), ``min_prob``
        (detection probability) and ``min_rel`` (share of the photo's largest face); faces below any are
        hidden."""
        return self.library.face_quality()

    def set_face_quality(self, min_px: float, min_prob: float, actor: str = "admin", min_rel: float = 0.0) -> int:
        """Store the quality thresholds and apply them to every face now (hidden faces are kept: never asked,
        trained on or counted as remaining, listed by :meth:`hidden_faces`). Returns how many are hidden."""
        with self._lock:
            n = self.library.set_face_quality(float(min_px), float(min_prob), actor, float(min_rel))
        self._cluster_cache = None
        return n

    def faces_below_quality(self, min_px: float, min_prob: float, min_rel: float = 0.0) -> int:
        """How many faces these thresholds would hide (a preview: nothing is stored or changed)."""
        return self.library.count_below_quality(min_px, min_prob, min_rel)

    def hidden_faces(self, limit: int = 1000) -> list[int]:
        """Faces hidden by the quality thresholds, smallest first (to show on request)."""
        return self.library.hidden_face_ids(limit)

    def unhide_face(self, face_id: int, actor: str) -> bool:
        """Show a hidden face anyway ("name it anyway"): it joins the loop again and is leased to ``actor``, so
        it is the next face they see on the Annotate page. Undoable there (it is hidden again). Applying the
        thresholds again re-hides it. Returns False (nothing recorded) if the face was not hidden."""
        actor = self._check_annotator(actor)
        with self._lock, self.library.transaction():
            lib = self.library
            if not lib.set_face_hidden(face_id, False, actor):
                return False
            lib.add_action(actor, SCOPE_ANNOTATE, "unhide", {"face_id": face_id})
            lib.lease(face_id, actor, self.loop_settings().lease_seconds)
        self._cluster_cache = None
        return True

    # ------------------------------------------------------------ caches
    def _index(self, backbone: str) -> FaceIndex | None:
        """The FAISS index of ``backbone`` for a request; never a long build on the request's thread.

        An index agreeing with the database (in memory or on disk) serves at once. Otherwise a small one
        (exact, under :data:`storage.index.IVF_THRESHOLD` faces) is rebuilt here, and a large one is rebuilt
        by a background ``index`` job while the previous copy in memory, if any, keeps serving (None before
        the first: suggestions then come from the classifiers only). While an import or a swap writes, the
        copy in memory keeps serving too.
        """
        lib = self.library
        c = self._index_cache
        writing = self.jobs.running("import") or self.jobs.running("backbone") or self.jobs.running("index")
        if c is not None and c[0] == backbone and writing:
            return c[1]
        idx = self.indexes.peek(backbone)
        if idx is None:
            n = lib.embedding_count(backbone)
            if n == 0:
                return None
            if n < IVF_THRESHOLD and not writing:
                idx = self.indexes.rebuild(backbone)
            else:
                if not writing:
                    self.start_index_build(backbone)
                return c[1] if c is not None and c[0] == backbone else None
        self._index_cache = (backbone, idx)
        return idx

    def start_index_build(self, backbone: str | None = None) -> Job:
        """Rebuild the FAISS index of ``backbone`` (default: the library's) from the database, as a job."""
        backbone = backbone or self.backbone

        def work(progress) -> dict[str, Any]:
            progress(0, 1, f"building the {backbone} index")
            with self._worker_library() as lib:
                idx = IndexStore(lib).rebuild(backbone)
            progress(1, 1, f"{idx.ntotal} faces indexed ({idx.kind})")
            return {"backbone": backbone, "faces": idx.ntotal, "kind": idx.kind}

        return self.jobs.submit("index", f"build the {backbone} index", work, on_done=self._after_write_job)

    def index_info(self) -> dict[str, Any]:
        """The search index of the library's backbone: ``factory`` (the setting), ``kind`` (the structure
        open now; None before one is open), ``faces``, ``bytes_per_face``, ``exact`` (holds raw vectors)."""
        backbone = self.backbone
        idx = self.indexes.peek(backbone)
        info: dict[str, Any] = {"backbone": backbone, "factory": self.indexes.factory(), "kind": None,
                                "faces": self.library.embedding_count(backbone), "bytes_per_face": None,
                                "exact": None}
        if idx is not None:
            info.update(kind=idx.kind, faces=idx.ntotal, exact=idx.exact_vectors,
                        bytes_per_face=round(idx.memory_bytes() / idx.ntotal, 1) if idx.ntotal else None)
        return info

    def set_index_factory(self, factory: str, actor: str = "admin") -> Job | None:
        """Store the index structure (``"auto"`` or a FAISS factory string such as ``"IVF4096,PQ32"``;
        ValueError names a bad one) and rebuild the index in a background job (None: nothing embedded yet).
        Searches keep the current index until the new one is built."""
        from storage.index import INDEX_SETTING, check_factory

        backbone = self.backbone
        dim = self.library.embedding_dim(backbone)
        spec = check_factory(factory, dim or 128)  # before the first face: at least a string FAISS reads
        self.library.set_setting(INDEX_SETTING, {"factory": spec}, actor)
        return self.start_index_build(backbone) if dim else None

    def _model(self) -> ActiveLoop | None:
        """The loop (classifiers) of the latest round on the current backbone (None before any round)."""
        backbone = self.backbone
        key = (backbone, self.library.last_round_id())
        if self._model_cache is not None and self._model_cache[0] == key:
            return self._model_cache[1]
        model = load_loop(self.library, backbone)
        self._model_cache = (key, model)
        return model

    # -------------------------------------------------------------- misc
    def events(self, limit: int = 100) -> list[dict]:
        """The latest entries of the append-only event log, newest first."""
        return self.library.events(limit=limit)

    def stats(self, detail: bool = True) -> dict[str, Any]:
        """Library counts plus the backbone, rounds run and faces still to label (without ``detail``:
        only what costs no scan, for the sidebar on every key press)."""
        st = self.library.stats(detail=detail)
        st["backbone"] = self.backbone
        st["rounds"] = self.library.round_count()
        st["to_label"] = self.remaining()
        return st
