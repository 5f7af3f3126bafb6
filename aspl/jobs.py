"""Background jobs with progress: long work (rounds, imports, re-embedding) off the page's thread.

A :class:`JobRegistry` runs each job in its own daemon thread. A job function
receives a progress callback ``(done, total, message)``; pages poll
:meth:`JobRegistry.latest` and draw a progress bar. At most one job of a kind
runs at a time (a second submit raises :class:`JobBusyError`).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]

JOB_STATES = ("running", "done", "failed")


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class JobBusyError(RuntimeError):
    """A job of the same kind is already running."""


@dataclass
class Job:
    """One background job and its progress."""

    id: int
    kind: str
    label: str
    status: str = "running"
    done: int = 0
    total: int = 0
    message: str = ""
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)
    _since: tuple[float, int, int] | None = field(default=None, repr=False)  # (time, done, total) of the count's start

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] (0 while the total is unknown)."""
        if self.status == "done":
            return 1.0
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def rate(self) -> float | None:
        """Items done per second since the current total was first reported (None until one is done)."""
        if self._since is None:
            return None
        t0, d0, _ = self._since
        dt, n = (self.finished or time.time()) - t0, self.done - d0
        return n / dt if n > 0 and dt > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current :attr:`rate` (None while it is unknown or after the job ended)."""
        r = self.rate
        return max(0.0, (self.total - self.done) / r) if r and self.running else None

    def describe(self, unit: str = "") -> str:
        """The progress line a page shows: label and message; with ``unit`` (what ``done`` counts, e.g.
        ``files``) also the rate and the time left once they can be measured; then the time spent."""
        parts = [f"{self.label}: {self.message or 'starting…'}"]
        rate = self.rate
        if unit and rate:
            parts.append(f"{rate:.2g} {unit}/s" if rate < 10 else f"{rate:.0f} {unit}/s")
            if self.eta is not None:
                parts.append(f"about {format_duration(self.eta)} left")
        parts.append(f"{format_duration(self.seconds)} so far")
        return " · ".join(parts)

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = int(done), int(total)
        if message:
            self.message = message
        if self.total and (self._since is None or self._since[2] != self.total):  # a new count (phase) starts
            self._since = (time.time(), self.done, self.total)

    def wait(self, timeout: float | None = None) -> "Job":
        """Block until the job ends (tests, CLI)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self


class JobRegistry:
    """Runs and remembers background jobs (thread-safe)."""

    def __init__(self, keep: int = 50):
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self.keep = keep

    def submit(self, kind: str, label: str, fn: Callable[[ProgressFn], Any],
               on_done: Callable[[Job], None] | None = None) -> Job:
        """Start ``fn(progress)`` in a thread; ``on_done(job)`` runs in that thread after it ends."""
        with self._lock:
            busy = self.running(kind)
            if busy is not None:
                raise JobBusyError(f"a {kind} job is already running ({busy.label}, {busy.fraction:.0%}); "
                                   "wait for it to finish")
            job = Job(next(self._ids), kind, label)
            self._jobs[job.id] = job
            old = sorted(self._jobs)[:-self.keep]
            for i in old:
                if not self._jobs[i].running:
                    del self._jobs[i]

        def target() -> None:
            try:
                job.result = fn(job.progress)
                job.status = "done"
            except Exception as e:  # noqa: BLE001 - a job's failure is reported on its page, not raised
                log.error("job %s (%s) failed: %s\n%s", job.id, label, e, traceback.format_exc())
                job.error = f"{type(e).__name__}: {e}"
                job.status = "failed"
            finally:
                job.finished = time.time()
                if on_done is not None:
                    try:
                        on_done(job)
                    except Exception:  # noqa: BLE001
                        log.exception("on_done of job %s failed", job.id)

        job._thread = threading.Thread(target=target, name=f"aspl-job-{job.id}-{kind}", daemon=True)
        job._thread.start()
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def running(self, kind: str | None = None) -> Job | None:
        """The running job of ``kind`` (any kind when None), if any."""
        for j in list(self._jobs.values()):
            if j.running and (kind is None or j.kind == kind):
                return j
        return None

    def latest(self, kind: str) -> Job | None:
        """The most recent job of ``kind``."""
        jobs = [j for j in list(self._jobs.values()) if j.kind == kind]
        return max(jobs, key=lambda j: j.id) if jobs else None

    def jobs(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)
