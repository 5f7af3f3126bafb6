"""HaloNet (Vaswani et al. 2021): timm's ``halonet26t`` with a block size that fits face crops.

Halo attention splits the map into b x b blocks, each attending to its
(b + 2h)^2 haloed window with relative position embeddings. timm's
``halonet26t`` uses b=8, h=2, so its stride-32 stage needs inputs that are
multiples of 256. Here the architecture config is overridden
(``ByoModelCfg.self_attn_kwargs = dict(block_size=4, halo_size=1)``, passed to
timm's builder as ``model_cfg``) so it runs on 128 px crops. ImageNet weights
(b=8, h=2) load with their relative-position tables resampled (linear) from
2(b+2h)-1 = 23 to 11 rows.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from timm.models._builder import build_model_with_cfg
from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg, interleave_blocks
from torch import nn

from ._wrapped import WeightsArg, make_embedder, weights_file
from .registry import register_backbone
from .torch_base import TorchEmbedder


def halonet26t_cfg(block_size: int = 4, halo_size: int = 1, channels: Sequence[int] = (256, 512, 1024, 2048),
                   depths: Sequence[int] = (2, 2, 2, 2), stem_chs: int = 64, num_heads: int = 8) -> ByoModelCfg:
    """timm's ``halonet26t`` config (ResNet26-t, halo attention in the last two stages), resizable."""
    c, d = channels, depths
    return ByoModelCfg(
        blocks=(
            ByoBlockCfg(type="bottle", d=d[0], c=c[0], s=1, gs=0, br=0.25),
            ByoBlockCfg(type="bottle", d=d[1], c=c[1], s=2, gs=0, br=0.25),
            interleave_blocks(types=("bottle", "self_attn"), d=d[2], c=c[2], s=2, gs=0, br=0.25),
            ByoBlockCfg(type="self_attn", d=d[3], c=c[3], s=2, gs=0, br=0.25),
        ),
        stem_chs=stem_chs,
        stem_type="tiered",
        stem_pool="maxpool",
        self_attn_layer="halo",
        self_attn_kwargs=dict(block_size=block_size, halo_size=halo_size, num_heads=num_heads),
    )


def _filter(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Resample relative-position tables (``*.pos_embed.{height,width}_rel``) to ``model``'s window."""
    target = model.state_dict()
    out = {}
    for k, v in state.items():
        if k.endswith("_rel") and k in target and v.shape != target[k].shape:
            n = target[k].shape[0]
            v = F.interpolate(v.t()[None].float(), size=n, mode="linear", align_corners=True)[0].t().to(v.dtype)
        out[k] = v
    return out


@register_backbone(name="halonet26t", family="halonet", input_size=128, embedding_dim=512,
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                   paper="Vaswani et al., Scaling Local Self-Attention for Parameter Efficient Visual Backbones, "
                         "CVPR 2021",
                   weights_source="timm halonet26t.a1h_in1k (ImageNet, b=8 h=2; relative positions resampled)",
                   license="code Apache-2.0 (timm); weights Apache-2.0 (trained by timm; ImageNet-1k terms apply)",
                   extra={"params_m": 11.48, "gmacs": 0.786, "weights": "timm:halonet26t.a1h_in1k",
                          "timm_model": "halonet26t", "block_size": 4, "halo_size": 1,
                          "test_kwargs": {"channels": (32, 64, 128, 256), "depths": (1, 1, 2, 1), "stem_chs": 16}})
def halonet26t(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
               block_size: int = 4, halo_size: int = 1, channels: Sequence[int] = (256, 512, 1024, 2048),
               depths: Sequence[int] = (2, 2, 2, 2), stem_chs: int = 64, **kwargs: Any) -> TorchEmbedder:
    """HaloNet-26t with b=4, h=1 at 128 px, 2048-d pooled -> 512-d embedding."""
    cfg = halonet26t_cfg(block_size, halo_size, channels, depths, stem_chs)
    path = weights_file("halonet26t", weights, pretrained)
    body = build_model_with_cfg(
        ByobNet, "halonet26t", path is not None, model_cfg=cfg, feature_cfg=dict(flatten_sequential=True),
        pretrained_cfg_overlay=dict(file=str(path)) if path else None, pretrained_filter_fn=_filter,
        num_classes=0, **kwargs)
    return make_embedder("halonet26t", body, None, device)

