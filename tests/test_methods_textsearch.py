"""Text queries: joint embedding from labels and notes; retrieval of a person's faces by name."""
import numpy as np
import pytest
import torch

from aspl.methods.textsearch import TextEncoder, TextSearch, TextSearchSettings, face_texts, ranking_loss
from tests.methods_helpers import library_from_crops, real_crops


def test_ranking_loss_is_zero_when_pairs_beat_negatives_by_the_margin():
    e = torch.eye(4)
    assert float(ranking_loss(e, e, torch.arange(4), margin=0.5)) == 0.0
    assert float(ranking_loss(e, e.roll(1, 0), torch.arange(4), margin=0.5)) > 0.0


def test_text_encoder_matches_names_with_underscores_and_case():
    enc = TextEncoder()
    a, b, c = enc.encode(["Ariel_Sharon", "ariel sharon", "Laura Bush"])
    assert float(a @ b) == pytest.approx(1.0) and float(a @ c) < 0.3


def test_text_search_retrieves_the_named_persons_faces(lfw_dev, dlib_embedder, library, capsys):
    import json

    from aspl.cli import main

    lib, indexes = library
    fc = real_crops(lfw_dev)
    ids = library_from_crops(lib, indexes, fc, dlib_embedder)
    people = sorted(set(fc.labels))
    lib.add_note("wears glasses at the press conference", face_id=ids[0])
    texts = face_texts(lib)
    assert "glasses" in texts[ids[0]] and fc.labels[0] in texts[ids[0]]
    ts = TextSearch.for_library(lib, "dlib-resnet", TextSearchSettings(epochs=40))
    for name in people:
        query = name.replace("_", " ").lower()
        top = ts.search(lib, query, k=10)
        got = [fc.labels[ids.index(f)] for f, _ in top]
        assert np.mean([g == name for g in got]) >= 0.8, (name, got)
    assert ids[0] in [f for f, _ in ts.search(lib, "glasses", k=10)]  # a note on one face, among 40
    assert main(["text-search", people[1].split("_")[-1], "--db", str(lib.root), "-k", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["person"] == people[1] for r in rows)
