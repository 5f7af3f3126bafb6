"""``simulate`` sub-command wiring: options, defaults, errors, outputs."""
import argparse

import numpy as np
import pytest

from aspl import simulate_cli as cli
from aspl.engine.engines import METHOD_NAMES
from aspl.engine.simulate import COLUMNS


def _parser():
    ap = argparse.ArgumentParser(prog="aspl")
    sub = ap.add_subparsers(dest="command", required=True)
    cli.add_simulate_parser(sub)
    return ap


def test_data_alone_gives_sensible_defaults(tmp_path):
    a = _parser().parse_args(["simulate", "--data", str(tmp_path)])
    assert a.methods == ["aspl", "ceal", "random", "all", "spl"]
    assert (a.seed_labels, a.query_size, a.rounds, a.test_fraction, a.seed, a.open_set) == (1, None, 15, 0.2, 0, 1.0)
    assert a.min_labels == 1 and a.finetune_every == 0 and a.func is cli.run_simulate
    assert str(a.cache_dir) == "~/.cache/aspl/embeddings"
    assert cli.DEFAULT_DATA.parts[-3:] == ("shared", "data", "lfw-dev")


def test_options_parse_and_bad_values_are_refused(capsys):
    a = _parser().parse_args(["simulate", "--methods", "aspl,random", "--seed-labels", "2", "--query-size", "7",
                              "--rounds", "3", "--test-fraction", "0.3", "--seed", "4", "--out", "x",
                              "--open-set", "0.5"])
    assert a.methods == ["aspl", "random"] and (a.query_size, a.rounds, a.open_set) == (7, 3, 0.5)
    with pytest.raises(SystemExit):
        _parser().parse_args(["simulate", "--methods", "aspl,magic"])
    assert "valid choices: aspl, ceal, random, all, spl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["simulate", "--test-fraction", "1.2"])


def test_cli_method_names_match_the_engine():
    assert set(cli._METHODS + cli._VARIANTS) == set(METHOD_NAMES)


def test_missing_folder_is_an_error_not_a_traceback(tmp_path, capsys):
    a = _parser().parse_args(["simulate", "--data", str(tmp_path / "nope"), "--no-progress"])
    assert cli.run_simulate(a) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_run_writes_results(tmp_path, monkeypatch, capsys):
    import aspl.datasets
    from aspl.datasets import FolderEmbeddings

    rng = np.random.default_rng(0)
    X = np.concatenate([np.eye(6)[p] + 0.1 * rng.standard_normal((8, 6)) for p in range(4)]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    names = [f"person_{p}" for p in range(4) for _ in range(8)]
    seen = {}

    def fake(folder, backbone, cache_dir, max_per_person, people, progress):
        seen.update(backbone=backbone, cache_dir=cache_dir)
        return FolderEmbeddings(X, names, [f"{n}.jpg" for n in names], backbone)

    monkeypatch.setattr(aspl.datasets, "folder_embeddings", fake)
    out = tmp_path / "out"
    a = _parser().parse_args(["simulate", "--data", str(tmp_path), "--rounds", "2", "--query-size", "3",
                              "--out", str(out), "--no-progress", "--cache-dir", str(tmp_path / "c")])
    assert cli.run_simulate(a) == 0
    assert seen["backbone"] == "dlib-resnet" and seen["cache_dir"] == tmp_path / "c"
    assert (out / "results.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert (out / "accuracy.png").is_file() and (out / "summary.json").is_file()
    printed = capsys.readouterr().out
    assert f"wrote {out / 'results.csv'}, {out / 'accuracy.png'}, {out / 'summary.json'}" in printed
    with open(out / "results.csv") as f:
        lines = f.read().splitlines()[1:]
    assert len(lines) > 0 and {line.split(",")[COLUMNS.index("method")] for line in lines} >= {"aspl", "random"}
