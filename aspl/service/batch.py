"""Batch labelling: a person's auto-labels, or a cluster of similar unclear faces, named in one action."""
from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from typing import Any, Sequence

import numpy as np

from storage import Library

from ..engine.preprocess import center_embeddings
from ..engine.selection import apart_from_reference

from .annotate import (SUGGEST_NEIGHBOURS, SUGGEST_TEMPERATURE, label_face, mark_face, merge_evidence,
                       neighbour_votes, undo_label, unmark_not_face)
from .autoround import answer
from .errors import ServiceError
from .people import person_for
from .settings import SCOPE_ANNOTATE
from .undo import restore_auto, undoable
from .views import BatchGroup

PROBABLE_MIN = 0.5  # merged suggestion probability for an unanswered face to join its person's group
PROBABLE_SCORE = 0.0  # ... and whose own one-vs-all score is above this (faces of people nobody named yet
# get a confident softmax and unanimous votes from far-away labelled faces; their one-vs-all scores stay low)
PROBABLE_TOP = 5  # classifier classes per face merged with the neighbour votes
SUPPORT_MAX_FACES = 4000  # auto-labelled and probable faces checked for support per request (about)
PERSON_CANDIDATES = 3  # x the groups asked for: the people (most faces to offer first) whose faces are checked
OPEN_CANDIDATES = 2000  # unanswered faces (smallest first) ranked for the open grid
OPEN_LIKENESS_MAX = 0.7  # ... of which those less similar than this to every named face (centred cosine;
# 0.6 until stop 23: with sweeps that remember, 0.7 took lfw-dev 62 people 175 -> 162, 20 people 41 / 57 -> 42 / 56)
# someone else's faces in a person's group: faces with at least SEPARATE_MIN_FACES - 1 others in the group
# that are SEPARATE_GAP more like them (centred cosine) than the person's nearest named face is. Seen on
# lfw-dev: 27 faces of Roh Moo-hyun (alike at 0.91) auto-labelled as Junichiro Koizumi, each within
# 0.7-0.78 of one of his 60 named faces. 2 (a pair suffices; was 3): two faces of Roh Moo-hyun left in
# Koizumi's group are caught too (lfw-dev 62 people: 223 -> 217 decisions, auto-labels shown 97.4% -> 98.95%
# right; the 20-person and 100-face slices unchanged).
SEPARATE_MIN_FACES = 2
SEPARATE_GAP = 0.15
GUESS_MIN = 0.5  # merged suggestion probability for a face to join the best-guesses grid
GUESS_SUPPORT = 0.5  # ... and centred cosine with one of its guessed person's named faces (nearest neighbours)
GUESS_SCORE = 0.0  # ... and whose own one-vs-all score is above this (bystanders get a guess, rarely a yes)
GUESS_FOLD = 0.25  # a person's group smaller than this share of a grid (batch_size; 12 of 48) joins the
# best-guesses grid instead of a page of its own (4 faces until stop 24: after a round, the people named in
# one go each offered a page of 8-11 faces; folded into grids of 48 with each person's faces side by side,
# lfw-dev 62 people 162 -> 151 decisions, 20 people 42 / 56 -> 41 / 55, the 100-face slices unchanged;
# 8 faces: 160, 20: 150)
# a lookalike's faces inside a group (a tight subgroup whose mean similarity with the rest is this much
# below both sides' own): shown last and unticked, so naming the group records them as not that person
CLUSTER_SPLIT_GAP = 0.12
# a member whose mean similarity with the others is this far below the median member's starts unticked too
# (lfw-dev 62 people and 2 x 20 people, the groups of 6+ named, lookalikes aside: 8 of the 15 faces not the
# majority's person lay 0.22 or more below, none of the 3,105 of theirs, the nearest 0.20 below; decisions
# 151 -> 145, 41 / 55 -> 40 / 54), in groups of CLUSTER_LOOSE_MIN faces or more
CLUSTER_LOOSE_GAP = 0.22
CLUSTER_LOOSE_MIN = 6
CLUSTER_FIRST = 4  # clusters of fewer faces come after the open sweep (they may join it). 3 until stop 24: on
# lfw-dev 62 people 9 of the 16 sweeps of strangers were clusters of 3-5 bystanders; with 4 the triples join
# the leftover grid: 145 -> 142 decisions, 20 people 40 / 54 -> 38 / 53, 100-face slices unchanged (5: 143,
# 6: 141 but 45 on the first 20-person slice, whose people's faces in small clusters then came in a sweep)
CLUSTER_SEPARATE_GAP = 0.2  # the same test for a cluster's members, against its centre (lfw-dev: 0.15 cost
# 1-3 decisions on each 100-face slice; 0.2 none there, 20 people 65 / 105 -> 66 / 99, 62 people 321 -> 301)


