"""Fine-tuning a trainable torch backbone on human + weighted pseudo labels."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aspl.engine.engines import ASPLEngine
from aspl.finetune import CropFinetuner, FineTuneSettings, finetune_embedder, is_trainable
from aspl.engine.simulate import SimulationConfig, simulate
from models.registry import BackboneInfo
from models.torch_base import TorchEmbedder

INFO = BackboneInfo(name="tiny-test", family="test", input_size=16, embedding_dim=8)


def _tiny(trainable=True, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(24, 8))
    return TorchEmbedder(net, dataclasses.replace(INFO, trainable=trainable), device="cpu")


def _crops(people=3, per=12, seed=0):
    """Each person: a fixed random 16x16 colour pattern plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (people, 16, 16, 3))
    crops, y = [], []
    for p in range(people):
        for _ in range(per):
            crops.append(np.clip(base[p] + rng.normal(0, 40, base[p].shape), 0, 255).astype(np.uint8))
            y.append(p)
    return crops, np.array(y)


def _loss(emb, head, crops, y, scale=16.0):
    with torch.no_grad():
        e = emb(emb.preprocess(crops))
        logits = scale * F.linear(e, F.normalize(head.weight, dim=1))
        return float(F.cross_entropy(logits, torch.from_numpy(y)))


def test_finetuning_reduces_the_loss_of_a_tiny_net():
    crops, y = _crops()
    emb = _tiny()
    before = copy.deepcopy(emb)
    res = finetune_embedder(emb, crops, y, np.ones(len(y)), FineTuneSettings(epochs=6, lr=0.05, batch_size=8))
    assert not res.skipped and res.embedder is emb
    assert res.persons.tolist() == [0, 1, 2] and res.head.weight.shape == (3, 8)
    assert res.losses[-1] < 0.7 * res.losses[0]
    assert _loss(emb, res.head, crops, y) < _loss(before, res.head, crops, y)
    assert not emb.training  # left in eval mode for re-embedding


def test_zero_weight_and_unlabelled_faces_are_ignored_and_the_head_is_resized():
    crops, y = _crops(people=4)
    w = np.ones(len(y))
    w[y == 3] = 0.0  # person 3 only has weight-0 pseudo-labels
    y2 = y.copy()
    y2[:3] = -1
    res = finetune_embedder(_tiny(), crops, y2, w, FineTuneSettings(epochs=1))
    assert res.persons.tolist() == [0, 1, 2]
    res2 = finetune_embedder(res.embedder, crops, y, None, FineTuneSettings(epochs=1), res.head, res.persons)
    assert res2.persons.tolist() == [0, 1, 2, 3] and res2.head.weight.shape[0] == 4


def test_frozen_and_non_torch_backbones_are_skipped():
    crops, y = _crops()
    frozen = _tiny(trainable=False)
    params = [p.detach().clone() for p in frozen.parameters()]
    res = finetune_embedder(frozen, crops, y)
    assert res.skipped and not res.losses
    assert all(torch.equal(a, b) for a, b in zip(params, frozen.parameters()))

    class Dlibish:
        info = dataclasses.replace(INFO, trainable=False)

        def embed(self, crops, batch_size=64):
            return np.zeros((len(crops), 8), np.float32)

    assert not is_trainable(Dlibish()) and finetune_embedder(Dlibish(), crops, y).skipped


def test_engine_asks_for_finetuning_every_F_rounds():
    rng = np.random.default_rng(0)
    X = np.concatenate([np.eye(4)[p] + 0.05 * rng.standard_normal((5, 4)) for p in range(2)]).astype(np.float32)
    labels = np.full(10, -1)
    labels[[0, 5]] = [0, 1]
    eng = ASPLEngine(min_labels=1, query_size=1, finetune_every=2)
    assert [eng.step(X, labels).finetune_due for _ in range(5)] == [False, True, False, True, False]
    assert not any(ASPLEngine(min_labels=1).step(X, labels).finetune_due for _ in range(3))


@pytest.mark.parametrize("trainable", [True, False])
def test_simulation_finetunes_a_trainable_backbone_and_re_embeds(trainable):
    crops, y = _crops(people=3, per=10)
    emb = _tiny(trainable=trainable)
    X = emb.embed(crops)
    made = []

    def factory():
        made.append(CropFinetuner(emb, crops, FineTuneSettings(epochs=1)))
        return made[-1]

    cfg = SimulationConfig(methods=("aspl", "random"), rounds=4, query_size=2, seed=0,
                           settings={"min_labels": 1, "finetune_every": 2})
    rows = simulate(X, y, cfg, finetuner=factory, progress=False)
    assert [m.calls for m in made] == [2, 0]  # rounds 2 and 4 for aspl; random never asks
    tuned = made[0].embedder.embed(crops)
    assert np.abs(tuned - X).max() > 1e-4 if trainable else np.array_equal(tuned, X)  # frozen: skipped
    assert len(rows) == 10
    assert np.array_equal(emb.embed(crops), X)  # the caller's backbone is left untouched
