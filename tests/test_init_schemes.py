"""Initialisation schemes of the from-scratch families, and their weights loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models import MissingWeightsError, backbone_info, create_backbone
from models._init_schemes import (INIT_SCHEMES, _first_input_conv, colour_basis, dct_filters, gabor_filters,
                                  init_weights)

SCRATCH = ["overfeat-fast-025", "simplenet-v1-050", "resnet18-ibn-a", "resnet18-ibn-b", "hornet-nano-7x7",
           "unireplknet-a", "lsnet-t", "spartan-t", "lrcn-small"]


def _first_conv(net: nn.Module) -> nn.Conv2d:
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("name", SCRATCH)
def test_every_family_builds_with_every_scheme(name: str, scheme: str):
    info = backbone_info(name)
    assert info.weights_source.startswith("random initialisation")
    assert info.extra["params_m"] > 0 and info.extra["gmacs"] > 0
    emb = create_backbone(name, device="cpu", init=scheme, **info.extra["test_kwargs"]).eval()
    with torch.no_grad():
        out = emb(torch.randn(2, 3, info.input_size, info.input_size))
    assert out.shape == (2, info.embedding_dim) and torch.isfinite(out).all()
    first = _first_input_conv(emb.net)
    assert first is not None, f"{name} has no 3-channel input convolution"
    w = first.weight.detach()
    o, i, kh, kw = w.shape
    if scheme in ("dct", "gabor"):  # the scheme reached the first convolution of this family
        make = dct_filters if scheme == "dct" else gabor_filters
        assert torch.allclose(w, make(o, i, kh, kw) * math.sqrt(2.0), atol=1e-6)
    elif scheme == "orthogonal" and o <= i * kh * kw:
        flat = w.flatten(1)
        assert torch.allclose(flat @ flat.T, flat.pow(2).sum(1).mean() * torch.eye(o), atol=1e-3)
    else:
        assert abs(w.std().item() - math.sqrt(2 / (i * kh * kw))) < 0.35 * math.sqrt(2 / (i * kh * kw))


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="kaiming"):
        init_weights(nn.Linear(2, 2), "xavier-ish")


def test_kaiming_std_and_zero_bias():
    torch.manual_seed(0)
    conv = init_weights(nn.Conv2d(64, 256, 3), "kaiming")
    assert abs(conv.weight.std().item() - math.sqrt(2 / (64 * 9))) < 0.005
    assert conv.bias.abs().max() == 0


def test_orthogonal_rows_and_grouped_convs():
    torch.manual_seed(0)
    conv = init_weights(nn.Conv2d(16, 32, 3), "orthogonal")
    w = conv.weight.flatten(1)
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(32), atol=1e-4)  # orthogonal rows, ReLU gain^2 = 2
    dw = init_weights(nn.Conv2d(8, 8, 3, groups=8), "orthogonal")
    assert torch.allclose(dw.weight.flatten(1).norm(dim=1), torch.full((8,), math.sqrt(2.0)), atol=1e-5)
    wide = init_weights(nn.Linear(4, 64), "orthogonal")  # more rows than fan-in: orthogonal columns
    cols = wide.weight
    assert torch.allclose(cols.T @ cols, cols.T @ cols * torch.eye(4), atol=1e-4)


def test_lstm_gates_and_forget_bias():
    lstm = init_weights(nn.LSTM(8, 16), "orthogonal")
    assert torch.allclose(lstm.bias_ih_l0[16:32], torch.ones(16)) and lstm.bias_hh_l0.abs().max() == 0
    gate = lstm.weight_hh_l0[:16]
    assert torch.allclose(gate @ gate.T, torch.eye(16), atol=1e-4)


def test_colour_basis_is_orthonormal_with_luminance_first():
    b = colour_basis(3)
    assert torch.allclose(b @ b.T, torch.eye(3), atol=1e-6)
    assert torch.allclose(b[0], torch.full((3,), 1 / math.sqrt(3)))


def test_dct_filters_are_an_orthonormal_basis_low_frequencies_first():
    f = dct_filters(27, 3, 3).flatten(1)
    assert torch.allclose(f @ f.T, torch.eye(27), atol=1e-5)
    assert torch.allclose(f[0], torch.full((27,), 1 / math.sqrt(27)), atol=1e-6)  # DC luminance
    more = dct_filters(30, 3, 3).flatten(1)
    assert torch.allclose(more[27], -more[0])  # beyond the basis: repeated with flipped sign


def test_gabor_filters_are_unit_norm_and_distinct():
    f = gabor_filters(48, 3, 7).flatten(1)
    assert torch.allclose(f.norm(dim=1), torch.ones(48), atol=1e-5)
    assert torch.linalg.matrix_rank(f).item() > 40


@pytest.mark.parametrize("scheme", ["dct", "gabor"])
def test_structured_schemes_set_the_first_conv_only(scheme: str):
    emb = create_backbone("overfeat-fast-025", device="cpu", init=scheme, width=0.0625)
    first = _first_conv(emb.net)
    o, i, kh, kw = first.weight.shape
    make = dct_filters if scheme == "dct" else gabor_filters
    assert torch.allclose(first.weight, make(o, i, kh, kw) * math.sqrt(2.0))
    other = emb.net.features[3].weight  # second conv stays kaiming
    assert abs(other.std().item() - math.sqrt(2 / other[0].numel())) < 0.02


def test_weights_round_trip_and_missing_file(tmp_path):
    kw = backbone_info("hornet-nano-7x7").extra["test_kwargs"]
    src = create_backbone("hornet-nano-7x7", device="cpu", **kw).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.randn(2, 3, 112, 112)
    for i, state in enumerate([src.net.state_dict(), src.state_dict()]):  # plain, and with the 'net.' prefix
        path = tmp_path / f"w{i}.pt"
        torch.save(state, path)
        dst = create_backbone("hornet-nano-7x7", device="cpu", weights=str(path), **kw).eval()
        with torch.no_grad():
            assert torch.allclose(src(x), dst(x))
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="matches"):
        create_backbone("hornet-nano-7x7", device="cpu", weights=str(tmp_path / "other.pt"), **kw)
    missing = tmp_path / "nope.pt"
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        create_backbone("lsnet-t", device="cpu", weights=str(missing), **backbone_info("lsnet-t").extra["test_kwargs"])


def test_embedding_dim_override_updates_info():
    kw = backbone_info("spartan-t").extra["test_kwargs"]
    emb = create_backbone("spartan-t", device="cpu", embedding_dim=64, **kw)
    crops = [np.zeros((112, 112, 3), np.uint8)]
    assert emb.info.embedding_dim == 64 and emb.embed(crops).shape == (1, 64)
    assert backbone_info("spartan-t").embedding_dim == 256
