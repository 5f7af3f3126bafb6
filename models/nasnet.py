"""NASNet-A (Zoph et al. 2018): timm's NASNet-A Large and a NASNet-A Mobile built from timm's cells.

timm registers only ``nasnetalarge`` (6 @ 4032). :class:`NASNetA` assembles the
same searched cells (timm's ``CellStem0/1``, ``FirstCell``, ``NormalCell``,
``ReductionCell0/1``, whose widths are arguments) for any ``N @ P`` setting:
NASNet-A Mobile is 4 @ 1056 with a 32-channel stem. Module names follow timm's
(and Cadene's ``nasnetamobile``): ``conv0``, ``cell_stem_0/1``, ``cell_{6s+i}``,
``reduction_cell_{s}``. Both run on 128 px crops (final map 4 x 4).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
from timm.layers import ConvNormAct
from timm.models.nasnet import CellStem0, CellStem1, FirstCell, NormalCell, ReductionCell0, ReductionCell1
from torch import nn

from ._wrapped import WeightsArg, load_backbone_state, make_embedder, timm_body, weights_file
from .registry import register_backbone
from .torch_base import TorchEmbedder

_PAPER = "Zoph et al., Learning Transferable Architectures for Scalable Image Recognition, CVPR 2018"


class NASNetA(nn.Module):
    """NASNet-A ``N @ P``: ``cells_per_stage`` cells per stage, ``num_features`` = P output channels.

    Three stages of one ``FirstCell`` and ``N - 1`` ``NormalCell`` (filters f, 2f, 4f
    with f = P / 24), two reduction cells between them, after a 3x3/2 conv and the
    two reduction stem cells. ``forward`` returns the ReLU'd ``(B, P, H/32, W/32)`` map.
    """

    def __init__(self, cells_per_stage: int = 4, num_features: int = 1056, stem_size: int = 32,
                 channel_multiplier: int = 2, in_chans: int = 3, pad_type: str = "same"):
        super().__init__()
        f = num_features // 24
        if f * 24 != num_features or f % (channel_multiplier ** 2):
            raise ValueError(f"num_features must be 24 * f with f divisible by {channel_multiplier ** 2}")
        self.num_features = num_features
        self.conv0 = ConvNormAct(in_chans, stem_size, kernel_size=3, padding=0, stride=2, apply_act=False,
                                 norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1))
        self.cell_stem_0 = CellStem0(stem_size, num_channels=f // channel_multiplier ** 2, pad_type=pad_type)
        self.cell_stem_1 = CellStem1(stem_size, num_channels=f // channel_multiplier, pad_type=pad_type)
        # channels of the two previous outputs (x_prev, x), as each cell consumes them
        prev, cur = f, 2 * f
        self.layer_names: list[str] = []
        for stage in range(3):
            fs = f * 2 ** stage
            if stage > 0:
                red_cls = ReductionCell0 if stage == 1 else ReductionCell1
                name = f"reduction_cell_{stage - 1}"
                setattr(self, name, red_cls(in_chs_left=prev, out_chs_left=fs, in_chs_right=cur, out_chs_right=fs,
                                            pad_type=pad_type))
                self.layer_names.append(name)
                cur = 4 * fs  # a reduction keeps x_prev for the next cell
            for i in range(cells_per_stage):
                name = f"cell_{stage * max(6, cells_per_stage) + i}"
                if i == 0:
                    cell = FirstCell(in_chs_left=prev, out_chs_left=fs // 2, in_chs_right=cur, out_chs_right=fs,
                                     pad_type=pad_type)
                else:
                    cell = NormalCell(in_chs_left=prev, out_chs_left=fs, in_chs_right=cur, out_chs_right=fs,
                                      pad_type=pad_type)
                setattr(self, name, cell)
                self.layer_names.append(name)
                prev, cur = cur, 6 * fs
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_conv0 = self.conv0(x)
        x_prev = self.cell_stem_0(x_conv0)
        x = self.cell_stem_1(x_conv0, x_prev)
        for name in self.layer_names:
            layer = getattr(self, name)
            if name.startswith("reduction"):
                x = layer(x, x_prev)
            else:
                x_prev, x = x, layer(x, x_prev)
        return self.act(x)


@register_backbone(name="nasnet-a-mobile", family="nasnet", input_size=128, embedding_dim=512, paper=_PAPER,
                   weights_source="random initialisation (or a local file)",
                   license="code Apache-2.0 (timm's NASNet cells; this assembly is ours); no weights shipped",
                   extra={"params_m": 4.77, "gmacs": 0.184,
                          "test_kwargs": {"cells_per_stage": 1, "num_features": 192, "stem_size": 8}})
def nasnet_a_mobile(device: str | torch.device | None = None, weights: WeightsArg = None,
                    **kwargs: Any) -> TorchEmbedder:
    """NASNet-A Mobile (4 @ 1056, 32-channel stem), 1056-d pooled -> 512-d embedding.

    ``weights``: a NASNet state dict with timm/Cadene module names (classifier ignored).
    """
    body = NASNetA(**kwargs)
    path = weights_file("nasnet-a-mobile", weights)
    if path is not None:
        load_backbone_state(body, path, "nasnet-a-mobile", drop_prefixes=("last_linear.",))
    return make_embedder("nasnet-a-mobile", body, None, device)


@register_backbone(name="nasnet-a-large", family="nasnet", input_size=128, embedding_dim=512, paper=_PAPER,
                   mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                   weights_source="timm nasnetalarge.tf_in1k (ImageNet)",
                   license="code Apache-2.0 (timm, from Cadene's port); weights Apache-2.0 (TF-Slim; ImageNet-1k terms apply)",
                   extra={"params_m": 86.79, "gmacs": 3.358, "weights": "timm:nasnetalarge.tf_in1k",
                          "timm_model": "nasnetalarge", "test_kwargs": {"stem_size": 8, "num_features": 96}})
def nasnet_a_large(device: str | torch.device | None = None, weights: WeightsArg = None, pretrained: bool = False,
                   **kwargs: Any) -> TorchEmbedder:
    """timm ``nasnetalarge`` (6 @ 4032, 96-channel stem), 4032-d pooled -> 512-d embedding."""
    body = timm_body("nasnet-a-large", "nasnetalarge", weights, pretrained, **kwargs)
    return make_embedder("nasnet-a-large", body, None, device)
