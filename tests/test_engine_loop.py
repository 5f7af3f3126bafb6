"""ActiveLoop: faces keyed by id, state as data (no pickle), forbidden pairs, fine-tuning targets."""
from __future__ import annotations

import numpy as np
import pytest

from aspl.engine.loop import ActiveLoop, StateError
from storage.state import StateFormatError, pack_state, unpack_state


def _blobs(n_people=6, per=25, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    X = np.concatenate([c + 0.35 * rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_people), per)
    return X, y


def _play(loop_factory, X, y, ids, rounds=5, reload=False, every=25):
    """Oracle answers every query (every ``every``-th face labelled at the start); with ``reload`` the loop is
    rebuilt from packed bytes each round. Returns the decisions per round and the last loop."""
    labels = np.full(len(y), -1)
    labels[::every] = y[::every]
    loop = loop_factory()
    trace = []
    for _ in range(rounds):
        if reload:
            loop = ActiveLoop.from_state_dict(unpack_state(*pack_state(loop.state_dict())))
        r = loop.step(ids, X, labels)
        f, p, w = r.auto_labels
        trace.append((r.queries.tolist(), f.tolist(), p.tolist(), np.round(w, 9).tolist()))
        pos = np.searchsorted(ids, r.queries)
        labels[pos] = y[pos]
    return trace, loop


@pytest.mark.parametrize("method", ["aspl", "aspl-margin", "ceal", "random"])
def test_state_round_trip_through_bytes_gives_the_same_decisions(method):
    X, y = _blobs()
    ids = np.arange(len(y)) * 3 + 7  # face ids are not rows
    make = lambda: ActiveLoop(method, {"query_size": 6, "min_labels": 1})  # noqa: E731
    kept, _ = _play(make, X, y, ids)
    reloaded, _ = _play(make, X, y, ids, reload=True)
    assert kept == reloaded
    assert any(t[1] for t in kept) or method == "random"  # the run made auto-labels to compare


def test_state_survives_faces_added_dropped_and_reordered():
    X, y = _blobs()
    ids = np.arange(len(y)) + 100
    labels = np.full(len(y), -1)
    labels[::25] = y[::25]
    loop = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1})
    loop.step(ids[:120], X[:120], labels[:120])
    before = {int(f): (int(p), float(w)) for f, p, w in zip(*loop.last_.auto_labels)}
    lam = dict(loop.engine_.lambdas_)
    perm = np.random.default_rng(1).permutation(len(y))  # all faces, new order (30 appended)
    perm = perm[perm != 3]  # and face 103 dropped
    loop._align(ids[perm])
    st = loop.engine_.state_dict()
    for row, f in enumerate(ids[perm]):
        if int(f) in before:
            assert (st["pseudo_labels"][row], st["pseudo_weights"][row]) == pytest.approx(before[int(f)])
        elif f >= 220:
            assert st["pseudo_labels"][row] == -1 and st["unclear"][row]
    assert loop.engine_.lambdas_ == lam


def test_forbidden_pairs_never_become_pseudo_labels_or_training():
    X, y = _blobs()
    ids = np.arange(len(y))
    labels = np.full(len(y), -1)
    labels[::5] = y[::5]
    loop = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1})
    f, p, _ = loop.step(ids, X, labels).auto_labels
    assert f.size > 5
    banned = list(zip(f[:5].tolist(), p[:5].tolist()))
    loop2 = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1})
    f2, p2, _ = loop2.step(ids, X, labels, forbidden=banned).auto_labels
    assert not set(zip(f2.tolist(), p2.tolist())) & set(banned)
    assert set(zip(f2.tolist(), p2.tolist())) == set(zip(f.tolist(), p.tolist())) - set(banned)
    assert not np.isin(loop2.engine_.pseudo_labels_[f[:5]], p[:5]).any()


def test_centring_is_stored_and_applied_when_scoring():
    X, y = _blobs()
    X = X + 3.0  # a large common component
    ids = np.arange(len(y))
    labels = np.where(np.arange(len(y)) % 5 == 0, y, -1)
    loop = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1}, center=True)
    loop.step(ids, X, labels)
    again = ActiveLoop.from_state_dict(unpack_state(*pack_state(loop.state_dict())))
    assert np.allclose(again.mean_, X.mean(0))
    assert np.array_equal(again.predict(X), loop.predict(X))
    assert np.mean(loop.predict(X) == y) > 0.95


def test_finetune_targets_are_human_seed_and_pseudo_labels_by_face_id():
    X, y = _blobs()
    ids = np.arange(len(y)) + 1000
    labels = np.where(np.arange(len(y)) % 10 == 0, y, -1)
    loop = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1, "finetune_every": 1})
    r = loop.step(ids, X, labels)
    assert r.finetune_due
    f, p, w = loop.finetune_targets()
    assert set((ids[labels >= 0]).tolist()) <= set(f.tolist())
    auto_f, auto_p, _ = r.auto_labels
    assert set(auto_f.tolist()) <= set(f.tolist()) and (w > 0).all()
    assert np.mean(p == y[f - 1000]) > 0.95


def test_malformed_or_foreign_state_is_refused_with_a_reason():
    X, y = _blobs()
    loop = ActiveLoop("aspl", {"query_size": 5, "min_labels": 1})
    loop.step(np.arange(len(y)), X, np.where(np.arange(len(y)) % 5 == 0, y, -1))
    st = loop.state_dict()
    with pytest.raises(StateError, match="version"):
        ActiveLoop.from_state_dict({**st, "loop_version": 99})
    with pytest.raises(StateError, match="malformed"):
        ActiveLoop.from_state_dict({k: v for k, v in st.items() if k != "engine.failures"})
    with pytest.raises(StateFormatError):
        unpack_state("{}", b"not a zip")
    with pytest.raises(StateFormatError, match="object"):
        pack_state({"x": np.array([object()], dtype=object)})


def test_a_planted_pickle_in_the_state_blob_is_never_executed(tmp_path):
    import io
    import pickle

    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)
    import zipfile

    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("face_ids.npy", buf.getvalue())
    with pytest.raises(StateFormatError):
        unpack_state("{}", z.getvalue())
    with pytest.raises(StateFormatError):
        unpack_state("{}", pickle.dumps(Boom()))
    assert not marker.exists()


def test_state_with_no_person_modelled_yet_reloads_and_keeps_its_pace():
    """Before any person has ``min_labels`` labels the model has no classes; its state must still load (it
    used to be refused, so every early round of the app started a fresh engine and the pace never grew)."""
    X, y = _blobs()
    ids = np.arange(len(y))
    labels = np.full(len(y), -1)
    labels[0] = y[0]  # one label: below min_labels=2 for everyone
    loop = ActiveLoop("aspl-margin", {"query_size": 5, "min_labels": 2})
    loop.step(ids, X, labels)
    assert loop.model_ is not None and loop.model_.classes_.size == 0
    again = ActiveLoop.from_state_dict(unpack_state(*pack_state(loop.state_dict())))
    assert again.model_.classes_.size == 0 and again.model_.coef_.shape == loop.model_.coef_.shape
    assert again.engine_.round_ == loop.engine_.round_
