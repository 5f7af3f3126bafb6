"""Rounds: the library's embeddings and human labels -> one :class:`ActiveLoop` step -> storage.

A round writes auto-labels (minus rejected pairs and faces marked not a face),
the ranked query queue, flagged human labels and per-round metrics; the loop's
state is saved as data per backbone. When the loop says fine-tuning is due, the
same background job fine-tunes a trainable backbone (see :mod:`.tuning`).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from storage import BusyError, IndexStore, Library

from ..engine import estimate_precision
from ..engine.loop import ActiveLoop
from ..jobs import Job, ProgressFn
from .core import library_backbone, load_loop, loop_settings_of
from .errors import ServiceError

log = logging.getLogger("aspl.service")


def review_precision(lib: Library, sample: str = "random", confidence: float = 0.95) -> Any:
    """Auto-label precision from the reviews of ``sample`` (Wilson interval)."""
    return estimate_precision([bool(r["correct"]) for r in lib.reviews(sample=sample)], confidence)


def _round_inputs(lib: Library, backbone: str, indexes: IndexStore | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """``(face_ids, X, labels, human_rows)`` of the faces in the loop: status ok and not hidden (faces
    marked not a face or stranger, and faces below the quality thresholds, are left out).

    The vectors come from ``indexes``' open index when it agrees with ``lib`` (no database read), else from
    the database."""
    ids, X = indexes.matrix(backbone, lib) if indexes is not None else lib.embeddings(backbone)
    if len(ids) == 0:
        raise ServiceError(f"no faces are embedded with {backbone!r} yet; import photos first")
    out = lib.face_ids_out_of_loop()  # not a face, strangers, hidden by the quality thresholds
    if out:
        keep = ~np.isin(ids, np.fromiter(out, np.int64, len(out)))
        if not keep.all():  # no copy of the matrix when every face is in the loop
            ids, X = ids[keep], X[keep]
    row_of = {int(f): i for i, f in enumerate(ids)}
    human_rows = lib.label_rows(("human", "seed"))
    labels = np.full(len(ids), -1, np.int64)
    for r in human_rows:
        i = row_of.get(r["face_id"])
        if i is not None:
            labels[i] = r["person_id"]
    return ids, X, labels, human_rows


def _prequential(lib: Library, active: ActiveLoop, backbone: str, ids: np.ndarray, X: np.ndarray,
                 human_rows: list[dict]) -> tuple[int, int]:
    """The previous model's hits and trials on faces labelled since it was trained."""
    prev = lib.last_round()
    if active.model_ is None or prev is None or prev["backbone"] != backbone \
            or active.model_.n_features_in_ != X.shape[1]:
        return 0, 0
    row_of = {int(f): i for i, f in enumerate(ids)}
    fresh = [r for r in human_rows if r["source"] == "human" and r["created_at"] > prev["started_at"]
             and r["face_id"] in row_of]
    if not fresh:
        return 0, 0
    pred = active.predict(X[[row_of[r["face_id"]] for r in fresh]])
    return int(sum(int(p) == r["person_id"] for p, r in zip(pred, fresh))), len(fresh)


