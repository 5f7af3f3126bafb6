"""dlib's ResNet-34 face descriptor (128-d), shipped by face-recognition-models.

The weights (CC0, Davis King) live inside the ``face-recognition-models``
package, so this backbone works offline on a fresh machine. It is frozen: the
engine cannot fine-tune it.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from .registry import BackboneInfo, MissingWeightsError, backbone_info, register_backbone

# Rectangle of the face inside an aligned crop of side ``CROP_SIZE`` (see
# models.detection.ALIGN_TEMPLATE); dlib's 5-point predictor refines from it.
_FACE_RECT_FRACTION = (0.14, 0.12, 0.86, 0.92)


def _model_paths() -> tuple[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation inside the package
        try:
            import face_recognition_models as frm
        except ImportError as e:  # pragma: no cover - dependency missing
            raise MissingWeightsError("dlib-resnet", "face_recognition_models",
                                      "Install it: pip install face-recognition-models 'setuptools<82'") from e
    return frm.pose_predictor_five_point_model_location(), frm.face_recognition_model_location()


class DlibEmbedder:
    """Embeds aligned crops with dlib: 5-point landmarks, dlib face chip, ResNet descriptor."""

    def __init__(self, info: BackboneInfo, num_jitters: int = 0):
        import dlib

        sp_path, rec_path = _model_paths()
        self.info = info
        self.num_jitters = num_jitters
        self._dlib = dlib
        self._sp = dlib.shape_predictor(sp_path)
        self._rec = dlib.face_recognition_model_v1(rec_path)

    def _chip(self, crop: np.ndarray) -> np.ndarray:
        h, w = crop.shape[:2]
        l, t, r, b = _FACE_RECT_FRACTION
        rect = self._dlib.rectangle(int(l * w), int(t * h), int(r * w), int(b * h))
        shape = self._sp(crop, rect)
        return self._dlib.get_face_chip(crop, shape, size=150, padding=0.25)

    def embed(self, crops: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(crops), self.info.embedding_dim), np.float32)
        for i in range(0, len(crops), batch_size):
            chips = []
            for c in crops[i:i + batch_size]:
                a = np.ascontiguousarray(c, dtype=np.uint8)
                if a.ndim != 3 or a.shape[2] != 3:
                    raise ValueError(f"face crop must be H x W x 3 RGB, got shape {a.shape}")
                chips.append(self._chip(a))
            if chips:
                vecs = self._rec.compute_face_descriptor(chips, self.num_jitters)
                out[i:i + len(chips)] = np.asarray([np.asarray(v) for v in vecs], np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@register_backbone(
    name="dlib-resnet", family="dlib", input_size=150, embedding_dim=128,
    paper="He et al., Deep Residual Learning, CVPR 2016; dlib face recognition (King, 2017)",
    weights_source="face-recognition-models package (bundled, offline)",
    license="code Boost (dlib); weights CC0 1.0", trainable=False, default=True,
    extra={"params_m": 5.6, "lfw_accuracy": 0.9938},
)
def dlib_resnet(device: str | None = None, num_jitters: int = 0) -> DlibEmbedder:
    """dlib ResNet face descriptor; ``device`` is ignored (dlib-bin runs on the CPU)."""
    return DlibEmbedder(backbone_info("dlib-resnet"), num_jitters=num_jitters)
