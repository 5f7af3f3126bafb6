"""``python -m aspl simulate``: the simulation protocol from the command line.

Register with :func:`add_simulate_parser` on an argparse sub-parser set; the
parsed namespace goes to :func:`run_simulate`, which returns an exit status.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_DATA", "DEFAULT_CACHE", "add_simulate_parser", "run_simulate"]

log = logging.getLogger(__name__)

#: ``../shared/data/lfw-dev`` next to the repository.
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw-dev"
DEFAULT_CACHE = Path("~/.cache/aspl/embeddings")
_METHODS = ("aspl", "ceal", "random", "all", "spl")
_VARIANTS = ("aspl-margin", "aspl-guarded")


def _methods(text: str) -> list[str]:
    items = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in items if m not in _METHODS + _VARIANTS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(bad) or '(none)'}; "
                                         f"valid choices: {', '.join(_METHODS + _VARIANTS)}")
    return list(dict.fromkeys(items))


def _fraction(lo_open: bool) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (0 < v < 1 if lo_open else 0 < v <= 1):
            raise argparse.ArgumentTypeError(f"{v} is outside {'(0, 1)' if lo_open else '(0, 1]'}")
        return v
    return parse


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "simulate", help="simulate ASPL and baselines on a labelled folder (names act as the annotator)",
        description="Run the paper's protocol on a folder with one sub-folder per person: a held-out "
                    "test split per person, a few seed labels, then rounds of queries answered from the "
                    "folder names. Writes results.csv, accuracy.png and summary.json.")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, metavar="FOLDER",
                   help="folder with one sub-folder of photos per person (default: %(default)s)")
    p.add_argument("--backbone", default=None, metavar="NAME",
                   help="embedding backbone (default: the registry's default, dlib-resnet)")
    p.add_argument("--methods", type=_methods, default=list(_METHODS), metavar="LIST",
                   help=f"comma-separated methods out of {','.join(_METHODS + _VARIANTS)} (default: "
                        f"{','.join(_METHODS)}; aspl-margin: ASPL asking the smallest score margins first)")
    p.add_argument("--seed-labels", type=int, default=1, metavar="N", help="labels per person at start (default: 1)")
    p.add_argument("--query-size", type=int, default=None, metavar="K",
                   help="faces asked per round (default: 2.5%% of the pool, the released CACD ratio)")
    p.add_argument("--rounds", type=int, default=15, metavar="R", help="query rounds (default: 15)")
    p.add_argument("--test-fraction", type=_fraction(True), default=0.2, metavar="F",
                   help="share of each person's photos held out for testing (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    p.add_argument("--out", type=Path, default=Path("out/simulate"), metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help="embedding (and crop) cache (default: %(default)s)")
    p.add_argument("--people", type=int, default=None, metavar="N", help="use only the first N people")
    p.add_argument("--max-per-person", type=int, default=None, metavar="N", help="use at most N photos per person")
    g = p.add_argument_group("open set")
    g.add_argument("--open-set", type=_fraction(False), default=1.0, metavar="F",
                   help="seed only this fraction of the people; the rest must be discovered (default: 1)")
    g = p.add_argument_group("engine settings")
    g.add_argument("--min-labels", type=int, default=1, metavar="N",
                   help="labels a person needs for a classifier (released code: 4; default: 1 so one seed "
                        "label per person is enough)")
    g.add_argument("--C", dest="C", type=float, default=None, help="SVM cost (default: engine's, 10)")
    g.add_argument("--positive-weight", type=float, default=None, help="SVM positive class weight (default: 5)")
    g.add_argument("--lambda-start", type=float, default=None, help="initial pace (default: 0.12)")
    g.add_argument("--lambda-step", type=float, default=None, help="pace growth per round (default: 0.08)")
    g.add_argument("--lambda-max", type=float, default=None, help="pace cap (default: 0.9)")
    g.add_argument("--ceal-criterion", choices=("entropy", "least_confidence", "margin"), default=None,
                   help="CEAL query measure (default: entropy)")
    g.add_argument("--finetune-every", type=int, default=0, metavar="F",
                   help="fine-tune a trainable backbone every F rounds and re-embed (default: 0, never)")
    g.add_argument("--label-noise", type=float, default=0.0, metavar="P",
                   help="probability that the simulated annotator answers wrong (default: 0)")
    g.add_argument("--center", action="store_true",
                   help="subtract the pool's mean embedding and re-normalise before classification "
                        "(for from-scratch backbones; default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_simulate)
    return p


def _folder_crops(folder: Path, cache_dir: Path, max_per_person: int | None, people: int | None,
                  progress: bool) -> tuple[list[np.ndarray], list[str]]:
    """Aligned crops of the most prominent face of each photo (cached as npz)."""
    from aspl.datasets import labelled_photos
    from aspl.imageio import BadImageError, load_image
    from models.detection import FaceDetector, most_prominent
    from tqdm.auto import tqdm

    items = labelled_photos(folder, max_per_person, people)
    key = hashlib.sha256("\n".join(f"{n}/{p.name}:{p.stat().st_size}" for n, p in items).encode()).hexdigest()[:16]
    cache = cache_dir / f"{folder.name}-crops-{key}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return list(z["crops"]), list(z["labels"])
    det = FaceDetector()
    crops, labels = [], []
    for i in tqdm(range(0, len(items), 32), desc="detecting faces", unit="batch", disable=not progress):
        chunk, imgs = [], []
        for name, path in items[i:i + 32]:
            try:
                imgs.append(load_image(path))
                chunk.append(name)
            except BadImageError as e:
                log.warning("skipping %s", e)
        for name, img, faces in zip(chunk, imgs, det.detect(imgs)):
            j = most_prominent(faces, img.size)
            if j is not None:
                crops.append(faces[j].crop)
                labels.append(name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, crops=np.stack(crops), labels=np.array(labels))
    tmp.replace(cache)
    return crops, labels


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulation described by ``args``; print a summary; return 0 (or 2 on bad input)."""
    from models import MissingWeightsError, UnknownBackboneError, backbone_info, create_backbone, default_backbone

    from aspl.datasets import folder_embeddings

    from aspl.engine.simulate import SimulationConfig, simulate, summarize, write_results

    progress = not args.no_progress
    try:
        data = Path(args.data).expanduser()
        if not data.is_dir():
            raise FileNotFoundError(f"data folder not found: {data} (pass --data FOLDER with one sub-folder "
                                    f"per person)")
        name = args.backbone or default_backbone()
        info = backbone_info(name)
        cache = Path(args.cache_dir).expanduser()
        settings: dict[str, Any] = {"min_labels": args.min_labels, "finetune_every": args.finetune_every}
        for key, opt in (("C", "C"), ("positive_weight", "positive_weight"), ("lambda_start", "lambda_start"),
                         ("lambda_step", "lambda_step"), ("lambda_max", "lambda_max"),
                         ("criterion", "ceal_criterion")):
            if getattr(args, opt) is not None:
                settings[key] = getattr(args, opt)
        finetuner = None
        if args.finetune_every and info.trainable:
            import torch

            from aspl.finetune import CropFinetuner

            crops, labels = _folder_crops(data, cache, args.max_per_person, args.people, progress)
            torch.manual_seed(args.seed)  # random-init members: the same start for the same seed
            embedder = create_backbone(name)
            X = embedder.embed(crops)
            finetuner = lambda: CropFinetuner(embedder, crops)  # noqa: E731
        else:
            if args.finetune_every:
                log.warning("backbone %s is frozen: --finetune-every ignored", name)
            emb = folder_embeddings(data, backbone=name, cache_dir=cache, max_per_person=args.max_per_person,
                                    people=args.people, progress=progress)
            X, labels = emb.X, emb.labels
        cfg = SimulationConfig(methods=args.methods, seed_labels=args.seed_labels, query_size=args.query_size,
                               rounds=args.rounds, test_fraction=args.test_fraction, seed=args.seed,
                               open_set=args.open_set, label_noise=args.label_noise, center=args.center,
                               settings=settings)
        rows = simulate(X, np.asarray(labels), cfg, finetuner=finetuner, progress=progress)
    except (FileNotFoundError, ValueError, UnknownBackboneError, MissingWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    title = f"{data.name}, {name}, {args.seed_labels} seed label(s)/person, seed {args.seed}"
    paths = write_results(rows, args.out, title)
    summary = summarize(rows)
    print(f"{'method':8} {'to AL_ALL-1pt':>14} {'auto-label prec':>16} {'final acc':>10} {'annotated':>10}"
          + ("  discovered" if args.open_set < 1 else ""))
    for m, s in summary.items():
        reach = "-" if s["fraction_to_ceiling"] is None else f"{s['fraction_to_ceiling']:.1%}"
        prec = "-" if s["auto_label_precision"] is None else f"{s['auto_label_precision']:.2%}"
        line = f"{m:8} {reach:>14} {prec:>16} {s['final_accuracy']:>10.1%} {s['final_fraction']:>10.1%}"
        if args.open_set < 1:
            line += f"  {s['people_discovered']}/{s['people_total'] - s['people_seeded']}"
        print(line)
    print(f"wrote {paths['csv']}, {paths['png']}, {paths['summary']}")
    return 0
