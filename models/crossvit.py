"""CrossViT (Chen et al. 2021), wrapped from timm with ``img_size=120``.

timm's ``crossvit_*_240`` resize every input to 240 unless ``img_size`` is set;
here it is passed to the model constructor (``timm.create_model(...,
img_size=120)``), so the small branch (patch 12) sees 120 px, 10 x 10 patches,
and the large branch (patch 16, ``img_scale`` 224/240) 112 px, 7 x 7 patches.
The two class tokens are concatenated (96 + 192 = 288-d) and projected to 512.
ImageNet weights trained at 240 px load with their position embeddings resampled
(bicubic) to these grids.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from ._wrapped import WeightsArg, make_embedder, weights_file
from .registry import register_backbone
from .torch_base import TorchEmbedder

IMG_SIZE = 120


def _filter(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's key renaming for CrossViT checkpoints plus position-embedding resampling to ``model``."""
    target = model.state_dict()
    out = {}
    for k, v in state.items():
        if "pos_embed" in k or "cls_token" in k:
            k = k.replace(".", "_")
        if k.startswith("pos_embed_") and k in target and v.shape != target[k].shape:
            g = math.isqrt(target[k].shape[1] - 1)
            v = resample_abs_pos_embed(v, new_size=[g, g], num_prefix_tokens=1)
        out[k] = v
    return out


def _crossvit(name: str, arch: str, device: str | torch.device | None, weights: WeightsArg, pretrained: bool,
              **kwargs: Any) -> TorchEmbedder:
    import timm
    from timm.models import load_pretrained

    body = timm.create_model(arch, pretrained=False, num_classes=0, img_size=IMG_SIZE, **kwargs)
    path = weights_file(name, weights, pretrained)
    if path is not None:
        # timm's loader with the file overlay; the entrypoint's own filter cannot resample, so pass ours
        load_pretrained(body, dict(body.pretrained_cfg, file=str(path)), num_classes=0, filter_fn=_filter)
    return make_embedder(name, body, body.num_features, device)


@register_backbone(name="crossvit-tiny", family="crossvit", input_size=IMG_SIZE, embedding_dim=512,
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                   paper="Chen et al., CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image "
                         "Classification, ICCV 2021",
                   weights_source="timm crossvit_tiny_240.in1k (ImageNet, 240 px; position embeddings resampled)",
                   license="code Apache-2.0 (timm, from IBM's CrossViT); weights Apache-2.0 (IBM; ImageNet-1k terms apply)",
                   extra={"params_m": 6.82, "gmacs": 0.328, "weights": "timm:crossvit_tiny_240.in1k",
                          "timm_model": "crossvit_tiny_240", "timm_kwargs": {"img_size": IMG_SIZE},
                          "test_kwargs": {"depth": ((1, 1, 0),)}})
def crossvit_tiny(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
                  **kwargs: Any) -> TorchEmbedder:
    """CrossViT-Ti (dims 96/192, 3 multi-scale blocks) at 120 px -> 512-d embedding."""
    return _crossvit("crossvit-tiny", "crossvit_tiny_240", device, weights, pretrained, **kwargs)
