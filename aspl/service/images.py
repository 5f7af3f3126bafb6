"""Pictures for the pages: face crops, the photo with the face's box, a person's cover face, explanations."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from storage.faces import fs_path

from ..imageio import open_regular

log = logging.getLogger("aspl.service")


class ImagesMixin:
    """``face_crop``, ``face_crop_jpeg``, ``photo_with_box``, ``person_thumb``, ``explain``."""

    def face_crop(self, face_id: int) -> np.ndarray:
        """The aligned crop of a face (RGB uint8)."""
        return self.library.face_crop(face_id)

    def face_crop_jpeg(self, face_id: int) -> bytes:
        """The stored JPEG of a face crop (what the pages show, without re-encoding)."""
        return self.library.face_crop_jpeg(face_id)

    def photo_with_box(self, face_id: int, max_side: int = 720) -> Any:
        """The face's photo with its box drawn (PIL image), or None if the file is gone or unreadable."""
        from PIL import Image, ImageDraw, ImageOps

        f = self.library.face(face_id)
        try:
            # the exact file name (also when not UTF-8); never blocks on a pipe put in the photo's place
            with open_regular(fs_path(f)) as fh, Image.open(fh) as im:
                img = (ImageOps.exif_transpose(im) or im).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # BadImageError is a ValueError
            log.info("photo of face %s unavailable: %s", face_id, e)
            return None
        s = min(1.0, max_side / max(img.size))
        if s < 1.0:
            img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
        box = [f["x1"] * s, f["y1"] * s, f["x2"] * s, f["y2"] * s]
        ImageDraw.Draw(img).rectangle(box, outline=(255, 60, 60), width=max(2, round(max(img.size) / 200)))
        return img

    def person_thumb(self, person_id: int) -> int | None:
        """A face of the person (their first human label, else the most confident auto-label)."""
        rows = self.library.person_faces(person_id, limit=1)
        return rows[0]["face_id"] if rows else None

    def explain(self, face_id: int) -> Any:
        """LinearScope explanation of ``face_id``'s suggested identity with the library's (torch) backbone."""
        from ..methods.explain import explain_face

        backbone = self.backbone
        return explain_face(self.library, face_id, backbone=backbone,
                            embedder=self._library_embedder(self.library, backbone))
