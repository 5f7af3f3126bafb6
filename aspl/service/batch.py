"""Batch labelling: a person's auto-labels, or a cluster of similar unclear faces, named in one action."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from storage import Library

from .annotate import label_face, mark_face, undo_label, unmark_not_face
from .autoround import answer
from .errors import ServiceError
from .people import person_for
from .settings import SCOPE_ANNOTATE
from .undo import restore_auto, undoable
from .views import BatchGroup


def centred_unit(X: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``X`` minus ``mean`` (default: their own mean), scaled to unit length.

    Face embeddings share a large common direction (on lfw-dev, dlib vectors of different people have raw
    cosine similarity above 0.8 for 85% of pairs), so similarities are taken after removing the mean:
    there, centred similarity >= 0.7 pairs the same person 99.4% of the time.
    """
    X = np.asarray(X, np.float32)
    Z = X - (X.mean(axis=0) if mean is None else mean)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def similarity_groups(ids: np.ndarray, X: np.ndarray, sim_min: float, size: int,
                      max_clusters: int, mean: np.ndarray | None = None) -> list[BatchGroup]:
    """Greedy groups of faces whose centred cosine similarity (:func:`centred_unit`) to a centre face is
    ``>= sim_min`` (largest first), titled by their centre face's id (unique, and stable while the group
    stays the same)."""
    groups: list[BatchGroup] = []
    if len(ids) < 2:
        return groups
    Xn = centred_unit(X, mean)
    S = Xn @ Xn.T
    alive = np.ones(len(ids), bool)
    while len(groups) < max_clusters:
        A = (S >= sim_min) & alive[None, :] & alive[:, None]
        deg = A.sum(axis=1)
        c = int(np.argmax(deg))
        if deg[c] < 2:
            break
        members = np.flatnonzero(A[c])
        members = members[np.argsort(-S[c, members])][:size]
        alive[members] = False
        faces = [int(ids[m]) for m in members]
        groups.append(BatchGroup(f"cluster-{faces[0]}", "cluster",
                                 f"Unnamed group #{faces[0]}: {len(faces)} similar faces", faces, None,
                                 {int(ids[m]): float(S[c, m]) for m in members}))
    return groups


