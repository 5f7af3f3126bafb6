"""The labelling loop's settings, and the constants pages share with the service."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCOPE_ANNOTATE, SCOPE_REVIEW, SCOPE_PEOPLE = "annotate", "review", "people"
SCOPES = (SCOPE_ANNOTATE, SCOPE_REVIEW, SCOPE_PEOPLE)
REVIEW_SAMPLES = ("random", "low")


@dataclass
class LoopSettings:
    """The labelling loop's settings (stored in the ``loop`` setting).

    ``method`` and ``engine`` (overrides of the method's settings dataclass)
    build the engine; ``center``: subtract the labelled mean before the engine
    (stored with the loop state); ``lease_seconds``: how long a shown face stays
    reserved for its annotator; ``review_random`` / ``review_low``: review sample
    sizes; ``batch_size``: faces per batch grid; ``cluster_similarity``: cosine
    similarity (after removing the mean embedding) above which unclear faces are grouped for batch
    labelling; ``support_similarity``: the same similarity a face needs with one of a person's named
    faces to be offered in that person's Batch group (auto-labels further away go to a separate check group).
    ``engine['finetune_every'] = F`` fine-tunes a trainable backbone after every
    F-th round (a background job; frozen backbones such as dlib are skipped).
    ``round_every``: a round starts by itself in the background after this many answers since the last
    one (0: only when started on the Admin page); ``queue_low``: ... or when no more than this many of
    the round's questions are still open; ``auto_trust``: auto-labels above this confidence are never
    asked (they count as answered; 1: any auto-label may be asked).
    """

    # margin queries, the pace at its top from the start and auto-labels only near a named face of the
    # person: no more labels than CEAL at any accuracy level on lfw-dev (bench/results/engine.md)
    method: str = "aspl-guarded"
    # batched one-vs-all training: the same top person as liblinear on 100% of lfw-dev and a 100k x 2,000
    # round in 7-17 s, where liblinear takes an estimated 35-40 min (bench/results/classifier.md)
    engine: dict[str, Any] = field(default_factory=lambda: {"query_size": 50, "min_labels": 2,
                                                            "classifier": "batched"})
    lease_seconds: float = 120.0
    review_random: int = 12
    review_low: int = 12
    batch_size: int = 48  # one grid of 8 x 6: 24 split 62 people into more groups (bench/effort_bench.py)
    cluster_similarity: float = 0.6  # centred cosine: lfw-dev groups 99.6% pure (2,000 faces), 97.4% (300)
    support_similarity: float = 0.7
    center: bool = False
    round_every: int = 10
    queue_low: int = 5
    auto_trust: float = 0.9

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        from ..engine import make_engine

        make_engine(self.method, **self.engine)  # raises ValueError naming the bad setting / method
        if not self.lease_seconds > 0:
            raise ValueError(f"lease_seconds must be > 0, got {self.lease_seconds!r}")
        for k in ("review_random", "review_low", "batch_size", "round_every", "queue_low"):
            v = getattr(self, k)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{k} must be an integer >= 0, got {v!r}")
        if not -1.0 <= self.cluster_similarity <= 1.0:
            raise ValueError(f"cluster_similarity must be in [-1, 1], got {self.cluster_similarity!r}")
        if not -1.0 <= self.support_similarity <= 1.0:
            raise ValueError(f"support_similarity must be in [-1, 1], got {self.support_similarity!r}")
        if not 0.0 <= self.auto_trust <= 1.0:
            raise ValueError(f"auto_trust must be in [0, 1] (1: ask about any auto-label), got {self.auto_trust!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "LoopSettings":
        """Settings from a stored dict; unknown keys are a ValueError naming the valid ones."""
        d = dict(d or {})
        valid = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - valid)
        if bad:
            raise ValueError(f"unknown loop setting(s) {', '.join(bad)}; valid: {', '.join(sorted(valid))}")
        return cls(**d)
