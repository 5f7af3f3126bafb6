"""The loop runs itself: a round starts in the background after enough answers or when the queue runs low.

Every answer (one face, a batch, a review decision; see :func:`answer`) calls :meth:`AutoRoundMixin.after_answer`; when the
library's loop settings say a round is due, it is started as the usual ``round`` job, so annotators never
need the Admin page to keep going. Nothing starts while a round, an import, a backbone swap or an index
build is running, or before any face is named.
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, TypeVar

from ..jobs import Job, JobBusyError

log = logging.getLogger("aspl.service")

AUTO_ACTOR = "auto"  # the actor recorded on rounds started by the loop itself
_BLOCKING_JOBS = ("round", "import", "backbone", "index")
F = TypeVar("F", bound=Callable[..., Any])


def answer(method: F) -> F:
    """Mark a service method as an annotator's answer: after it returns, a due round starts by itself
    (:meth:`AutoRoundMixin.after_answer`). The method takes an ``annotator`` argument."""
    sig = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = method(self, *args, **kwargs)
        self.after_answer(sig.bind(self, *args, **kwargs).arguments["annotator"])
        return out

    return wrapper  # type: ignore[return-value]


class AutoRoundMixin:
    """``after_answer`` / ``round_due``."""

    def round_due(self) -> str | None:
        """Why a round should start now (``"answers"`` or ``"queue"``), or None."""
        s = self.loop_settings()
        if s.round_every <= 0:
            return None
        lib = self.library
        c = lib.counts()
        if c["labels:human"] + c["labels:seed"] == 0:
            return None
        last = lib.last_round_brief()
        answers = lib.count_actions_since(last["started_at"] if last else None)
        if answers >= s.round_every:
            return "answers"
        if last is not None and answers > 0 and last["queries"] > s.queue_low \
                and lib.open_queue_count() <= s.queue_low:
            return "queue"  # the round's questions are nearly used up: have the next ones ready
        return None

    def after_answer(self, actor: str) -> Job | None:
        """Start a background round if one is due (see :meth:`round_due`); returns its job, else None."""
        if any(self.jobs.running(k) for k in _BLOCKING_JOBS):
            return None
        with self._lock:
            why = self.round_due()
            if why is not None and self.library.held_elsewhere("round"):
                return None  # another app server is running one: its results are this one's too
        if why is None:
            return None
        try:
            job = self.start_round(AUTO_ACTOR)
        except JobBusyError:
            return None
        log.info("round started by itself (%s) after %s's answer", why, actor)
        return job

    def loop_state(self) -> dict[str, Any]:
        """Where the loop stands for the pages: ``done`` (nothing left to answer), ``round_running``,
        ``remaining`` and the answers since the last round."""
        lib = self.library
        last = lib.last_round_brief()
        remaining = self.remaining()
        return {"done": remaining == 0 and self.has_faces(), "remaining": remaining,
                "round_running": self.jobs.running("round") is not None or self.library.held_elsewhere("round"),
                "answers_since_round": lib.count_actions_since(last["started_at"] if last else None),
                "round_every": self.loop_settings().round_every}
