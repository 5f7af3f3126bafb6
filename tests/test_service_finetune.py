"""Fine-tuning in the app: a round with ``finetune_every`` fine-tunes a trainable backbone, re-embeds every
face, rebuilds the index and refits the loop; a frozen backbone is skipped with a note."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from aspl.service import Service
from models.registry import BackboneInfo
from models.torch_base import TorchEmbedder
from storage import IndexStore, Library
from storage.db import NewFace

INFO = BackboneInfo(name="tiny-test", family="test", input_size=16, embedding_dim=8)


def _tiny(trainable: bool) -> TorchEmbedder:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(24, 8))
    return TorchEmbedder(net, dataclasses.replace(INFO, trainable=trainable), device="cpu").eval()


def _library(root, emb: TorchEmbedder, people: int = 3, per: int = 8) -> tuple[Library, dict[int, int]]:
    """Crops with one colour pattern per person, embedded by ``emb``; two human labels per person."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (people, 48, 48, 3))
    lib = Library(root)
    truth = {}
    for i in range(per):
        for p in range(people):
            crop = np.clip(base[p] + rng.normal(0, 30, base[p].shape), 0, 255).astype(np.uint8)
            x = emb.embed([crop])[0]
            _, fids = lib.add_image(f"p{p}_{i}.jpg", hashlib.sha256(f"{p}-{i}".encode()).hexdigest(), 10, 48, 48,
                                    [NewFace((0, 0, 48, 48), np.zeros((5, 2), np.float32), 0.99, crop,
                                             {INFO.name: x})])
            truth[fids[0]] = p
    lib.set_setting("backbone", INFO.name)
    for f, p in sorted(truth.items()):
        if sum(1 for g, q in truth.items() if q == p and g < f) < 2:
            lib.add_label(f, lib.person_id(f"person {p}", create=True), "human", 1.0, annotator="t")
    IndexStore(lib).rebuild(INFO.name)
    return lib, truth


def _service(lib: Library, emb: TorchEmbedder) -> Service:
    svc = Service(lib, embedder_factory=lambda name: emb)
    svc.set_loop_settings({"method": "aspl", "engine": {"min_labels": 1, "query_size": 3, "finetune_every": 1}})
    return svc


def test_a_round_fine_tunes_re_embeds_rebuilds_and_a_reopened_library_uses_the_weights(tmp_path):
    emb = _tiny(trainable=True)
    lib, truth = _library(tmp_path / "lib", emb)
    before_ids, before = lib.embeddings(INFO.name)
    base0 = emb.embed([lib.face_crop(int(before_ids[0]))])
    svc = _service(lib, emb)
    m = svc.run_round("admin")
    ft = m["finetune"]
    assert ft["status"] == "done" and ft["reembedded"] == len(truth) and ft["people"] == 3
    ids, after = lib.embeddings(INFO.name)
    assert np.array_equal(ids, before_ids) and np.abs(after - before).max() > 1e-3  # every face re-embedded
    weights = tmp_path / "lib" / "backbones" / ft["weights"]
    assert weights.is_file() and lib.get_setting("finetuned_weights") == {INFO.name: ft["weights"]}
    assert lib.rounds()[-1]["metrics"]["finetune"]["status"] == "done"  # recorded with the round
    assert np.array_equal(emb.embed([lib.face_crop(int(ids[0]))]), base0)  # the shared base is untouched

    idx = IndexStore(lib).get(INFO.name)  # the index holds the new vectors, not the old ones
    q = after[5] / np.linalg.norm(after[5])
    _, found = idx.search(after[5:6], 3)
    sims = (after / np.linalg.norm(after, axis=1, keepdims=True)) @ q
    assert found[0].tolist() == ids[np.argsort(-sims)[:3]].tolist()

    lib2 = Library(tmp_path / "lib")  # a new process: the tuned weights are loaded (weights_only)
    svc2 = Service(lib2, embedder_factory=lambda name: _tiny(trainable=True))
    tuned = svc2._library_embedder(lib2, INFO.name)
    np.testing.assert_allclose(tuned.embed([lib2.face_crop(int(ids[3]))])[0], after[3], atol=1e-5)
    m2 = svc2.run_round("admin")  # the refitted loop state continues on the new vectors
    assert m2["engine_round"] == 1 and m2["finetune"]["status"] == "done"
    lib2.close()


def test_a_frozen_backbone_skips_fine_tuning_with_a_reason(tmp_path):
    emb = _tiny(trainable=False)
    lib, _ = _library(tmp_path / "lib", emb)
    before = lib.embeddings(INFO.name)[1]
    svc = _service(lib, emb)
    ft = svc.run_round("admin")["finetune"]
    assert ft["status"] == "skipped" and "frozen" in ft["reason"]
    assert np.array_equal(lib.embeddings(INFO.name)[1], before)
    assert lib.get_setting("finetuned_weights") is None
    assert [e["kind"] for e in lib.events(limit=5)].count("finetune_skipped") == 1


def test_missing_weights_named_by_the_library_are_a_clear_error(tmp_path):
    emb = _tiny(trainable=True)
    lib, _ = _library(tmp_path / "lib", emb)
    lib.set_setting("finetuned_weights", {INFO.name: "gone.pt"})
    svc = Service(lib, embedder_factory=lambda name: emb)
    with pytest.raises(FileNotFoundError, match="gone.pt"):
        svc._library_embedder(lib, INFO.name)
