"""Several app servers on one PostgreSQL library: different faces per annotator, one round at a time, and
every server sees a round's results. Each server is its own process with its own Service."""
import multiprocessing as mp

import pytest

from apphelpers import build_synthetic
from storage import Library


def _annotate(url: str, data: str, annotator: str, truth: dict, n: int, out) -> None:
    """One app server: ``n`` answers by ``annotator`` through the Service, as the Annotate page makes them."""
    from aspl.service import Service

    svc = Service(Library(url, data_dir=data))
    got = []
    for _ in range(n):
        face = svc.next_face(annotator)
        if face is None:
            break
        svc.confirm(face, svc.library.person_id(truth[face], create=True), annotator)
        got.append(face)
    out.put((annotator, got))


def _hold_round_lock(url: str, data: str, holding, release) -> None:
    """A server in the middle of a round: holds the round lock until told to let go."""
    lib = Library(url, data_dir=data)
    with lib.exclusive("round"):
        holding.set()
        release.wait(60)


def test_two_servers_share_one_library(pg_server, tmp_path):
    from aspl.service import Service, ServiceError

    url, data = pg_server.new_database(), str(tmp_path / "data")
    lib, truth = build_synthetic(None, n_people=4, per_person=10, human_per_person=1,
                                 library=Library(url, data_dir=data))
    svc = Service(lib)
    svc.set_loop_settings({"round_every": 0, "engine": {"min_labels": 1}})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    servers = [ctx.Process(target=_annotate, args=(url, data, f"annotator-{i}", truth, 6, out)) for i in range(2)]
    for p in servers:
        p.start()
    got = dict(out.get(timeout=120) for _ in servers)
    for p in servers:
        p.join(60)
        assert p.exitcode == 0
    a, b = got.values()
    assert len(a) == len(b) == 6 and not set(a) & set(b)  # two servers, two annotators, never the same face
    human = lib.label_rows(("human",))
    assert len(human) == len({r["face_id"] for r in human}) == 4 + 12

    # a round running on another server: this one refuses to start a second and says why
    holding, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_round_lock, args=(url, data, holding, release))
    other.start()
    assert holding.wait(60)
    assert svc.loop_state()["round_running"]
    with pytest.raises(ServiceError, match="already running on this library"):
        svc.run_round("admin")
    release.set()
    other.join(60)
    assert not svc.loop_state()["round_running"]

    # a round run by another server: this server's service sees its results
    ran = ctx.Process(target=_run_round, args=(url, data))
    ran.start()
    ran.join(120)
    assert ran.exitcode == 0
    assert svc.stats()["rounds"] == 1 and len(lib.label_rows(("auto",))) > 0
    assert svc._model() is not None  # the other server's classifiers, loaded from the library


def _run_round(url: str, data: str) -> None:
    from aspl.service import Service

    Service(Library(url, data_dir=data)).run_round("server-b")


def test_a_library_folder_runs_one_round_at_a_time_across_connections(tmp_path):
    """A SQLite file (an flock beside it; a PostgreSQL advisory lock under ASPL_TEST_DB=postgresql)."""
    from apphelpers import synthetic_service
    from aspl.service import ServiceError
    from pgserver import library_at

    svc, _ = synthetic_service(tmp_path / "lib", human_per_person=1)
    other = library_at(tmp_path / "lib")  # another process's connection (its own lock file handle)
    with other.exclusive("round"):
        assert svc.loop_state()["round_running"]
        with pytest.raises(ServiceError, match="already running"):
            svc.run_round("admin")
    assert not svc.loop_state()["round_running"]
    assert svc.run_round("admin")["auto_labels"] > 0
    other.close()
