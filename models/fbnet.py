"""FBNet-C and FBNetV3 (Meta's hardware-aware architecture search), wrapped from timm.

Stacks of inverted-residual MBConv blocks (1x1 expand, k x k depthwise, optional
SE, 1x1 project) whose kernel sizes, expansions and depths were searched. timm
re-implements them (Apache-2.0) and trained its own ImageNet weights; Meta's own
definitions and weights (mobile-vision, FBNetV5) are under non-commercial terms
and are not used. Both run on 112 px crops (final map 4 x 4).
"""
from __future__ import annotations

from typing import Any

import torch

from ._wrapped import WeightsArg, make_embedder, timm_body
from .registry import register_backbone
from .torch_base import TorchEmbedder

_META = dict(family="fbnet", input_size=112, embedding_dim=512, mean=(0.485, 0.456, 0.406),
             std=(0.229, 0.224, 0.225))


@register_backbone(name="fbnet-c", paper="Wu et al., FBNet: Hardware-Aware Efficient ConvNet Design via "
                   "Differentiable Neural Architecture Search, CVPR 2019",
                   weights_source="timm fbnetc_100.rmsp_in1k (ImageNet)",
                   license="code Apache-2.0 (timm re-implementation); weights Apache-2.0 (trained by timm; ImageNet-1k terms apply)",
                   extra={"params_m": 4.60, "gmacs": 0.107, "weights": "timm:fbnetc_100.rmsp_in1k",
                          "timm_model": "fbnetc_100"},
                   **_META)
def fbnet_c(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
            **kwargs: Any) -> TorchEmbedder:
    """FBNet-C 1.0 (22 MBConv blocks, 1984-d head conv) -> 512-d embedding."""
    body = timm_body("fbnet-c", "fbnetc_100", weights, pretrained, **kwargs)
    return make_embedder("fbnet-c", body, None, device)


@register_backbone(name="fbnetv3-b", paper="Dai et al., FBNetV3: Joint Architecture-Recipe Search using "
                   "Predictor Pretraining, CVPR 2021",
                   weights_source="timm fbnetv3_b.ra2_in1k (ImageNet)",
                   license="code Apache-2.0 (timm re-implementation); weights Apache-2.0 (trained by timm; ImageNet-1k terms apply)",
                   extra={"params_m": 7.63, "gmacs": 0.114, "weights": "timm:fbnetv3_b.ra2_in1k",
                          "timm_model": "fbnetv3_b"},
                   **_META)
def fbnetv3_b(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
              **kwargs: Any) -> TorchEmbedder:
    """FBNetV3-B (MBConv with SE and hard-swish, 1984-d head) -> 512-d embedding."""
    body = timm_body("fbnetv3-b", "fbnetv3_b", weights, pretrained, **kwargs)
    return make_embedder("fbnetv3-b", body, None, device)
