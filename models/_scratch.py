"""Shared pieces of the families implemented from their papers in this package.

:func:`build_embedder` turns a feature network into a :class:`TorchEmbedder`
(initialisation scheme, optional local weights file); :func:`measure` gives the
parameter count and GMACs that the variants state in their metadata; the small
layers are the ones several families share.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._init_schemes import init_weights
from .registry import backbone_info
from .torch_base import TorchEmbedder, load_state_dict_file

__all__ = ["build_embedder", "measure", "LayerNorm2d", "SqueezeExcite", "DropPath", "ConvNormAct"]

_WEIGHTS_HOW = ("Pass the path of an existing state-dict file (saved from this backbone's network, "
                "or from the TorchEmbedder wrapping it).")


class _KeyAdapter(nn.Module):
    """Loads a plain, ``net.``- or ``module.``-prefixed state dict into ``net``; refuses one that matches nothing."""

    def __init__(self, net: nn.Module, path: str):
        super().__init__()
        self.net = net
        self.path = path

    def load_state_dict(self, state_dict: Any, strict: bool = True,  # type: ignore[override]
                        assign: bool = False) -> Any:
        own = set(self.net.state_dict())
        state = dict(state_dict)
        for prefix in ("module.", "net."):
            if state and not own & set(state) and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        if not own & set(state):
            raise ValueError(f"no tensor in {self.path} matches the network (keys like {sorted(state)[:3]})")
        return self.net.load_state_dict(state, strict=strict, assign=assign)


def build_embedder(name: str, net: nn.Module, *, weights: str | os.PathLike | None = None, init: str = "kaiming",
                   device: str | torch.device | None = None,
                   cls: Callable[..., TorchEmbedder] = TorchEmbedder) -> TorchEmbedder:
    """Initialise ``net`` with scheme ``init``, load ``weights`` if given, and wrap it for ``name``.

    ``net.embedding_dim`` (set by every family) overrides the registered
    embedding dimension when a caller changed it through keyword arguments.
    """
    init_weights(net, init)
    if weights is not None:
        load_state_dict_file(_KeyAdapter(net, str(weights)), weights, name, _WEIGHTS_HOW)
    info = backbone_info(name)
    dim = getattr(net, "embedding_dim", info.embedding_dim)
    if dim != info.embedding_dim:
        info = dataclasses.replace(info, embedding_dim=dim)
    return cls(net, info, device=device)


def _lstm_macs(m: nn.LSTM, inputs: tuple, output: Any) -> int:
    x = inputs[0]
    steps = x.numel() // x.shape[-1]
    macs, size = 0, m.input_size
    for _ in range(m.num_layers):
        macs += 4 * m.hidden_size * (size + m.hidden_size) * steps * (2 if m.bidirectional else 1)
        size = m.hidden_size * (2 if m.bidirectional else 1)
    return macs


@torch.no_grad()
def measure(net: nn.Module, input_size: int, frames: int | None = None) -> tuple[float, float]:
    """``(params in millions, GMACs)`` of one forward pass of ``net`` on a single input.

    MACs are FLOPs/2 from :class:`torch.utils.flop_counter.FlopCounterMode`
    (convolutions and matrix products), plus the analytic count of LSTMs and of
    modules defining ``uncounted_macs(inputs, output)`` (ops the counter
    does not see, e.g. LSNet's small-kernel aggregation).
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in net.parameters()) / 1e6
    extra = [0]

    def count(mod: nn.Module, inputs: tuple, output: Any) -> None:
        if isinstance(mod, nn.LSTM):
            extra[0] += _lstm_macs(mod, inputs, output)
        else:
            extra[0] += int(mod.uncounted_macs(inputs, output))

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, nn.LSTM) or hasattr(m, "uncounted_macs")]
    shape = (1, 3, input_size, input_size) if frames is None else (1, frames, 3, input_size, input_size)
    was_training = net.training
    net.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            net(torch.zeros(shape))
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return params, (counter.get_total_flops() / 2 + extra[0]) / 1e9


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): x * sigmoid(up(relu(down(mean_hw x))))."""

    def __init__(self, channels: int, rd_ratio: float = 0.25, rd_divisor: int = 1):
        super().__init__()
        rd = max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)
        self.down = nn.Conv2d(channels, rd, 1)
        self.act = nn.ReLU(inplace=True)
        self.up = nn.Conv2d(rd, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.up(self.act(self.down(s))))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or at rate 0)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, padding: int | None = None,
                 dilation: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU, bn_weight: float = 1.0):
        pad = (dilation * (k - 1)) // 2 if padding is None else padding
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        nn.init.constant_(layers[1].weight, bn_weight)
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class FourStageNet(nn.Module):
    """The trunk shared by the ConvNeXt-style families (HorNet, SpaRTAN, UniRepLKNet).

    Subclasses build ``downsample_layers`` (stem + 3 downsamplers) and call
    :meth:`_build_stages`; ``forward`` runs each downsampler then its stage, mean-pools,
    applies LayerNorm and the linear embedding head.
    """

    def _build_stages(self, dims: Sequence[int], depths: Sequence[int], drop_path_rate: float,
                      block: Callable[[int, float], nn.Module], embedding_dim: int, norm_eps: float = 1e-6) -> None:
        """``block(stage, drop_path)`` makes one block; drop-path grows linearly over all blocks."""
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        k = 0
        for i, depth in enumerate(depths):
            self.stages.append(nn.Sequential(*[block(i, rates[k + j]) for j in range(depth)]))
            k += depth
        self.norm = nn.LayerNorm(dims[-1], eps=norm_eps)
        self.head = nn.Linear(dims[-1], embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean((2, 3))))
