"""Import and embedding on a local Ray cluster give the library a local import gives."""
import shutil

import numpy as np
import pytest
from PIL import Image

from aspl.importer import Importer
from storage import IndexStore, Library
from test_imageio import _bad_files

ray = pytest.importorskip("ray", reason="ray is in requirements.txt; install it with `make install`")


def test_a_missing_cluster_is_a_clear_error(monkeypatch):
    from aspl import distributed

    if ray.is_initialized():
        pytest.skip("a cluster is already connected in this process")
    with pytest.raises(RuntimeError, match="cannot reach a Ray cluster at '127.0.0.1:1'"):
        distributed.connect("127.0.0.1:1")


@pytest.fixture(scope="module")
def cluster():
    from aspl.distributed import connect

    resources = connect(None, num_cpus=2)  # a local cluster on this machine
    yield resources
    ray.shutdown()


def _photos(tmp_path, lfw_dev):
    root = tmp_path / "photos"
    for person in ("Ariel_Sharon", "Hans_Blix", "Laura_Bush"):
        (root / person).mkdir(parents=True)
        for p in sorted((lfw_dev / person).glob("*.jpg"))[:3]:
            shutil.copy(p, root / person / p.name)
    bad = root / "bad"
    bad.mkdir()
    reasons = _bad_files(bad, lfw_dev)
    Image.new("RGB", (240, 200), (120, 140, 160)).save(root / "bad" / "wall.jpg")  # no face
    Image.new("RGB", (8, 8)).save(root / "bad" / "tiny.png")  # smaller than the detector's minimum face
    shutil.copy(root / "Hans_Blix" / sorted(p.name for p in (root / "Hans_Blix").iterdir())[0], root / "copy.jpg")
    return root, reasons


def _content(lib: Library) -> dict:
    """Everything a library holds about its photos, keyed by file path (not by row ids)."""
    faces = {}
    ids, X = lib.embeddings("dlib-resnet")
    vec = dict(zip(ids.tolist(), X))
    for img in lib.db.execute("SELECT id, path, status, error_reason, width, height FROM images").fetchall():
        rows = lib.db.execute("SELECT id, x1, y1, x2, y2, prob FROM faces WHERE image_id = ? ORDER BY id",
                              [img[0]]).fetchall()
        faces[img[1]] = {"status": img[2], "reason": img[3], "size": (img[4], img[5]),
                         "boxes": np.array([r[1:5] for r in rows], float).reshape(-1, 4),
                         "probs": np.array([r[5] for r in rows], float),
                         "vectors": np.array([vec[r[0]] for r in rows], np.float32) if rows else np.zeros((0, 128))}
    seeds = sorted((lib.face(l["face_id"])["path"], lib.person_name(l["person_id"])) for l in lib.labels(["seed"]))
    return {"images": faces, "seeds": seeds}


def test_ray_import_equals_a_local_import_and_ray_embedding_equals_the_importer(tmp_path, lfw_dev, cluster,
                                                                                detector, dlib_embedder):
    from aspl.distributed import RayImporter, embed_library_ray

    root, reasons = _photos(tmp_path, lfw_dev)
    local_lib = Library(tmp_path / "local")
    local = Importer(local_lib, IndexStore(local_lib), detector=detector, embedder=dlib_embedder, batch_size=4)
    s_local = local.run(root, labels_from_folders=True, progress=False)
    ray_lib = Library(tmp_path / "ray")
    imp = RayImporter(ray_lib, IndexStore(ray_lib), detector=detector, embedder=dlib_embedder, batch_size=4)
    s_ray = imp.run(root, labels_from_folders=True, progress=False)

    keys = ("files", "imported", "duplicates", "without_faces", "faces", "seed_labels", "skipped_other_types")
    assert {k: getattr(s_ray, k) for k in keys} == {k: getattr(s_local, k) for k in keys}
    assert s_ray.rejected == s_local.rejected and sum(s_ray.rejected.values()) == len(reasons) + 1  # + tiny.png
    assert s_ray.imported == 10 and s_ray.duplicates == 1 and s_ray.without_faces == 1  # wall.jpg
    a, b = _content(local_lib), _content(ray_lib)
    assert a["seeds"] == b["seeds"] and len(a["seeds"]) == 9
    assert a["images"].keys() == b["images"].keys()
    for path, fa in a["images"].items():
        fb = b["images"][path]
        assert (fa["status"], fa["reason"], fa["size"]) == (fb["status"], fb["reason"], fb["size"]), path
        assert fa["boxes"].shape == fb["boxes"].shape, path
        np.testing.assert_allclose(fb["boxes"], fa["boxes"], atol=0.01)
        np.testing.assert_allclose(fb["probs"], fa["probs"], atol=1e-4)
        np.testing.assert_allclose(fb["vectors"], fa["vectors"], atol=1e-4)
    assert IndexStore(ray_lib).in_sync("dlib-resnet", deep=True)

    # resumable like the local import: a second run stores nothing new
    again, again_local = (i.run(root, labels_from_folders=True, progress=False) for i in (imp, local))
    assert again.imported == 0 and again.duplicates == again_local.duplicates == 17  # photos and refused files
    assert again.rejected == again_local.rejected  # the dangling link: no content to recognise

    # aspl embed --ray: faces without an embedding are embedded by the cluster, as embed_library does here
    from aspl.importer import embed_library

    ids, before = ray_lib.embeddings("dlib-resnet")
    out = {}
    for how in ("ray", "local"):
        with ray_lib.transaction():
            ray_lib.db.execute("DELETE FROM embeddings WHERE face_id IN (?, ?, ?)", ids[:3].tolist())
        if how == "ray":
            n = embed_library_ray(ray_lib, IndexStore(ray_lib), "dlib-resnet", batch_size=2, progress=False)
        else:
            n = embed_library(ray_lib, IndexStore(ray_lib), dlib_embedder, progress=False)
        assert n == 3 and IndexStore(ray_lib).in_sync("dlib-resnet", deep=True)
        got_ids, out[how] = ray_lib.embeddings("dlib-resnet")
        assert np.array_equal(got_ids, ids)
    np.testing.assert_allclose(out["ray"], out["local"], atol=1e-4)
    # from the stored JPEG crops: close to, not equal to, the import's embeddings of the decoded photo
    assert (np.sum(out["ray"][:3] * before[:3], axis=1) > 0.95).all()
    local_lib.close()
    ray_lib.close()


def test_cli_import_with_an_unreachable_cluster_says_so_and_stores_nothing(tmp_path, lfw_dev, capsys):
    from aspl.cli import main

    if ray.is_initialized():
        ray.shutdown()
    root, _ = _photos(tmp_path, lfw_dev)
    rc = main(["import", str(root), "--db", str(tmp_path / "lib"), "--ray", "127.0.0.1:1", "-q"])
    assert rc == 2 and "cannot reach a Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err
    with Library(tmp_path / "lib") as lib:
        assert lib.stats()["images"] == 0
