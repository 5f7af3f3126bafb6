"""The active step: queries ranked by best score, and FAISS seeding of newly named people."""
import numpy as np

from aspl.engine.engines import SOURCE_SEED, AllEngine, ASPLEngine, RandomEngine, make_engine
from aspl.engine.measures import best_score, score_margin
from aspl.engine.selection import seed_new_person, select_lowest


def _world(seed=0, per=10, people=4, dims=8, spread=0.05):
    """Tight clusters on orthogonal axes; the last person is never labelled at start."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([np.eye(dims)[p] + spread * rng.standard_normal((per, dims)) for p in range(people)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.repeat(np.arange(people), per)


def test_queries_are_the_unlabelled_faces_with_the_lowest_best_score():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[[0, 1, 10, 11, 20, 21]] = [0, 0, 1, 1, 2, 2]  # person 3 (rows 30-39) unknown
    res = ASPLEngine(min_labels=1, query_size=5, seed_max=0).step(X, labels)
    cand = np.flatnonzero(labels < 0)
    S = res.model.decision_function(X[cand])
    assert res.queries.tolist() == cand[select_lowest(best_score(S), 5)].tolist()
    assert np.all(y[res.queries] == 3)  # nobody claims the unknown person's faces
    assert set(res.queries) <= set(res.unclear)


def test_margin_variant_asks_faces_torn_between_two_people():
    X, y = _world(people=3)
    between = (np.eye(8)[0] + np.eye(8)[1])[None] / np.sqrt(2)
    X = np.concatenate([X, between.astype(np.float32)])
    labels = np.full(len(X), -1)
    labels[[0, 1, 10, 11, 20, 21]] = [0, 0, 1, 1, 2, 2]
    res = make_engine("aspl-margin", min_labels=1, query_size=3, seed_max=0).step(X, labels)
    cand = np.flatnonzero(labels < 0)
    S = res.model.decision_function(X[cand])
    assert res.queries.tolist() == cand[select_lowest(score_margin(S), 3)].tolist()
    assert len(X) - 1 in res.queries.tolist()


def test_seed_new_person_takes_up_to_max_within_radius_nearest_first():
    cand = np.array([[0.3, 0], [0.1, 0], [0.2, 0], [5.0, 0], [0.25, 0], [0.05, 0], [0.33, 0]], np.float32)
    idx, d = seed_new_person(np.zeros(2), cand, radius=0.31, max_seeds=5)
    assert idx.tolist() == [5, 1, 2, 4, 0]
    np.testing.assert_allclose(d, [0.05, 0.1, 0.2, 0.25, 0.3], atol=1e-6)
    idx, _ = seed_new_person(np.zeros(2), cand, radius=0.15, max_seeds=5)
    assert idx.tolist() == [5, 1]
    assert seed_new_person(np.zeros(2), cand[:0], radius=1.0)[0].size == 0


def test_a_newly_named_person_is_seeded_from_nearby_unclear_faces():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[[0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]] = np.repeat([0, 1, 2], 4)
    eng = ASPLEngine(min_labels=4, query_size=3, seed_max=5)
    r0 = eng.step(X, labels)
    assert 3 not in r0.model.classes_
    assert set(np.flatnonzero(y == 3)) <= set(r0.unclear)
    first = r0.queries[0]
    labels[first] = 3  # the annotator names a new person
    r1 = eng.step(X, labels)
    seeds = r1.seeds[3]
    assert 1 <= len(seeds) <= 5 and np.all(y[seeds] == 3) and first not in seeds
    assert np.all(r1.train_source[seeds] == SOURCE_SEED) and np.all(r1.train_labels[seeds] == 3)
    assert 3 in r1.model.classes_  # 1 human label + seeds reach min_labels = 4
    # far faces of other people are never seeds: all within a third of the average distance
    avg = np.linalg.norm(X - X[first], axis=1).mean()
    assert np.all(np.linalg.norm(X[seeds] - X[first], axis=1) <= avg / 3 + 1e-6)


def test_seeds_are_released_once_the_person_has_min_labels_human_labels():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[[0, 1, 10, 11, 20, 21, 30]] = [0, 0, 1, 1, 2, 2, 3]
    eng = ASPLEngine(min_labels=2, query_size=0, seed_max=3)
    r0 = eng.step(X, labels)
    assert len(r0.seeds[3]) == 3
    labels[31] = 3
    r1 = eng.step(X, labels)
    assert not np.any(r1.train_source == SOURCE_SEED)


def test_random_and_all_engines():
    X, y = _world()
    labels = np.full(len(y), -1)
    labels[[0, 10, 20, 30]] = [0, 1, 2, 3]
    q = RandomEngine(min_labels=1, query_size=7, random_state=1).step(X, labels).queries
    assert len(set(q.tolist())) == 7 and np.all(labels[q] == -1)
    res = AllEngine(min_labels=1).step(X, labels)
    assert sorted(res.queries.tolist()) == np.flatnonzero(labels == -1).tolist()
    assert res.n_pseudo_used == 0
