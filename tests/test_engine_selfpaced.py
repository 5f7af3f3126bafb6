"""The self-paced step: exactly-one rule, unclear and ambiguous sets, weights, recomputation."""
import numpy as np
import pytest

from aspl.engine.engines import SOURCE_HUMAN, SOURCE_PSEUDO, ASPLEngine
from aspl.engine.selection import UNLABELLED, self_paced_labels

LAM = np.array([0.12, 0.12, 0.12])


def test_exactly_one_person_accepting_gives_a_weighted_pseudo_label():
    scores = np.array([
        [0.95, -1.0, -0.9],   # only person 0 accepts: loss 0.05 < 0.12
        [0.95, 0.93, -1.0],   # persons 0 and 1 accept: skipped
        [0.50, 0.20, -1.0],   # nobody accepts: unclear
        [-1.0, -1.0, 1.30],   # person 2, beyond the margin: loss 0, weight 1
    ])
    sel = self_paced_labels(scores, LAM)
    assert sel.labels.tolist() == [0, UNLABELLED, UNLABELLED, 2]
    np.testing.assert_allclose(sel.weights, [1 - 0.05 / 0.12, 0, 0, 1.0])
    assert sel.unclear.tolist() == [False, False, True, False]
    assert sel.ambiguous.tolist() == [False, True, False, False]
    assert sel.accepted.tolist() == [True, False, False, True]


def test_each_person_uses_its_own_pace():
    scores = np.array([[0.5, -1.0], [-1.0, 0.5]])
    sel = self_paced_labels(scores, np.array([0.9, 0.12]))
    assert sel.labels.tolist() == [0, UNLABELLED]  # loss 0.5 < 0.9 for person 0 but not < 0.12 for person 1
    np.testing.assert_allclose(sel.weights[0], 1 - 0.5 / 0.9)
    assert sel.unclear.tolist() == [False, True]


def test_loss_equal_to_lambda_is_not_accepted():
    sel = self_paced_labels(np.array([[0.5, -1.0]]), np.array([0.5, 0.5]))
    assert sel.labels.tolist() == [UNLABELLED] and sel.unclear.tolist() == [True]


def test_without_people_every_face_is_unclear():
    sel = self_paced_labels(np.zeros((4, 0)), np.zeros(0))
    assert sel.unclear.all() and not sel.accepted.any()


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="2-D"):
        self_paced_labels(np.zeros(3), LAM)
    with pytest.raises(ValueError, match="one lambda per person"):
        self_paced_labels(np.zeros((2, 3)), np.array([0.1, 0.1]))


def _clusters(seed=0, per=12, people=3, dims=6):
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.eye(dims)[p] + 0.08 * rng.standard_normal((per, dims)) for p in range(people)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.repeat(np.arange(people), per)
    return X.astype(np.float32), y


def test_engine_trains_on_last_rounds_pseudo_labels_with_their_weights():
    X, y = _clusters()
    labels = np.full(len(y), -1)
    labels[[0, 12, 24]] = [0, 1, 2]
    eng = ASPLEngine(min_labels=1, query_size=0, seed_max=0)
    r0 = eng.step(X, labels)
    assert r0.pseudo_labels[r0.pseudo_labels >= 0].size > 0
    assert np.all(r0.pseudo_labels[r0.pseudo_labels >= 0] == y[r0.pseudo_labels >= 0])
    r1 = eng.step(X, labels)
    used = r1.train_source == SOURCE_PSEUDO
    assert np.array_equal(np.flatnonzero(used), np.flatnonzero(r0.pseudo_labels >= 0))
    np.testing.assert_allclose(r1.train_weights[used], r0.pseudo_weights[used])
    assert np.all(r1.train_weights[r1.train_source == SOURCE_HUMAN] == 1.0)


def test_pseudo_labels_are_recomputed_every_round_not_kept():
    X, y = _clusters()
    labels = np.full(len(y), -1)
    labels[[0, 1, 12, 13, 24, 25]] = [0, 0, 1, 1, 2, 2]
    eng = ASPLEngine(min_labels=1, query_size=0, seed_max=0)
    r0 = eng.step(X, labels)
    face = 5  # a face of person 0, pseudo-labelled as 0 ...
    assert r0.pseudo_labels[face] == 0
    eng.pseudo_labels_[face], eng.pseudo_weights_[face] = 2, 0.01  # ... tampered to person 2 at a tiny weight
    r1 = eng.step(X, labels)
    assert r1.train_labels[face] == 2  # used for this round's training, as decided last round
    assert r1.pseudo_labels[face] == 0  # but decided afresh from the scores


