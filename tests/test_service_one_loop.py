"""The app's rounds and the simulation run the same loop: same data and answers, same decisions."""
from __future__ import annotations

import numpy as np

from apphelpers import synthetic_service
from aspl.engine.loop import ActiveLoop


def test_service_rounds_make_the_decisions_of_the_loop_driven_directly():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    backbone = svc.backbone
    settings = svc.set_loop_settings({"auto_trust": 1.0})  # clean clusters: else nothing is left to ask
    ids, X = lib.embeddings(backbone)
    pid = {name: lib.person_id(name) for name in set(truth.values())}
    labels = np.full(len(ids), -1)
    for r in lib.label_rows(("human", "seed")):
        labels[list(ids).index(r["face_id"])] = r["person_id"]
    direct = ActiveLoop(settings.method, settings.engine, center=settings.center)
    for rnd in range(3):
        svc.run_round("admin")  # state saved to the library and reloaded every round
        d = direct.step(ids, X, labels)
        autos = {(a["face_id"], a["person_id"]) for a in lib.label_rows(("auto",))}
        f, p, _ = d.auto_labels
        assert autos == set(zip(f.tolist(), p.tolist())), f"round {rnd}: auto-labels differ"
        trusted = {int(a) for a, w in zip(f, d.auto_labels[2]) if w > settings.auto_trust}
        asked = [q for q in d.queries.tolist() if q not in trusted]  # confident auto-labels are not asked
        assert lib.queue() == asked, f"round {rnd}: queue differs"
        assert len(asked) >= 4, "the comparison needs questions"
        for face in asked[:4]:  # the same answers to both
            person = pid[truth[face]]
            svc.confirm(face, person, "alice")
            labels[list(ids).index(face)] = person
    assert lib.label_rows(("auto",))  # the comparison covered real auto-labels
