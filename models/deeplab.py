"""DeepLabv3 (Chen et al. 2017): a dilated backbone + ASPP, pooled to a face embedding.

torchvision's segmentation network (``deeplabv3_mobilenet_v3_large``,
``deeplabv3_resnet50``) without its per-pixel classifier, assembled from
torchvision's public parts as its builders do (so ``width_mult``, ``layers``
etc. can shrink it for tests). The dilated backbone keeps the last stages at
output stride 16 (atrous convolutions instead of striding); ASPP runs a 1x1,
three dilated 3x3 and an image-pooling branch in parallel and fuses them (then
torchvision's 3x3 conv-BN-ReLU); the 256-channel map is average-pooled and
projected to 512-d. Both run on 128 px crops (an 8 x 8 map at stride 16); the
ASPP rates are the paper's (6, 12, 18) for a 33-pixel map scaled to 8 pixels:
(1, 3, 4).

Modules are named as in torchvision's ``DeepLabV3`` (``backbone.*``,
``classifier.0-3.*``), so its COCO checkpoints load (``weights=``), and an
ImageNet classification checkpoint of the backbone loads with ``weights_backbone=``.
Nothing is downloaded (torchvision's ``weights=None, weights_backbone=None``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, mobilenet_v3_large
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.segmentation import DeepLabV3_MobileNet_V3_Large_Weights, DeepLabV3_ResNet50_Weights
from torchvision.models.segmentation.deeplabv3 import ASPP

from ._wrapped import WeightsArg, load_backbone_state, make_embedder, weights_file
from .registry import register_backbone
from .torch_base import TorchEmbedder

_PAPER = "Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation (DeepLabv3), arXiv 2017"
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def aspp_rates(map_size: int, paper_rates: Sequence[int] = (6, 12, 18), paper_map: int = 33) -> tuple[int, ...]:
    """The paper's atrous rates (for a 33-pixel map at stride 16) scaled to ``map_size``."""
    return tuple(max(1, round(r * map_size / paper_map)) for r in paper_rates)


class DeepLabFeatures(nn.Module):
    """``backbone`` (IntermediateLayerGetter with an ``out`` map) then ASPP and a 3x3 fuse."""

    def __init__(self, backbone: nn.Module, in_channels: int, rates: Sequence[int], channels: int = 256):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Sequential(  # torchvision's DeepLabHead without the final 1x1 classifier conv
            ASPP(in_channels, list(rates), channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x)["out"])


def _mobilenet_backbone(**kwargs: Any) -> tuple[nn.Module, int]:
    """Dilated MobileNetV3-Large features, wrapped as in torchvision's ``_deeplabv3_mobilenetv3``."""
    features = mobilenet_v3_large(weights=None, dilated=True, **kwargs).features
    out_pos = len(features) - 1
    return IntermediateLayerGetter(features, return_layers={str(out_pos): "out"}), features[out_pos].out_channels


def _resnet_backbone(layers: Sequence[int] = (3, 4, 6, 3), output_stride: int = 16,
                     **kwargs: Any) -> tuple[nn.Module, int]:
    """Dilated ResNet-50 (bottleneck) up to ``layer4``, as in torchvision's ``_deeplabv3_resnet``."""
    dilate = [False, output_stride == 8, True]
    net = ResNet(Bottleneck, list(layers), replace_stride_with_dilation=dilate, **kwargs)
    return IntermediateLayerGetter(net, return_layers={"layer4": "out"}), 512 * Bottleneck.expansion


def _load(body: DeepLabFeatures, name: str, weights: WeightsArg, pretrained: bool, weights_backbone: WeightsArg,
          backbone_prefix: str) -> None:
    path = weights_file(name, weights, pretrained)
    if path is not None:  # a torchvision DeepLabV3 checkpoint: drop the 21-class conv and the aux head
        load_backbone_state(body, path, name, drop_prefixes=("classifier.4.", "aux_classifier."))
    bb_path = weights_file(name, weights_backbone)
    if bb_path is not None:  # an ImageNet classification checkpoint of the backbone
        def rename(k: str) -> str:
            return k[len(backbone_prefix):] if k.startswith(backbone_prefix) else "_skip." + k

        load_backbone_state(body.backbone, bb_path, name, drop_prefixes=("_skip.", "fc."), rename=rename)


