"""Several annotators in several processes on one library (a SQLite file; a PostgreSQL database under
ASPL_TEST_DB=postgresql), while rounds run: every face is handed to
one annotator at a time, every answer is accepted, nothing is labelled twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from apphelpers import build_synthetic
from aspl.service import Service
from pgserver import library_at, location

TESTS = Path(__file__).resolve().parent

WORKER = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{tests!r}, {repo!r}]
    from aspl.service import Service
    from storage import Library
    lib = Library({root!r})
    svc = Service(lib)
    truth = json.loads({truth!r})
    name, n = sys.argv[1], int(sys.argv[2])
    shown, refused = [], []
    for _ in range(n):
        f = svc.next_face(name)
        if f is None:
            break
        shown.append(f)
        try:
            svc.new_person(f, truth[str(f)], name)
        except Exception as e:  # report any refusal to the parent, which fails the test
            refused.append([f, type(e).__name__, str(e)])
    print(json.dumps({{"shown": shown, "refused": refused}}))
""")


def test_two_processes_annotating_while_rounds_run_never_share_a_face(tmp_path):
    root = tmp_path / "lib"
    lib, truth = build_synthetic(root, n_people=4, per_person=30, human_per_person=1)
    # every auto-label may be asked (else the first round leaves nothing to ask); rounds only from here
    Service(lib).set_loop_settings({"auto_trust": 1.0, "round_every": 0})
    lib.close()
    code = WORKER.format(tests=str(TESTS), repo=str(TESTS.parent), root=location(root),  # a folder or a URL
                         truth=json.dumps({str(k): v for k, v in truth.items()}))
    env = {**os.environ, "ASPL_DATA": str(root)}  # a PostgreSQL library's index folder
    procs = [subprocess.Popen([sys.executable, "-c", code, who, "20"], stdout=subprocess.PIPE, text=True, env=env)
             for who in ("alice", "bob")]
    lib = library_at(root)
    svc = Service(lib)
    rounds = 0
    while any(p.poll() is None for p in procs) and rounds < 5:
        svc.run_round("admin")
        rounds += 1
    outs = {}
    for who, p in zip(("alice", "bob"), procs):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        outs[who] = json.loads(out.strip().splitlines()[-1])
    assert rounds >= 1
    assert outs["alice"]["refused"] == [] and outs["bob"]["refused"] == []
    a, b = outs["alice"]["shown"], outs["bob"]["shown"]
    assert len(a) == len(b) == 20 and not set(a) & set(b)  # never the same face twice
    humans = lib.label_rows(("human",))
    assert len(humans) == 4 + 40 and len({r["face_id"] for r in humans}) == 44
    assert all(lib.person_name(r["person_id"]) == truth[r["face_id"]] for r in humans)
