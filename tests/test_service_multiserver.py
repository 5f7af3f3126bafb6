"""Several app servers on one PostgreSQL library: different faces per annotator, one round at a time, and
every server sees a round's results. Each server is its own process (``python -c``) with its own Service."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from apphelpers import build_synthetic
from storage import Library

TESTS = Path(__file__).resolve().parent

SERVER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path[:0] = [{tests!r}, {repo!r}]
    from aspl.service import Service
    from storage import Library
    role, url, data = sys.argv[1], sys.argv[2], sys.argv[3]
    lib = Library(url, data_dir=data)
    if role == "annotate":  # answers as the Annotate page makes them
        who, n, truth = sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6])
        svc, got = Service(lib), []
        for _ in range(n):
            face = svc.next_face(who)
            if face is None:
                break
            svc.confirm(face, lib.person_id(truth[str(face)], create=True), who)
            got.append(face)
        print(json.dumps(got))
    elif role == "hold":  # a server in the middle of a round: holds the round lock until told to let go
        flag = Path(sys.argv[4])
        with lib.exclusive("round"):
            (flag.parent / "holding").write_text("1")
            deadline = time.time() + 60
            while not flag.exists() and time.time() < deadline:
                time.sleep(0.05)
    elif role == "round":
        Service(lib).run_round("server-b")
""")


def _server(role: str, url: str, data: str, *args: str) -> subprocess.Popen:
    code = SERVER.format(tests=str(TESTS), repo=str(TESTS.parent))
    return subprocess.Popen([sys.executable, "-c", code, role, url, data, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})


def test_two_servers_share_one_library(pg_server, tmp_path):
    from aspl.service import Service, ServiceError

    url, data = pg_server.new_database(), str(tmp_path / "data")
    lib, truth = build_synthetic(None, n_people=4, per_person=10, human_per_person=1,
                                 library=Library(url, data_dir=data))
    svc = Service(lib)
    svc.set_loop_settings({"round_every": 0, "engine": {"min_labels": 1}})
    names = json.dumps({str(k): v for k, v in truth.items()})
    servers = [_server("annotate", url, data, f"annotator-{i}", "6", names) for i in range(2)]
    got = []
    for p in servers:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0
        got.append(json.loads(out.strip().splitlines()[-1]))
    a, b = got
    assert len(a) == len(b) == 6 and not set(a) & set(b)  # two servers, two annotators, never the same face
    human = lib.label_rows(("human",))
    assert len(human) == len({r["face_id"] for r in human}) == 4 + 12

    # a round running on another server: this one refuses to start a second and says why
    release = tmp_path / "release"
    other = _server("hold", url, data, str(release))
    deadline = time.time() + 60
    while not (tmp_path / "holding").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "holding").exists()
    assert svc.loop_state()["round_running"]
    with pytest.raises(ServiceError, match="already running on this library"):
        svc.run_round("admin")
    release.write_text("1")
    other.communicate(timeout=60)
    assert other.returncode == 0 and not svc.loop_state()["round_running"]

    # a round run by another server: this server's service sees its results
    ran = _server("round", url, data)
    ran.communicate(timeout=180)
    assert ran.returncode == 0
    assert svc.stats()["rounds"] == 1 and len(lib.label_rows(("auto",))) > 0
    assert svc._model() is not None  # the other server's classifiers, loaded from the library


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
