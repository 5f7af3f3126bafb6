"""The labelling service: what the app's pages call; it applies :class:`aspl.engine.ActiveLoop`'s decisions
to storage. No Streamlit here, and no page touches :class:`storage.Library` directly.

One module per responsibility, composed into :class:`Service`:

=============  ================================================================
``core``       construction, connections for jobs, models, caches, settings
``rounds``     a round: embeddings + labels -> ``ActiveLoop.step`` -> storage
``autoround``  the loop runs itself: a background round after enough answers
``tuning``     fine-tuning a trainable backbone after every F-th round
``annotate``   next face under a lease, suggestions, confirm / new / not a face / skip
``batch``      a person's auto-labels or a cluster of unclear faces in one action
``review``     re-certifying auto-labels, precision, flagged human labels
``people``     rename, merge, move a face, remove a label
``undo``       the registry ``kind -> (describe, undo)`` and ``undo()``
``imports``    uploads, folder imports and backbone swaps (background jobs)
``export``     CSV / Parquet / crops
``auth``       accounts, roles, throttled logins, signed sessions
``images``     crops, photos with boxes, explanations
=============  ================================================================
"""
from __future__ import annotations

from .annotate import AnnotateMixin
from .autoround import AUTO_ACTOR, AutoRoundMixin
from .auth import MIN_PASSWORD_LENGTH, ROLES, AuthError, AuthMixin, ThrottledError
from .batch import BatchMixin
from .core import ServiceCore, library_backbone
from .errors import FaceClosedError, NothingToUndoError, ServiceError
from .export import ExportMixin
from .images import ImagesMixin
from .imports import ImportsMixin
from .people import PeopleMixin
from .review import ReviewMixin
from .rounds import RoundsMixin
from .settings import REVIEW_SAMPLES, SCOPE_ANNOTATE, SCOPE_PEOPLE, SCOPE_REVIEW, SCOPES, LoopSettings
from .tuning import TuningMixin
from .undo import UNDO, UndoMixin
from .views import PERSON_KINDS, BatchGroup, ExportResult, FaceView, ReviewItem, Suggestion


class Service(AnnotateMixin, AutoRoundMixin, BatchMixin, ReviewMixin, PeopleMixin, UndoMixin, RoundsMixin, TuningMixin,
              ImportsMixin, ExportMixin, AuthMixin, ImagesMixin, ServiceCore):
    """The facade the pages use: ``Service(Library(path))``; long work runs as jobs in ``service.jobs``."""


__all__ = [
    "Service", "AUTO_ACTOR", "ServiceError", "AuthError", "ThrottledError", "ROLES", "NothingToUndoError", "FaceClosedError", "LoopSettings", "library_backbone",
    "SCOPE_ANNOTATE", "SCOPE_REVIEW", "SCOPE_PEOPLE", "SCOPES", "REVIEW_SAMPLES", "MIN_PASSWORD_LENGTH", "UNDO",
    "Suggestion", "FaceView", "BatchGroup", "PERSON_KINDS", "ReviewItem", "ExportResult",
]
