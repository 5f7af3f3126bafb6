"""Export: CSV + Parquet of face -> person with box, source, confidence; a folder per person of crops."""
import zipfile

import pandas as pd

from apphelpers import synthetic_service


def test_export_files_and_crops(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=2)
    svc.run_round("admin")
    res = svc.export()
    assert res.folder.parent == tmp_path / "lib" / "exports"
    df = pd.read_csv(res.csv)
    pq = pd.read_parquet(res.parquet)
    assert list(df.columns) == list(pq.columns) and len(df) == len(pq) == res.rows
    for col in ("face_id", "image_path", "x1", "y1", "x2", "y2", "person", "source", "confidence", "annotator"):
        assert col in df.columns
    assert set(df["source"]) == {"human", "auto"}
    assert (df.groupby("face_id").size() == 1).all()
    assert all(truth[r.face_id] == r.person for r in df.itertuples())
    assert res.rows == len(svc.library.labelled_face_ids(("human", "seed", "auto")))
    folders = {p.name for p in res.crops.iterdir()}
    assert folders == {truth[f] for f in df["face_id"]}
    n_files = sum(1 for _ in res.crops.rglob("*.jpg"))
    assert n_files == res.rows
    with zipfile.ZipFile(res.crops_zip) as zf:
        assert len(zf.namelist()) == n_files
        assert all(n.startswith("crops/") for n in zf.namelist())


def test_human_label_wins_over_auto_and_names_are_made_safe(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=1)
    svc.run_round("admin")
    a = svc.library.label_rows(("auto",))[0]
    svc.move_face(a["face_id"], "../../etc/Evil Name", "alice")
    res = svc.export(tmp_path / "out")
    df = pd.read_csv(res.csv)
    row = df[df.face_id == a["face_id"]].iloc[0]
    assert row.source == "human" and row.person == "../../etc/Evil Name"
    for p in res.crops.rglob("*"):
        assert res.crops in p.parents
    assert not (tmp_path / "etc").exists()


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(tmp_path):
    svc, truth = synthetic_service(tmp_path / "lib", human_per_person=1)
    lib = svc.library
    evil = '=HYPERLINK("http://evil.example","x")'
    first, second = sorted(lib.labelled_face_ids())[:2]  # one face of each of two people
    svc.rename_person(lib.person_id(truth[first]), evil, "mallory")
    svc.rename_person(lib.person_id(truth[second]), "-1+2", "mallory")
    res = svc.export(crops=False)
    cells = set(pd.read_csv(res.csv)["person"])
    assert "'" + evil in cells and "'-1+2" in cells and evil not in cells
    assert evil in set(pd.read_parquet(res.parquet)["person"])  # Parquet keeps the name as it is
