"""Shared pieces of the backbones wrapped from timm and torchvision.

Every wrapped member is ``body -> global average pool -> EmbeddingHead``: the
library network without its classifier, then a linear projection (no bias) and
BatchNorm1d to ``embedding_dim`` (FaceNet's bottleneck); :class:`TorchEmbedder`
L2-normalises the result.

Pretrained weights are never downloaded here. A member's registry metadata
names where its weights are looked for (``extra["weights"]``, a *weights spec*):

* ``timm:<model>.<tag>``: timm's ImageNet checkpoint, in the torch hub folder
  (``$TORCH_HOME/hub/checkpoints/<file of timm's URL>``, or ``<model>.<tag>.safetensors``)
  or already in the Hugging Face cache;
* ``hub:<file>``: ``$TORCH_HOME/hub/checkpoints/<file>`` (where torchvision downloads to);
* ``file:<path>``: a path, ``$TORCH_HOME`` expanded.

Factories take ``weights=PATH`` (a local file) or ``pretrained=True`` (the
spec's file); a missing file raises :class:`MissingWeightsError` naming it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Union

import torch
from torch import nn

from .registry import MissingWeightsError, backbone_info
from .torch_base import TorchEmbedder, torch_home

__all__ = [
    "EmbeddingHead",
    "PooledEmbeddingNet",
    "hub_checkpoints",
    "weights_candidates",
    "weights_available",
    "weights_file",
    "make_embedder",
    "timm_body",
    "read_state_dict",
    "load_backbone_state",
]

_logger = logging.getLogger(__name__)

WeightsArg = Union[str, "os.PathLike[str]", None]


class EmbeddingHead(nn.Sequential):
    """Linear projection without bias, then BatchNorm1d (FaceNet's 512-d bottleneck)."""

    def __init__(self, in_features: int, embedding_dim: int):
        super().__init__(nn.Linear(in_features, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim))


class PooledEmbeddingNet(nn.Module):
    """``body`` (pooled ``(B, F)`` or a ``(B, F, H, W)`` map, averaged) then :class:`EmbeddingHead`."""

    def __init__(self, body: nn.Module, num_features: int, embedding_dim: int):
        super().__init__()
        self.body = body
        self.head = EmbeddingHead(num_features, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)
        if f.ndim == 4:
            f = f.mean((2, 3))
        return self.head(f.flatten(1))


def hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints``: where torch.hub (torchvision, timm URLs) caches files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _timm_candidates(tag: str) -> list[Path]:
    import timm

    cfg = timm.models.get_pretrained_cfg(tag)
    if cfg is None:
        raise ValueError(f"timm has no pretrained tag {tag!r}")
    url = cfg.url or ""
    name = url.rsplit("/", 1)[-1] if url else f"{tag}.safetensors"
    paths = [hub_checkpoints() / name]
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
            if isinstance(hit, str):
                paths.append(Path(hit))
    return paths


def weights_candidates(spec: str) -> list[Path]:
    """Local files a weights spec may resolve to, the canonical one first."""
    kind, _, rest = spec.partition(":")
    if kind == "timm":
        return _timm_candidates(rest)
    if kind == "hub":
        return [hub_checkpoints() / rest]
    if kind == "file":
        return [Path(os.path.expanduser(rest.replace("$TORCH_HOME", str(torch_home()))))]
    raise ValueError(f"unknown weights spec {spec!r} (timm:, hub: or file:)")


def weights_available(spec: str) -> bool:
    """Whether a local file for ``spec`` exists (nothing is downloaded)."""
    return any(p.is_file() for p in weights_candidates(spec))


def _how(spec: str) -> str:
    kind, _, rest = spec.partition(":")
    if kind == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(rest)
        src = cfg.url or f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
        return f"Download {src} to that path on a machine that is online, or pass weights=PATH."
    return "Place the checkpoint at that path, or pass weights=PATH."


def weights_file(name: str, weights: WeightsArg = None, pretrained: bool = False) -> Path | None:
    """The weights file to load for ``name``: ``weights`` if given, the spec's file if
    ``pretrained``, else ``None`` (random initialisation). Missing -> MissingWeightsError."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise MissingWeightsError(name, str(path), "Pass the path of an existing checkpoint file.")
        return path
    if not pretrained:
        return None
    spec = backbone_info(name).extra.get("weights")
    if not spec:
        raise ValueError(f"{name!r} has no published weights to look for; pass weights=PATH")
    paths = weights_candidates(spec)
    for p in paths:
        if p.is_file():
            return p
    raise MissingWeightsError(name, str(paths[0]), _how(spec))


def make_embedder(name: str, body: nn.Module, num_features: int | None = None,
                  device: str | torch.device | None = None) -> TorchEmbedder:
    """Wrap ``body`` (pooled features of width ``num_features``; for a timm model without
    classifier, ``None`` reads its ``head_hidden_size``) into the member's embedder."""
    if num_features is None:
        num_features = getattr(body, "head_hidden_size", None) or body.num_features
    info = backbone_info(name)
    return TorchEmbedder(PooledEmbeddingNet(body, num_features, info.embedding_dim), info, device=device)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or torch file (``state_dict``/``model`` wrappers unwrapped)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p), device="cpu")
    state = torch.load(p, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_backbone_state(module: nn.Module, path: str | os.PathLike[str], name: str,
                        drop_prefixes: tuple[str, ...] = (), rename: Callable[[str], str] | None = None) -> None:
    """Load a checkpoint into ``module`` non-strictly (classifier keys etc. dropped by prefix).

    Raises ``ValueError`` when no tensor of the file matches the module (wrong checkpoint);
    shape mismatches raise as in ``load_state_dict``.
    """
    state = read_state_dict(path)
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    result = module.load_state_dict(state, strict=False)
    loaded = len(state) - len(result.unexpected_keys)
    if loaded == 0:
        raise ValueError(f"{path}: no tensor matches the {name!r} backbone; is it the right checkpoint?")
    if result.missing_keys or result.unexpected_keys:
        _logger.warning("%s: loaded %d tensors from %s; missing %d, unexpected %d", name, loaded, path,
                        len(result.missing_keys), len(result.unexpected_keys))


def timm_body(name: str, arch: str, weights: WeightsArg = None, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's ``arch`` without classifier (``num_classes=0``). A weights file goes through
    timm's own loader (``pretrained_cfg_overlay=dict(file=...)``), which drops the classifier."""
    import timm

    path = weights_file(name, weights, pretrained)
    if path is None:
        return timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=0,
                             **kwargs)
