"""The service's shared plumbing: connections for jobs, models, the library's backbone, caches."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

from storage import IndexStore, Library, StateFormatError
from storage.index import FaceIndex

from ..engine.loop import ActiveLoop, StateError
from ..jobs import Job, JobRegistry
from .errors import ServiceError
from .settings import LoopSettings

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
        self._index_cache: tuple[str, int, FaceIndex] | None = None
        self._model_cache: tuple[Any, Any] | None = None
        self._cluster_cache: tuple[Any, list] | None = None

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
            self._tuned_cache.clear()  # a fine-tuned backbone is reloaded with its new weights
            self._forget_model()

    def _forget_model(self) -> None:
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

    # ------------------------------------------------------------ caches
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
