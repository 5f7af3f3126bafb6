"""Command line: ``python -m aspl {import,search,stats,embed,use-backbone,backbones,simulate,annotate-sim,user,...}``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

log = logging.getLogger("aspl")

DEFAULT_DB = Path("data/library")


def db_location(text: str) -> str | Path:
    """``--db``: a library folder (SQLite), or a ``postgresql://`` URL (then ``ASPL_DATA`` names the folder
    of its index files, uploads and exports)."""
    return text if text.startswith(("postgresql://", "postgres://")) else Path(text)


def _open(db: str | Path):
    from storage import IndexStore, Library

    lib = Library(db)
    return lib, IndexStore(lib)


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import Importer

    from .importer import BackboneMismatchError

    lib, indexes = _open(args.db)
    with lib:
        try:
            if args.ray is not None:
                from .distributed import RayImporter

                imp = RayImporter(lib, indexes, address=args.ray, workers=args.ray_workers,
                                  backbone=args.backbone, batch_size=args.batch_size, annotator=args.annotator)
            else:
                imp = Importer(lib, indexes, backbone=args.backbone, batch_size=args.batch_size,
                               annotator=args.annotator)
        except BackboneMismatchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            s = imp.run(args.path, labels_from_folders=args.labels_from_folders, progress=not args.quiet)
        except RuntimeError as e:
            if type(e).__name__ != "ClusterUnavailableError":
                raise
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: photos imported so far are saved; run the same command again to resume",
                  file=sys.stderr)
            return 130
    rej = ", ".join(f"{n} {r}" for r, n in s.rejected.most_common()) or "none"
    print(f"{s.files} image files: {s.imported} imported ({s.faces} faces, {s.without_faces} without faces, "
          f"{s.seed_labels} seed labels), {s.duplicates} already in the library, rejected: {rej}"
          + (f"; {s.skipped_other_types} other files ignored" if s.skipped_other_types else "")
          + f" [{s.seconds:.1f} s]")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from models import default_backbone

    lib, indexes = _open(args.db)
    with lib:
        backbone = args.backbone or lib.get_setting("backbone") or default_backbone()
        lib.face(args.face_id)  # NotFoundError names the id
        ids, X = lib.embeddings(backbone, [args.face_id])
        if len(ids) == 0:
            print(f"face {args.face_id} has no {backbone} embedding; run: python -m aspl embed --backbone {backbone}",
                  file=sys.stderr)
            return 2
        scores, found = indexes.get(backbone).search(X, args.k + 1)
        labels = {r["face_id"]: r for r in lib.labels()}
        names = {p["id"]: p["name"] for p in lib.people()}
        rows = []
        for s, fid in zip(scores[0], found[0]):
            if fid < 0 or fid == args.face_id:
                continue
            lab = labels.get(int(fid))
            f = lib.face(int(fid))
            rows.append({"face_id": int(fid), "score": round(float(s), 4), "path": f["path"],
                         "person": names.get(lab["person_id"]) if lab else None,
                         "source": lab["source"] if lab else None})
        for r in rows[:args.k]:
            print(json.dumps(r))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    lib, indexes = _open(args.db)
    with lib:
        st = lib.stats()
        st["index_in_sync"] = {b: indexes.in_sync(b, deep=True) for b in st["embeddings_by_backbone"]}
    print(json.dumps(st, indent=2))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from models import create_backbone

    from .importer import embed_library

    lib, indexes = _open(args.db)
    with lib:
        if args.ray is not None:
            from .distributed import embed_library_ray

            n = embed_library_ray(lib, indexes, args.backbone, address=args.ray, workers=args.ray_workers,
                                  progress=not args.quiet)
        else:
            n = embed_library(lib, indexes, create_backbone(args.backbone), progress=not args.quiet)
        current = lib.get_setting("backbone")
    note = "" if current == args.backbone else \
        f"; the library still uses {current} (switch with: python -m aspl use-backbone {args.backbone})"
    print(f"embedded {n} faces with {args.backbone}{note}")
    return 0


def cmd_use_backbone(args: argparse.Namespace) -> int:
    """Make ``args.name`` the library's backbone (embedding the faces it lacks first)."""
    from models import create_backbone, list_backbones

    from .importer import embed_library

    valid = list_backbones()
    if args.name not in valid:
        print(f"error: unknown backbone {args.name!r}; valid choices: {', '.join(valid)}", file=sys.stderr)
        return 2
    lib, indexes = _open(args.db)
    with lib:
        old = lib.get_setting("backbone")
        n = embed_library(lib, indexes, create_backbone(args.name), progress=not args.quiet)
        lib.set_setting("backbone", args.name, "cli")
        lib.log_event("backbone_swapped", "cli", old=old, new=args.name, embedded=n)
    print(f"the library now uses {args.name} (was {old}; {n} faces embedded)")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from models.catalog import backbone_rows

    for row in backbone_rows():
        print(json.dumps(row))
    return 0


