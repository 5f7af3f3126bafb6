"""Video face tracks: a synthetic clip made from lfw-dev photos (person A shifted over frames, then B)."""
import numpy as np
import pytest
from PIL import Image

from aspl.methods.video import iou, link_tracks, read_frames, track_embedding
from models import backbone_info, create_backbone


def _clip(lfw_dev, path, per=4):
    frames = []
    for person in ("Ariel_Sharon", "Hans_Blix"):
        photo = Image.open(sorted((lfw_dev / person).glob("*.jpg"))[0]).convert("RGB")
        for k in range(per):
            canvas = Image.new("RGB", (200, 200), (40, 40, 40))
            canvas.paste(photo, (10 + 6 * k, 20 + 3 * k))
            frames.append(canvas)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, format="PNG")  # APNG
    return path


def test_iou_and_linking_rules():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0 and iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    frames = [(0, [(0, 0, 10, 10)], np.stack([a])), (1, [(1, 0, 11, 10)], np.stack([a])),
              (2, [(1, 0, 11, 10)], np.stack([b]))]  # same place, different face: a new track
    tracks = link_tracks(frames)
    assert [len(t.items) for t in tracks] == [2, 1]


def test_import_video_tracks_faces_and_a_track_is_labelled_once(lfw_dev, tmp_path, library, detector,
                                                                dlib_embedder, capsys):
    from aspl.methods.video import import_video

    lib, indexes = library
    clip = _clip(lfw_dev, tmp_path / "clip.png")
    assert len(list(read_frames(clip))) == 8
    s = import_video(lib, indexes, clip, embedder=dlib_embedder, detector=detector)
    assert s.frames == 8 and s.faces >= 8  # Hans Blix's photo has a second face in the background
    spans = {(t["first_frame"], t["last_frame"], t["faces"]) for t in lib.tracks()}
    assert (0, 3, 4) in spans and (4, 7, 4) in spans  # the cut between the two people ends the first track
    pid = lib.person_id("Ariel Sharon", create=True)
    labelled = lib.label_track(s.tracks[0], pid, annotator="t")
    assert len(labelled) == 4
    assert {r["face_id"] for r in lib.labels() if r["person_id"] == pid} == set(lib.track_face_ids(s.tracks[0]))
    v = track_embedding(lib, s.tracks[0], backbone="dlib-resnet")
    w = track_embedding(lib, s.tracks[1], backbone="dlib-resnet")
    assert v.shape == (128,) and abs(np.linalg.norm(v) - 1) < 1e-5 and float(v @ w) < 0.9
    lrcn = create_backbone("lrcn-small", device="cpu", **backbone_info("lrcn-small").extra["test_kwargs"])
    assert track_embedding(lib, s.tracks[0], embedder=lrcn).shape == (lrcn.info.embedding_dim,)
    assert indexes.get("dlib-resnet").ntotal == s.faces
    with pytest.raises(ValueError, match="PyAV"):
        list(read_frames(tmp_path / "x.mp4")) if (tmp_path / "x.mp4").write_bytes(b"0") else None


def test_import_video_cli(lfw_dev, tmp_path, capsys):
    import json

    from aspl.cli import main

    clip = _clip(lfw_dev, tmp_path / "clip.png", per=2)
    db = tmp_path / "lib"
    assert main(["import-video", str(clip), "--db", str(db)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 4 and out["track_sizes"][:2] == [2, 2]
    assert main(["label-track", str(out["tracks"][0]), "Ariel Sharon", "--db", str(db)]) == 0
    assert "2 faces labelled" in capsys.readouterr().out
