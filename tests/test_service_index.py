"""The search index as a library setting (FAISS factory strings) and rounds reading the open index."""
import numpy as np
import pytest

from apphelpers import synthetic_service
from pgserver import library_at
from storage import IndexStore


def test_a_round_reads_its_vectors_from_the_open_index_not_the_database(monkeypatch):
    svc, truth = synthetic_service(None, human_per_person=2)
    face = next(iter(truth))
    assert svc.suggestions(face, 3)  # opens the index, as the Annotate page does
    reference, _ = synthetic_service(None, human_per_person=2)
    monkeypatch.setattr(svc.library, "embeddings",
                        lambda *a, **k: pytest.fail("the round read the vectors from the database"))
    m, ref = svc.run_round("admin"), reference.run_round("admin")
    assert m["auto_labels"] > 0 and (m["auto_labels"], m["queries"]) == (ref["auto_labels"], ref["queries"])


def test_setting_a_compressed_index_rebuilds_it_in_the_background_and_everything_still_works(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=2)
    before = svc.index_info()
    assert before["factory"] == "auto"
    with pytest.raises(ValueError, match="'IVF8,PQ5'.*PQ m must divide"):
        svc.set_index_factory("IVF8,PQ5", "admin")
    assert svc.index_info()["factory"] == "auto"  # a refused setting is not stored
    job = svc.set_index_factory("IVF4,PQ4x4", "admin")
    assert job.wait(60).status == "done", job.error
    assert job.result["kind"] == "IVF4,PQ4x4"
    info = svc.index_info()
    assert info["factory"] == "IVF4,PQ4x4" and info["kind"] == "IVF4,PQ4x4" and info["exact"] is False
    assert info["bytes_per_face"] < 4 * svc.library.embedding_dim(svc.backbone)  # codes, not float32 vectors
    face = next(iter(truth))
    assert svc.suggestions(face, 3) is not None
    assert svc.run_round("admin")["auto_labels"] > 0  # the round reads the database's exact vectors
    # the setting lives in the library: a new process builds the same structure
    with library_at(tmp_path / "lib") as lib:
        assert IndexStore(lib).get(svc.backbone).kind == "IVF4,PQ4x4"
    assert svc.set_index_factory("auto", "admin").wait(60).result["kind"] == "flat"
    assert np.isfinite(svc.index_info()["bytes_per_face"])
