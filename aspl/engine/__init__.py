"""The ASPL engine: pure algorithm code, free of UI and SQL.

It takes embeddings, label state and settings, and returns decisions (queries,
pseudo-labels with weights, unclear faces, flags); a thin layer applies them to
storage. Modules:

* :mod:`~aspl.engine.classifier`: one-vs-all linear SVMs per person.
* :mod:`~aspl.engine.batched`: the same SVMs trained together (batched Newton, for large libraries).
* :mod:`~aspl.engine.measures`: scores -> numbers (hinge loss, best score,
  margin, entropy, least confidence, self-paced easiness).
* :mod:`~aspl.engine.summary`: per-face summaries of score blocks (best, second, pace and
  positive counts, own score): a round's decisions without the full faces x people matrix.
* :mod:`~aspl.engine.selection`: numbers -> rows (queries, self-paced step,
  CEAL thresholds, exact neighbour seeding of new people: one index over the unclear faces per
  round, one batched float32 search with a float64 check).
* :mod:`~aspl.engine.pace`: the per-person pace lambda.
* :mod:`~aspl.engine.preprocess`: embedding centring before classification.
* :mod:`~aspl.engine.recert`: re-certification of human labels, Wilson intervals.
* :mod:`~aspl.engine.loop`: :class:`ActiveLoop`, the one loop the app and the simulation drive
  (faces keyed by id, centring, fine-tuning schedule, state as plain data).
* :mod:`~aspl.engine.engines`: ASPL, SPL, CEAL, AL_RAND, AL_ALL behind one ``step``.
* :mod:`~aspl.engine.simulate`: the paper's protocol with an oracle annotator
  (not imported here; ``from aspl.engine.simulate import simulate``).
"""
from .batched import BatchedOneVsAll, Top2
from .classifier import DEFAULT_C, OneVsAllSVM
from .engines import (
    CLASSIFIERS,
    METHOD_NAMES,
    METHODS,
    SOURCE_HUMAN,
    SOURCE_NONE,
    SOURCE_PSEUDO,
    SOURCE_SEED,
    VARIANTS,
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
from .loop import ActiveLoop, LoopRound, StateError
from .measures import (
    best_score,
    entropy,
    hinge_loss,
    least_confidence,
    margin,
    score_margin,
    self_paced_easiness,
    softmax,
    summary_best_score,
    summary_margin,
)
from .pace import Pace
from .preprocess import center_embeddings, mean_pairwise_cosine
from .recert import (
    PrecisionEstimate,
    Recertifier,
    estimate_precision,
    sample_for_verification,
    uniquely_predicted,
    uniquely_predicted_summary,
    wilson_interval,
)
from .selection import (
    UNLABELLED,
    NeighbourIndex,
    SelfPacedSelection,
    ceal_pseudo_labels,
    ceal_threshold,
    mean_distance,
    mean_distances,
    nearest_rows,
    seed_new_person,
    select_highest,
    select_lowest,
    select_random,
    self_paced_labels,
    self_paced_select,
)
from .summary import ScoreSummary, map_score_blocks, summarize_model, summarize_scores

__all__ = [
    "DEFAULT_C", "OneVsAllSVM", "BatchedOneVsAll", "Top2", "CLASSIFIERS",
    "METHODS", "METHOD_NAMES", "VARIANTS", "SOURCE_NONE", "SOURCE_HUMAN", "SOURCE_PSEUDO", "SOURCE_SEED",
    "Engine", "EngineSettings", "ASPLEngine", "ASPLSettings", "SPLEngine", "CEALEngine",
    "CEALSettings", "RandomEngine", "AllEngine", "RoundResult", "make_engine",
    "ActiveLoop", "LoopRound", "StateError",
    "best_score", "entropy", "hinge_loss", "least_confidence", "margin", "score_margin", "self_paced_easiness",
    "softmax", "summary_best_score", "summary_margin",
    "ScoreSummary", "summarize_scores", "summarize_model", "map_score_blocks",
    "Pace",
    "center_embeddings", "mean_pairwise_cosine",
    "PrecisionEstimate", "Recertifier", "estimate_precision", "sample_for_verification", "uniquely_predicted",
    "uniquely_predicted_summary", "wilson_interval",
    "UNLABELLED", "SelfPacedSelection", "ceal_pseudo_labels", "ceal_threshold", "mean_distance", "mean_distances",
    "nearest_rows", "NeighbourIndex", "seed_new_person",
    "select_highest", "select_lowest", "select_random", "self_paced_labels", "self_paced_select",
]
