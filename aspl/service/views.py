"""Plain view objects the service hands to the pages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Suggestion:
    """A person proposed for a face: ``score`` is the merged probability (0-1) of
    :meth:`aspl.service.Service.suggestions`; ``source`` what it rests on (``classifier``, ``neighbours``
    or ``classifier+neighbours``); ``thumb_face_id`` a face to show (the nearest labelled one if any)."""

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
    """Faces to label in one action: ``kind`` ``person`` (a person's auto-labelled and probable faces),
    ``check`` (a person's auto-labels far from their named faces), ``cluster`` (similar unclear faces,
    unnamed), ``guesses`` (faces of several people, each with its own likeliest person in ``persons``) or
    ``open`` (faces like nobody named)."""

    key: str
    kind: str
    title: str
    face_ids: list[int]
    person_id: int | None = None
    scores: dict[int, float] = field(default_factory=dict)
    persons: dict[int, int] = field(default_factory=dict)  # kind "guesses": face -> its likeliest person
    unticked: list[int] = field(default_factory=list)  # shown unticked at first: they look like someone else


#: Batch group kinds of one named person: unticked faces are recorded as not that person.
PERSON_KINDS = ("person", "check")


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
    """Where an export wrote its files, and how many rows and people it holds."""

    folder: Path
    csv: Path
    parquet: Path
    crops: Path | None
    crops_zip: Path | None
    rows: int
    people: int
