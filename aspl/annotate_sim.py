"""A scripted annotator that drives the real service: the effort benchmark (``python -m aspl annotate-sim``).

It imports a folder unlabelled, then answers as a person would through the same :class:`aspl.service.Service`
calls the pages make, with rounds started exactly as the app starts them (by themselves after
``round_every`` answers, or by the annotator when the questions run out). Answers come from the folder
names: in a photo under ``Person_Name/``, the most prominent face (:func:`prominent_faces`) is that person
and every other face is a stranger; photos outside a person folder hold strangers only.

Two ways to work (``method``):

``aspl``
    the app's default flow: first the Batch tab's groups (clusters of unclear faces that are mostly one
    person named in one accept, clusters or the leftover grid that are mostly strangers marked in one
    action, the others unticked; a face of someone else that the page shows ticked is named on its own
    with E: one of its top 3 suggestions or the name typed), then one face at a time (a suggestion confirmed with one key, else the
    name typed, or G for a stranger); when nothing is left to answer, each person's auto-labels are checked
    in Batch once (accepted, the wrong ones unticked), which may reopen faces;
``cluster``
    the baseline of clustering tools: cluster every face (agglomerative, average linkage on cosine
    distance), then name each cluster in one decision (its majority person, or "strangers") and fix each
    face that does not belong with one more decision. Every face ends with a human answer.

Counted: every human decision by kind, keystrokes (a suggestion 1; a typed existing name N + its
shortest unique prefix + Enter; a new name N + the name + Enter; stranger 1; a batch 1 + 2 per untick;
a face named in a grid 1 for E + a suggestion's key or a typed name),
top-1 accuracy of the suggestions, and at the end the auto-labels, their precision against the folder
names and the labels left wrong.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .methods.video import iou
from .service.views import PERSON_KINDS

log = logging.getLogger("aspl.annotate_sim")

METHODS = ("aspl", "cluster")
ANNOTATOR = "sim"
GRID_SUGGESTIONS = 3  # as the Batch page's name box for one face of a grid (app_pages/annotate.py)


def prominent_faces(faces: list[dict]) -> int | None:
    """The photo's most prominent face: among faces at least half as large (box area) as the largest, the
    one whose centre is nearest the photo's centre. ``faces`` are rows with x1..y2, width, height; boxes
    are clipped to the photo first (a face cut by the edge has a box reaching outside the photo, larger than
    the subject's: on lfw-dev it was taken for the subject in 7 of 2,155 photos)."""
    if not faces:
        return None
    from models.detection import clip_box

    boxes = []
    for f in faces:
        w, h = f["width"] or f["x2"], f["height"] or f["y2"]
        boxes.append((*clip_box((f["x1"], f["y1"], f["x2"], f["y2"]), w, h), w, h))
    area = [max(0.0, x2 - x1) * max(0.0, y2 - y1) for x1, y1, x2, y2, _, _ in boxes]
    big = [i for i, a in enumerate(area) if a >= 0.5 * max(area)]

    def off_centre(i: int) -> float:
        x1, y1, x2, y2, w, h = boxes[i]
        return (((x1 + x2) / 2 - w / 2) / max(w, 1)) ** 2 + (((y1 + y2) / 2 - h / 2) / max(h, 1)) ** 2

    return int(faces[min(big, key=off_centre)]["face_id"])


def folder_truth(lib: Any, root: Path, fixes: list[dict] | None = None) -> dict[int, str | None]:
    """Face id -> the person's name (folder name, underscores as spaces) or None for a stranger.

    ``fixes``: faces the folder rule gets wrong, checked by eye (another known person in someone's photo:
    the president behind a minister), each ``{"photo": file name, "box": [x1, y1, x2, y2], "person":
    name}``; the photo's face whose box overlaps ``box`` most (IoU >= 0.5) gets ``person``. A fix that
    matches no face is ignored (another detector may not find it)."""
    root = Path(root).resolve()
    by_image: dict[int, list[dict]] = {}
    for r in lib.faces_table(status=None):
        by_image.setdefault(r["image_id"], []).append(r)
    by_photo: dict[str, list[dict]] = {}
    for f in fixes or ():
        by_photo.setdefault(str(f["photo"]), []).append(f)
    truth: dict[int, str | None] = {}
    for faces in by_image.values():
        path = Path(faces[0]["image_path"]).resolve()
        try:
            rel = path.relative_to(root)
        except ValueError:
            rel = Path(path.name)
        person = rel.parts[0].replace("_", " ") if len(rel.parts) > 1 else None
        main = prominent_faces(faces)
        for f in faces:
            truth[int(f["face_id"])] = person if f["face_id"] == main else None
        for fix in by_photo.get(path.name, ()):
            best = max(faces, key=lambda f: iou((f["x1"], f["y1"], f["x2"], f["y2"]), fix["box"]))
            if iou((best["x1"], best["y1"], best["x2"], best["y2"]), fix["box"]) >= 0.5:
                truth[int(best["face_id"])] = str(fix["person"])
    return truth


def load_truth_fixes(path: str | Path | None) -> list[dict]:
    """The ``faces`` list of a truth-fix JSON file (see :func:`folder_truth`); [] for None."""
    if path is None:
        return []
    data = json.loads(Path(path).read_text())
    faces = data["faces"] if isinstance(data, dict) else data
    for f in faces:
        if not {"photo", "box", "person"} <= set(f) or len(f["box"]) != 4:
            raise ValueError(f"{path}: a truth fix needs photo, box (4 numbers) and person, got {f!r}")
    return list(faces)


def unique_prefix(name: str, others: list[str]) -> int:
    """Characters to type before ``name`` is the only name starting so (case-insensitive)."""
    low, rest = name.lower(), [o.lower() for o in others if o.lower() != name.lower()]
    for k in range(1, len(name) + 1):
        if not any(o.startswith(low[:k]) for o in rest):
            return k
    return len(name)


@dataclass
class Tally:
    """Decisions and keystrokes so far."""

    decisions: Counter = field(default_factory=Counter)
    keystrokes: int = 0
    suggested: int = 0  # one-face labels of a person who already had a label
    top1: int = 0
    top5: int = 0
    auto_shown: int = 0  # auto-labelled faces shown in a person's Batch group the annotator answered
    auto_shown_right: int = 0
    probable_shown: int = 0  # faces without an auto-label shown there (the person is their top suggestion)
    probable_shown_right: int = 0

    def add(self, kind: str, keys: int, n: int = 1) -> None:
        self.decisions[kind] += n
        self.keystrokes += keys


class AnnotatorSim:
    """Plays one annotator on ``svc`` with answers from ``truth`` (see the module docstring)."""

    def __init__(self, svc: Any, truth: dict[int, str | None], method: str = "aspl",
                 max_decisions: int | None = None, use_batches: bool = True, cluster_distance: float = 0.5,
                 on_step: Callable[[int, int], None] | None = None, check_auto: bool = True):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid choices: {', '.join(METHODS)}")
        self.svc, self.truth, self.method = svc, truth, method
        self.max_decisions = max_decisions
        self.use_batches = use_batches
        self.cluster_distance = cluster_distance
        self.on_step = on_step or (lambda done, total: None)
        self.check_auto = check_auto
        self.tally = Tally()
        self.rounds_started = 0

    # ------------------------------------------------------------ helpers
    def _budget_left(self) -> bool:
        return self.max_decisions is None or sum(self.tally.decisions.values()) < self.max_decisions

    def _wait_round(self) -> None:
        job = self.svc.jobs.running("round")
        if job is not None:
            job.wait()
            if job.error:
                raise RuntimeError(f"a round failed: {job.error}")

    def _name(self, face: int, name: str, scope_kind: str) -> None:
        """Answer ``face`` with ``name`` by typing it (existing: shortest unique prefix; new: in full)."""
        names = self.svc.person_names()
        if name.lower() in (n.lower() for n in names):
            self.tally.add(scope_kind + "_typed", 2 + unique_prefix(name, names))
        else:
            self.tally.add("new_person", 2 + len(name))
        self.svc.new_person(face, name, ANNOTATOR)

    def _name_in_grid(self, faces: list[int]) -> list[int]:
        """E on each face of ``faces`` in a grid, then one of its top :data:`GRID_SUGGESTIONS` suggestions
        (one key) or its name typed (see :meth:`_name`), as the Batch page offers: people's faces that
        would need a toggle now and an answer later are named on their own. Returns the faces named."""
        for f in faces:
            t = self.truth[f]
            self.tally.keystrokes += 1  # E
            sugg = self.svc.suggestions(f, k=GRID_SUGGESTIONS)
            hit = next((s for s in sugg if s.name == t), None)
            if hit is not None:
                self.svc.confirm(f, hit.person_id, ANNOTATOR)
                self.tally.add("grid_suggested", 1)
            else:
                self._name(f, t, "grid")
            self._wait_round()  # an answer may start a round: as after every action, it ends first (determinism)
        return faces

    # ------------------------------------------------------------ aspl
    def _answer_one(self, face: int) -> None:
        svc, t = self.svc, self.truth.get(face)
        if t is None:
            svc.stranger(face, ANNOTATOR)
            self.tally.add("stranger", 1)
            return
        sugg = svc.suggestions(face, k=5)
        names = [s.name for s in sugg]
        known = t.lower() in (n.lower() for n in svc.person_names())
        if known:
            self.tally.suggested += 1
            self.tally.top1 += bool(names) and names[0] == t
            self.tally.top5 += t in names
        if t in names:
            svc.confirm(face, sugg[names.index(t)].person_id, ANNOTATOR)
            self.tally.add("label_top1" if names[0] == t else "label_suggested", 1)
        else:
            self._name(face, t, "label")

    def _try_batches(self, tried: set[tuple[str, tuple[int, ...]]], people: bool = False) -> bool:
        """Answer the first Batch group not yet seen this round: with ``people``, a person's auto-labels
        (accepted in one action, the wrong ones unticked: rejected for that person); else an unclear
        cluster or the leftover grid that is mostly one person (named in one accept; not the leftovers) or
        mostly strangers (marked in one action), unticking the others (one decision each; they stay open).
        Returns whether a batch was answered."""
        for g in self.svc.batch_groups(ANNOTATOR):
            seen = (g.key, tuple(g.face_ids))  # a grid whose faces changed is looked at again (its key may
            if seen in tried:                  # stay: the leftover grid's first face can outlive a sweep)
                continue
            tried.add(seen)
            if people and g.kind not in (*PERSON_KINDS, "guesses"):
                continue
            if g.kind in (*PERSON_KINDS, "guesses"):  # named faces: accept, unticking the wrong ones
                names = self.svc.library.names_of_people()
                said = {f: names.get(self.svc.library.resolve_person(g.persons.get(f, g.person_id)))
                        for f in g.face_ids}
                wrong = [f for f in g.face_ids if self.truth.get(f) != said[f]]
                keep = [f for f in g.face_ids if f not in wrong]
                strangers = [f for f in wrong if self.truth.get(f) is None]
                if g.kind == "guesses" and len(strangers) >= max(2, len(keep)):
                    # mostly bystanders: G marks the ticked as strangers (the others unticked first); the
                    # grid comes back without them
                    self.svc.mark_batch(strangers, "stranger", ANNOTATOR)
                    self.tally.add("batch_strangers", 2)
                    toggles = min(len(g.face_ids) - len(strangers), 1 + len(strangers))
                    if toggles:
                        self.tally.add("batch_untick", 2 * toggles, n=toggles)
                    return True
                if not people and len(keep) < max(2, 0.5 * len(g.face_ids)):
                    continue  # mostly wrong: left for now (a final check comes later)
                auto = {r["face_id"] for r in self.svc.library.label_rows(
                    ("auto",), **({} if g.kind == "guesses" else {"person_id": g.person_id}))}
                t = self.tally
                t.auto_shown += sum(f in auto for f in g.face_ids)
                t.auto_shown_right += sum(f in auto for f in keep)
                t.probable_shown += sum(f not in auto for f in g.face_ids)
                t.probable_shown_right += sum(f not in auto for f in keep)
                # someone else's faces are named on their own (E); A accepts the ticked faces and records the
                # unticked ones as not this person; when most are wrong, I inverts the ticks first
                named = self._name_in_grid([f for f in wrong if self.truth.get(f) is not None])
                wrong = [f for f in wrong if f not in named]
                if g.kind == "guesses":
                    self.svc.accept_guesses(g.persons, keep, ANNOTATOR, deselected=wrong)
                else:
                    self.svc.accept_batch(keep, g.person_id, ANNOTATOR, deselected=wrong)
                self.tally.add("batch_review", 1)
                toggles = min(len(wrong), 1 + len(keep))
                if toggles:
                    self.tally.add("batch_untick", 2 * toggles, n=toggles)
                return True

            who = Counter(self.truth.get(f) for f in g.face_ids)
            name, n = who.most_common(1)[0]
            if n < 2 or n < 0.5 * len(g.face_ids) or (g.kind == "open" and name is not None):
                continue  # a leftover grid is only swept for strangers (its people are asked one by one)
            keep = [f for f in g.face_ids if self.truth.get(f) == name]
            start_off = set(g.unticked)  # lookalikes and outliers start unticked
            # another person's face the page shows ticked: named on its own (E) rather than unticked now and
            # answered later
            named = set(self._name_in_grid([f for f in g.face_ids if f not in keep and f not in start_off
                                            and self.truth.get(f) is not None]))
            rest = [f for f in g.face_ids if f not in named]
            # one toggle per face whose tick is not what the page starts with
            unticks = sum((f in keep) == (f in start_off) for f in rest)
            if name is None:
                # G, as the page does: the unticked faces are kept out of the next sweeps
                self.svc.mark_batch(keep, "stranger", ANNOTATOR, deselected=[f for f in rest if f not in keep])
                self.tally.add("batch_strangers", 2)
            else:
                names = self.svc.person_names()
                known = name.lower() in (x.lower() for x in names)
                self.svc.accept_batch(keep, name, ANNOTATOR, deselected=[f for f in rest if f not in keep])
                self.tally.add("batch_accept", 3 + (unique_prefix(name, names) if known else len(name)))
            if unticks:
                self.tally.add("batch_untick", 2 * unticks, n=unticks)
            return True
        return False

    def _run_aspl(self) -> None:
        svc = self.svc
        tried: set[tuple[str, tuple[int, ...]]] = set()
        checked: set[tuple[str, tuple[int, ...]]] = set()  # person groups checked (their faces then carry human labels)
        last_round = -1
        while self._budget_left():
            self._wait_round()
            rounds = svc.library.round_count()
            if self.use_batches and rounds != last_round:
                last_round = rounds
                tried.clear()
            if self.use_batches and self._try_batches(tried):
                continue
            face = svc.next_face(ANNOTATOR)
            if face is None:
                self._wait_round()
                if svc.remaining() == 0:
                    # every face has an answer: check each person's auto-labels once; corrections reopen faces
                    if self.use_batches and self.check_auto and self._try_batches(checked, people=True):
                        continue
                    break
                # questions ran out but faces are left: start a round, as the page offers
                before = svc.library.round_count()
                svc.start_round(ANNOTATOR).wait()
                self.rounds_started += 1
                if svc.library.round_count() == before or svc.next_face(ANNOTATOR) is None:
                    break
                continue
            self._answer_one(face)
            self.on_step(sum(self.tally.decisions.values()), svc.remaining())
        self._wait_round()

    # ------------------------------------------------------------ cluster baseline
    def _run_cluster(self) -> None:
        from sklearn.cluster import AgglomerativeClustering

        svc, lib = self.svc, self.svc.library
        ids, X = lib.embeddings(svc.backbone)
        ids = np.asarray(ids)
        if len(ids) < 2:
            labels = np.zeros(len(ids), int)
        else:
            from .engine.preprocess import center_embeddings

            labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                             distance_threshold=self.cluster_distance).fit_predict(center_embeddings(X))
        clusters = sorted((ids[labels == c].tolist() for c in np.unique(labels)), key=lambda c: (-len(c), c[0]))
        for faces in clusters:
            if not self._budget_left():
                break
            who = Counter(self.truth.get(f) for f in faces)
            name, _ = who.most_common(1)[0]
            members = [f for f in faces if self.truth.get(f) == name]
            if name is None:
                for f in members:
                    svc.stranger(f, ANNOTATOR)
                self.tally.add("cluster_strangers", 1)
            elif len(faces) == 1:
                self._name(faces[0], name, "label")
            else:
                names = svc.person_names()
                typed = unique_prefix(name, names) if name.lower() in (x.lower() for x in names) else len(name)
                svc.accept_batch(members, name, ANNOTATOR)
                self.tally.add("cluster_named", 2 + typed)
            for f in faces:
                if f in members:
                    continue
                t = self.truth.get(f)  # a face that does not belong: one more decision each
                if t is None:
                    svc.stranger(f, ANNOTATOR)
                    self.tally.add("cluster_fix", 2)
                else:
                    self._name(f, t, "cluster_fix")
            self.on_step(sum(self.tally.decisions.values()), svc.remaining())
        self._wait_round()

    # ------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Annotate until done (or out of budget); returns the report (see :func:`report`)."""
        t0 = time.perf_counter()
        (self._run_aspl if self.method == "aspl" else self._run_cluster)()
        return report(self, time.perf_counter() - t0)