def _hub(weights_enum: Any) -> str:
    return "hub:" + weights_enum.url.rsplit("/", 1)[-1]


@register_backbone(name="deeplabv3-mobilenetv3", family="deeplab", input_size=128, embedding_dim=512,
                   mean=_MEAN, std=_STD, paper=_PAPER,
                   weights_source="torchvision DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1 "
                                  "(COCO segmentation), or an ImageNet backbone via weights_backbone",
                   license="code BSD-3-Clause (torchvision); weights BSD-3-Clause (torchvision; trained on COCO from an "
                           "ImageNet-1k backbone, whose terms apply)",
                   extra={"params_m": 11.15, "gmacs": 0.616,
                          "weights": _hub(DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
                          "weights_backbone": _hub(MobileNet_V3_Large_Weights.IMAGENET1K_V1),
                          "atrous_rates": aspp_rates(8), "output_stride": 16,
                          "test_kwargs": {"width_mult": 0.25, "aspp_channels": 32}})
def deeplabv3_mobilenetv3(device: str | torch.device | None = None, weights: WeightsArg = None,
                          pretrained: bool = False, weights_backbone: WeightsArg = None,
                          atrous_rates: Sequence[int] | None = None, aspp_channels: int = 256,
                          **kwargs: Any) -> TorchEmbedder:
    """DeepLabv3 on a dilated MobileNetV3-Large (stride 16) with ASPP, pooled 256-d -> 512-d.

    ``kwargs`` go to torchvision's ``mobilenet_v3_large`` (e.g. ``width_mult``).
    """
    backbone, in_ch = _mobilenet_backbone(**kwargs)
    body = DeepLabFeatures(backbone, in_ch, atrous_rates or aspp_rates(128 // 16), aspp_channels)
    _load(body, "deeplabv3-mobilenetv3", weights, pretrained, weights_backbone, "features.")
    return make_embedder("deeplabv3-mobilenetv3", body, None, device)


@register_backbone(name="deeplabv3-resnet50", family="deeplab", input_size=128, embedding_dim=512,
                   mean=_MEAN, std=_STD, paper=_PAPER,
                   weights_source="torchvision DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 (COCO "
                                  "segmentation), or an ImageNet backbone via weights_backbone",
                   license="code BSD-3-Clause (torchvision); weights BSD-3-Clause (torchvision; trained on COCO from an "
                           "ImageNet-1k backbone, whose terms apply)",
                   extra={"params_m": 39.77, "gmacs": 3.026,
                          "weights": _hub(DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
                          "weights_backbone": _hub(ResNet50_Weights.IMAGENET1K_V1),
                          "atrous_rates": aspp_rates(8), "output_stride": 16,
                          "test_kwargs": {"layers": (1, 1, 1, 1), "width_per_group": 8, "aspp_channels": 32}})
def deeplabv3_resnet50(device: str | torch.device | None = None, weights: WeightsArg = None,
                       pretrained: bool = False, weights_backbone: WeightsArg = None, output_stride: int = 16,
                       atrous_rates: Sequence[int] | None = None, aspp_channels: int = 256,
                       **kwargs: Any) -> TorchEmbedder:
    """DeepLabv3 on a dilated ResNet-50 (stride 16; ``output_stride=8`` as torchvision) with ASPP -> 512-d.

    ``atrous_rates`` default to the paper's scaled to the final map (128 / ``output_stride``);
    ``kwargs`` go to the ResNet (``layers``, ``width_per_group``).
    """
    backbone, in_ch = _resnet_backbone(output_stride=output_stride, **kwargs)
    body = DeepLabFeatures(backbone, in_ch, atrous_rates or aspp_rates(128 // output_stride), aspp_channels)
    _load(body, "deeplabv3-resnet50", weights, pretrained, weights_backbone, "")
    return make_embedder("deeplabv3-resnet50", body, None, device)