class RoundsMixin:
    """``start_round`` / ``run_round`` / ``rounds``."""

    def start_round(self, actor: str = "admin") -> Job:
        """Run a round as a background job (see :meth:`run_round`)."""
        return self.jobs.submit("round", "labelling round", lambda progress: self.run_round(actor, progress),
                                on_done=self._after_write_job)

    def run_round(self, actor: str = "admin", on_progress: ProgressFn | None = None) -> dict[str, Any]:
        """One loop step; writes auto-labels, the queue, flags and metrics (fine-tunes when due). Returns
        the metrics."""
        with self._worker_library() as lib:
            try:
                with lib.exclusive("round"):  # one round at a time per library, whichever server starts it
                    metrics = self._run_round(lib, actor, on_progress or (lambda *a: None))
            except BusyError as e:
                raise ServiceError("a round is already running on this library (started by another app "
                                   "server or process); its results will show here when it ends") from e
        self._forget_model()
        return metrics

    def _run_round(self, lib: Library, actor: str, progress: ProgressFn) -> dict[str, Any]:
        t0 = time.perf_counter()
        backbone = library_backbone(lib)
        loop = loop_settings_of(lib)
        progress(0, 5, f"loading {backbone} embeddings")
        ids, X, labels, human_rows = _round_inputs(lib, backbone, self.indexes)
        if not (labels >= 0).any():
            raise ServiceError("a round needs at least one named face: label some faces on the Annotate page first")

        progress(1, 5, "loading the engine")
        active = load_loop(lib, backbone)
        fresh_loop = active is None or not active.matches(loop.method, loop.engine, loop.center)
        if fresh_loop:
            if active is not None:
                log.info("loop settings changed for %s: starting a fresh engine", backbone)
            active = ActiveLoop(loop.method, loop.engine, center=loop.center)
        preq_ok, preq_n = (0, 0) if fresh_loop else _prequential(lib, active, backbone, ids, X, human_rows)

        progress(2, 5, "training the classifiers")
        rnd = active.step(ids, X, labels, forbidden=lib.rejections())
        result = rnd.result
        round_id = lib.start_round(backbone, loop.method, actor, loop.as_dict())

        progress(3, 5, "writing auto-labels")
        f_auto, p_auto, w_auto = rnd.auto_labels
        auto = [(int(f), int(p), float(w)) for f, p, w in zip(f_auto, p_auto, w_auto)]
        trusted = {int(f) for f, w in zip(f_auto, w_auto) if w > loop.auto_trust}
        queries = [int(f) for f in rnd.queries if int(f) not in trusted]  # confident auto-labels: not asked
        unclear = [int(f) for f in rnd.unclear]
        flagged = [int(f) for f in rnd.set_aside]
        known = labels >= 0
        agreement = None
        if known.any() and len(result.model.classes_):
            agreement = float(np.mean(active.predict(X[known]) == labels[known]))
        prec = review_precision(lib)
        metrics = {
            "faces": int(len(ids)),
            "human_labels": int(known.sum()),
            "auto_labels": 0,
            "people_known": int(len(np.unique(labels[known]))),
            "people_modelled": int(len(result.model.classes_)),
            "unclear": len(unclear),
            "ambiguous": int(len(result.ambiguous)),
            "queries": len(queries),
            "trusted_not_asked": int(len(rnd.queries) - len(queries)),
            "flagged": len(flagged),
            "seeded": int(sum(len(v) for v in result.seeds.values())),
            "human_agreement": agreement,
            "prequential_accuracy": (preq_ok / preq_n) if preq_n else None,
            "prequential_n": preq_n,
            "review_precision": None if prec.n == 0 else prec.precision,
            "review_n": prec.n,
            "lambda_mean": float(np.mean(list(result.lambdas.values()))) if result.lambdas else None,
            "engine_round": int(result.round),
            "finetune": None,
        }
        with lib.transaction():
            labelled_now = lib.labelled_face_ids(("human", "seed"))  # answers given while the round ran
            auto = [a for a in auto if a[0] not in labelled_now]
            metrics["auto_labels"] = len(auto)
            lib.replace_auto_labels(round_id, auto)
            lib.set_queue(round_id, queries)
            # leases stay: an annotator looking at a face finishes it (expired leases lapse on their own)
            lib.save_loop_state(backbone, active.state_dict(), round_id)
            metrics["seconds"] = round(time.perf_counter() - t0, 3)
            lib.finish_round(round_id, metrics, unclear, flagged)
        progress(5, 5, f"round {round_id}: {metrics['auto_labels']} auto-labels, {len(queries)} queries")
        log.info("round %d done: %s", round_id, metrics)
        if rnd.finetune_due:
            metrics["finetune"] = self._finetune_after_round(lib, backbone, active, round_id, actor, progress)
            lib.update_round_metrics(round_id, {"finetune": metrics["finetune"]})
        return {"round": round_id, **metrics}

    def rounds(self) -> list[dict]:
        """Finished rounds, oldest first, with their metrics."""
        return self.library.rounds()
