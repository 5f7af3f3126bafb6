"""Guidance (CKA alignment to a frozen guide) on real faces, and the pretrain CLI."""
import numpy as np
import pytest
import torch

from aspl.methods.cka import linear_cka
from aspl.methods.guidance import GuidanceSettings, guide_target
from aspl.methods.layers import even_pairs
from models import backbone_info, create_backbone
from tests.methods_helpers import library_from_crops, real_crops


def test_linear_cka_is_invariant_to_rotation_and_scale_and_low_for_noise():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 10, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g))
    assert float(linear_cka(X, 3 * X @ Q)) == pytest.approx(1.0, abs=1e-5)
    assert float(linear_cka(X, torch.randn(64, 10, generator=g))) < 0.4
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(X, X[:10])


def test_even_pairs_map_first_to_first_and_last_to_last():
    assert even_pairs(13, 4, 4) == [(0, 0), (4, 1), (8, 2), (12, 3)]
    assert even_pairs(3, 30, 6) == [(0, 0), (1, 14), (2, 29)]


def test_guidance_raises_embedding_cka_with_dlib_guide_on_real_faces(lfw_dev, dlib_embedder):
    fc = real_crops(lfw_dev)
    kw = backbone_info("simplenet-v1-050").extra["test_kwargs"]
    target = create_backbone("simplenet-v1-050", device="cpu", **kw)
    G = dlib_embedder.embed(list(fc.crops))
    cka = lambda: float(linear_cka(torch.from_numpy(target.embed(list(fc.crops))), torch.from_numpy(G)))  # noqa
    before = cka()
    res = guide_target(target, fc.crops, dlib_embedder, G, GuidanceSettings(epochs=15, lr=3e-3))
    assert res.losses[-1] < res.losses[0]
    assert cka() > before + 0.05


def test_guidance_with_a_torch_guide_aligns_layers(lfw_dev):
    fc = real_crops(lfw_dev)
    kw = backbone_info("simplenet-v1-050").extra["test_kwargs"]
    guide = create_backbone("overfeat-fast-025", device="cpu", **backbone_info("overfeat-fast-025").extra["test_kwargs"])
    target = create_backbone("simplenet-v1-050", device="cpu", **kw)
    res = guide_target(target, fc.crops[:32], guide, settings=GuidanceSettings(epochs=3, lr=3e-3, embedding_weight=0))
    assert len(res.pairs) >= 2 and res.losses[-1] < res.losses[0]
    with pytest.raises(ValueError, match="batch_size >= 32"):
        GuidanceSettings(batch_size=8)


def test_pretrain_guidance_cli_saves_weights_loadable_by_the_factory(lfw_dev, dlib_embedder, library, tmp_path, capsys):
    import json

    from aspl.cli import main

    lib, indexes = library
    library_from_crops(lib, indexes, real_crops(lfw_dev), dlib_embedder)
    out = tmp_path / "w.pt"
    rc = main(["pretrain", "--method", "guidance", "--guide", "dlib-resnet", "--backbone", "overfeat-fast-025",
               "--db", str(lib.root), "--epochs", "1", "--out", str(out)])
    assert rc == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["faces"] == 40 and len(row["losses"]) == 1
    emb = create_backbone("overfeat-fast-025", weights=str(out), device="cpu")
    sd = torch.load(out, weights_only=True)
    k = next(iter(sd))
    assert torch.equal(emb.net.state_dict()[k], sd[k])
    assert np.allclose(np.linalg.norm(emb.embed(list(real_crops(lfw_dev).crops[:2])), axis=1), 1, atol=1e-5)
    assert main(["pretrain", "--method", "guidance", "--backbone", "overfeat-fast-025", "--db", str(lib.root)]) == 2
