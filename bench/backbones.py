"""Benchmark the backbone pool: parameters, GMACs and CPU faces/s per member.

Each member is built at its registered (full) configuration with random
initialisation (throughput and cost do not depend on the weights). Params count
every tensor of the embedder (backbone and 512-d head); GMACs are counted by
``torch.utils.flop_counter.FlopCounterMode`` for one crop at the member's input
size (GMACs = FLOPs / 2; convolutions, matmuls and attention, not elementwise
ops). Faces/s times ``embed`` on a batch of 32 real aligned crops (MTCNN on
LFW photos, 160 px; ``embed`` resizes them, so preprocessing is included),
best of 5 timed runs after 2 warm-up runs.

    .venv/bin/python bench/backbones.py                 # all members -> bench/results/backbones.md
    .venv/bin/python bench/backbones.py --names fbnet-c halonet26t --no-write
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import backbone_info, create_backbone, list_backbones  # noqa: E402
from models.catalog import pretrained_available  # noqa: E402
from models.registry import MissingWeightsError  # noqa: E402

log = logging.getLogger("bench.backbones")
LFW = Path("/work/shared/data/lfw-dev")


def face_crops(n: int = 32, root: Path = LFW, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` aligned 160 px crops from LFW photos (repeated if fewer), or random ones if none."""
    paths = sorted(root.glob("*/*.jpg")) if root.is_dir() else []
    if paths:
        from aspl.imageio import load_image
        from models.detection import FaceDetector

        rng = np.random.default_rng(seed)
        pick = [paths[i] for i in rng.choice(len(paths), size=min(n, len(paths)), replace=False)]
        det = FaceDetector(device="cpu")
        crops = [faces[0].crop for faces in det.detect([load_image(p) for p in pick]) if faces]
        if crops:
            return [crops[i % len(crops)] for i in range(n)], f"{len(crops)} MTCNN-aligned LFW crops (160 px)"
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(n)], "random uint8 crops (160 px)"


def complexity(emb: torch.nn.Module, size: int) -> tuple[float, float]:
    """(params in M, GMACs for one ``size`` x ``size`` crop) of a torch embedder."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in emb.parameters()) / 1e6
    emb.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        emb(torch.zeros(1, 3, size, size, device=emb.device))
    return params, counter.get_total_flops() / 2e9


def faces_per_second(emb: Any, crops: Sequence[np.ndarray], runs: int = 5, warmup: int = 2,
                     budget_s: float = 30.0) -> float:
    """Best throughput of ``embed`` over up to ``runs`` timed batches, after ``warmup`` untimed ones
    (the first calls build oneDNN kernels; best-of resists other load on a shared machine)."""
    for _ in range(warmup):
        emb.embed(crops, batch_size=len(crops))
    best = float("inf")
    spent = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        emb.embed(crops, batch_size=len(crops))
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
        if spent > budget_s:
            break
    return len(crops) / best


def bench(names: Sequence[str], crops: Sequence[np.ndarray], skip_speed: Sequence[str] = (),
          runs: int = 5) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        info = backbone_info(name)
        row: dict[str, Any] = {"name": name, "family": info.family, "input_size": info.input_size,
                               "embedding_dim": info.embedding_dim, "pretrained": pretrained_available(info),
                               "meta_params_m": info.extra.get("params_m"), "meta_gmacs": info.extra.get("gmacs"),
                               "params_m": None, "gmacs": None, "faces_s": None, "note": ""}
        try:
            emb = create_backbone(name)
        except MissingWeightsError as e:
            # measure the same architecture from random init when only the weights are missing
            if name == "facenet-vggface2":
                emb = create_backbone("inception-resnet-v1")
                row["note"] = "weights absent: timed as inception-resnet-v1 (same network)"
            else:
                row["note"] = f"weights absent ({e.path})"
                rows.append(row)
                continue
        if isinstance(emb, torch.nn.Module):
            row["params_m"], row["gmacs"] = complexity(emb, info.input_size)
        else:
            row["params_m"] = info.extra.get("params_m")
            row["note"] = (row["note"] + "; " if row["note"] else "") + "not torch: params from metadata, no GMACs"
        if name in skip_speed:
            row["note"] = (row["note"] + "; " if row["note"] else "") + "speed skipped"
        else:
            row["faces_s"] = faces_per_second(emb, crops, runs=runs)
        log.info("%s: %s", name, row)
        rows.append(row)
        del emb
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(rows: Sequence[dict[str, Any]], crops_note: str, threads: int, runs: int = 5) -> str:
    lines = [
        "# Backbone pool: size, cost and CPU speed",
        "",
        f"Measured by `bench/backbones.py` on {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", torch {torch.__version__}, {threads} CPU threads. Random initialisation, full configurations.",
        f"Params: all tensors of the embedder (backbone + head). GMACs: one crop at the input size "
        f"(FlopCounterMode, FLOPs / 2). Faces/s: `embed` of a batch of 32 ({crops_note}), "
        f"preprocessing included, best of {runs} runs after 2 warm-up runs.",
        "",
        "| backbone | family | input | dim | params (M) | GMACs | faces/s (CPU) | pretrained weights here | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['family']} | {r['input_size']} | {r['embedding_dim']} | "
                     f"{_fmt(r['params_m'], '.2f')} | {_fmt(r['gmacs'], '.3f')} | {_fmt(r['faces_s'], '.1f')} | "
                     f"{'yes' if r['pretrained'] else 'no'} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", nargs="*", help="members to bench (default: all registered)")
    ap.add_argument("--skip-speed", nargs="*", default=[], help="members to size but not time")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbones.md")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(args.threads)
    crops, note = face_crops()
    rows = bench(args.names or list_backbones(), crops, args.skip_speed, args.runs)
    table = markdown(rows, note, args.threads, args.runs)
    sys.stdout.write(table)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
