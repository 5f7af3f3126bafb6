"""Backbone swap: re-embed with progress; the old backbone serves until the new one is complete."""
import threading

import numpy as np
import pytest

from apphelpers import synthetic_service
from aspl.service import ServiceError
from models import BackboneInfo

NEW = "lrcn-small"  # any registered name; the embedder itself is a fake below


class FakeEmbedder:
    def __init__(self, gate: threading.Event | None = None):
        self.info = BackboneInfo(name=NEW, family="fake", input_size=32, embedding_dim=16)
        self.gate = gate
        self.calls = 0

    def embed(self, crops, batch_size=64):
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        X = np.stack([np.resize(c.astype(np.float32).mean(axis=(0, 1)), 16) + i * 1e-3 for i, c in enumerate(crops)])
        return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_swap_reembeds_with_progress_and_old_index_serves_meanwhile(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=1)
    svc.set_loop_settings({"auto_trust": 1.0})  # these faces are all sure: let the queue ask about them
    svc.run_round("admin")
    gate = threading.Event()
    fake = FakeEmbedder(gate)
    svc._embedder_factory = lambda name: fake
    f = svc.next_face("alice")
    job = svc.start_backbone_swap(NEW, "admin", force=True)  # lrcn-small: random initialisation
    try:
        assert job.running and svc.backbone == "synthetic"
        s = svc.suggestions(f)  # served by the old backbone's index and classifiers
        assert s and s[0].name == truth[f]
        with pytest.raises(Exception, match="already running"):
            svc.start_backbone_swap(NEW, "admin", force=True)
    finally:
        gate.set()
    job.wait(30)
    assert job.status == "done", job.error
    assert job.result == {"backbone": NEW, "previous": "synthetic", "embedded": len(truth)}
    assert job.fraction == 1.0 and job.total == len(truth)
    assert svc.backbone == NEW
    assert svc.library.embedding_count(NEW) == len(truth)
    assert svc.indexes.in_sync(NEW)
    assert svc.suggestions(f)  # neighbours in the new space
    m = svc.run_round("admin")
    assert m["engine_round"] == 0  # a fresh engine for the new backbone
    assert svc.rounds()[-1]["backbone"] == NEW


def test_swap_refuses_unknown_and_current():
    svc, _ = synthetic_service(None)
    with pytest.raises(ValueError, match="unknown backbone 'nope'; valid choices"):
        svc.start_backbone_swap("nope")
    svc.library.set_setting("backbone", NEW)
    with pytest.raises(ServiceError, match="already the library's backbone"):
        svc.start_backbone_swap(NEW)


def test_swap_to_a_backbone_without_pretrained_weights_is_refused_unless_forced():
    svc, truth = synthetic_service(None, human_per_person=2)
    svc.run_round("admin")
    autos = svc.library.counts()["labels:auto"]
    svc._embedder_factory = lambda name: FakeEmbedder()
    assert svc.backbone_is_untrained(NEW) and not svc.backbone_is_untrained("dlib-resnet")
    with pytest.raises(ServiceError, match="lrcn-small has no pretrained weights here .*swap anyway"):
        svc.start_backbone_swap(NEW, "admin")
    assert svc.jobs.latest("backbone") is None and svc.backbone == "synthetic"
    assert svc.library.counts()["labels:auto"] == autos  # nothing touched


def test_backbone_rows_show_embedded_counts():
    svc, truth = synthetic_service(None)
    rows = {r["name"]: r for r in svc.backbones()}
    assert "dlib-resnet" in rows and rows["dlib-resnet"]["pretrained_weights"]
    assert all(r["faces_embedded"] == 0 for r in rows.values())
