"""Batch mode: a person's auto-labels or a cluster of unclear faces, accepted in one action."""
import pytest

from apphelpers import synthetic_service


@pytest.fixture(autouse=True)
def _person_pages(request):
    """Person pages for the synthetic people (conftest ``person_pages``), but in the test of the real fold."""
    if request.node.name != "test_a_persons_group_of_a_few_faces_joins_the_best_guesses_grid":
        request.getfixturevalue("person_pages")


def test_clusters_of_unnamed_faces_before_any_round():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    groups = svc.batch_groups("alice")
    assert groups and all(g.kind == "cluster" for g in groups)
    g = groups[0]
    assert len(g.face_ids) >= 2 and len({truth[f] for f in g.face_ids}) == 1
    n = svc.accept_batch(g.face_ids, "New Person", "alice")
    assert n == len(g.face_ids)
    pid = svc.library.person_id("New Person")
    assert {r["face_id"] for r in svc.library.person_faces(pid)} == set(g.face_ids)
    assert all(r["annotator"] == "alice" for r in svc.library.label_rows(("human",)))


def test_person_group_deselected_faces_are_rejected_and_undo_restores():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.run_round("admin")
    g = next(x for x in svc.batch_groups("alice") if x.kind == "person")
    keep, out = g.face_ids[:-1], g.face_ids[-1:]
    assert svc.accept_batch(keep, g.person_id, "alice", deselected=out) == len(keep)
    assert (out[0], g.person_id) in svc.library.rejections()
    assert not svc.library.label_rows(("auto",), face_id=out[0])
    assert set(keep) <= svc.library.labelled_face_ids()
    act = svc.undo("alice")
    assert act["kind"] == "batch"
    assert not set(keep) & svc.library.labelled_face_ids()
    assert (out[0], g.person_id) not in svc.library.rejections()
    assert svc.library.label_rows(("auto",), face_id=out[0])  # auto-label of this round restored


def test_faces_leased_by_someone_else_are_left_out():
    svc, _ = synthetic_service(None, human_per_person=1)
    svc.run_round("admin")
    busy = svc.next_face("bob")
    for g in svc.batch_groups("alice"):
        assert busy not in g.face_ids


def test_undo_of_a_batch_that_created_a_person_removes_it():
    svc, _ = synthetic_service(None, n_people=3, per_person=6)
    g = svc.batch_groups("alice")[0]
    svc.accept_batch(g.face_ids, "Brand New", "alice")
    new = svc.library.person_id("Brand New")
    svc.undo("alice")
    assert "Brand New" not in svc.person_names() and svc.library.person_deleted(new)
    assert not set(g.face_ids) & svc.library.labelled_face_ids()
    svc.accept_batch(g.face_ids[:1], "brand new", "alice")  # the name can be used again
    assert svc.person_names() == ["brand new"]


def test_cluster_titles_are_unique_and_name_the_centre_face():
    svc, _ = synthetic_service(None, n_people=3, per_person=6)
    groups = svc.batch_groups("alice")
    assert len(groups) >= 2
    assert len({g.title for g in groups}) == len(groups)
    for g in groups:
        assert g.title == f"Unnamed group #{g.face_ids[0]}: {len(g.face_ids)} similar faces"


def test_a_changed_cluster_similarity_applies_at_once_not_after_the_next_round():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    clusters = lambda: [g for g in svc.batch_groups("alice") if g.kind == "cluster"]  # noqa: E731
    loose = clusters()
    svc.set_loop_settings({"cluster_similarity": 0.999})  # nothing is that similar
    assert loose and clusters() == []


