"""Weights and architecture checks of the backbones wrapped from timm and torchvision.

Checkpoints are written by the libraries themselves (random init, original
architecture, classifier included) into a temporary folder, then loaded through
the members' ``weights=`` argument: nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from models import MissingWeightsError, backbone_info, create_backbone, list_backbones
from models._wrapped import weights_available, weights_candidates
from models.nasnet import NASNetA

WRAPPED = ("inception-v4", "inception-resnet-v2", "nasnet-a-large", "nasnet-a-mobile", "crossvit-tiny", "halonet26t",
           "fbnet-c", "fbnetv3-b", "deeplabv3-mobilenetv3", "deeplabv3-resnet50")


def _with_weights_spec() -> list[str]:
    return [n for n in list_backbones() if backbone_info(n).extra.get("weights")]


@pytest.mark.parametrize("name", _with_weights_spec())
def test_missing_weights_file_is_named(name: str, tmp_path: Path) -> None:
    absent = tmp_path / "absent.pth"
    with pytest.raises(MissingWeightsError) as e:
        create_backbone(name, weights=absent, **backbone_info(name).extra.get("test_kwargs", {}))
    assert str(absent) in str(e.value) and e.value.path == str(absent)


@pytest.mark.parametrize("name", [n for n in _with_weights_spec() if n in WRAPPED])
def test_pretrained_looks_in_the_cache(name: str) -> None:
    spec = backbone_info(name).extra["weights"]
    if weights_available(spec):
        pytest.skip(f"{name}: weights present on this machine")
    with pytest.raises(MissingWeightsError) as e:
        create_backbone(name, pretrained=True, **backbone_info(name).extra.get("test_kwargs", {}))
    assert e.value.path == str(weights_candidates(spec)[0])


def _body(emb: torch.nn.Module) -> torch.nn.Module:
    return emb.net.body


def test_crossvit_loads_240px_weights_at_120(tmp_path: Path) -> None:
    src = timm.create_model("crossvit_tiny_240")  # ImageNet layout: 240 px, 1000 classes
    path = tmp_path / "crossvit.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    body = _body(create_backbone("crossvit-tiny", weights=path))
    assert body.pos_embed_0.shape == (1, 1 + 10 * 10, 96) and body.pos_embed_1.shape == (1, 1 + 7 * 7, 192)
    torch.testing.assert_close(body.blocks[0].fusion[0].attn.wq.weight, src.blocks[0].fusion[0].attn.wq.weight)
    torch.testing.assert_close(body.cls_token_0, src.cls_token_0)


def test_halonet_resamples_relative_positions(tmp_path: Path) -> None:
    src = timm.create_model("halonet26t")  # block 8, halo 2
    path = tmp_path / "halonet.pth"
    torch.save(src.state_dict(), path)
    body = _body(create_backbone("halonet26t", weights=path))
    rel = body.stages[3][0].self_attn.pos_embed.height_rel
    assert src.stages[3][0].self_attn.pos_embed.height_rel.shape[0] == 23 and rel.shape[0] == 2 * (4 + 2) - 1
    torch.testing.assert_close(rel[0], src.stages[3][0].self_attn.pos_embed.height_rel[0])  # end points kept
    torch.testing.assert_close(body.stem.conv1.conv.weight, src.stem.conv1.conv.weight)


def test_fbnet_loads_timm_checkpoint(tmp_path: Path) -> None:
    src = timm.create_model("fbnetc_100")
    path = tmp_path / "fbnetc.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    body = _body(create_backbone("fbnet-c", weights=path))
    for k, v in body.state_dict().items():
        torch.testing.assert_close(v, src.state_dict()[k])


def test_deeplab_loads_torchvision_checkpoints(tmp_path: Path) -> None:
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    seg = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=True)
    path = tmp_path / "deeplab.pth"
    torch.save(seg.state_dict(), path)
    body = _body(create_backbone("deeplabv3-mobilenetv3", weights=path))
    ref = seg.state_dict()
    assert set(body.state_dict()) <= set(ref)
    for k, v in body.state_dict().items():
        torch.testing.assert_close(v, ref[k])

    cls = mobilenet_v3_large(weights=None)
    path = tmp_path / "mobilenet.pth"
    torch.save(cls.state_dict(), path)
    body = _body(create_backbone("deeplabv3-mobilenetv3", weights_backbone=path))
    torch.testing.assert_close(body.backbone["16"][0].weight, cls.features[16][0].weight)


def test_nasnet_a_assembly_matches_timm_large() -> None:
    """The generic N @ P assembly with N=6 is timm's NASNet-A Large (narrowed for speed)."""
    torch.manual_seed(0)
    ref = timm.create_model("nasnetalarge", num_classes=0, stem_size=8, num_features=96).eval()
    ours = NASNetA(cells_per_stage=6, num_features=96, stem_size=8).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.forward_features(x))


def test_nasnet_a_mobile_size() -> None:
    """NASNet-A Mobile 4 @ 1056 has 5.3M parameters with its 1000-way classifier (paper, Table 2)."""
    body = NASNetA()
    n = sum(p.numel() for p in body.parameters()) + 1056 * 1000 + 1000
    assert abs(n / 1e6 - 5.3) < 0.05


def test_nasnet_a_mobile_loads_its_checkpoint(tmp_path: Path) -> None:
    kw = backbone_info("nasnet-a-mobile").extra["test_kwargs"]
    src = NASNetA(**kw)
    state = dict(src.state_dict(), **{"last_linear.weight": torch.zeros(10, 192)})
    path = tmp_path / "nasnet.pth"
    torch.save(state, path)
    body = _body(create_backbone("nasnet-a-mobile", weights=path, **kw))
    torch.testing.assert_close(body.cell_0.conv_1x1.conv.weight, src.cell_0.conv_1x1.conv.weight)
    with pytest.raises(ValueError, match="no tensor matches"):
        torch.save({"unrelated.weight": torch.zeros(1)}, path)
        create_backbone("nasnet-a-mobile", weights=path, **kw)


def test_inception_depths_prune_the_repeated_blocks() -> None:
    body = _body(create_backbone("inception-resnet-v2", depths=(1, 2, 1)))
    assert (len(body.repeat), len(body.repeat_1), len(body.repeat_2)) == (1, 2, 1)
    body = _body(create_backbone("inception-v4", depths=(1, 1, 1)))
    kinds = [type(b).__name__ for b in body.features]
    assert [kinds.count(k) for k in ("InceptionA", "InceptionB", "InceptionC")] == [1, 1, 1]


@pytest.mark.parametrize("name", ["nasnet-a-mobile", "crossvit-tiny", "halonet26t", "fbnet-c", "fbnetv3-b",
                                  "deeplabv3-mobilenetv3"])
def test_metadata_is_measured(name: str) -> None:
    """Params and GMACs in the metadata are those of the full member (cheap ones re-measured)."""
    from torch.utils.flop_counter import FlopCounterMode

    info = backbone_info(name)
    emb = create_backbone(name).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        emb(torch.zeros(1, 3, info.input_size, info.input_size))
    params = sum(p.numel() for p in emb.parameters()) / 1e6
    assert params == pytest.approx(info.extra["params_m"], rel=0.01)
    assert counter.get_total_flops() / 2e9 == pytest.approx(info.extra["gmacs"], rel=0.01)
