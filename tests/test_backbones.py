"""One parametrized test over the whole backbone registry.

Each member is built with ``BackboneInfo.extra["test_kwargs"]`` (a tiny config of
the same factory: fewer layers or narrower) so the pool runs in about a minute on
two CPU cores. Members whose pretrained weights are absent must say where they
looked (``MissingWeightsError`` naming the path) and are skipped; the frozen,
non-torch dlib member is checked for embedding but not trained.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import MissingWeightsError, backbone_info, create_backbone, list_backbones


def _build(name: str):
    info = backbone_info(name)
    try:
        return create_backbone(name, **info.extra.get("test_kwargs", {}))
    except MissingWeightsError as e:
        assert e.path and e.path in str(e), "the error must name the missing file"
        assert not Path(e.path).is_file()
        pytest.skip(f"{name}: pretrained weights absent at {e.path}")


def _crops(rng: np.random.Generator) -> list[np.ndarray]:
    # uint8 RGB crops of mixed sizes: ``embed`` resizes each to the member's input size
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((112, 112), (150, 130), (96, 96))]


@pytest.mark.parametrize("name", list_backbones())
def test_backbone(name: str) -> None:
    torch.manual_seed(0)
    info = backbone_info(name)
    emb = _build(name)
    assert emb.info.name == name

    # shape, dtype, unit L2 norm, and determinism in eval mode (embed switches to eval)
    crops = _crops(np.random.default_rng(0))
    a = emb.embed(crops)
    b = emb.embed(crops)
    assert a.shape == (len(crops), info.embedding_dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert emb.embed([]).shape == (0, info.embedding_dim)

    if not (info.trainable and isinstance(emb, torch.nn.Module)):
        return  # frozen / not torch (dlib): nothing to fine-tune

    # one SGD step on a small batch reduces a cosine-softmax cross-entropy (as the engine trains);
    # the step size is backed off if the first one overshoots (transformers dislike lr 0.05)
    s = info.input_size
    x = torch.randn(4, 3, s, s, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 0, 1, 1])
    head = torch.nn.Linear(info.embedding_dim, 2, bias=False)
    params = [p for p in list(emb.parameters()) + list(head.parameters()) if p.requires_grad]

    def loss() -> torch.Tensor:
        torch.manual_seed(2)  # same dropout / drop-path masks before and after the step
        out = emb(x)
        assert out.shape == (4, info.embedding_dim)
        return F.cross_entropy(10.0 * F.linear(out, F.normalize(head.weight, dim=1)), y)

    emb.train()
    before = loss()
    before.backward()
    grads = [p.grad for p in emb.parameters() if p.requires_grad]
    assert grads and any(g is not None and bool(g.abs().sum() > 0) for g in grads), "no gradient reaches the backbone"
    start = [p.detach().clone() for p in params]
    history = []
    for lr in (0.05, 0.01, 0.002):
        with torch.no_grad():
            for p, p0 in zip(params, start):
                p.copy_(p0)
        torch.optim.SGD(params, lr=lr).step()
        with torch.no_grad():
            after = float(loss())
        history.append((lr, after))
        if after < float(before.detach()):
            break
    assert after < float(before.detach()), f"{name}: loss {float(before.detach()):.4f} -> {history}"
    emb.eval()


def test_backbone_rows() -> None:
    """``python -m aspl backbones`` rows: one per member, metadata only (nothing is built)."""
    from models.catalog import backbone_rows

    rows = backbone_rows()
    assert [r["name"] for r in rows] == list_backbones()
    for r in rows:
        info = backbone_info(r["name"])
        assert set(r) == {"name", "family", "paper", "params_m", "gmacs", "input_size", "embedding_dim",
                          "pretrained_weights"}
        assert r["family"] and r["paper"] and r["input_size"] == info.input_size
        assert r["embedding_dim"] == info.embedding_dim and isinstance(r["pretrained_weights"], bool)
        assert isinstance(r["params_m"], (int, float)) and r["params_m"] > 0
        if info.trainable:
            assert isinstance(r["gmacs"], (int, float)) and r["gmacs"] > 0
