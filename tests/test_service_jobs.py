"""Background jobs: progress, failures reported, one job of a kind at a time."""
import threading

import pytest

from aspl.jobs import JobBusyError, JobRegistry


def test_progress_result_and_busy():
    reg = JobRegistry()
    gate = threading.Event()

    def work(progress):
        progress(1, 4, "one of four")
        assert gate.wait(5)
        return 42

    job = reg.submit("round", "test", work)
    with pytest.raises(JobBusyError, match="a round job is already running"):
        reg.submit("round", "again", work)
    assert reg.running("round") is job and reg.latest("round") is job
    gate.set()
    job.wait(5)
    assert (job.status, job.result, job.fraction, job.message) == ("done", 42, 1.0, "one of four")
    assert reg.running() is None


def test_failure_is_reported_not_raised():
    reg = JobRegistry()
    done = []

    def bad(progress):
        raise ValueError("bad input 7")

    job = reg.submit("import", "bad", bad, on_done=done.append).wait(5)
    assert job.status == "failed" and job.error == "ValueError: bad input 7" and done == [job]