def test_groups_use_centred_similarity_so_a_shared_direction_does_not_merge_people():
    import numpy as np

    from aspl.service.batch import similarity_groups

    rng = np.random.default_rng(0)
    common = 5 * rng.normal(size=16)  # every vector shares a large direction, as face embeddings do
    centres = rng.normal(size=(4, 16))
    X = np.concatenate([common + c + 0.2 * rng.normal(size=(10, 16)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    ids = np.arange(40)
    raw = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (X / np.linalg.norm(X, axis=1, keepdims=True)).T
    assert raw[y[:, None] != y[None, :]].min() > 0.8  # raw cosine cannot tell these people apart at 0.8
    groups = similarity_groups(ids, X, 0.6, 24, 12)
    assert len(groups) == 4 and all(len(set(y[g.face_ids])) == 1 for g in groups)


def test_the_leftover_grid_holds_unanswered_faces_no_group_holds_smallest_first():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    svc.set_loop_settings({"cluster_similarity": 0.999})
    lib = svc.library
    lib.db.execute("UPDATE faces SET x2 = x1 + 20 WHERE id = 7")  # one smaller face
    (g,) = svc.batch_groups("alice")
    assert g.kind == "open" and g.face_ids[0] == 7 and set(g.face_ids) == set(truth)
    assert svc.mark_batch(g.face_ids[:4], "stranger", "alice") == 4
    (h,) = svc.batch_groups("alice")
    assert not set(g.face_ids[:4]) & set(h.face_ids) and len(h.face_ids) == len(truth) - 4


def _two_named_two_not(**kw):
    """3 labels each for the first two of four people; the last two nobody named."""
    svc, truth = synthetic_service(None, n_people=4, per_person=8, **kw)
    lib = svc.library
    named = ["Ada Lovelace", "Alan Turing"]
    assert set(truth.values()) >= set(named)
    for name in named:
        pid = lib.person_id(name, create=True)
        for f in [f for f, t in sorted(truth.items()) if t == name][:3]:
            lib.add_label(f, pid, "human", 1.0, annotator="tester")
    return svc, truth, named


def test_person_groups_offer_unanswered_faces_near_the_named_ones_and_never_an_unnamed_persons():
    svc, truth, named = _two_named_two_not()
    lib = svc.library
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [])  # no auto-labels: whatever a person's group offers is a suggestion
    groups = svc.batch_groups("alice")
    people = [g for g in groups if g.kind == "person"]
    assert {lib.person_name(g.person_id) for g in people} == set(named)
    for g in people:
        name = lib.person_name(g.person_id)
        assert g.face_ids and all(truth[f] == name for f in g.face_ids)
        assert "probable" in g.title and not set(g.face_ids) & lib.labelled_face_ids()
    offered = {f for g in people for f in g.face_ids}
    assert len(offered) == 2 * (8 - 3)  # every other face of the two named people
    others = {f for g in groups if g.kind == "cluster" for f in g.face_ids}
    assert others and all(truth[f] not in named for f in others)  # the unnamed people: clusters to name


def test_an_auto_label_far_from_the_persons_named_faces_goes_to_a_check_group_and_its_cluster():
    svc, truth, named = _two_named_two_not()
    lib = svc.library
    rid = svc.run_round("admin")["round"]
    ada = lib.person_id(named[0])
    other = next(t for t in truth.values() if t not in named)
    stray = [f for f, t in sorted(truth.items()) if t == other][:2]  # an unnamed person's faces
    lib.replace_auto_labels(rid, [(f, ada, 0.99) for f in stray])
    groups = svc.batch_groups("alice")
    person = next(g for g in groups if g.key == f"person-{ada}")
    assert not set(stray) & set(person.face_ids)
    check = next(g for g in groups if g.kind == "check")
    assert check.key == f"check-{ada}" and check.person_id == ada and set(check.face_ids) == set(stray)
    kinds = [g.kind for g in groups]
    assert kinds.index("check") > max(i for i, k in enumerate(kinds) if k in ("person", "cluster"))
    assert any(set(stray) <= set(g.face_ids) for g in groups if g.kind == "cluster")
    # nothing right in the group: the annotator unticks all and accepts; each face is rejected for Ada
    assert svc.accept_batch([], ada, "alice", deselected=stray) == 0
    assert {(f, ada) for f in stray} <= lib.rejections() and not lib.label_rows(("auto",), face_id=stray[0])
    assert not any(g.kind == "check" for g in svc.batch_groups("alice"))
    svc.undo("alice")
    assert not {(f, ada) for f in stray} & lib.rejections()


def test_a_batch_with_nothing_ticked_needs_an_existing_person():
    import pytest

    from aspl.service import ServiceError

    svc, truth, named = _two_named_two_not()
    with pytest.raises(ServiceError, match="no faces selected"):
        svc.accept_batch([], "Somebody New", "alice", deselected=[1])
    with pytest.raises(ServiceError, match="no faces selected"):
        svc.accept_batch([], svc.library.person_id(named[0]), "alice")


def test_the_leftover_grid_leaves_out_faces_like_a_named_face_least_like_first():
    svc, truth, named = _two_named_two_not()
    svc.set_loop_settings({"cluster_similarity": 0.999})  # no clusters: every open face is a leftover
    (g,) = [g for g in svc.batch_groups("alice") if g.kind == "open"]
    assert g.face_ids and all(truth[f] not in named for f in g.face_ids)  # the named people's are asked
    likeness = [g.scores[f] for f in g.face_ids]
    assert likeness == sorted(likeness)


def test_groups_are_computed_once_until_the_labelling_state_changes(monkeypatch):
    svc, truth, named = _two_named_two_not()
    svc.run_round("admin")
    calls = []
    real = type(svc)._batch_groups
    monkeypatch.setattr(type(svc), "_batch_groups", lambda self, *a: calls.append(1) or real(self, *a))
    first = svc.batch_groups("alice")
    first[0].face_ids.clear()  # a caller changing its copy changes nothing cached
    again = svc.batch_groups("alice")
    assert len(calls) == 1 and again[0].face_ids
    g = next(x for x in again if x.kind == "person")
    svc.accept_batch(g.face_ids[:1], g.person_id, "alice")
    after = svc.batch_groups("alice")
    assert len(calls) == 2 and g.face_ids[0] not in {f for x in after for f in x.face_ids}
    svc.undo("alice")
    svc.batch_groups("alice")
    assert len(calls) == 3
    svc.set_loop_settings({"batch_size": 2})
    assert len(calls) == 3 and all(len(x.face_ids) <= 2 for x in svc.batch_groups("alice")) and len(calls) == 4


def test_a_tight_subgroup_less_like_the_named_faces_than_each_other_is_someone_else():
    """Another person's faces that a classifier gave to Ada, each within the support threshold of one of her
    named faces (centred cosine 0.75-0.8) but far more like each other (0.99): they leave Ada's group for
    a check group and a cluster to name; Ada's own faces stay."""
    import numpy as np

    from apphelpers import SYNTH
    from storage.faces import NewFace

    svc, truth = synthetic_service(None, n_people=4, per_person=8)
    lib = svc.library
    ada = lib.person_id("Ada Lovelace", create=True)
    adas = [f for f, t in sorted(truth.items()) if t == "Ada Lovelace"]
    for f in adas[:4]:
        lib.add_label(f, ada, "human", 1.0, annotator="tester")
    a = lib.embeddings(SYNTH, adas)[1].mean(axis=0)
    rng = np.random.default_rng(5)
    r = rng.normal(size=a.size)
    r -= (r @ a) / (a @ a) * a
    b = a / np.linalg.norm(a) + 0.5 * r / np.linalg.norm(r)
    crop = np.zeros((48, 48, 3), np.uint8)
    bob = []
    for k in range(5):
        v = b + 0.03 * rng.normal(size=a.size)
        bob += lib.add_image(f"bob/{k}.jpg", f"bob-{k}", 10, 100, 100, [NewFace(
            (10.0, 10.0, 60.0, 60.0), np.zeros((5, 2), np.float32), 0.99, crop,
            {SYNTH: (v / np.linalg.norm(v)).astype(np.float32)})])[1]
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [(f, ada, 0.99) for f in bob + adas[4:]])
    support = svc._named_similarity([(f, ada) for f in bob])
    assert all(0.7 <= v < 0.85 for v in support)  # each passes the support test on its own
    groups = svc.batch_groups("alice")
    person = next(g for g in groups if g.key == f"person-{ada}")
    assert set(person.face_ids) == set(adas[4:])
    assert set(next(g for g in groups if g.key == f"check-{ada}").face_ids) == set(bob)
    assert any(set(bob) <= set(g.face_ids) for g in groups if g.kind == "cluster")


def test_a_cluster_leaves_out_a_tight_subgroup_far_less_like_its_centre_than_like_each_other():
    """Two lookalike people in one greedy cluster (members within 0.6 of the centre): with ``separate``
    the other person's tight faces leave the centre's group and form their own."""
    import numpy as np

    from aspl.service.batch import similarity_groups

    rng = np.random.default_rng(0)
    a = np.zeros(16)
    a[0] = 1.0
    b = np.zeros(16)
    b[0], b[1] = 0.7, np.sqrt(1 - 0.49)  # the other person: 0.7 from the first
    X = np.concatenate([a + 0.08 * rng.normal(size=(6, 16)), b + 0.05 * rng.normal(size=(4, 16))])
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(100, 110)
    mean = np.zeros(16, np.float32)  # compare as they are
    merged = similarity_groups(ids, X, 0.6, 48, 5, mean)
    assert len(merged) == 1 and len(merged[0].face_ids) == 10  # one greedy group of both people
    split = similarity_groups(ids, X, 0.6, 48, 5, mean, separate=True)
    assert [sorted(g.face_ids) for g in split] == [list(range(100, 106)), list(range(106, 110))]


def test_a_face_unlike_the_rest_of_its_cluster_starts_unticked_and_last():
    """A bystander that joined a person's cluster through its centre alone (0.7 from it, about as far from
    every other member, which lie 0.99 from each other) starts unticked, after the others; a group smaller
    than CLUSTER_LOOSE_MIN faces, or without ``separate``, leaves it ticked."""
    import numpy as np

    from aspl.service.batch import CLUSTER_LOOSE_MIN, similarity_groups

    rng = np.random.default_rng(1)
    a, b = np.eye(16)[0], np.eye(16)[1]
    person = a + 0.03 * rng.normal(size=(7, 16))
    bystander = 0.7 * a + np.sqrt(1 - 0.49) * b
    X = np.concatenate([person, bystander[None]])
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(200, 208)
    mean = np.zeros(16, np.float32)
    (g,) = similarity_groups(ids, X, 0.6, 48, 5, mean, separate=True)
    assert sorted(g.face_ids) == list(range(200, 208)) and g.face_ids[-1] == 207 and g.unticked == [207]
    assert similarity_groups(ids, X, 0.6, 48, 5, mean)[0].unticked == []
    few = np.r_[0:CLUSTER_LOOSE_MIN - 2, 7]  # the bystander in a group of CLUSTER_LOOSE_MIN - 1
    (g,) = similarity_groups(ids[few], X[few], 0.6, 48, 5, mean, separate=True)
    assert len(g.face_ids) == CLUSTER_LOOSE_MIN - 1 and g.unticked == []


def _guesses_only(svc):
    """No clusters and no person groups by support: what a person's group would offer is a best guess."""
    svc.set_loop_settings({"cluster_similarity": 0.999, "support_similarity": 0.999})


def test_best_guesses_name_each_face_after_its_own_person_and_accept_in_one_undoable_action():
    svc, truth, named = _two_named_two_not()
    lib = svc.library
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [])
    _guesses_only(svc)
    groups = svc.batch_groups("alice")
    (g,) = [x for x in groups if x.kind == "guesses"]
    assert not any(x.kind == "person" for x in groups)
    assert len(g.face_ids) == 2 * (8 - 3) and set(g.persons) == set(g.face_ids)
    assert all(lib.person_name(g.persons[f]) == truth[f] for f in g.face_ids)  # its own person each
    assert {lib.person_name(p) for p in g.persons.values()} == set(named)
    assert g.title.startswith(f"Best guesses: {len(g.face_ids)} face(s) of 2 people")
    runs = [g.persons[f] for f in g.face_ids]
    assert runs == sorted(runs, key=runs.index)  # each person's faces side by side
    for p in set(runs):
        scores = [g.scores[f] for f in g.face_ids if g.persons[f] == p]
        assert scores == sorted(scores, reverse=True)  # surest first
    keep, out = g.face_ids[1:], g.face_ids[:1]
    assert svc.accept_guesses(g.persons, keep, "alice", deselected=out) == len(keep)
    assert all(lib.person_name(lib.face_persons([f])[f]) == truth[f] for f in keep)
    assert (out[0], g.persons[out[0]]) in lib.rejections()
    assert not any(x.kind == "guesses" and set(keep) & set(x.face_ids) for x in svc.batch_groups("alice"))
    act = svc.undo("alice")
    assert act["kind"] == "batch_guesses"
    assert not set(g.face_ids) & lib.labelled_face_ids() and (out[0], g.persons[out[0]]) not in lib.rejections()