def test_supported_needs_a_reference_row_of_the_same_person_close_enough():
    from aspl.engine.selection import supported

    Z = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8], [-1, 0]], float)
    ok = supported(Z, rows=np.array([1, 3, 4, 1]), persons=np.array([7, 7, 7, 9]),
                   ref_rows=np.array([0, 2]), ref_persons=np.array([7, 9]), min_similarity=0.7)
    # row 1 . row 0 = 0.8 (person 7: yes); row 3 . row 0 = 0.6 (no); row 4 . row 0 = -1 (no);
    # row 1 as person 9: row 1 . row 2 = 0.6 (no)
    assert ok.tolist() == [True, False, False, False]
    assert supported(Z, np.array([1]), np.array([8]), np.array([0]), np.array([7]), 0.0).tolist() == [False]


def test_supported_with_a_separate_gap_refuses_a_tight_group_far_from_the_named_faces():
    from aspl.engine.selection import supported

    rng = np.random.default_rng(0)
    ref = np.array([[1.0, 0.0, 0.0]])
    own = np.array([[0.9, 0.3, 0.3], [0.85, -0.4, 0.3], [0.88, 0.1, -0.45]])  # spread around the named face
    other = np.array([0.75, 0.66, 0.0]) + 0.01 * rng.normal(size=(4, 3))  # 0.75 from it, ~1.0 from each other
    X = np.concatenate([ref, own, other])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rows = np.arange(1, 8)
    plain = supported(X, rows, np.full(7, 7), np.array([0]), np.array([7]), 0.7)
    assert plain.all()  # each face alone is close enough to the named one
    sep = supported(X, rows, np.full(7, 7), np.array([0]), np.array([7]), 0.7, separate_gap=0.15)
    assert sep.tolist() == [True] * 3 + [False] * 4
    two = supported(X, rows[[0, 1, 2, 3, 4]], np.full(5, 7), np.array([0]), np.array([7]), 0.7,
                    separate_gap=0.15)
    assert two.all()  # a pair is not a group (separate_min = 3)


def test_supported_refuses_one_claimed_face_among_unclaimed_faces_of_someone_else():
    from aspl.engine.selection import supported

    rng = np.random.default_rng(1)
    ref = np.array([[1.0, 0.0, 0.0]])
    near_ref = np.array([[0.9, 0.3, 0.3]])  # another face of the named person, claimed too
    other = np.array([0.75, 0.66, 0.0]) + 0.01 * rng.normal(size=(4, 3))  # someone else: 0.75 from ref
    X = np.concatenate([ref, near_ref, other])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rows = np.array([1, 2])  # the classifiers claimed one of the four faces of someone else
    unnamed = np.arange(1, 6)
    alone = supported(X, rows, np.full(2, 7), np.array([0]), np.array([7]), 0.7, separate_gap=0.15)
    assert alone.all()  # its group-mates were not claimed: no companions among the claimed rows
    among = supported(X, rows, np.full(2, 7), np.array([0]), np.array([7]), 0.7, separate_gap=0.15,
                      companions=unnamed)
    assert among.tolist() == [True, False]  # the three unclaimed look-alikes give it away
    kept = supported(X, rows, np.full(2, 7), np.array([0]), np.array([7]), 0.7, separate_gap=0.15,
                     companions=unnamed, fresh=np.array([True, False]))
    assert kept.all()  # a claim kept from the last round is not measured against the companions again
    # a row is never its own companion, and one look-alike is not a group (separate_min = 3)
    pair = supported(X, rows, np.full(2, 7), np.array([0]), np.array([7]), 0.7, separate_gap=0.15,
                     companions=np.array([1, 2, 3]))
    assert pair.all()
    # without the gap the companions change nothing
    assert supported(X, rows, np.full(2, 7), np.array([0]), np.array([7]), 0.7, companions=unnamed).all()


