"""Named exceptions of the labelling service."""
from __future__ import annotations


class ServiceError(Exception):
    """A request the service cannot carry out (the message says why)."""


class NothingToUndoError(ServiceError):
    """The annotator has no action left to undo in that scope."""


class FaceClosedError(ServiceError):
    """The face cannot take this decision (not a face, or already labelled)."""