def test_best_guesses_need_the_groups_persons_and_a_face():
    import pytest

    from aspl.service import ServiceError

    svc, truth, named = _two_named_two_not()
    with pytest.raises(ServiceError, match="no faces selected"):
        svc.accept_guesses({}, [], "alice")
    with pytest.raises(ServiceError, match="no guessed person"):
        svc.accept_guesses({}, [1], "alice")


def test_a_persons_group_of_a_few_faces_joins_the_best_guesses_grid():
    """A person offering fewer than GUESS_FOLD of a grid (12 of 48 faces) is folded into the best-guesses
    grid, each person's faces side by side; a person offering more keeps a page of their own."""
    from aspl.service.batch import GUESS_FOLD

    svc, truth = synthetic_service(None, n_people=3, per_person=20)
    fold = round(GUESS_FOLD * svc.loop_settings().batch_size)
    assert fold == 12
    lib = svc.library
    names = sorted(set(truth.values()))
    for name in names:
        pid = lib.person_id(name, create=True)
        for f in [f for f, t in sorted(truth.items()) if t == name][:3]:
            lib.add_label(f, pid, "human", 1.0, annotator="tester")
    few, many = lib.person_id(names[0]), lib.person_id(names[1])
    left = {p: [f for f, t in sorted(truth.items()) if t == lib.person_name(p) and f not in lib.labelled_face_ids()]
            for p in (few, many)}
    for f in left[few][:len(left[few]) - (fold - 1)]:  # one keeps fold - 1 faces to offer
        lib.add_label(f, few, "human", 1.0, annotator="tester")
    for f in left[many][:1]:
        lib.add_label(f, many, "human", 1.0, annotator="tester")
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [])
    svc.set_loop_settings({"cluster_similarity": 0.999})
    groups = svc.batch_groups("alice")
    keys = {g.key for g in groups}
    assert f"person-{few}" not in keys and f"person-{many}" in keys  # 16 faces: a page of its own
    (g,) = [x for x in groups if x.kind == "guesses"]
    assert set(left[few][-(fold - 1):]) <= set(g.face_ids)
    assert all(g.persons[f] == few for f in left[few][-(fold - 1):])
    runs = [g.persons[f] for f in g.face_ids]
    assert runs == sorted(runs, key=runs.index)  # each person's faces side by side


