"""Trigger-kept counts and per-face label flags agree with counting the rows, through every kind of change
the app makes."""
from __future__ import annotations

from apphelpers import synthetic_service


def _exact(lib) -> dict[str, int]:
    q = lambda sql: int(lib.db.execute(sql).fetchone()[0])  # noqa: E731
    return {
        "faces:ok": q("SELECT COUNT(*) FROM faces WHERE status = 'ok'"),
        "faces:not_face": q("SELECT COUNT(*) FROM faces WHERE status = 'not_face'"),
        "images:ok": q("SELECT COUNT(*) FROM images WHERE status = 'ok'"),
        "images:no_face": q("SELECT COUNT(*) FROM images WHERE status = 'no_face'"),
        "images:rejected": q("SELECT COUNT(*) FROM images WHERE status = 'rejected'"),
        **{f"labels:{s}": q(f"SELECT COUNT(*) FROM labels WHERE revoked = 0 AND source = '{s}'")
           for s in ("human", "seed", "auto")},
    }


def _remaining(lib) -> int:
    return int(lib.db.execute(
        "SELECT COUNT(*) FROM faces f WHERE status = 'ok' AND NOT EXISTS (SELECT 1 FROM labels l "
        "WHERE l.face_id = f.id AND l.revoked = 0 AND l.source IN ('human', 'seed'))").fetchone()[0])


def test_counts_follow_labels_statuses_rounds_and_undo():
    svc, truth = synthetic_service(None, human_per_person=2)
    lib = svc.library
    lib.reject_image("bad.jpg", None, 0, "not an image")
    checks = 0

    def check() -> None:
        nonlocal checks
        assert lib.counts() == _exact(lib)
        assert svc.remaining() == _remaining(lib)
        wrong = lib.db.execute(  # the per-face flags the next-face query seeks on
            "SELECT COUNT(*) FROM faces f WHERE human != (SELECT COUNT(*) FROM labels l WHERE l.face_id = f.id "
            "AND l.revoked = 0 AND l.source IN ('human', 'seed')) OR auto != (SELECT COUNT(*) FROM labels l "
            "WHERE l.face_id = f.id AND l.revoked = 0 AND l.source = 'auto')").fetchone()[0]
        assert wrong == 0
        checks += 1

    check()
    svc.run_round("admin")
    check()
    assert lib.counts()["labels:auto"] > 0
    f = svc.next_face("alice")
    svc.confirm(f, lib.person_id(truth[f]), "alice")
    check()
    g = svc.next_face("alice")
    svc.not_face(g, "alice")
    check()
    svc.undo("alice")
    check()
    h = svc.next_face("bob")
    svc.new_person(h, "Someone New", "bob")
    check()
    p, q = [x["id"] for x in svc.people()[:2]]
    svc.merge_people(p, q, "carol")
    check()
    svc.undo("carol", "people")
    check()
    svc.run_round("admin")  # auto-labels replaced, not piled up
    check()
    n_auto_rows = lib.db.execute("SELECT COUNT(*) FROM labels WHERE source = 'auto'").fetchone()[0]
    assert n_auto_rows == lib.counts()["labels:auto"]
    assert checks == 9
