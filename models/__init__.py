"""Backbones (face-embedding networks) and face detection.

Importing this package registers every backbone family: each module in this
folder that does not start with ``_`` and is not plumbing is imported, and
registers its variants with :func:`register_backbone`. Use
:func:`create_backbone` / :func:`list_backbones` / :func:`backbone_info`.
"""
import importlib
import pkgutil

from .registry import (  # noqa: F401
    BackboneInfo,
    FaceEmbedder,
    MissingWeightsError,
    UnknownBackboneError,
    backbone_info,
    create_backbone,
    default_backbone,
    list_backbones,
    register_backbone,
)

_PLUMBING = {"registry", "torch_base", "detection"}

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name not in _PLUMBING:
        importlib.import_module(f"{__name__}.{_m.name}")
