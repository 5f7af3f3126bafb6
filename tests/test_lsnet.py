"""LSNet: the CPU (unfold) small-kernel aggregation matches a naive loop reference."""
from __future__ import annotations

import pytest
import torch

from models import backbone_info
from models.lsnet import LSConv, LSNet, ska


def ska_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-pixel loops: out[b,c,i,j] = sum_{u,v} x[b,c,i+u-p,j+v-p] * w[b, c % Cw, u*k+v, i, j] (zero padding)."""
    b, c, h, wd = x.shape
    cw, kk = w.shape[1], w.shape[2]
    k = int(round(kk ** 0.5))
    p = k // 2
    out = torch.zeros_like(x)
    for bi in range(b):
        for ci in range(c):
            for i in range(h):
                for j in range(wd):
                    acc = x.new_zeros(())
                    for u in range(k):
                        for v in range(k):
                            ii, jj = i + u - p, j + v - p
                            if 0 <= ii < h and 0 <= jj < wd:
                                acc = acc + x[bi, ci, ii, jj] * w[bi, ci % cw, u * k + v, i, j]
                    out[bi, ci, i, j] = acc
    return out


@pytest.mark.parametrize("k, c, cw", [(3, 6, 3), (3, 4, 4), (5, 4, 2)])
def test_ska_matches_loop_reference(k: int, c: int, cw: int):
    g = torch.Generator().manual_seed(k * 10 + c)
    x = torch.randn(2, c, 5, 4, generator=g, dtype=torch.float64)
    w = torch.randn(2, cw, k * k, 5, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(ska(x, w), ska_reference(x, w), atol=1e-12)


def test_ska_gradients_match_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 9, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    gx, gw = torch.autograd.grad(ska(x, w).square().sum(), (x, w))
    rx, rw = torch.autograd.grad(ska_reference(x, w).square().sum(), (x, w))
    assert torch.allclose(gx, rx) and torch.allclose(gw, rw)


def test_ska_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ska(torch.zeros(1, 4, 3, 3), torch.zeros(1, 3, 9, 3, 3))  # 4 channels, 3 weight channels
    with pytest.raises(ValueError):
        ska(torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 4, 3, 3))  # 2x2 kernel


def test_lsconv_and_last_stage_attention_shapes():
    conv = LSConv(16).eval()
    assert conv(torch.randn(2, 16, 9, 7)).shape == (2, 16, 9, 7)
    net = LSNet(**backbone_info("lsnet-t").extra["test_kwargs"], embedding_dim=32).eval()
    kinds = {type(m).__name__ for m in net.stages[3].modules()}
    assert "Attention" in kinds and "LSConv" not in kinds
    assert "LSConv" in {type(m).__name__ for m in net.stages[1].modules()}
    assert net(torch.randn(2, 3, 112, 112)).shape == (2, 32)
    assert net(torch.randn(1, 3, 96, 128)).shape == (1, 32)  # other sizes: relative biases are clamped
