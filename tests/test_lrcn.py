"""LRCN: track embedding (CNN per frame -> LSTM -> mean over time), single images as T = 1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import backbone_info, create_backbone
from models.lrcn import LRCNEmbedder

TINY = backbone_info("lrcn-small").extra["test_kwargs"]


def _crops(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 80, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def emb() -> LRCNEmbedder:
    torch.manual_seed(0)
    e = create_backbone("lrcn-small", device="cpu", **TINY)
    assert isinstance(e, LRCNEmbedder)
    return e


def test_embed_track_gives_one_unit_vector(emb: LRCNEmbedder):
    v = emb.embed_track(_crops(5, 0))
    assert v.shape == (emb.info.embedding_dim,) and v.dtype == np.float32
    assert abs(np.linalg.norm(v) - 1.0) < 1e-5
    assert np.allclose(v, emb.embed_track(_crops(5, 0)))  # eval mode: deterministic


def test_single_image_is_a_one_frame_track(emb: LRCNEmbedder):
    crop = _crops(1, 1)
    np.testing.assert_allclose(emb.embed(crop)[0], emb.embed_track(crop), atol=1e-6)


def test_padded_batch_equals_separate_tracks(emb: LRCNEmbedder):
    tracks = [_crops(2, 2), _crops(6, 3), _crops(4, 4)]
    batched = emb.embed_tracks(tracks)
    for t, row in zip(tracks, batched):
        np.testing.assert_allclose(row, emb.embed_track(t), atol=1e-5)


def test_frame_order_and_subsampling(emb: LRCNEmbedder):
    track = _crops(6, 5)
    assert not np.allclose(emb.embed_track(track), emb.embed_track(track[::-1]), atol=1e-6)  # the LSTM sees order
    np.testing.assert_allclose(emb.embed_track(track, max_frames=3), emb.embed_track([track[0], track[2], track[5]]),
                               atol=1e-6)
    with pytest.raises(ValueError):
        emb.embed_track([])


def test_track_batch_trains_through_the_lstm(emb: LRCNEmbedder):
    emb.train()
    x = torch.randn(2, 3, 3, 112, 112)
    out = emb.net(x, lengths=[3, 2])
    out.pow(2).sum().backward()
    assert out.shape == (2, emb.info.embedding_dim)
    assert emb.net.lstm.weight_hh_l0.grad is not None and emb.net.cnn.fc6.weight.grad is not None
    emb.zero_grad()
    emb.eval()