def test_pairs_of_similar_faces_come_after_the_open_sweep_and_never_twice():
    """Clusters of CLUSTER_FIRST faces or more come first; smaller ones (pairs, triples) after the leftover
    sweep, which may take their faces."""
    from aspl.service.batch import CLUSTER_FIRST

    assert CLUSTER_FIRST == 4
    svc, truth = synthetic_service(None, n_people=4, per_person=4)
    assert [g.kind for g in svc.batch_groups("alice")] == ["cluster"] * 4  # four alike: a cluster first
    for f in (1, 2, 3, 4):  # one face of each person is a stranger: the others are triples
        svc.stranger(f, "alice")
    (g,) = svc.batch_groups("alice")  # the triples come after the sweep, which takes their faces
    assert g.kind == "open" and sorted(g.face_ids) == list(range(5, 17))
    for f in (5, 6, 7, 8):  # now pairs
        svc.stranger(f, "alice")
    svc.set_loop_settings({"batch_size": 2})
    groups = svc.batch_groups("alice")
    assert [g.kind for g in groups] == ["open", "cluster", "cluster"]
    assert groups[0].face_ids == [9, 10]  # the sweep takes its faces first (smallest, then by id)
    assert [sorted(g.face_ids) for g in groups[1:]] == [[11, 15], [12, 16]]  # the pairs it left whole


