"""LinearScope: the linear interpreter of a ReLU / max-pool network at an input.

A first pass over ``x`` records every ReLU's gate (``x > 0``) and every
max-pool's argmax. A second pass over a copy ``x2`` replays those gates (a
ReLU becomes a multiplication by its recorded mask, a max-pool a gather at the
recorded indices), so the second pass is the linear map ``A(x)`` applied to
``x2`` (affine when the network has biases; linear for a bias-free net, where
``A(x) x = f(x)``). The explanation of an output direction ``d`` is the row
``d^T A(x)``: the gradient of ``d . f2(x2)`` with respect to ``x2``; its
element-wise product with ``x`` gives each pixel's contribution.

Works for torch networks whose nonlinearities are ``nn.ReLU`` / ``nn.ReLU6``
modules and ``nn.MaxPool2d`` modules; other piecewise-linear functional ops
(``F.relu``, ``torch.amax``) stay correct because the copy equals ``x``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LinearScope", "linear_map_output", "explain_direction", "heatmap_for_crop", "overlay"]


class _Gates:
    def __init__(self) -> None:
        self.mode = "record"
        self.store: dict[int, list[torch.Tensor]] = {}
        self.pos: dict[int, int] = {}

    def put(self, key: int, value: torch.Tensor) -> None:
        self.store.setdefault(key, []).append(value.detach())

    def take(self, key: int) -> torch.Tensor:
        i = self.pos.get(key, 0)
        self.pos[key] = i + 1
        try:
            return self.store[key][i]
        except (KeyError, IndexError):
            raise RuntimeError("the second pass called a gate the first pass did not record") from None


class _GatedReLU(nn.Module):
    def __init__(self, orig: nn.Module, gates: _Gates):
        super().__init__()
        self.orig, self.gates = orig, gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = id(self)
        if self.gates.mode == "record":
            out = F.relu6(x) if isinstance(self.orig, nn.ReLU6) else F.relu(x)
            self.gates.put(key, (x > 0) & (x < 6) if isinstance(self.orig, nn.ReLU6) else x > 0)
            if isinstance(self.orig, nn.ReLU6):
                self.gates.put(key, (x >= 6).to(x.dtype) * 6.0)
            return out
        mask = self.gates.take(key).to(x.dtype)
        out = x * mask
        if isinstance(self.orig, nn.ReLU6):
            out = out + self.gates.take(key)
        return out


class _GatedMaxPool(nn.Module):
    def __init__(self, orig: nn.MaxPool2d, gates: _Gates):
        super().__init__()
        self.orig, self.gates = orig, gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = id(self)
        p = self.orig
        if self.gates.mode == "record":
            out, idx = F.max_pool2d(x, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode,
                                    return_indices=True)
            self.gates.put(key, idx)
            return out
        idx = self.gates.take(key)
        flat = x.flatten(2)
        return flat.gather(2, idx.flatten(2)).view(idx.shape)


class LinearScope:
    """Context for two-pass linearisation of ``net`` (modules are swapped back on exit)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.gates = _Gates()
        self._swapped: list[tuple[nn.Module, str, nn.Module]] = []

    def __enter__(self) -> "LinearScope":
        for parent in list(self.net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, (nn.ReLU, nn.ReLU6)):
                    new: nn.Module = _GatedReLU(child, self.gates)
                elif isinstance(child, nn.MaxPool2d) and not child.return_indices:
                    new = _GatedMaxPool(child, self.gates)
                else:
                    continue
                setattr(parent, name, new)
                self._swapped.append((parent, name, child))
        return self

    def __exit__(self, *exc: object) -> None:
        for parent, name, child in reversed(self._swapped):
            setattr(parent, name, child)
        self._swapped.clear()

    def record(self, x: torch.Tensor) -> torch.Tensor:
        """First pass: the network's output at ``x``; gates recorded."""
        self.gates.mode, self.gates.store, self.gates.pos = "record", {}, {}
        with torch.no_grad():
            return self.net(x)

    def replay(self, x2: torch.Tensor) -> torch.Tensor:
        """Second pass with the recorded gates: ``A(x) x2`` (+ the bias terms)."""
        self.gates.mode, self.gates.pos = "replay", {}
        return self.net(x2)


def linear_map_output(net: nn.Module, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
    """``f2(x2)`` of the second pass with gates fixed at ``x`` (``x2`` defaults to a copy of ``x``)."""
    was = net.training
    net.eval()
    try:
        with LinearScope(net) as scope:
            scope.record(x)
            return scope.replay(x.clone() if x2 is None else x2)
    finally:
        net.train(was)


def explain_direction(net: nn.Module, x: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Row ``d^T A(x)`` (same shape as ``x``, a single input ``(1, ...)``) and the score ``d . f(x)``."""
    if x.shape[0] != 1:
        raise ValueError(f"explain one input at a time, got a batch of {x.shape[0]}")
    was = net.training
    net.eval()
    try:
        with LinearScope(net) as scope:
            scope.record(x)
            x2 = x.detach().clone().requires_grad_(True)
            out = scope.replay(x2).flatten(1)
            d = direction.to(out.dtype).to(out.device).view(1, -1)
            if d.shape[1] != out.shape[1]:
                raise ValueError(f"direction has {d.shape[1]} dims, the network outputs {out.shape[1]}")
            score = (out * d).sum()
            (row,) = torch.autograd.grad(score, x2)
    finally:
        net.train(was)
    return row.detach(), float(score.detach())


def heatmap_for_crop(embedder: nn.Module, crop: np.ndarray, direction: np.ndarray | torch.Tensor,
                     mode: str = "contribution") -> tuple[np.ndarray, float]:
    """``(H, W)`` heatmap at the crop's own shape and the score, for a TorchEmbedder.

    The crop is normalised at full size and resized inside the explained graph,
    so the row of ``A(x)`` is over the crop's pixels. ``mode``: ``contribution``
    (row x input summed over channels; signed: positive supports the person) or
    ``gradient`` (absolute row summed over channels).
    """
    if mode not in ("contribution", "gradient"):
        raise ValueError(f"unknown heatmap mode {mode!r}; valid choices: contribution, gradient")
    info = embedder.info
    a = np.asarray(crop)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"face crop must be H x W x 3 RGB, got shape {a.shape}")
    z = torch.from_numpy(a.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    m = torch.tensor(info.mean).view(1, 3, 1, 1)
    s = torch.tensor(info.std).view(1, 3, 1, 1)
    z = ((z - m) / s).to(embedder.device)
    size = info.input_size

    class _Resized(nn.Module):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            if t.shape[-2:] != (size, size):
                t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            return self.net(t)

    d = torch.as_tensor(np.asarray(direction, np.float32))
    row, score = explain_direction(_Resized(embedder.net), z, d)
    if mode == "contribution":
        h = (row * z).sum(1)[0]
    else:
        h = row.abs().sum(1)[0]
    return h.cpu().numpy().astype(np.float32), score


def overlay(crop: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """RGB uint8 image: the crop blended with a diverging colour map of ``heat`` (red supports, blue opposes)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps

    v = float(np.abs(heat).max()) or 1.0
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(heat, sigma=max(1.0, heat.shape[0] / 80))
    v = float(np.abs(smooth).max()) or v
    rgb = colormaps["bwr"]((smooth / v + 1) / 2)[..., :3]
    out = (1 - alpha) * np.asarray(crop, np.float32) / 255.0 + alpha * rgb
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)

