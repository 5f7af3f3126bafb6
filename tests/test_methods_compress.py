"""A-priori compression with one-way factorised filters."""
import pytest
import torch
from torch import nn

from models import create_backbone
from models.compress import FactorisedConv2d, compress_network, count_params
from tests.methods_helpers import real_crops


def test_factorised_conv_keeps_output_shape_including_stride_and_padding():
    for conv in (nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(3, 12, 11, stride=2, padding=5),
                 nn.Conv2d(4, 4, 5, stride=(2, 1), padding=2, bias=False)):
        f = FactorisedConv2d(conv, rank=4)
        x = torch.randn(2, conv.in_channels, 23, 23)
        assert f(x).shape == conv(x).shape
        assert (f[3].bias is None) == (conv.bias is None)


def test_compressed_backbone_has_fewer_params_and_embeds_real_faces(lfw_dev, tmp_path):
    full = create_backbone("simplenet-v1-050", device="cpu")
    small = create_backbone("simplenet-v1-050", compress_rank=16, device="cpu")
    assert count_params(small) < 0.5 * count_params(full)
    assert small.info.extra["compressed_convs"] == 11
    assert not any(type(m) is nn.Conv2d and min(m.kernel_size) > 1 for m in small.net.modules())
    crops = list(real_crops(lfw_dev).crops[:4])
    e = small.embed(crops)
    assert e.shape == (4, 128) and torch.allclose(torch.from_numpy(e).norm(dim=1), torch.ones(4), atol=1e-5)
    # weights saved from a compressed network load back through the factory
    p = tmp_path / "c.pt"
    torch.save(small.net.state_dict(), p)
    again = create_backbone("simplenet-v1-050", compress_rank=16, weights=str(p), device="cpu")
    assert torch.allclose(torch.from_numpy(again.embed(crops)), torch.from_numpy(e), atol=1e-5)


def test_bad_ranks_and_nets_are_refused():
    with pytest.raises(ValueError, match="compress rank"):
        compress_network(nn.Sequential(nn.Conv2d(3, 4, 3)), 0)
    with pytest.raises(ValueError, match="no convolution"):
        compress_network(nn.Sequential(nn.Conv2d(3, 4, 1)), 2)
    n = compress_network(nn.Sequential(nn.Conv2d(8, 8, 3)), 0.5)
    assert n == 1