# Face embeddings share a large common direction (on lfw-dev, dlib vectors of different people have raw
# cosine similarity above 0.8 for 85% of pairs), so Batch compares faces after removing the mean
# (:func:`~aspl.engine.preprocess.center_embeddings`): there, centred similarity >= 0.7 pairs the same
# person 99.4% of the time.


def cluster_title(faces: Sequence[int]) -> str:
    """A cluster's title: unique and stable, by its first (centre) face."""
    return f"Unnamed group #{faces[0]}: {len(faces)} similar faces"


def similarity_groups(ids: np.ndarray, X: np.ndarray, sim_min: float, size: int,
                      max_clusters: int, mean: np.ndarray | None = None, separate: bool = False) -> list[BatchGroup]:
    """Greedy groups of faces whose centred cosine similarity (:func:`~aspl.engine.preprocess.center_embeddings`) to a centre face is
    ``>= sim_min`` (largest first), titled by their centre face's id (unique, and stable while the group
    stays the same). With ``separate``, a member with at least ``SEPARATE_MIN_FACES - 1`` fellow members
    :data:`CLUSTER_SEPARATE_GAP` more like it than the centre is (a lookalike's tight faces around the
    group's edge) stays out, free to form its own group; a lookalike's subgroup
    (:func:`lookalike_subgroup`) stays in, last, and is listed in ``unticked``."""
    groups: list[BatchGroup] = []
    if len(ids) < 2:
        return groups
    Xn = center_embeddings(X, mean)
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
        if separate:  # a tight subgroup far less like the centre than like each other: someone else
            apart = apart_from_reference(Xn[members], S[c, members], CLUSTER_SEPARATE_GAP, SEPARATE_MIN_FACES)
            members = members[~apart | (members == c)]
            if members.size < 2:
                alive[c] = False
                continue
        look = np.zeros(members.size, dtype=bool)
        if separate:  # a lookalike's subgroup, or single faces unlike the rest: shown last, unticked
            Sm = S[np.ix_(members, members)]
            look = lookalike_subgroup(Sm, CLUSTER_SPLIT_GAP) | loose_members(Sm, CLUSTER_LOOSE_GAP)
        alive[members] = False
        faces = [int(ids[m]) for m in (*members[~look], *members[look])]
        groups.append(BatchGroup(f"cluster-{faces[0]}", "cluster", cluster_title(faces), faces, None,
                                 {int(ids[m]): float(S[c, m]) for m in members},
                                 unticked=[int(ids[m]) for m in members[look]]))
    return groups


def loose_members(S: np.ndarray, gap: float, min_size: int = CLUSTER_LOOSE_MIN) -> np.ndarray:
    """Members (rows of the members' similarity matrix ``S``; row 0 the centre, which stays) whose mean
    similarity with the other members lies ``gap`` or more below the median member's: a face that joined
    through the centre alone (a bystander beside the person). None in a group smaller than ``min_size``,
    where the median says little."""
    n = S.shape[0]
    out = np.zeros(n, dtype=bool)
    if n < min_size:
        return out
    S = np.array(S, dtype=np.float64)
    np.fill_diagonal(S, np.nan)
    m = np.nanmean(S, axis=1)
    out = m <= np.median(m) - gap
    out[0] = False
    return out


