"""Errors raised by the face library."""
from __future__ import annotations


class StorageError(Exception):
    """Base class of storage errors."""


class NotFoundError(StorageError, KeyError):
    """A face, person, image or label id that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class LabelConflictError(StorageError):
    """A face already has a live human label (e.g. two annotators at once)."""


class NameConflictError(StorageError):
    """Another person already has the name asked for."""


class PersonInUseError(StorageError):
    """A person cannot be deleted: faces are still labelled as it, or people are merged into it."""


class BusyError(StorageError):
    """Another connection (this process or another app server) holds the library-wide lock asked for."""