@undoable("batch", lambda p: f"batch-labelled {len(p['labels'])} faces as {p.get('name', p['person_id'])}")
def _undo_batch(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for lab in p["labels"]:
        undo_label(svc, lib, lab, annotator)
    for f in p.get("rejections", []):
        lib.remove_rejection(f, p["person_id"], annotator)
    restore_auto(lib, p.get("revoked_auto", []), annotator)


@undoable("batch_mark", lambda p: f"marked {len(p['marks'])} faces as {p['status'].replace('_', ' ')}s")
def _undo_batch_mark(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for m in reversed(p["marks"]):
        unmark_not_face(lib, m, annotator)


class BatchMixin:
    """``batch_groups`` and ``accept_batch``."""

    def batch_groups(self, annotator: str, limit: int = 12) -> list[BatchGroup]:
        """Groups for batch labelling: each person's auto-labels (most first), clusters of unclear faces,
        then up to ``batch_size`` faces no group holds that nobody has answered (kind ``open``, smallest
        first: mostly bystanders, to mark as strangers in one action)."""
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            size = self.loop_settings().batch_size
            busy = set(lib.leased_faces(exclude_annotator=annotator))
            names = lib.names_of_people()
            by_person: dict[int, list[tuple[float, int]]] = {}
            for r in lib.label_rows(("auto",)):
                if r["face_id"] not in busy:
                    by_person.setdefault(r["person_id"], []).append((r["confidence"] or 0.0, r["face_id"]))
            groups = []
            for pid, rows in sorted(by_person.items(), key=lambda kv: -len(kv[1])):
                rows.sort(key=lambda t: (-t[0], t[1]))
                faces = [f for _, f in rows[:size]]
                groups.append(BatchGroup(f"person-{pid}", "person",
                                         f"{names.get(pid, pid)}: {len(rows)} auto-labelled face(s)",
                                         faces, pid, {f: c for c, f in rows[:size]}))
            groups = groups[:limit]
            shown: set[int] = set()
            for g in self._clusters(size):
                faces = [f for f in g.face_ids if f not in busy]
                if len(faces) >= 2:
                    groups.append(dataclasses.replace(g, face_ids=faces))
                    shown.update(faces)
                if len(groups) >= 2 * limit:
                    break
            rest = lib.open_face_ids(size, exclude=busy | shown)
            if rest:  # the faces no group holds, smallest first: a quick sweep of bystanders
                groups.append(BatchGroup(f"open-{rest[0]}", "open",
                                         f"Not named yet #{rest[0]}: {len(rest)} face(s), smallest first", rest,
                                         None, {}))
            return groups

    def _clusters(self, size: int, max_faces: int = 2000, max_clusters: int = 12) -> list[BatchGroup]:
        """Groups of similar faces among those nobody labelled (the last round's unclear set)."""
        lib = self.library
        backbone = self.backbone
        excl = lib.labelled_face_ids(("human", "seed", "auto")) | lib.face_ids_out_of_loop()
        last = lib.last_round()
        pool = last["unclear"] if last else lib.face_ids("ok")
        pool = [f for f in pool if f not in excl][:max_faces]
        sim_min = self.loop_settings().cluster_similarity
        key = (backbone, last["id"] if last else None, sim_min, size, len(pool), hash(tuple(pool)))
        if self._cluster_cache is not None and self._cluster_cache[0] == key:
            return self._cluster_cache[1]
        ids, X = lib.embeddings(backbone, pool)
        mean = None
        if len(ids) < 200:  # too few to stand for the library: centre on (a sample of) all faces
            sample = lib.face_ids("ok")[::max(1, lib.counts()["faces:ok"] // 5000)]
            mean = lib.embeddings(backbone, sample)[1].mean(axis=0) if sample else None
        groups = similarity_groups(ids, X, sim_min, size, max_clusters, mean)
        self._cluster_cache = (key, groups)
        return groups

    @answer
    def mark_batch(self, face_ids: Sequence[int], status: str, annotator: str) -> int:
        """Mark the selected faces as strangers (``status="stranger"``) or not faces in one undoable action.
        Faces with a human label are left as they are. Returns the faces marked."""
        annotator = self._check_annotator(annotator)
        if not face_ids:
            raise ServiceError("no faces selected")
        with self._lock, self.library.transaction():
            lib = self.library
            labelled = lib.labelled_face_ids(("human", "seed"))
            marks = [mark_face(lib, int(f), status, annotator) for f in dict.fromkeys(int(f) for f in face_ids)
                     if f not in labelled and lib.face(f)["status"] == "ok"]
            lib.release_leases(annotator, [int(f) for f in face_ids])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch_mark", {"status": status, "marks": marks})
            self._cluster_cache = None
            return len(marks)

    @answer
    def accept_batch(self, face_ids: Sequence[int], person: int | str, annotator: str,
                     deselected: Sequence[int] = ()) -> int:
        """Label the selected faces as ``person`` (id or name; a new name creates the person) in one action.
        Deselected faces of a person's group are recorded as not that person. Returns the faces labelled."""
        annotator = self._check_annotator(annotator)
        if not face_ids:
            raise ServiceError("no faces selected")
        with self._lock, self.library.transaction():
            lib = self.library
            pid, created = person_for(lib, person, annotator)
            labelled = lib.labelled_face_ids(("human", "seed"))
            done, revoked_auto = [], []
            for f in face_ids:
                f = int(f)
                if f in labelled or lib.face(f)["status"] != "ok":
                    continue
                done.append(label_face(lib, f, pid, annotator))
            rejections = []
            for f in deselected:
                f = int(f)
                for r in lib.label_rows(("auto",), face_id=f):
                    if r["person_id"] == pid:
                        lib.revoke_label(r["id"], annotator)
                        revoked_auto.append(r["id"])
                if lib.add_rejection(f, pid, annotator):
                    rejections.append(f)
            lib.release_leases(annotator, [int(f) for f in face_ids])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch", {"person_id": pid, "name": lib.person_name(pid),
                                                                "labels": done, "rejections": rejections,
                                                                "revoked_auto": revoked_auto,
                                                                "created_person": pid if created else None})
            self._cluster_cache = None
            return len(done)
