"""Trigger-kept counts and per-face label flags agree with counting the rows, through every kind of change
the app makes."""
from __future__ import annotations

from apphelpers import synthetic_service


def _exact(lib) -> dict[str, int]:
    q = lambda sql: int(lib.db.execute(sql).fetchone()[0])  # noqa: E731
    return {
        "faces:ok": q("SELECT COUNT(*) FROM faces WHERE status = 'ok'"),
        "faces:not_face": q("SELECT COUNT(*) FROM faces WHERE status = 'not_face'"),
        "faces:stranger": q("SELECT COUNT(*) FROM faces WHERE status = 'stranger'"),
        "faces:hidden": q("SELECT COUNT(*) FROM faces WHERE status = 'ok' AND hidden = 1"),
        "faces:open": q("SELECT COUNT(*) FROM faces f WHERE status = 'ok' AND hidden = 0 AND NOT EXISTS "
                        "(SELECT 1 FROM labels l WHERE l.face_id = f.id AND l.revoked = 0)"),
        "images:ok": q("SELECT COUNT(*) FROM images WHERE status = 'ok'"),
        "images:no_face": q("SELECT COUNT(*) FROM images WHERE status = 'no_face'"),
        "images:rejected": q("SELECT COUNT(*) FROM images WHERE status = 'rejected'"),
        **{f"labels:{s}": q(f"SELECT COUNT(*) FROM labels WHERE revoked = 0 AND source = '{s}'")
           for s in ("human", "seed", "auto")},
    }


def _remaining(lib) -> int:
    """Faces with no live label of any kind that are not strangers, not-a-face or hidden."""
    return int(lib.db.execute(
        "SELECT COUNT(*) FROM faces f WHERE status = 'ok' AND hidden = 0 AND NOT EXISTS (SELECT 1 FROM labels l "
        "WHERE l.face_id = f.id AND l.revoked = 0)").fetchone()[0])


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
    autos = [r["face_id"] for r in lib.label_rows(("auto",))]  # confident: nothing may be left to ask
    f = autos[0]
    svc.confirm(f, lib.person_id(truth[f]), "alice")
    check()
    g = autos[1]
    svc.not_face(g, "alice")
    check()
    svc.undo("alice")
    check()
    h = lib.db.execute("SELECT id FROM faces WHERE auto = 1 ORDER BY id LIMIT 1").fetchone()[0]
    svc.new_person(h, "Someone New", "bob")  # a human label over an auto-label
    check()
    s = lib.db.execute("SELECT id FROM faces WHERE auto = 1 ORDER BY id LIMIT 1").fetchone()[0]
    svc.stranger(s, "bob")
    check()
    assert lib.face(s)["status"] == "stranger"
    svc.undo("bob")
    check()
    assert lib.face(s)["status"] == "ok" and lib.face(s)["auto"] == 1
    svc.stranger(s, "bob")
    hidden = lib.set_face_quality(min_px=1e9, min_prob=0.0)  # every face hidden
    check()
    assert hidden == lib.counts()["faces:ok"] and svc.remaining() == 0
    lib.set_face_quality(0.0, 0.0)
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
    assert checks == 13
