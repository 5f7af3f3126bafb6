"""Import of real photos: faces, seeds, dedupe, bad files, crash-resume, index agreement."""
import shutil

import numpy as np
import pytest
from PIL import Image

from aspl.importer import Importer
from test_imageio import _bad_files


def test_import_real_photos_with_folder_labels(importer, small_lfw):
    lib = importer.library
    s = importer.run(small_lfw, labels_from_folders=True, progress=False)
    assert (s.files, s.imported, s.duplicates) == (12, 12, 0)
    assert s.faces >= 12 and s.seed_labels == 12
    st = lib.stats()
    assert st["people"] == 3 and st["labels_by_source"]["seed"] == 12
    assert {p["name"] for p in lib.people()} == {"Ariel Sharon", "Hans Blix", "Laura Bush"}
    # Each seed sits on the central face of its photo, in the person's folder.
    for lab in lib.labels(["seed"]):
        f = lib.face(lab["face_id"])
        assert lib.person_name(lab["person_id"]).replace(" ", "_") in f["path"]
        cx = (f["x1"] + f["x2"]) / 2
        assert abs(cx - f["width"] / 2) < f["width"] * 0.25
        assert lib.face_crop(lab["face_id"]).shape == (160, 160, 3)
    # Embeddings are unit-norm float32 and the index holds exactly the faces.
    ids, X = lib.embeddings("dlib-resnet")
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert importer.indexes.in_sync("dlib-resnet")
    assert len(ids) == st["faces"]


def test_same_person_is_nearest_neighbour(importer, small_lfw):
    lib = importer.library
    importer.run(small_lfw, labels_from_folders=True, progress=False)
    seeds = {l["face_id"]: l["person_id"] for l in lib.labels(["seed"])}
    ids, X = lib.embeddings("dlib-resnet", list(seeds))
    index = importer.indexes.get("dlib-resnet")
    _, found = index.search(X, 2)
    same = [seeds.get(int(n)) == seeds[int(q)] for q, n in zip(ids, found[:, 1]) if int(n) in seeds]
    assert np.mean(same) >= 0.9


def test_importing_twice_adds_nothing(importer, small_lfw):
    importer.run(small_lfw, labels_from_folders=True, progress=False)
    before = importer.library.stats()
    s = importer.run(small_lfw, labels_from_folders=True, progress=False)
    assert (s.imported, s.duplicates) == (0, 12)
    assert importer.library.stats() == before


def test_copy_elsewhere_is_a_duplicate(importer, small_lfw, tmp_path):
    importer.run(small_lfw / "Hans_Blix", progress=False)
    other = tmp_path / "elsewhere"
    shutil.copytree(small_lfw / "Hans_Blix", other)
    s = importer.run(other, progress=False)
    assert (s.imported, s.duplicates) == (0, 4)


def test_bad_files_recorded_and_import_goes_on(importer, small_lfw, tmp_path, lfw_dev):
    bad = small_lfw / "Hans_Blix"
    expected = _bad_files(bad, lfw_dev)
    (small_lfw / "README.txt").write_text("not an image type: ignored")
    s = importer.run(small_lfw, labels_from_folders=True, progress=False)
    assert s.imported == 12 and s.skipped_other_types == 1
    assert sum(s.rejected.values()) == len(expected)
    lib = importer.library
    rows = lib._rows("SELECT path, error_reason FROM images WHERE status = 'rejected'")
    got = {r["path"].rsplit("/", 1)[1]: r["error_reason"] for r in rows}
    assert got == expected
    assert lib.stats()["rejected_by_reason"] == dict(s.rejected)
    # Re-running records nothing twice.
    s2 = importer.run(small_lfw, labels_from_folders=True, progress=False)
    assert s2.imported == 0 and lib.stats()["rejected_files"] == len(expected)


def test_photo_without_faces_and_huge_photo(importer, tmp_path, lfw_dev):
    d = tmp_path / "misc"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(d / "noise.png")
    face = Image.open(sorted((lfw_dev / "Laura_Bush").glob("*.jpg"))[0])
    face.resize((4000, 4000), Image.Resampling.BICUBIC).save(d / "huge.jpg", quality=90)
    s = importer.run(d, progress=False)
    assert s.imported == 2 and s.without_faces == 1
    st = importer.library.stats()
    assert st["images_without_faces"] == 1 and st["faces"] >= 1
    f = importer.library.face(importer.library.face_ids()[0])
    assert f["x2"] - f["x1"] > 1000  # box in full-resolution pixels


def test_crash_mid_import_resumes_without_duplicates(importer, small_lfw, library, detector, dlib_embedder):
    lib, indexes = library
    real_add = lib.add_image
    calls = {"n": 0}

    def crashing_add(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a batch
        return real_add(*a, **k)

    lib.add_image = crashing_add
    with pytest.raises(KeyboardInterrupt):
        importer.run(small_lfw, labels_from_folders=True, progress=False)
    lib.add_image = real_add
    st = lib.stats()
    assert st["images"] == 5
    assert indexes.in_sync("dlib-resnet")  # the index was saved on the way out
    # A new process: fresh index store, same folder.
    from storage import IndexStore

    again = Importer(lib, IndexStore(lib), detector=detector, embedder=dlib_embedder)
    s = again.run(small_lfw, labels_from_folders=True, progress=False)
    assert (s.imported, s.duplicates) == (7, 5)
    st = lib.stats()
    assert st["images"] == 12 and st["labels_by_source"]["seed"] == 12
    n_faces = lib._one("SELECT COUNT(DISTINCT image_id) FROM faces")
    assert n_faces == 12
    assert again.indexes.in_sync("dlib-resnet")


def test_stale_index_after_crash_is_rebuilt(importer, small_lfw, library):
    lib, indexes = library
    importer.run(small_lfw / "Ariel_Sharon", progress=False)
    saved = indexes.path("dlib-resnet").read_bytes()
    importer.run(small_lfw / "Hans_Blix", progress=False)
    indexes.path("dlib-resnet").write_bytes(saved)  # as if the last save never happened
    from storage import IndexStore

    fresh = IndexStore(lib)
    assert not fresh.in_sync("dlib-resnet")
    assert fresh.get("dlib-resnet").ids.tolist() == lib.embedding_ids("dlib-resnet").tolist()


def test_missing_path_is_a_clear_error(importer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        importer.run(tmp_path / "no-such-folder", progress=False)
