"""UniRepLKNet: the dilated reparam block and the inference-time merge are exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import backbone_info, create_backbone
from models.unireplknet import (BRANCHES, DilatedReparamBlock, UniRepLKNet, UniRepLKNetBlock, dilated_to_dense,
                                reparameterize)

TINY = backbone_info("unireplknet-a").extra["test_kwargs"]


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics/affines, GRN and layer-scale values, so that merging has something to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)
        for name, p in module.named_parameters():
            if name.endswith(("grn.gamma", "grn.beta")) or name.endswith("gamma"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_dilated_kernel_equals_dense_kernel():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 17, 17)
    k = torch.randn(4, 1, 3, 3)
    for r in (1, 2, 3):
        dilated = F.conv2d(x, k, padding=r, dilation=r, groups=4)
        dense = dilated_to_dense(k, r)
        assert dense.shape[-1] == 2 * r + 1
        assert torch.allclose(dilated, F.conv2d(x, dense, padding=r, groups=4), atol=1e-5)


@pytest.mark.parametrize("kernel_size", sorted(BRANCHES))
def test_dilated_reparam_block_merges_exactly(kernel_size: int):
    blk = DilatedReparamBlock(6, kernel_size)
    _randomise(blk, seed=kernel_size)
    blk.eval()
    x = torch.randn(2, 6, 15, 15)
    w, b = blk.merged_kernel()
    assert w.shape == (6, 1, kernel_size, kernel_size)
    merged = F.conv2d(x, w, b, padding=kernel_size // 2, groups=6)
    assert torch.allclose(blk(x), merged, atol=1e-5, rtol=1e-4)


def test_merged_and_unmerged_network_agree():
    torch.manual_seed(0)
    net = UniRepLKNet(**TINY, kernel_sizes=(3, 13, 7, 5))
    _randomise(net)
    net.eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        before = net(x)
        n_before = sum(p.numel() for p in net.parameters())
        net.reparameterize()
        after = net(x)
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4), (before - after).abs().max()
    assert sum(p.numel() for p in net.parameters()) < n_before
    for blk in net.modules():
        if isinstance(blk, UniRepLKNetBlock):
            assert blk.merged and isinstance(blk.dwconv, nn.Conv2d) and blk.dwconv.bias is not None
            assert not any(isinstance(m, (nn.BatchNorm2d, DilatedReparamBlock)) for m in blk.modules())


def test_embedder_reparameterize_keeps_embeddings():
    emb = create_backbone("unireplknet-a", device="cpu", **TINY)
    _randomise(emb)
    crops = [np.random.default_rng(i).integers(0, 256, (120, 100, 3), dtype=np.uint8) for i in range(3)]
    before = emb.embed(crops)
    reparameterize(emb)
    after = emb.embed(crops)
    assert after.shape == (3, emb.info.embedding_dim)
    np.testing.assert_allclose(before, after, atol=1e-4)
