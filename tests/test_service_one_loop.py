"""The app's rounds and the simulation run the same loop: same data and answers, same decisions."""
from __future__ import annotations

import numpy as np

from apphelpers import synthetic_service
from aspl.engine.loop import ActiveLoop


def test_service_rounds_make_the_decisions_of_the_loop_driven_directly():
    svc, truth = synthetic_service(None, human_per_person=1)
    lib = svc.library
    backbone = svc.backbone
    settings = svc.loop_settings()
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
        assert lib.queue() == d.queries.tolist(), f"round {rnd}: queue differs"
        for face in d.queries[:4].tolist():  # the same answers to both
            person = pid[truth[face]]
            svc.confirm(face, person, "alice")
            labels[list(ids).index(face)] = person
    assert lib.label_rows(("auto",))  # the comparison covered real auto-labels