def lookalike_subgroup(S: np.ndarray, gap: float, min_faces: int = 2, tries: int = 3, iters: int = 10
                       ) -> np.ndarray:
    """Members (rows of the members' similarity matrix ``S``; row 0 the centre) of a lookalike who joined a
    group: the smaller side of a two-way split (2-means on similarity, seeded from each of the ``tries``
    members least like the rest) when both sides hold ``min_faces`` or more and each side's mean
    within-similarity exceeds the mean similarity between the sides by ``gap`` or more. The centre stays.
    lfw-dev, 62 people: 8 Megawati Sukarnoputri faces in a group of 45 around Gloria Macapagal Arroyo
    (each 0.72-0.77 from the centre, 0.59-0.68 on average from her faces, 0.83-0.86 from each other)."""
    n = S.shape[0]
    none = np.zeros(n, dtype=bool)
    if n < 2 * min_faces:
        return none
    S = np.array(S, dtype=np.float64)
    np.fill_diagonal(S, np.nan)
    best, best_gap = none, gap
    for seed in np.argsort(np.nanmean(S, axis=1))[:tries]:
        if seed == 0:
            continue
        b = none.copy()
        b[seed] = True
        for _ in range(iters):
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a side of one face: no within-similarity
                nb = np.nanmean(S[:, b], axis=1) > np.nanmean(S[:, ~b], axis=1)
            nb[0] = False
            if not nb.any() or (nb == b).all():
                break
            b = nb
        if b.sum() < min_faces or (~b).sum() < min_faces:
            continue
        a = ~b
        split = min(np.nanmean(S[np.ix_(a, a)]), np.nanmean(S[np.ix_(b, b)])) - np.nanmean(S[np.ix_(a, b)])
        if split >= best_gap:
            best, best_gap = b, split
    return best