def test_faces_unticked_in_a_named_cluster_are_not_that_person_and_no_round_says_they_are():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    lib = svc.library
    g = next(x for x in svc.batch_groups("alice") if x.kind == "cluster")
    name = truth[g.face_ids[0]]
    other = next(f for f, t in truth.items() if t != name)  # a face of someone else, as if in the cluster
    assert svc.accept_batch(g.face_ids, name, "alice", deselected=[other]) == len(g.face_ids)
    pid = lib.person_id(name)
    assert (other, pid) in lib.rejections()
    svc.run_round("admin")
    assert all(r["person_id"] != pid for r in lib.label_rows(("auto",), face_id=other))
    svc.undo("alice")
    assert (other, pid) not in lib.rejections()


def test_best_guesses_follow_a_merge_and_a_deleted_person_is_an_error_that_labels_nothing():
    import pytest

    from aspl.service import ServiceError

    svc, truth, named = _two_named_two_not()
    lib = svc.library
    rid = svc.run_round("admin")["round"]
    lib.replace_auto_labels(rid, [])
    _guesses_only(svc)
    (g,) = [x for x in svc.batch_groups("alice") if x.kind == "guesses"]
    ada, alan = (lib.person_id(n) for n in named)
    ghost = lib.person_id("Nobody Here", create=True)
    svc.delete_person(ghost, "alice")
    bad = {**g.persons, g.face_ids[-1]: ghost}  # drawn before that person was deleted
    with pytest.raises(ServiceError, match=f"person {ghost} does not exist"):
        svc.accept_guesses(bad, g.face_ids, "alice")
    assert not set(g.face_ids) & lib.labelled_face_ids()  # nothing half-done
    svc.merge_people(ada, alan, "alice")  # the grid was drawn before the merge: Ada's faces go to Alan
    assert svc.accept_guesses(g.persons, g.face_ids, "alice") == len(g.face_ids)
    assert set(lib.face_persons(g.face_ids).values()) == {alan}