def cmd_annotate_sim(args: argparse.Namespace) -> int:
    from .annotate_sim import load_truth_fixes, run_annotate_sim

    settings: dict = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants KEY=JSON, got {item!r}")
        settings[key.strip()] = json.loads(value)
    if args.method == "cluster":
        settings.setdefault("round_every", 0)  # the baseline does not learn
    out = run_annotate_sim(args.path, args.db, args.method, args.max_decisions, not args.no_batches,
                           args.cluster_distance, progress=not args.quiet, settings=settings, min_rel=args.min_rel,
                           check_auto=not args.no_check_auto, truth_fixes=load_truth_fixes(args.truth_fixes))
    print(json.dumps(out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .simulate_cli import add_simulate_parser

    p = argparse.ArgumentParser(prog="python -m aspl", description="Active self-paced face labelling.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def db_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", type=db_location, default=DEFAULT_DB, metavar="DIR|URL",
                        help="library folder (SQLite file + FAISS indexes; default: %(default)s), or a "
                             "postgresql://user@host/dbname URL (index files, uploads, exports in ASPL_DATA)")

    def ray_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="decode, detect and embed on a Ray cluster: its ADDRESS (auto, HOST:PORT, "
                             "ray://HOST:10001), or a local cluster when none is given; writes stay here")
        sp.add_argument("--ray-workers", type=int, default=None,
                        help="actors on the cluster (default: one per GPU, else one per CPU)")

    sp = sub.add_parser("import", help="import photos (a file or a folder, recursively)")
    sp.add_argument("path", type=Path)
    db_arg(sp)
    sp.add_argument("--labels-from-folders", action="store_true",
                    help="label each photo's most prominent face with its top-level folder's name (source: seed)")
    sp.add_argument("--backbone", default=None, help="backbone of a new library (default: dlib-resnet); an existing library keeps its own "
                    "(switch with use-backbone)")
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--annotator", default="import", help="name recorded on seed labels")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ray_args(sp)
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("search", help="nearest faces to a face")
    sp.add_argument("face_id", type=int)
    sp.add_argument("-k", type=int, default=10)
    sp.add_argument("--backbone", default=None)
    db_arg(sp)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("stats", help="counts of images, faces, rejected files, labels, people")
    db_arg(sp)
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser("embed", help="embed the library's faces with another backbone")
    sp.add_argument("--backbone", required=True)
    db_arg(sp)
    sp.add_argument("-q", "--quiet", action="store_true")
    ray_args(sp)
    sp.set_defaults(func=cmd_embed)

    sp = sub.add_parser("use-backbone", help="switch the library's backbone (embeds missing faces first)")
    sp.add_argument("name")
    db_arg(sp)
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.set_defaults(func=cmd_use_backbone)

    sp = sub.add_parser("backbones", help="list the backbone pool as JSON lines")
    sp.set_defaults(func=cmd_backbones)

    add_simulate_parser(sub)

    sp = sub.add_parser("annotate-sim", help="the effort benchmark: import PATH unlabelled and annotate it as a "
                        "scripted annotator (answers from folder names); prints one JSON object")
    sp.add_argument("path", type=Path, help="photos in one folder per person (other faces are strangers)")
    db_arg(sp)
    sp.add_argument("--method", choices=("aspl", "cluster"), default="aspl",
                    help="aspl: the app's flow; cluster: cluster-then-name baseline (default: %(default)s)")
    sp.add_argument("--max-decisions", type=int, default=None, help="stop after this many human decisions")
    sp.add_argument("--no-batches", action="store_true", help="aspl: answer one face at a time only")
    sp.add_argument("--no-check-auto", action="store_true",
                    help="aspl: never check a person's auto-labels in Batch (trust them all)")
    sp.add_argument("--cluster-distance", type=float, default=0.5,
                    help="cluster: cosine distance threshold of the agglomerative clustering (default: %(default)s)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="a loop setting for the run, e.g. --set round_every=10 (repeatable)")
    sp.add_argument("--min-rel", type=float, default=None,
                    help="hide faces smaller than this share of their photo's largest face (quality threshold)")
    sp.add_argument("--truth-fixes", type=Path, default=None, metavar="JSON",
                    help="faces the folder rule gets wrong, checked by eye (e.g. bench/lfw_dev_truth_fixes.json)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sp.set_defaults(func=cmd_annotate_sim)
    from .methods.cli import add_methods_parsers

    add_methods_parsers(sub, db_arg)
    from .users_cli import add_user_parser

    add_user_parser(sub, db_arg)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from models import MissingWeightsError, UnknownBackboneError
    from storage import StorageError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, UnknownBackboneError, MissingWeightsError, StorageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
