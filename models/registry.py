"""A small registry of face-embedding backbones (timm-style).

Each architecture family lives in its own module and registers its variants with
:func:`register_backbone`. A variant is a short function that returns a
:class:`FaceEmbedder`; the decorator attaches :class:`BackboneInfo` metadata.

>>> from models import create_backbone, list_backbones
>>> emb = create_backbone("dlib-resnet")
>>> vectors = emb.embed(crops)          # float32, (N, D), L2-normalised
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "BackboneInfo",
    "FaceEmbedder",
    "UnknownBackboneError",
    "MissingWeightsError",
    "register_backbone",
    "create_backbone",
    "backbone_info",
    "list_backbones",
]


class UnknownBackboneError(KeyError):
    """Raised for a backbone name that is not registered."""

    def __init__(self, name: str, valid: Sequence[str]):
        self.name = name
        self.valid = list(valid)
        super().__init__(f"unknown backbone {name!r}; valid choices: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


class MissingWeightsError(FileNotFoundError):
    """Raised when pretrained weights are required but the file is absent."""

    def __init__(self, backbone: str, path: str, how: str):
        self.backbone = backbone
        self.path = path
        super().__init__(f"pretrained weights for {backbone!r} not found at {path}. {how}")


@dataclass(frozen=True)
class BackboneInfo:
    """Metadata of one registered backbone variant."""

    name: str
    family: str
    input_size: int
    embedding_dim: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    paper: str = ""
    weights_source: str = "random initialisation"
    license: str = ""
    trainable: bool = True
    default: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class FaceEmbedder(Protocol):
    """What every backbone offers: metadata and ``embed``.

    ``embed`` takes aligned RGB face crops (uint8 arrays, H x W x 3, any size;
    the embedder resizes to ``info.input_size``) and returns float32 vectors of
    shape ``(N, info.embedding_dim)`` with unit L2 norm.
    """

    info: BackboneInfo

    def embed(self, crops: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray: ...


_REGISTRY: dict[str, tuple[Callable[..., FaceEmbedder], BackboneInfo]] = {}


def register_backbone(**meta: Any) -> Callable[[Callable[..., FaceEmbedder]], Callable[..., FaceEmbedder]]:
    """Register a variant factory under ``meta['name']`` with its metadata."""
    info = BackboneInfo(**meta)

    def deco(fn: Callable[..., FaceEmbedder]) -> Callable[..., FaceEmbedder]:
        if info.name in _REGISTRY:
            raise ValueError(f"backbone {info.name!r} registered twice")
        _REGISTRY[info.name] = (fn, info)
        fn.backbone_info = info  # type: ignore[attr-defined]
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the package imports every family module, which registers them.
    import models  # noqa: F401


def list_backbones() -> list[str]:
    """Names of all registered backbones, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    """Metadata of a registered backbone; :class:`UnknownBackboneError` otherwise."""
    _ensure_loaded()
    try:
        return _REGISTRY[name][1]
    except KeyError:
        raise UnknownBackboneError(name, sorted(_REGISTRY)) from None


def default_backbone() -> str:
    """The backbone used when none is named (works offline on a fresh machine)."""
    _ensure_loaded()
    for name, (_, info) in sorted(_REGISTRY.items()):
        if info.default:
            return name
    raise RuntimeError("no default backbone registered")


def create_backbone(name: str, **kwargs: Any) -> FaceEmbedder:
    """Build the backbone ``name``; keyword arguments go to its factory.

    ``compress_rank=R`` builds it with one-way factorised convolutions (:mod:`models.compress`).
    """
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UnknownBackboneError(name, sorted(_REGISTRY))
    if kwargs.get("compress_rank") is not None:  # a-priori compression (models.compress)
        from .compress import create_compressed

        rank = kwargs.pop("compress_rank")
        return create_compressed(name, rank, **kwargs)
    kwargs.pop("compress_rank", None)
    fn, _ = _REGISTRY[name]
    return fn(**kwargs)
