"""Import progress with counts, rate and time left; the summary names the photos without a face and the ones
already in the library (the first 20, then a count)."""
import shutil
import threading

from aspl.jobs import Job, format_duration
from aspl.service import Service
from importfakes import FakeDetector, FakeEmbedder, photo
from storage import Library


def test_job_rate_eta_and_its_progress_line(monkeypatch):
    import aspl.jobs as jobs

    now = [1000.0]
    monkeypatch.setattr(jobs.time, "time", lambda: now[0])
    job = Job(1, "import", "import /photos", started=now[0])
    assert job.describe("files") == "import /photos: starting… · 0 s so far"
    job.progress(0, 0, "loading the face detector")
    assert job.rate is None and job.eta is None
    now[0] += 30  # loading takes a while: not counted in the rate
    job.progress(0, 100, "0/100 files")
    now[0] += 10
    job.progress(20, 100, "20/100 files · 25 faces found")
    assert job.rate == 2.0 and job.eta == 40.0
    assert job.describe("files") == ("import /photos: 20/100 files · 25 faces found · 2 files/s · about 40 s left "
                                     "· 40 s so far")
    assert job.describe() == "import /photos: 20/100 files · 25 faces found · 40 s so far"  # no unit: no rate
    job.progress(0, 50, "embedding")  # a new count (another total) starts its own rate
    assert job.rate is None
    assert [format_duration(s) for s in (0.4, 59, 185, 7620)] == ["0 s", "59 s", "3 min 05 s", "2 h 07 min"]


def test_import_reports_counts_while_running_and_names_files_after(tmp_path, monkeypatch):
    src = tmp_path / "photos"
    first = photo(src / "a00_face.png", True, 0)
    for i in range(1, 4):
        photo(src / f"a0{i}_face.png", True, i)
    for i in range(23):  # more photos without a face than a summary names
        photo(src / "dark" / f"d{i:02d}.png", False, 100 + i)
    monkeypatch.setenv("ASPL_IMPORT_ROOTS", str(tmp_path))
    gate = threading.Event()
    svc = Service(Library(tmp_path / "lib"), detector_factory=lambda: FakeDetector(gate),
                  embedder_factory=FakeEmbedder)
    job = svc.start_import(src, "admin")
    try:
        for _ in range(200):  # the first batch of 16 is done, the second waits at the gate
            if job.done == 16:
                break
            threading.Event().wait(0.05)
        assert (job.done, job.total) == (16, 27), job.message
        assert job.message.startswith("16/27 files · 4 faces found · 0 rejected · 0 already in the library · "
                                      "12 without a face"), job.message
        line = job.describe("files")
        assert "files/s" in line and " left" in line, line
    finally:
        gate.set()
    job.wait(60)
    assert job.status == "done", job.error
    s = job.result["summary"]
    assert (s["imported"], s["faces"], s["without_faces"], s["duplicates"]) == (27, 4, 23, 0)
    assert s["without_face_files"] == [f"dark/d{i:02d}.png" for i in range(20)]
    assert s["duplicate_files"] == []

    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(first, again / "copy.png")
    photo(again / "new.png", True, 99)
    job = svc.start_import(again, "admin").wait(60)
    s = job.result["summary"]
    assert (s["imported"], s["duplicates"]) == (1, 1)
    assert s["duplicate_files"] == [{"file": "copy.png", "same_as": str(first)}]
    event = svc.events(5)
    imp = next(e for e in event if e["kind"] == "import")
    assert "duplicate_files" not in str(imp)  # the event log keeps the counts only