def test_support_guard_keeps_an_unnamed_persons_faces_from_a_similar_named_person():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 16))
    b = a + 0.9 * b  # person 1 looks like person 0; person 2 is elsewhere
    X = np.concatenate([v + 0.15 * rng.normal(size=(12, 16)) for v in (a, b, c)]).astype(np.float32)
    y = np.repeat(np.arange(3), 12)
    labels = np.full(len(y), -1)
    labels[[0, 1, 24, 25]] = [0, 0, 2, 2]  # person 1 is nobody yet
    plain = ASPLEngine(min_labels=1, query_size=0, seed_max=0, lambda_start=0.9).step(X, labels)
    guarded = ASPLEngine(min_labels=1, query_size=0, seed_max=0, lambda_start=0.9,
                         support_similarity=0.6).step(X, labels)
    unnamed = y == 1
    assert (plain.pseudo_labels[unnamed] >= 0).any()  # without the guard they are given to someone
    assert not (guarded.pseudo_labels[unnamed] >= 0).any()
    assert set(np.flatnonzero(unnamed)) <= set(guarded.unclear.tolist())  # left for the annotator
    named = (y != 1) & (labels < 0)
    assert (guarded.pseudo_labels[named] == y[named]).mean() > 0.8  # the named people keep theirs


def test_support_similarity_is_validated():
    with pytest.raises(ValueError, match="support_similarity"):
        ASPLEngine(support_similarity=1.5)
    with pytest.raises(ValueError, match="support_quantile"):
        ASPLEngine(support_quantile=-0.1)


def test_impostor_similarity_is_each_labelled_faces_closest_other_person():
    from aspl.engine.selection import impostor_similarity

    Z = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], float)
    imp = impostor_similarity(Z, np.array([0, 1, 2, 3]), np.array([5, 5, 6, 6]))
    # 0: best of 0.0 (row 2), 0.6 (row 3); 1: 0.6, 0.96; 2: 0.0, 0.6; 3: 0.6, 0.96
    np.testing.assert_allclose(imp, [0.6, 0.96, 0.6, 0.96], atol=1e-6)
    assert impostor_similarity(Z, np.array([0, 1]), np.array([5, 5])).size == 0  # one person: nobody to mistake


def test_a_support_quantile_raises_the_guard_where_people_lie_close():
    from aspl.engine.selection import impostor_similarity

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 6))
    centres[1] = centres[0] + 0.5 * rng.normal(size=6)  # persons 0 and 1 alike
    X = np.concatenate([v + 0.45 * rng.normal(size=(10, 6)) for v in centres]).astype(np.float32)
    labels = np.full(40, -1)
    labels[[0, 10, 20, 30]] = [0, 1, 2, 3]
    base = dict(min_labels=1, query_size=0, seed_max=0, lambda_start=0.9, support_similarity=0.0)
    fixed, adaptive = ASPLEngine(**base), ASPLEngine(**base, support_quantile=0.75)
    got_fixed = fixed.step(X, labels).pseudo_labels >= 0
    got_adapt = adaptive.step(X, labels).pseudo_labels >= 0
    imp = impostor_similarity(X, np.array([0, 10, 20, 30]), np.arange(4), mean=X.mean(axis=0))
    assert fixed.support_threshold_ == 0.0  # the floor
    assert adaptive.support_threshold_ == pytest.approx(float(np.quantile(imp, 0.75)))
    assert adaptive.support_threshold_ > 0.0  # raised
    assert got_adapt.sum() < got_fixed.sum() and not (got_adapt & ~got_fixed).any()  # a stricter guard


def test_the_guarded_variant_sets_pace_queries_and_guard_and_explicit_settings_win():
    from aspl.engine.engines import make_engine

    eng = make_engine("aspl-guarded", min_labels=1)
    s = eng.settings
    assert (s.query_measure, s.lambda_start, s.lambda_step) == ("score_margin", 0.9, 0.0)
    assert (s.support_similarity, s.support_quantile, s.separate_gap) == (0.7, 0.95, 0.15)
    assert make_engine("aspl-guarded", support_similarity=None, lambda_start=0.5).settings.support_similarity is None
    assert make_engine("aspl-margin").settings.support_similarity is None  # the others keep the paper's rule
