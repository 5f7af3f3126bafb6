"""Engine/loop state as bytes: JSON for scalars, ``.npz`` for arrays; loading never unpickles.

>>> meta, blob = pack_state({"round": 3, "face_ids": np.arange(4)})
>>> unpack_state(meta, blob)["face_ids"]
array([0, 1, 2, 3])
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

__all__ = ["StateFormatError", "pack_state", "unpack_state"]


class StateFormatError(ValueError):
    """Stored state bytes that cannot be read safely (malformed JSON, an object array, a bad archive)."""


def pack_state(state: dict[str, Any]) -> tuple[str, bytes]:
    """Split ``state`` into JSON text (every non-array value) and an npz archive (numpy arrays)."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    bad = [k for k, v in arrays.items() if v.dtype == object]
    if bad:
        raise StateFormatError(f"object arrays cannot be stored safely: {', '.join(bad)}")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return json.dumps(meta, sort_keys=True), buf.getvalue()


def unpack_state(meta: str, blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`pack_state`; arrays are loaded with ``allow_pickle=False``."""
    try:
        out = json.loads(meta)
        if not isinstance(out, dict):
            raise StateFormatError("state metadata is not a JSON object")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            for k in z.files:
                out[k] = z[k]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, StateFormatError):
            raise
        raise StateFormatError(f"unreadable stored state: {e}") from e
    return out
