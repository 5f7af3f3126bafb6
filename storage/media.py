"""Video face tracks (a track is labelled once) and free-text annotator notes."""
from __future__ import annotations

from typing import Sequence

from ._common import _Host, _now
from .errors import NotFoundError


class MediaMixin(_Host):
    """Owns the ``tracks``, ``track_faces`` and ``notes`` tables."""

    # ---------------------------------------------------------------- tracks
    def add_track(self, video_path: str, faces: Sequence[tuple[int, int]]) -> int:
        """Store a video face track: ``faces`` are ``(frame, face_id)`` pairs in time order."""
        if not faces:
            raise ValueError("a track needs at least one face")
        frames = [int(f) for f, _ in faces]
        with self.transaction():
            tid = self._insert("tracks", {"video_path": video_path, "first_frame": min(frames),
                                          "last_frame": max(frames), "created_at": _now()})
            self.db.table("track_faces").insert_all(
                {"track_id": tid, "face_id": int(fid), "frame": int(fr)} for fr, fid in faces)
            self.log_event("track_added", None, track_id=tid, faces=len(faces), video=video_path)
            return tid

    def tracks(self) -> list[dict]:
        """Every track with its face count."""
        return self._rows("SELECT t.*, COUNT(tf.face_id) AS faces FROM tracks t "
                          "LEFT JOIN track_faces tf ON tf.track_id = t.id GROUP BY t.id ORDER BY t.id")

    def track_face_ids(self, track_id: int) -> list[int]:
        """Face ids of a track in frame order; :class:`NotFoundError` for an unknown track."""
        if self._one("SELECT 1 FROM tracks WHERE id = ?", [track_id]) is None:
            raise NotFoundError(f"track {track_id} not found")
        return [int(r[0]) for r in self.db.execute(
            "SELECT face_id FROM track_faces WHERE track_id = ? ORDER BY frame, face_id", [track_id]).fetchall()]

    def label_track(self, track_id: int, person_id: int, source: str = "human",
                    annotator: str | None = None) -> list[int]:
        """Label every face of a track (once, for the whole track); faces already human-labelled are skipped."""
        ids = self.track_face_ids(track_id)
        done = self.labelled_face_ids(("human", "seed"))
        out = []
        with self.transaction():
            for fid in ids:
                if fid not in done:
                    out.append(self.add_label(fid, person_id, source, confidence=1.0, annotator=annotator))
            self.log_event("track_labelled", annotator, track_id=track_id, person_id=person_id, labels=len(out))
        return out

    # ----------------------------------------------------------------- notes
    def add_note(self, text: str, face_id: int | None = None, person_id: int | None = None,
                 annotator: str | None = None) -> int:
        """A free-text annotator note on a face and/or a person."""
        if not text.strip():
            raise ValueError("a note needs some text")
        if face_id is None and person_id is None:
            raise ValueError("a note needs a face_id or a person_id")
        with self.transaction():
            return self._insert("notes", {"face_id": face_id, "person_id": person_id, "text": text.strip(),
                                          "annotator": annotator, "created_at": _now()})

    def notes(self) -> list[dict]:
        """Every note, oldest first."""
        return self._rows("SELECT * FROM notes ORDER BY id")