@undoable("batch", lambda p: f"batch-labelled {len(p['labels'])} faces as {p.get('name', p['person_id'])}")
def _undo_batch(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for lab in p["labels"]:
        undo_label(svc, lib, lab, annotator)
    for f in p.get("rejections", []):
        lib.remove_rejection(f, p["person_id"], annotator)
    restore_auto(lib, p.get("revoked_auto", []), annotator)


@undoable("batch_guesses", lambda p: f"confirmed {sum(len(x['labels']) for x in p['parts'])} best guesses")
def _undo_batch_guesses(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for part in reversed(p["parts"]):
        _undo_batch(svc, lib, part, annotator)


@undoable("batch_mark", lambda p: f"marked {len(p['marks'])} faces as {p['status'].replace('_', ' ')}s")
def _undo_batch_mark(svc: Any, lib: Library, p: dict, annotator: str) -> None:
    for m in reversed(p["marks"]):
        unmark_not_face(lib, m, annotator)
    lib.remove_not_strangers(p.get("kept", []))


class BatchMixin:
    """``batch_groups`` and ``accept_batch``."""

    def batch_groups(self, annotator: str, limit: int = 12) -> list[BatchGroup]:
        """Groups for batch labelling, in this order:

        - ``person``: one per person, the auto-labelled faces and then the faces nobody answered whose top
          suggestion is that person (:meth:`_probable`), each only if it lies near one of the person's
          named faces (centred cosine >= ``support_similarity`` with one of them; most faces first), but
          for a tight subgroup that looks like someone else (:meth:`_someone_else`);
        - ``cluster``: groups of similar unclear faces that no person claims;
        - ``check``: one per person, the auto-labels that lie far from every named face of that person
          or look like someone else (faces of people nobody named yet end up there: mostly to untick;
          they are in the clusters too, where they can be named at once);
        - ``open``: up to ``batch_size`` faces no group holds that nobody has answered (nor left unticked in
          an earlier sweep of strangers: :meth:`mark_batch`) and that are less like every named face than
          :data:`OPEN_LIKENESS_MAX`, least like first (mostly bystanders, to mark as strangers in one action).

        The groups are cached until the labelling state changes (:meth:`storage.Library.change_marker`):
        ticking a face redraws the page without recomputing them.
        """
        annotator = self._check_annotator(annotator)
        with self._lock:
            lib = self.library
            busy = set(lib.leased_faces(exclude_annotator=annotator))
            key = (lib.change_marker(), self.backbone, frozenset(busy), limit, repr(self.loop_settings()))
            if self._groups_cache is not None and self._groups_cache[0] == key:  # e.g. a tick redrew the page
                return [dataclasses.replace(g, face_ids=list(g.face_ids), scores=dict(g.scores))
                        for g in self._groups_cache[1]]
            groups = self._batch_groups(limit, busy)
            self._groups_cache = (key, groups)
            return [dataclasses.replace(g, face_ids=list(g.face_ids), scores=dict(g.scores)) for g in groups]

    def _batch_groups(self, limit: int, busy: set[int]) -> list[BatchGroup]:
        """:meth:`batch_groups` without the cache (faces in ``busy`` left out)."""
        lib = self.library
        size = self.loop_settings().batch_size
        names = lib.names_of_people()
        pool = self._unclear_pool()
        probable = self._probable(pool)
        # the people with the most faces to offer, each with their most confident auto-labels: an aggregate
        # and a few small queries, not every auto-label of the library (891k at 1M faces: 3 s to read)
        counts = lib.auto_label_counts()
        people = sorted((p for p in set(counts) | set(probable) if p in names),
                        key=lambda p: (-(counts.get(p, 0) + len(probable.get(p, ()))), p))[:PERSON_CANDIDATES * limit]
        offered = [counts.get(p, 0) + len(probable.get(p, ())) for p in people]
        per = max(offered, default=0) if sum(offered) <= SUPPORT_MAX_FACES \
            else max(2 * size, SUPPORT_MAX_FACES // max(1, len(people)))
        auto: dict[int, list[tuple[float, int]]] = {}
        for pid in people:
            if counts.get(pid):
                auto[pid] = [(r["confidence"] or 0.0, r["face_id"]) for r in lib.top_auto_labels(pid, per, busy)]
        cand: list[tuple[int, float, int, bool]] = []  # (person, score, face, auto-labelled)
        for pid in people:
            cand += [(pid, c, f, True) for c, f in auto.get(pid, ())]
            cand += [(pid, c, f, False) for c, f in probable.get(pid, ()) if f not in busy][:per]
        near: dict[int, list[tuple[float, int]]] = {}
        far: dict[int, list[tuple[float, int]]] = {}
        tau = self.loop_settings().support_similarity
        support: dict[int, float] = {}
        for (pid, c, f, is_auto), v in zip(cand, self._named_similarity([(f, p) for p, _, f, _ in cand])):
            ok = v is not None and v >= tau
            if ok:
                support[f] = v
            if ok or is_auto:
                (near if ok else far).setdefault(pid, []).append((c, f))
        auto_faces = {f for rows in auto.values() for _, f in rows}
        for pid in list(near):
            apart = self._someone_else([f for _, f in near[pid]], support)
            if apart:
                far.setdefault(pid, []).extend((c, f) for c, f in near[pid] if f in apart and f in auto_faces)
                near[pid] = [(c, f) for c, f in near[pid] if f not in apart]
                if not near[pid]:
                    del near[pid]
        for rows in (*near.values(), *far.values()):
            rows.sort(key=lambda t: (-t[0], t[1]))
        claimed = {f for rows in near.values() for _, f in rows}
        groups, small = [], []
        fold = max(2, round(GUESS_FOLD * size))
        for pid, rows in sorted(near.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]:
            rows = rows[:size]
            if len(rows) < fold:  # a few faces: they join the best-guesses grid below
                small += [(c, f, pid) for c, f in rows]
                continue
            n_auto = sum(1 for _, f in rows if f in auto_faces)
            parts = ([f"{n_auto} auto-labelled"] if n_auto else []) \
                + ([f"{len(rows) - n_auto} probable"] if len(rows) > n_auto else [])
            groups.append(BatchGroup(f"person-{pid}", "person", f"{names[pid]}: {', '.join(parts)} face(s)",
                                     [f for _, f in rows], pid, {f: c for c, f in rows}))
        shown: set[int] = {f for g in groups for f in g.face_ids} | {f for _, f, _ in small}
        n_before = len(groups)
        unclaimed = [f for f in pool if f not in claimed] + sorted(f for rows in far.values() for _, f in rows)
        later = []  # clusters of a few faces: mostly pairs of bystanders, shown after the open sweep
        for g in self._clusters(size, unclaimed):
            faces = [f for f in g.face_ids if f not in busy]
            if len(faces) >= CLUSTER_FIRST:
                groups.append(dataclasses.replace(g, face_ids=faces))
                shown.update(faces)
            elif len(faces) >= 2:
                later.append(dataclasses.replace(g, face_ids=faces))
            if len(groups) + len(later) - n_before >= limit:
                break
        guesses = self._guess_group(size, small, [f for f in pool if f not in shown and f not in busy])
        if guesses is not None:
            groups.append(guesses)
            shown.update(guesses.face_ids)
        for pid, rows in sorted(far.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]:
            rows = rows[:size]
            groups.append(BatchGroup(f"check-{pid}", "check",
                                     f"{names[pid]}? {len(rows)} auto-labelled face(s) unlike the named ones",
                                     [f for _, f in rows], pid, {f: c for c, f in rows}))
        # the faces no group holds, least like anyone named first: a quick sweep of bystanders (faces like a
        # named face are asked one by one instead)
        rest = lib.open_face_ids(OPEN_CANDIDATES, exclude=busy | shown | claimed | lib.not_strangers())
        like = self._nearest_named(rest)
        rest = sorted((f for f in rest if like.get(f, -1.0) < OPEN_LIKENESS_MAX), key=lambda f: like.get(f, -1.0))
        rest = rest[:size]
        if rest:
            groups.append(BatchGroup(f"open-{rest[0]}", "open",
                                     f"Not named yet #{rest[0]}: {len(rest)} face(s), least like anyone named "
                                     "first", rest, None, {f: like.get(f, -1.0) for f in rest}))
        swept = set(rest)
        for g in later:
            faces = [f for f in g.face_ids if f not in swept]
            if len(faces) >= 2:
                groups.append(dataclasses.replace(g, face_ids=faces, title=cluster_title(faces)))
        return groups

    def _guess_group(self, size: int, small: list[tuple[float, int, int]], pool: Sequence[int]
                     ) -> BatchGroup | None:
        """The best-guesses grid: faces of several people, each shown with its likeliest person, confirmed
        in one action. It holds ``small`` (``(score, face, person)`` of person groups too small for a page)
        and the faces of ``pool`` whose top suggestion (:meth:`_guesses`) has probability >=
        :data:`GUESS_MIN` and lies near one of that person's named faces (centred cosine >=
        :data:`GUESS_SUPPORT`): after a few rounds, mostly the odd faces of people already named, which
        would otherwise be asked one by one. At most ``size`` (the small groups, then the surest guesses),
        shown person by person: each person's faces side by side, surest first, the person with most faces
        first."""
        guesses = self._guesses(pool)
        cand = [(prob, f, p) for f, (p, prob, own) in guesses.items() if prob >= GUESS_MIN and own > GUESS_SCORE]
        cand.sort(key=lambda t: (-t[0], t[1]))
        cand = cand[:4 * size]
        sims = self._named_similarity([(f, p) for _, f, p in cand])
        rows = small + [t for t, v in zip(cand, sims) if v is not None and v >= GUESS_SUPPORT]
        rows = rows[:size]
        if len(rows) < 2:
            return None
        # each person's faces side by side (the person with most faces first, each surest first): the grid
        # reads as runs of one person each, checked at a glance
        count = Counter(p for _, _, p in rows)
        best = {}
        for c, _, p in rows:
            best[p] = max(best.get(p, c), c)
        rows.sort(key=lambda t: (-count[t[2]], -best[t[2]], t[2], -t[0], t[1]))
        people = len({p for _, _, p in rows})
        return BatchGroup(f"guesses-{min(f for _, f, _ in rows)}", "guesses",
                          f"Best guesses: {len(rows)} face(s) of {people} people, each with its likeliest name",
                          [f for _, f, _ in rows], None, {f: c for c, f, _ in rows}, {f: p for _, f, p in rows})

    def _named_similarity(self, pairs: Sequence[tuple[int, int | None]]) -> list[float | None]:
        """Per ``(face, person)``: the centred cosine similarity (:func:`~aspl.engine.preprocess.center_embeddings`, library mean) of the
        face with its nearest face named that person (human or seed label; person None: named anyone)
        among its nearest neighbours, or None when there is no such face among them."""
        out: list[float | None] = [None] * len(pairs)
        if not pairs:
            return out
        lib, backbone = self.library, self.backbone
        idx = self._index(backbone)
        ids, X = lib.embeddings(backbone, list(dict.fromkeys(int(f) for f, _ in pairs)))
        if idx is None or idx.ntotal < 2 or len(ids) == 0:
            return out
        row = {int(f): i for i, f in enumerate(ids)}
        _, nbrs = idx.search(X, min(SUGGEST_NEIGHBOURS + 1, idx.ntotal))
        named = lib.face_persons(np.unique(nbrs[nbrs >= 0]).tolist())
        first: dict[int, int] = {}  # pair index -> the nearest qualifying named face
        for k, (f, p) in enumerate(pairs):
            i = row.get(int(f))
            if i is None:
                continue
            n = next((int(n) for n in nbrs[i] if n >= 0 and int(n) != int(f) and int(n) in named
                      and (p is None or named[int(n)] == p)), None)
            if n is not None:
                first[k] = n
        if not first:
            return out
        ks = sorted(first)
        nid, Y = lib.embeddings(backbone, list(dict.fromkeys(first.values())))
        col = {int(v): j for j, v in enumerate(nid)}
        mean = self._library_mean()
        sims = (center_embeddings(X[[row[int(pairs[k][0])] for k in ks]], mean)
                * center_embeddings(Y[[col[first[k]] for k in ks]], mean)).sum(axis=1)
        for k, v in zip(ks, sims):
            out[k] = float(v)
        return out

    def _someone_else(self, faces: Sequence[int], support: dict[int, float]) -> set[int]:
        """The faces of one person's group that look like someone else: each has at least
        ``SEPARATE_MIN_FACES - 1`` companions in the group that are :data:`SEPARATE_GAP` more like it than
        its nearest named face of the person is (``support``: face -> :meth:`_named_similarity`). Faces of
        a person nobody named yet are like each other more than like anyone named; the person's own faces
        are about as like the named ones as like each other."""
        if len(faces) < SEPARATE_MIN_FACES:
            return set()
        ids, X = self.library.embeddings(self.backbone, list(faces))
        apart = apart_from_reference(center_embeddings(X, self._library_mean()),
                                     np.array([support.get(int(f), -1.0) for f in ids]), SEPARATE_GAP,
                                     SEPARATE_MIN_FACES)
        return {int(f) for f, a in zip(ids, apart) if a}

    def _nearest_named(self, face_ids: Sequence[int]) -> dict[int, float]:
        """Face -> its similarity (:meth:`_named_similarity`) with the nearest face named anyone; faces with
        no named face among their nearest neighbours are left out."""
        sims = self._named_similarity([(int(f), None) for f in face_ids])
        return {int(f): v for f, v in zip(face_ids, sims) if v is not None}

    def _library_mean(self) -> np.ndarray | None:
        """Mean embedding of (a sample of at most ~5,000 of) the library's faces on the current backbone."""
        lib, backbone = self.library, self.backbone
        n = lib.counts()["faces:ok"]
        key = (backbone, n)
        if self._mean_cache is not None and self._mean_cache[0] == key:
            return self._mean_cache[1]
        sample = lib.face_ids("ok")[::max(1, n // 5000)]
        mean = lib.embeddings(backbone, sample)[1].mean(axis=0) if sample else None
        self._mean_cache = (key, mean)
        return mean

    def _unclear_pool(self, max_faces: int = 2000) -> list[int]:
        """Faces nobody labelled (no human, seed or auto-label; in the loop), at most ``max_faces``: the last
        round's unclear set (every face, by id, before the first round) first, then the others (e.g. an
        auto-label rejected since, or faces imported after the round), smallest first."""
        lib = self.library
        last = lib.last_round()
        pool = lib.first_open(last["unclear"] if last else lib.face_ids("ok"), max_faces)
        if len(pool) < max_faces:
            pool += lib.open_face_ids(max_faces - len(pool), exclude=pool)
        return pool

    def _probable(self, pool: Sequence[int]) -> dict[int, list[tuple[float, int]]]:
        """person -> ``[(probability, face)]`` of the faces of ``pool`` whose top suggestion (:meth:`_guesses`)
        is that person with probability >= :data:`PROBABLE_MIN` and a positive one-vs-all score. Empty before
        the first round."""
        out: dict[int, list[tuple[float, int]]] = {}
        for f, (p, prob, own) in self._guesses(pool).items():
            if prob >= PROBABLE_MIN and own > PROBABLE_SCORE:  # its own one-vs-all classifier says yes
                out.setdefault(p, []).append((prob, f))
        return out

    def _guesses(self, pool: Sequence[int]) -> dict[int, tuple[int, float, float]]:
        """face -> ``(person, probability, own score)``: the top suggestion of each face of ``pool`` (the same
        calibrated ranking as :meth:`suggestions`, people rejected for the face left out), its merged
        probability and the person's own one-vs-all score (-inf for a person without a classifier yet).
        Empty before the first round; cached until the labelling state changes."""
        lib, backbone = self.library, self.backbone
        model = self._model()
        if model is None or not len(getattr(model, "classes_", [])) or not pool:
            return {}
        key = (lib.change_marker(), backbone, id(model), hash(tuple(pool)))
        if self._guess_cache is not None and self._guess_cache[0] == key:
            return self._guess_cache[1]
        rejected = lib.rejections()
        ids, X = lib.embeddings(backbone, list(pool))
        if len(ids) == 0 or model.n_features_in_ != X.shape[1]:
            return {}
        sc = np.asarray(model.decision_function(X), np.float64)
        z = np.exp((sc - sc.max(axis=1, keepdims=True)) / SUGGEST_TEMPERATURE)
        probs = z / z.sum(axis=1, keepdims=True)
        classes = np.asarray(model.classes_)
        column = {int(c): j for j, c in enumerate(classes)}
        top = np.argsort(-probs, axis=1)[:, :PROBABLE_TOP]
        nbrs = np.full((len(ids), 0), -1, np.int64)
        idx = self._index(backbone)
        if idx is not None and idx.ntotal > 1:
            nbrs = idx.search(X, min(SUGGEST_NEIGHBOURS + 1, idx.ntotal))[1]
        everyone = np.unique(nbrs[nbrs >= 0]).tolist()
        human = lib.face_persons(everyone)
        auto = lib.face_persons([n for n in everyone if n not in human], ("auto",))
        names = lib.names_of_people()
        out: dict[int, tuple[int, float, float]] = {}
        for i, f in enumerate(int(v) for v in ids):
            clf = {int(classes[j]): float(probs[i, j]) for j in top[i]}
            votes, _ = neighbour_votes([int(n) for n in nbrs[i] if n >= 0 and n != f], human, auto)
            merged = merge_evidence(clf, votes)
            ranked = sorted((p for p in merged if p in names and (f, p) not in rejected), key=lambda p: -merged[p])
            if ranked:
                col = column.get(ranked[0])
                out[f] = (ranked[0], merged[ranked[0]], float(sc[i, col]) if col is not None else float("-inf"))
        self._guess_cache = (key, out)
        return out

    def _clusters(self, size: int, pool: Sequence[int], max_clusters: int = 12) -> list[BatchGroup]:
        """Groups of similar faces among ``pool`` (unclear faces no person's group claims)."""
        lib = self.library
        backbone = self.backbone
        last = lib.last_round()
        sim_min = self.loop_settings().cluster_similarity
        key = (backbone, last["id"] if last else None, sim_min, size, len(pool), hash(tuple(pool)))
        if self._cluster_cache is not None and self._cluster_cache[0] == key:
            return self._cluster_cache[1]
        ids, X = lib.embeddings(backbone, list(pool))
        mean = self._library_mean() if len(ids) < 200 else None  # too few to stand for the library
        groups = similarity_groups(ids, X, sim_min, size, max_clusters, mean, separate=True)
        self._cluster_cache = (key, groups)
        return groups

    @answer
    def mark_batch(self, face_ids: Sequence[int], status: str, annotator: str, deselected: Sequence[int] = ()
                   ) -> int:
        """Mark the selected faces as strangers (``status="stranger"``) or not faces in one undoable action.
        Faces with a human label are left as they are. ``deselected``: the faces of the grid left unticked
        in a sweep of strangers: someone to name later, kept out of the next leftover grids (they are
        asked one by one), so they are not unticked again at every sweep. Returns the faces marked."""
        annotator = self._check_annotator(annotator)
        if not face_ids:
            raise ServiceError("no faces selected")
        with self._lock, self.library.transaction():
            lib = self.library
            labelled = lib.labelled_face_ids(("human", "seed"))
            marks = [mark_face(lib, int(f), status, annotator) for f in dict.fromkeys(int(f) for f in face_ids)
                     if f not in labelled and lib.face(f)["status"] == "ok"]
            chosen = {int(f) for f in face_ids}
            kept = lib.add_not_strangers([f for f in deselected if int(f) not in chosen], annotator) \
                if status == "stranger" else []
            lib.release_leases(annotator, [int(f) for f in face_ids])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch_mark", {"status": status, "marks": marks, "kept": kept})
            self._cluster_cache = None
            return len(marks)

    @answer
    def accept_batch(self, face_ids: Sequence[int], person: int | str, annotator: str,
                     deselected: Sequence[int] = ()) -> int:
        """Label the selected faces as ``person`` (id or name; a new name creates the person) in one action.
        Deselected faces (of a person's group, or of a cluster the annotator named) are recorded as not that
        person, so no round auto-labels them as that person (with nothing selected, the action only does
        that; it needs an existing person). Returns the faces labelled."""
        annotator = self._check_annotator(annotator)
        if not face_ids and not deselected:
            raise ServiceError("no faces selected")
        if not face_ids and not isinstance(person, int):
            raise ServiceError("no faces selected to name: tick the faces of this person first")
        with self._lock, self.library.transaction():
            lib = self.library
            pid, created = person_for(lib, person, annotator)
            done, rejections, revoked_auto = _accept_part(lib, face_ids, pid, annotator, deselected,
                                                          lib.labelled_face_ids(("human", "seed")))
            lib.release_leases(annotator, [int(f) for f in [*face_ids, *deselected]])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch", {"person_id": pid, "name": lib.person_name(pid),
                                                                "labels": done, "rejections": rejections,
                                                                "revoked_auto": revoked_auto,
                                                                "created_person": pid if created else None})
            self._cluster_cache = None
            return len(done)

    @answer
    def accept_guesses(self, persons: dict[int, int], selected: Sequence[int], annotator: str,
                       deselected: Sequence[int] = ()) -> int:
        """The best-guesses grid in one undoable action: each ``selected`` face is labelled as its person in
        ``persons`` (face -> person id, as :meth:`batch_groups` gives it); each ``deselected`` face is
        recorded as not its person. Returns the faces labelled."""
        annotator = self._check_annotator(annotator)
        if not selected and not deselected:
            raise ServiceError("no faces selected")
        missing = [int(f) for f in [*selected, *deselected] if int(f) not in persons]
        if missing:
            raise ServiceError(f"faces {missing[:5]} have no guessed person; pass the group's persons")
        with self._lock, self.library.transaction():
            lib = self.library
            names = lib.names_of_people()
            labelled = lib.labelled_face_ids(("human", "seed"))
            whose = {int(f): lib.resolve_person(int(persons[int(f)])) for f in [*selected, *deselected]}
            parts = []
            for pid in dict.fromkeys(whose.values()):
                if pid not in names:
                    raise ServiceError(f"person {pid} does not exist (merged or deleted since the grid was drawn)")
                sel = [f for f in selected if whose[int(f)] == pid]
                de = [f for f in deselected if whose[int(f)] == pid]
                done, rejections, revoked_auto = _accept_part(lib, sel, pid, annotator, de, labelled)
                parts.append({"person_id": pid, "name": names[pid], "labels": done, "rejections": rejections,
                              "revoked_auto": revoked_auto})
            lib.release_leases(annotator, [int(f) for f in [*selected, *deselected]])
            lib.add_action(annotator, SCOPE_ANNOTATE, "batch_guesses", {"parts": parts})
            self._cluster_cache = None
            return sum(len(p["labels"]) for p in parts)


def _accept_part(lib: Library, face_ids: Sequence[int], pid: int, annotator: str, deselected: Sequence[int],
                 labelled: set[int]) -> tuple[list[dict], list[int], list[int]]:
    """Label ``face_ids`` as ``pid`` (faces in ``labelled``, those with a human or seed label, and faces not
    ``ok`` skipped) and record ``deselected`` as not ``pid`` (their auto-labels of ``pid`` revoked); returns
    the undo payloads ``(labels, rejections, revoked auto-label ids)``."""
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
    return done, rejections, revoked_auto
