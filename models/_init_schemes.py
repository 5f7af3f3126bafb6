"""Weight initialisation schemes for backbones trained from scratch.

The filter-design literature treats initialisation as a design choice; the
from-scratch families take ``init=`` and call :func:`init_weights`:

* ``"kaiming"`` (default): He et al. 2015, normal with std ``gain/sqrt(fan_in)``
  (ReLU gain) for every convolution and linear layer; zero biases.
* ``"orthogonal"``: Saxe et al. 2014, each group of a convolution (rows =
  output filters, columns = fan-in) is a scaled orthogonal matrix, with the
  same per-weight variance as ``"kaiming"``.
* ``"dct"`` / ``"gabor"``: ``"kaiming"`` everywhere, except that the first
  convolution on the RGB input gets structured filters: the 2-D DCT-II basis
  (lowest frequencies first) or a Gabor bank (orientations x wavelengths x
  phases), each crossed with an orthonormal colour basis (luminance, then
  colour-opponent directions).

Normalisation layers, layer scales and other parameters keep the values the
architecture gave them. LSTMs get per-gate schemes with forget-gate bias 1.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["INIT_SCHEMES", "init_weights", "dct_filters", "gabor_filters", "colour_basis"]

INIT_SCHEMES = ("kaiming", "orthogonal", "dct", "gabor")

_RELU_GAIN = math.sqrt(2.0)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def colour_basis(channels: int) -> torch.Tensor:
    """Orthonormal ``(channels, channels)`` basis over input channels; row 0 is the mean (luminance).

    Rows are the DCT-II vectors of length ``channels``, so for RGB they are
    luminance, a red-blue and a green-magenta opponent direction.
    """
    n = torch.arange(channels, dtype=torch.float64)
    rows = [torch.cos(math.pi * (2 * n + 1) * k / (2 * channels)) for k in range(channels)]
    b = torch.stack(rows)
    return (b / b.norm(dim=1, keepdim=True)).float()


def _dct_1d(k: int) -> torch.Tensor:
    n = torch.arange(k, dtype=torch.float64)
    m = torch.stack([torch.cos(math.pi * (2 * n + 1) * u / (2 * k)) for u in range(k)])
    return m / m.norm(dim=1, keepdim=True)


def _cycle(filters: list[torch.Tensor], out_channels: int) -> torch.Tensor:
    """Take ``out_channels`` filters in order, repeating with flipped sign when they run out."""
    out = [filters[i % len(filters)] * (-1.0) ** (i // len(filters)) for i in range(out_channels)]
    return torch.stack(out)


def dct_filters(out_channels: int, in_channels: int, kh: int, kw: int | None = None) -> torch.Tensor:
    """``(out, in, kh, kw)`` unit-norm DCT-II basis filters x colour basis, low frequencies first."""
    kw = kh if kw is None else kw
    bh, bw = _dct_1d(kh), _dct_1d(kw)
    colours = colour_basis(in_channels).double()
    keyed = []
    for u in range(kh):
        for v in range(kw):
            spatial = torch.outer(bh[u], bw[v])
            for c in range(in_channels):
                keyed.append(((u + v + c, c, u), colours[c][:, None, None] * spatial))
    keyed.sort(key=lambda t: t[0])
    return _cycle([f for _, f in keyed], out_channels).float()


def gabor_filters(out_channels: int, in_channels: int, kh: int, kw: int | None = None,
                  orientations: int = 8) -> torch.Tensor:
    """``(out, in, kh, kw)`` unit-norm Gabor bank x colour basis (luminance filters first).

    Wavelengths go from the kernel size down to 2 pixels (one octave apart),
    with even (cosine) and odd (sine) phases; sigma = 0.56 * wavelength (one
    octave bandwidth), aspect ratio 0.5. Even filters are made zero-mean.
    """
    kw = kh if kw is None else kw
    ys = torch.arange(kh, dtype=torch.float64) - (kh - 1) / 2
    xs = torch.arange(kw, dtype=torch.float64) - (kw - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    size = max(kh, kw)
    wavelengths = []
    lam = float(max(size, 2))
    while lam >= 2.0 and len(wavelengths) < 4:
        wavelengths.append(lam)
        lam /= 2.0
    colours = colour_basis(in_channels).double()
    bank = []
    for c in range(in_channels):
        for lam in wavelengths:
            sigma = 0.56 * lam
            for o in range(orientations):
                th = math.pi * o / orientations
                xr = xx * math.cos(th) + yy * math.sin(th)
                yr = -xx * math.sin(th) + yy * math.cos(th)
                env = torch.exp(-(xr ** 2 + (0.5 * yr) ** 2) / (2 * sigma ** 2))
                for phase in (0.0, math.pi / 2):
                    g = env * torch.cos(2 * math.pi * xr / lam + phase)
                    if phase == 0.0:
                        g = g - g.mean()
                    n = g.norm()
                    if n > 1e-8:
                        bank.append(colours[c][:, None, None] * (g / n))
    if not bank:  # 1x1 kernels: only colour directions
        bank = [colours[c][:, None, None] * torch.ones(kh, kw, dtype=torch.float64) / math.sqrt(kh * kw)
                for c in range(in_channels)]
    return _cycle(bank, out_channels).float()


def _kaiming_(w: torch.Tensor, gain: float = _RELU_GAIN) -> None:
    fan_in = w[0].numel()
    with torch.no_grad():
        w.normal_(0.0, gain / math.sqrt(fan_in))


def _orthogonal_(w: torch.Tensor, groups: int = 1, gain: float = _RELU_GAIN) -> None:
    out = w.shape[0]
    fan_in = w[0].numel()
    per = out // groups
    scale = gain * math.sqrt(max(1.0, per / fan_in))
    with torch.no_grad():
        flat = w.view(groups, per, fan_in)
        for g in range(groups):
            block = torch.empty(per, fan_in)
            nn.init.orthogonal_(block)
            flat[g].copy_(block * scale)


def _init_lstm(m: nn.LSTM, scheme: str) -> None:
    h = m.hidden_size
    for name, p in m.named_parameters():
        with torch.no_grad():
            if name.startswith("weight"):
                for gate in p.view(4, h, -1):  # input, forget, cell, output gates
                    if scheme == "orthogonal":
                        _orthogonal_(gate, gain=1.0)
                    else:
                        _kaiming_(gate, gain=1.0)
            elif name.startswith("bias"):
                p.zero_()
                if name.startswith("bias_ih"):
                    p[h:2 * h].fill_(1.0)  # forget-gate bias 1 (Jozefowicz et al. 2015)


def _first_input_conv(module: nn.Module, in_channels: int = 3) -> nn.Conv2d | None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == in_channels and m.groups == 1:
            return m
    return None


def init_weights(module: nn.Module, scheme: str = "kaiming") -> nn.Module:
    """Initialise ``module``'s convolutions, linear layers and LSTMs in place with ``scheme``."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid choices: {', '.join(INIT_SCHEMES)}")
    base = "orthogonal" if scheme == "orthogonal" else "kaiming"
    for m in module.modules():
        if isinstance(m, _CONV + (nn.Linear,)):
            if base == "orthogonal":
                _orthogonal_(m.weight, groups=getattr(m, "groups", 1))
            else:
                _kaiming_(m.weight)
            if m.bias is not None:
                with torch.no_grad():
                    m.bias.zero_()
        elif isinstance(m, nn.LSTM):
            _init_lstm(m, base)
    if scheme in ("dct", "gabor"):
        conv = _first_input_conv(module)
        if conv is not None:
            o, i, kh, kw = conv.weight.shape
            make = dct_filters if scheme == "dct" else gabor_filters
            with torch.no_grad():
                conv.weight.copy_(make(o, i, kh, kw) * _RELU_GAIN)
    return module
