"""Shared set-up of the methods benchmarks: a 20 people x 15 photos lfw-dev subset of aligned crops."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Run as `python bench/methods_*.py` from anywhere: the repository root is importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "lfw-dev"
RESULTS = REPO / "bench" / "results"
WEIGHTS = REPO / ".cache" / "bench-weights"


def setup() -> Any:
    torch.set_num_threads(2)
    logging.basicConfig(level=logging.WARNING)
    from aspl.methods.data import folder_crops

    return folder_crops(DATA, people=20, max_per_person=15, min_per_person=10)


def efficiency(emb: Any, fc: Any, center: bool | None = None) -> dict[str, float]:
    """ASPL simulation row; ``center`` None: centred embeddings for trainable (torch) backbones."""
    from aspl.methods.evaluate import efficiency_row, label_efficiency

    return efficiency_row(label_efficiency(emb, fc.crops, fc.y, rounds=6, query_size=12, center=center))


def fmt_row(name: str, r: dict[str, float], secs: float | None = None) -> str:
    t = f" {secs:.0f} |" if secs is not None else " - |"
    return (f"| {name} | {r.get('mean_cosine', float('nan')):.3f} | {r['acc_start']:.3f} | {r['acc_mean']:.3f} | "
            f"{r['acc_end']:.3f} | {r['fraction_end']:.2f} |{t}")


HEADER = ("| model | mean pairwise cosine (raw) | acc @1 label/person | mean acc over rounds | final acc | "
          "fraction annotated | train s |\n|---|---|---|---|---|---|---|")
CENTRING_NOTE = ("Torch (trainable) backbones are scored on centred embeddings (pool mean subtracted, "
                 "re-normalised: `SimulationConfig(center=True)`); dlib-resnet on its raw embeddings. "
                 "Mean pairwise cosine is of the raw unit embeddings (1 = collapsed).")


class Timer:
    def __enter__(self) -> "Timer":
        self.t = time.perf_counter()
        return self

    def __exit__(self, *a: object) -> None:
        self.s = time.perf_counter() - self.t


def write(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    p = RESULTS / f"{name}.md"
    p.write_text(text)
    print(text)
    return p

