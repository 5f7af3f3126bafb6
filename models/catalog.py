"""The backbone pool as rows (``python -m aspl backbones`` prints them as JSON lines).

Only metadata is read: no network is built, nothing is downloaded. Params and
GMACs are the values measured for each member (``BackboneInfo.extra``;
``bench/backbones.py`` re-measures them).
"""
from __future__ import annotations

from typing import Any

from ._wrapped import weights_available
from .registry import BackboneInfo, backbone_info, list_backbones

__all__ = ["backbone_rows", "pretrained_available"]


def pretrained_available(info: BackboneInfo) -> bool:
    """Whether the member's pretrained weights are on this machine.

    ``extra["weights"]`` names a local file (see :mod:`models._wrapped`); weights
    bundled inside an installed package (dlib's) count as available; members
    without either have no published weights.
    """
    spec = info.extra.get("weights")
    if spec:
        return weights_available(spec)
    return "bundled" in info.weights_source.lower()


def backbone_rows() -> list[dict[str, Any]]:
    """One row per registered backbone, sorted by name."""
    rows = []
    for name in list_backbones():
        info = backbone_info(name)
        rows.append({
            "name": name,
            "family": info.family,
            "paper": info.paper,
            "params_m": info.extra.get("params_m"),
            "gmacs": info.extra.get("gmacs"),
            "input_size": info.input_size,
            "embedding_dim": info.embedding_dim,
            "pretrained_weights": pretrained_available(info),
        })
    return rows
