"""The ASPL engine: pure algorithm code, free of UI and SQL.

It takes embeddings, label state and settings, and returns decisions (queries,
pseudo-labels with weights, unclear faces, flags); a thin layer applies them to
storage. Modules:

* :mod:`~aspl.engine.classifier`: one-vs-all linear SVMs per person.
* :mod:`~aspl.engine.measures`: scores -> numbers (hinge loss, best score,
  margin, entropy, least confidence, self-paced easiness).
* :mod:`~aspl.engine.selection`: numbers -> rows (queries, self-paced step,
  CEAL thresholds, FAISS seeding of new people).
* :mod:`~aspl.engine.pace`: the per-person pace lambda.
* :mod:`~aspl.engine.recert`: re-certification of human labels, Wilson intervals.
* :mod:`~aspl.engine.finetune`: fine-tuning a trainable torch backbone.
* :mod:`~aspl.engine.engines`: ASPL, SPL, CEAL, AL_RAND, AL_ALL behind one ``step``.
* :mod:`~aspl.engine.simulate`: the paper's protocol with an oracle annotator.
"""
from .classifier import DEFAULT_C, OneVsAllSVM
from .engines import (
    METHODS,
    AllEngine,
    ASPLEngine,
    ASPLSettings,
    CEALEngine,
    CEALSettings,
    Engine,
    EngineSettings,
    RandomEngine,
    RoundResult,
    SPLEngine,
    make_engine,
)
from .finetune import FineTuneResult, FineTuneSettings, finetune_embedder
from .measures import best_score, entropy, hinge_loss, least_confidence, margin, self_paced_easiness, softmax
from .pace import Pace
from .recert import PrecisionEstimate, Recertifier, estimate_precision, sample_for_verification, wilson_interval
from .selection import (
    UNLABELLED,
    SelfPacedSelection,
    ceal_pseudo_labels,
    ceal_threshold,
    seed_new_person,
    select_highest,
    select_lowest,
    select_random,
    self_paced_labels,
)

__all__ = [
    "DEFAULT_C", "OneVsAllSVM",
    "METHODS", "Engine", "EngineSettings", "ASPLEngine", "ASPLSettings", "SPLEngine", "CEALEngine",
    "CEALSettings", "RandomEngine", "AllEngine", "RoundResult", "make_engine",
    "FineTuneResult", "FineTuneSettings", "finetune_embedder",
    "best_score", "entropy", "hinge_loss", "least_confidence", "margin", "self_paced_easiness", "softmax",
    "Pace",
    "PrecisionEstimate", "Recertifier", "estimate_precision", "sample_for_verification", "wilson_interval",
    "UNLABELLED", "SelfPacedSelection", "ceal_pseudo_labels", "ceal_threshold", "seed_new_person",
    "select_highest", "select_lowest", "select_random", "self_paced_labels",
]
