"""Top-5 suggestions: FAISS neighbours before a classifier, classifier scores after; rejections respected."""
from apphelpers import synthetic_service


def test_neighbour_suggestions_before_any_round():
    svc, truth = synthetic_service(None, human_per_person=1)
    f = svc.next_face("alice")
    s = svc.suggestions(f)
    assert len(s) == 4 and {x.name for x in s} == set(truth.values())  # 4 people, each with a labelled face
    assert s[0].source == "neighbours" and s[0].name == truth[f]
    assert s[0].thumb_face_id is not None and s[0].score > s[-1].score


def test_classifier_suggestions_after_a_round_are_top5():
    svc, truth = synthetic_service(None, n_people=7, per_person=4, human_per_person=1)
    svc.run_round("admin")
    f = svc.next_face("alice") or svc.library.label_rows(("auto",))[0]["face_id"]  # all may be auto-labelled
    s = svc.suggestions(f)
    assert len(s) == 5 and s[0].source == "classifier+neighbours" and s[0].name == truth[f]
    assert 0 < sum(x.score for x in s) <= 1.0 + 1e-9  # probabilities over people
    assert [x.score for x in s] == sorted((x.score for x in s), reverse=True)
    assert all(x.thumb_face_id is not None for x in s)


def test_a_rejected_person_is_never_suggested_for_that_face():
    svc, truth = synthetic_service(None, human_per_person=1)
    svc.run_round("admin")
    a = svc.library.label_rows(("auto",))[0]
    svc.reject_auto(a["face_id"], a["person_id"], "alice")
    assert a["person_id"] not in {s.person_id for s in svc.suggestions(a["face_id"])}
    svc.run_round("admin")
    assert a["person_id"] not in {s.person_id for s in svc.suggestions(a["face_id"])}


def test_face_without_embedding_has_no_suggestions():
    svc, _ = synthetic_service(None, human_per_person=1)
    svc.library.set_setting("backbone", "other")
    assert svc.suggestions(svc.library.face_ids()[0]) == []


def test_a_large_index_is_built_by_a_job_never_on_the_request(tmp_path, monkeypatch):
    import aspl.service.core as core

    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=1)
    monkeypatch.setattr(core, "IVF_THRESHOLD", 10)  # this library counts as large
    path = svc.indexes.path(svc.backbone)
    path.unlink(missing_ok=True)
    svc.indexes = type(svc.indexes)(svc.library)  # a fresh process: nothing in memory, no file
    f = svc.next_face("alice")
    assert svc.suggestions(f) == []  # no round yet and no index: nothing, at once
    job = svc.jobs.latest("index")
    assert job is not None and job.wait(60).status == "done", job.error
    s = svc.suggestions(f)
    assert s and s[0].source == "neighbours" and s[0].name == truth[f] and path.is_file()


def test_merged_ranking_includes_people_with_one_label_and_averages_the_evidence():
    from aspl.service.annotate import merge_evidence

    assert merge_evidence({}, {}) == {}
    assert merge_evidence({1: 0.8, 2: 0.2}, {}) == {1: 0.8, 2: 0.2}
    assert merge_evidence({}, {3: 2.0, 4: 2.0}) == {3: 0.5, 4: 0.5}
    m = merge_evidence({1: 0.6, 2: 0.4}, {2: 3.0, 5: 1.0})  # person 5: one label, no classifier yet
    assert m == {1: 0.3, 2: 0.2 + 0.375, 5: 0.125} and abs(sum(m.values()) - 1) < 1e-12
    # in the service: a person named once is suggested for their other faces after a round
    svc, truth = synthetic_service(None, n_people=5, per_person=6, human_per_person=2)
    lib = svc.library
    newcomer = next(f for f in sorted(truth) if truth[f] == "Person 4" and f not in lib.labelled_face_ids())
    for r in lib.label_rows(("human",)):
        if truth[r["face_id"]] == "Person 4":
            lib.revoke_label(r["id"])
    svc.new_person(newcomer, "Person 4", "alice")  # one label only
    svc.run_round("admin")
    other = next(f for f in sorted(truth) if truth[f] == "Person 4" and f != newcomer)
    top = svc.suggestions(other)[0]
    assert top.name == "Person 4" and top.source == "classifier+neighbours"


def test_top_k_from_the_most_probable_people_only_equals_the_full_ranking(monkeypatch):
    """Suggestions look only at the k + 1 most probable people (plus the neighbours' people): the same top k,
    with the same scores, as ranking every person, also when a person is rejected for the face."""
    import aspl.service.annotate as annotate

    monkeypatch.setattr(annotate, "SUGGEST_NEIGHBOURS", 3)  # few voters: the classifier's people must fill
    svc, truth = synthetic_service(None, n_people=30, per_person=3, human_per_person=1)
    svc.run_round("admin")
    people = len(svc.person_names())
    lib = svc.library
    faces = lib.face_ids()[::7]
    a = lib.label_rows(("auto",))[0]
    svc.reject_auto(a["face_id"], a["person_id"], "alice")
    for f in faces + [a["face_id"]]:
        top = [(s.person_id, round(s.score, 12)) for s in svc.suggestions(f, 5)]
        full = [(s.person_id, round(s.score, 12)) for s in svc.suggestions(f, people)][:5]
        assert top == full and len(top) == 5, f


def test_top_k_stays_full_when_the_most_probable_people_were_merged_away(monkeypatch):
    """People merged into others after the round still have classifiers; when they fill the most probable
    places, the top k comes from the rest (as ranking everyone would), not a shorter list."""
    import aspl.service.annotate as annotate

    monkeypatch.setattr(annotate, "SUGGEST_NEIGHBOURS", 2)
    svc, truth = synthetic_service(None, n_people=30, per_person=3, human_per_person=1)
    svc.run_round("admin")
    people = len(svc.person_names())
    f = svc.library.face_ids()[0]
    first = [s.person_id for s in svc.suggestions(f, people)]
    for p in first[:4]:  # the four most probable people merged into the tenth
        svc.merge_people(p, first[9], "admin")
    top = [(s.person_id, round(s.score, 12)) for s in svc.suggestions(f, 5)]
    full = [(s.person_id, round(s.score, 12)) for s in svc.suggestions(f, people)][:5]
    assert len(top) == 5 and top == full


def test_the_apps_rounds_train_the_batched_classifier_and_suggestions_score_on_one_blas_thread(monkeypatch):
    """A new library's rounds use the batched one-vs-all trainer (seconds at 100k faces, not liblinear's
    tens of minutes); scoring one face for suggestions runs with BLAS limited to one thread."""
    from threadpoolctl import threadpool_info

    from aspl.engine.batched import BatchedOneVsAll

    svc, truth = synthetic_service(None, n_people=7, per_person=4, human_per_person=1)
    svc.run_round("admin")
    loop = svc._model()
    assert isinstance(loop.model_, BatchedOneVsAll)
    seen = []
    real = type(loop.model_).decision_function

    def spy(self, X, *a, **kw):
        seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
        return real(self, X, *a, **kw)

    monkeypatch.setattr(type(loop.model_), "decision_function", spy)
    assert svc.suggestions(svc.library.face_ids()[0])
    assert seen and all(n == [1] * len(n) and n for n in seen), seen
