"""LinearScope: the second pass with replayed gates is the linear map A(x); heatmaps on a real library."""
import numpy as np
import pytest
import torch
from torch import nn

from aspl.methods.explain import explain_face, save_heatmap_png
from models import backbone_info, create_backbone
from models.linearscope import explain_direction, heatmap_for_crop, linear_map_output
from tests.methods_helpers import library_from_crops, real_crops


def _bias_free_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 5, bias=False))


def test_second_pass_is_linear_and_reproduces_the_output_for_a_bias_free_relu_net():
    net = _bias_free_net()
    x = torch.randn(1, 3, 16, 16)
    f = net(x).detach()
    jac = torch.autograd.functional.jacobian(lambda z: linear_map_output(net, x, z), x.clone())  # A(x)
    A = jac.reshape(5, -1)
    assert torch.allclose(A @ x.reshape(-1), f.reshape(-1), atol=1e-5)  # A(x) x = f(x)
    z = torch.randn(1, 3, 16, 16)
    assert torch.allclose(linear_map_output(net, x, 2 * z + x), 2 * linear_map_output(net, x, z)
                          + linear_map_output(net, x, x), atol=1e-5)  # linear in the second copy
    d = torch.randn(5)
    row, score = explain_direction(net, x, d)
    assert torch.allclose(row.reshape(-1), d @ A, atol=1e-5) and score == pytest.approx(float(f[0] @ d), rel=1e-5)
    assert all(type(m) is not nn.Module for m in net)  # modules swapped back
    assert isinstance(net[1], nn.ReLU) and isinstance(net[2], nn.MaxPool2d)


def test_heatmap_has_the_crop_shape_and_sums_to_the_score_for_a_bias_free_backbone(lfw_dev):
    crop = real_crops(lfw_dev).crops[0]
    emb = create_backbone("overfeat-fast-025", device="cpu", **backbone_info("overfeat-fast-025").extra["test_kwargs"])
    for m in emb.net.modules():
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    d = np.random.default_rng(0).normal(size=emb.info.embedding_dim).astype(np.float32)
    heat, score = heatmap_for_crop(emb, crop, d)
    assert heat.shape == crop.shape[:2]
    assert float(heat.sum()) == pytest.approx(score, rel=1e-3, abs=1e-4)
    with pytest.raises(ValueError, match="valid choices"):
        heatmap_for_crop(emb, crop, d, mode="saliency")


def test_explain_face_on_a_real_library_and_cli(lfw_dev, library, tmp_path, capsys):
    import json

    from aspl.cli import main

    lib, indexes = library
    fc = real_crops(lfw_dev)
    ids = library_from_crops(lib, indexes, fc.subset(np.arange(0, 40, 4)))
    emb = create_backbone("overfeat-fast-025", device="cpu", **backbone_info("overfeat-fast-025").extra["test_kwargs"])
    ex = explain_face(lib, ids[0], embedder=emb)
    assert ex.heatmap.shape == (160, 160) and ex.person_name in set(fc.labels)
    png = save_heatmap_png(ex, tmp_path / "h.png")
    assert png.stat().st_size > 1000
    assert main(["explain", str(ids[0]), "--db", str(lib.root), "--out", str(tmp_path / "c.png")]) == 0
    assert json.loads(capsys.readouterr().out)["heatmap"].endswith("c.png")
    assert main(["explain", str(ids[0]), "--db", str(lib.root), "--backbone", "dlib-resnet"]) == 2
    assert "not one" in capsys.readouterr().err
