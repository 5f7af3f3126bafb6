"""Sub-commands of the methods: ``pretrain``, ``explain``, ``import-video``, ``label-track``, ``note``,
``text-search``. Registered by :func:`add_methods_parsers` from :func:`aspl.cli.build_parser`."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_methods_parsers", "PRETRAIN_METHODS"]

log = logging.getLogger(__name__)

PRETRAIN_METHODS = ("guidance", "rotnet")


def _open(db: Path) -> tuple[Any, Any]:
    from storage import IndexStore, Library

    lib = Library(db)
    return lib, IndexStore(lib)


def _build_target(args: argparse.Namespace) -> Any:
    from models import create_backbone
    from models.torch_base import TorchEmbedder

    kw: dict[str, Any] = {"init": args.init}
    if args.compress_rank is not None:
        kw["compress_rank"] = args.compress_rank
    if args.weights:
        kw["weights"] = args.weights
    emb = create_backbone(args.backbone, **kw)
    if not isinstance(emb, TorchEmbedder):
        raise ValueError(f"--backbone {args.backbone!r} is not a trainable torch network")
    return emb


def _efficiency(emb: Any, lib: Any) -> dict[str, float] | None:
    from .data import library_crops
    from .evaluate import efficiency_row, label_efficiency

    _, crops, y = library_crops(lib, labelled_only=True)
    counts = np.bincount(np.unique(y, return_inverse=True)[1]) if len(y) else np.zeros(0)
    if len(counts) < 2 or counts.min() < 3:
        log.info("label efficiency needs >= 2 people with >= 3 labelled faces each: skipped")
        return None
    return efficiency_row(label_efficiency(emb, crops, y))


def cmd_pretrain(args: argparse.Namespace) -> int:
    import torch

    from .data import library_crops

    lib, _ = _open(args.db)
    with lib:
        ids, crops, _ = library_crops(lib)
        if len(ids) < 2:
            raise ValueError(f"the library at {args.db} has {len(ids)} usable faces; import photos first")
        target = _build_target(args)
        before = _efficiency(target, lib) if args.evaluate else None
        if args.method == "rotnet":
            from .rotnet import RotNetSettings, rotnet_pretrain

            res = rotnet_pretrain(target, crops, RotNetSettings(epochs=args.epochs, lr=args.lr,
                                                                batch_size=args.batch_size or 16))
            losses, extra = res.losses, {"rotation_accuracy": [round(a, 4) for a in res.accuracy]}
        else:
            from models import create_backbone

            from .guidance import GuidanceSettings, guide_target

            if not args.guide:
                raise ValueError("--method guidance needs --guide NAME (e.g. dlib-resnet)")
            guide = create_backbone(args.guide)
            got, G = lib.embeddings(args.guide, ids)
            if len(got) != len(ids):
                log.info("computing %s embeddings for %d faces", args.guide, len(ids))
                G = guide.embed(crops)
            else:
                order = {int(f): i for i, f in enumerate(got)}
                G = G[[order[int(f)] for f in ids]]
            gres = guide_target(target, crops, guide, G, GuidanceSettings(epochs=args.epochs, lr=args.lr,
                                                                          batch_size=args.batch_size or 32))
            losses, extra = gres.losses, {"layer_pairs": gres.pairs}
        after = _efficiency(target, lib) if args.evaluate else None
        out = args.out or Path(lib.root or args.db) / f"{args.backbone}-{args.method}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(target.net.state_dict(), out)
        lib.log_event("pretrained", None, method=args.method, backbone=args.backbone, out=str(out),
                      faces=len(ids))
    print(json.dumps({"method": args.method, "backbone": args.backbone, "faces": len(ids),
                      "losses": [round(v, 4) for v in losses], **extra, "weights": str(out),
                      "label_efficiency_before": before, "label_efficiency_after": after}))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain_face, save_heatmap_png

    lib, _ = _open(args.db)
    with lib:
        pid = lib.person_id(args.person) if args.person else None
        ex = explain_face(lib, args.face_id, backbone=args.backbone, weights=args.weights, person_id=pid,
                          mode=args.mode)
    out = save_heatmap_png(ex, args.out or Path(f"explain-{args.face_id}.png"))
    print(json.dumps({"face_id": ex.face_id, "person": ex.person_name, "similarity": round(ex.similarity, 4),
                      "score": round(ex.score, 4), "backbone": ex.backbone, "heatmap": str(out)}))
    return 0


def cmd_import_video(args: argparse.Namespace) -> int:
    from models import create_backbone, default_backbone

    from .video import import_video

    lib, indexes = _open(args.db)
    with lib:
        emb = create_backbone(args.backbone or lib.get_setting("backbone") or default_backbone())
        s = import_video(lib, indexes, args.video, embedder=emb, every=args.every, max_frames=args.max_frames,
                         min_track=args.min_track)
    print(json.dumps({"frames": s.frames, "frames_with_faces": s.frames_with_faces, "faces": s.faces,
                      "tracks": s.tracks, "track_sizes": s.track_sizes}))
    return 0


def cmd_label_track(args: argparse.Namespace) -> int:
    lib, _ = _open(args.db)
    with lib:
        pid = lib.person_id(args.person, create=True, actor=args.annotator)
        n = lib.label_track(args.track_id, pid, annotator=args.annotator)
    print(f"track {args.track_id}: {len(n)} faces labelled {args.person}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    lib, _ = _open(args.db)
    with lib:
        pid = lib.person_id(args.person) if args.person else None
        if args.face is not None:
            lib.face(args.face)
        nid = lib.add_note(args.text, face_id=args.face, person_id=pid, annotator=args.annotator)
    print(f"note {nid} added")
    return 0


def cmd_text_search(args: argparse.Namespace) -> int:
    from models import default_backbone

    from .textsearch import TextSearch

    lib, _ = _open(args.db)
    with lib:
        backbone = args.backbone or lib.get_setting("backbone") or default_backbone()
        ts = TextSearch.for_library(lib, backbone, retrain=args.retrain)
        names = {int(p["id"]): p["name"] for p in lib.people()}
        person = {int(r["face_id"]): int(r["person_id"]) for r in lib.labels()}
        for fid, score in ts.search(lib, args.query, args.k):
            f = lib.face(fid)
            print(json.dumps({"face_id": fid, "score": round(score, 4), "path": f.get("path"),
                              "person": names.get(person.get(fid, -1))}))
    return 0


def add_methods_parsers(sub: Any, db_arg: Any) -> None:
    """Add the methods' sub-commands; ``db_arg(parser)`` adds the shared ``--db`` option."""
    from models._init_schemes import INIT_SCHEMES

    sp = sub.add_parser("pretrain", help="pretrain a torch backbone on the library's faces (guidance, rotnet)")
    sp.add_argument("--method", choices=PRETRAIN_METHODS, required=True)
    sp.add_argument("--backbone", required=True, help="target torch backbone, e.g. simplenet-v1-050")
    sp.add_argument("--guide", default=None, help="frozen guide backbone for --method guidance (e.g. dlib-resnet)")
    db_arg(sp)
    sp.add_argument("--epochs", type=int, default=3)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--batch-size", type=int, default=None, help="default: 32 (guidance), 16 x 4 rotations (rotnet)")
    sp.add_argument("--init", choices=INIT_SCHEMES, default="kaiming", help="initialisation scheme of the target")
    sp.add_argument("--compress-rank", type=int, default=None, metavar="R",
                    help="build the target with one-way factorised convolutions of rank R")
    sp.add_argument("--weights", default=None, help="start from these target weights")
    sp.add_argument("--out", type=Path, default=None, help="weights file (default: DB/BACKBONE-METHOD.pt)")
    sp.add_argument("--evaluate", action="store_true",
                    help="report simulated label efficiency on the library's labelled faces before and after")
    sp.set_defaults(func=cmd_pretrain)

    sp = sub.add_parser("explain", help="LinearScope heatmap of what drove a face's suggested identity")
    sp.add_argument("face_id", type=int)
    db_arg(sp)
    sp.add_argument("--backbone", default="simplenet-v1-050", help="torch backbone to explain with")
    sp.add_argument("--weights", default=None, help="its weights (e.g. from pretrain)")
    sp.add_argument("--person", default=None, help="explain this person instead of the suggestion")
    sp.add_argument("--mode", choices=("contribution", "gradient"), default="contribution")
    sp.add_argument("--out", type=Path, default=None, help="PNG path (default: explain-FACE_ID.png)")
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("import-video", help="import a video's faces as tracks (each track is labelled once)")
    sp.add_argument("video", type=Path, help="video file (needs PyAV), animated GIF/APNG/WebP, or frame folder")
    db_arg(sp)
    sp.add_argument("--backbone", default=None)
    sp.add_argument("--every", type=int, default=1, help="use every N-th frame")
    sp.add_argument("--max-frames", type=int, default=None)
    sp.add_argument("--min-track", type=int, default=1, help="shorter tracks are stored as plain faces")
    sp.set_defaults(func=cmd_import_video)

    sp = sub.add_parser("label-track", help="label every face of a video track with one person")
    sp.add_argument("track_id", type=int)
    sp.add_argument("person")
    db_arg(sp)
    sp.add_argument("--annotator", default="cli")
    sp.set_defaults(func=cmd_label_track)

    sp = sub.add_parser("note", help="add an annotator note to a face or a person (used by text-search)")
    sp.add_argument("text")
    sp.add_argument("--face", type=int, default=None)
    sp.add_argument("--person", default=None)
    db_arg(sp)
    sp.add_argument("--annotator", default="cli")
    sp.set_defaults(func=cmd_note)

    sp = sub.add_parser("text-search", help="search faces by words (names, notes) in a joint embedding")
    sp.add_argument("query")
    db_arg(sp)
    sp.add_argument("-k", type=int, default=10)
    sp.add_argument("--backbone", default=None)
    sp.add_argument("--retrain", action="store_true")
    sp.set_defaults(func=cmd_text_search)