def _lookalike_cluster(n_a: int = 8, n_b: int = 4, cos_ab: float = 0.8, seed: int = 0):
    """Faces of two people in one greedy group: B's faces lie within 0.6 of A's centre face, but not tight
    enough for the edge rule (:data:`CLUSTER_SEPARATE_GAP`): like each other about 0.9, like A's 0.7."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.zeros(32)
    a[0] = 1.0
    b = np.zeros(32)
    b[0], b[1] = cos_ab, np.sqrt(1 - cos_ab ** 2)
    X = np.concatenate([a + 0.06 * rng.normal(size=(n_a, 32)), b + 0.06 * rng.normal(size=(n_b, 32))])
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_a_lookalikes_faces_in_a_cluster_come_last_and_start_unticked():
    import numpy as np

    from aspl.service.batch import lookalike_subgroup, similarity_groups

    X = _lookalike_cluster()
    ids = np.arange(200, 212)
    mean = np.zeros(32, np.float32)
    g = similarity_groups(ids, X, 0.6, 48, 5, mean, separate=True)[0]
    b_in = [f for f in g.face_ids if f >= 208]  # B's faces the edge rule left in A's group
    assert len(b_in) >= 2 and set(range(200, 208)) <= set(g.face_ids)
    assert sorted(g.unticked) == sorted(b_in)  # ... the split finds them, and none of A's
    assert g.face_ids[-len(b_in):] == g.unticked  # shown last
    plain = similarity_groups(ids, X, 0.6, 48, 5, mean)
    assert plain[0].unticked == []  # without ``separate``: no split
    # one person's faces are not split, however the noise falls
    for seed in range(5):
        Y = _lookalike_cluster(n_a=12, n_b=0, seed=seed)
        S = Y @ Y.T
        assert not lookalike_subgroup(S, 0.12).any()
    # a lone odd face is no subgroup (two or more faces)
    Z = _lookalike_cluster(n_a=10, n_b=1)
    assert not lookalike_subgroup(Z @ Z.T, 0.12).any()



def test_faces_left_unticked_in_a_sweep_of_strangers_stay_out_of_the_next_sweeps_until_undone():
    svc, truth = synthetic_service(None, n_people=3, per_person=6)
    svc.set_loop_settings({"cluster_similarity": 0.999})  # no clusters: every open face is a leftover
    lib = svc.library
    (g,) = svc.batch_groups("alice")
    assert g.kind == "open"
    swept, left = g.face_ids[:4], g.face_ids[4:6]
    assert svc.mark_batch(swept, "stranger", "alice", deselected=left + swept[:1]) == 4
    assert lib.not_strangers() == set(left)  # a face both ticked and unticked counts as ticked
    (h,) = svc.batch_groups("alice")
    assert not (set(swept) | set(left)) & set(h.face_ids)
    assert set(h.face_ids) == set(truth) - set(swept) - set(left)
    assert svc.remaining() == len(truth) - 4  # still to answer: asked one by one
    svc.undo("alice")
    assert lib.not_strangers() == set() and set(svc.batch_groups("alice")[0].face_ids) == set(truth)
    # marking "not a face" records nothing about the unticked faces
    svc.mark_batch(swept, "not_face", "alice", deselected=left)
    assert lib.not_strangers() == set()