def report(sim: AnnotatorSim, seconds: float) -> dict[str, Any]:
    """The JSON report of a finished simulation."""
    svc, lib, truth = sim.svc, sim.svc.library, sim.truth
    names = lib.names_of_people()
    live = {}
    for r in lib.label_rows():
        live[r["face_id"]] = (r["source"], names.get(lib.resolve_person(r["person_id"])))
    status = {r["face_id"]: r["status"] for r in lib.faces_table(status=None)}
    auto = [(f, n) for f, (src, n) in live.items() if src == "auto"]
    auto_ok = sum(truth.get(f) == n for f, n in auto)
    wrong = sum(truth.get(f) != n for f, (_, n) in live.items())
    wrong += sum(1 for f, s in status.items() if s == "stranger" and truth.get(f) is not None)
    faces = len(status)
    decisions = int(sum(sim.tally.decisions.values()))
    people = {t for t in truth.values() if t}
    return {
        "method": sim.method,
        "check_auto": sim.check_auto,
        "faces": faces,
        "people": len(people),
        "strangers_true": sum(1 for t in truth.values() if t is None),
        "decisions": decisions,
        "decisions_per_face": round(decisions / faces, 4) if faces else None,
        "decisions_by_kind": dict(sorted(sim.tally.decisions.items())),
        "keystrokes": sim.tally.keystrokes,
        "suggestion_top1": round(sim.tally.top1 / sim.tally.suggested, 4) if sim.tally.suggested else None,
        "suggestion_top5": round(sim.tally.top5 / sim.tally.suggested, 4) if sim.tally.suggested else None,
        "suggested_answers": sim.tally.suggested,
        "auto_labels_shown": sim.tally.auto_shown,
        "auto_labels_shown_precision": round(sim.tally.auto_shown_right / sim.tally.auto_shown, 4)
        if sim.tally.auto_shown else None,
        "probable_shown": sim.tally.probable_shown,
        "probable_shown_precision": round(sim.tally.probable_shown_right / sim.tally.probable_shown, 4)
        if sim.tally.probable_shown else None,
        "auto_labels": len(auto),
        "auto_label_precision": round(auto_ok / len(auto), 4) if auto else None,
        "wrong_labels_left": int(wrong),
        "remaining": svc.remaining(),
        "hidden": lib.counts()["faces:hidden"],
        "hidden_people": sum(1 for f in lib.hidden_face_ids(limit=10**9) if truth.get(f) is not None),
        "rounds": lib.round_count(),
        "rounds_started_by_annotator": sim.rounds_started,
        "seconds": round(seconds, 2),
    }


def run_annotate_sim(path: str | Path, db: str | Path, method: str = "aspl", max_decisions: int | None = None,
                     use_batches: bool = True, cluster_distance: float = 0.5, progress: bool = True,
                     settings: dict[str, Any] | None = None, service: Any = None,
                     min_rel: float | None = None, check_auto: bool = True,
                     truth_fixes: list[dict] | None = None) -> dict[str, Any]:
    """Import ``path`` unlabelled into the library ``db`` (photos already there are skipped), apply the
    quality thresholds (``min_rel`` overriding the stored one), then annotate it as :class:`AnnotatorSim`
    does, answering from :func:`folder_truth` (with ``truth_fixes``); returns the report, with the
    import's seconds."""
    from storage import IndexStore, Library

    from .importer import Importer
    from .service import Service

    t0 = time.perf_counter()
    if service is None:
        lib = Library(db)
        imp = Importer(lib, IndexStore(lib), annotator="import")
        imp.run(path, progress=progress)
        service = Service(lib)
    import_s = time.perf_counter() - t0
    q = service.library.face_quality()  # today's thresholds (or min_rel) on every face
    service.library.set_face_quality(q["min_px"], q["min_prob"], "sim", q["min_rel"] if min_rel is None else min_rel)
    if settings:
        service.set_loop_settings({**service.loop_settings().as_dict(), **settings})
    truth = folder_truth(service.library, Path(path), truth_fixes)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(truth), desc=f"annotating ({method})", unit="face")

    def step(done: int, remaining: int) -> None:
        if bar is not None:
            bar.n = len(truth) - remaining
            bar.set_postfix(decisions=done)
            bar.refresh()

    sim = AnnotatorSim(service, truth, method, max_decisions, use_batches, cluster_distance, on_step=step,
                       check_auto=check_auto)
    out = sim.run()
    if bar is not None:
        bar.close()
    out["import_seconds"] = round(import_s, 2)
    return out
