"""Simulation of the paper's protocol: known labels act as the annotator's answers.

Per person, a held-out test fraction is set aside; of the rest (the pool),
``seed_labels`` faces per seeded person start labelled. Every round each
method trains, is scored on the test split, and the annotator (the oracle)
answers the method's queries and reviews its flagged labels. In open-set mode
only ``open_set`` of the people are seeded; the others must be discovered
through queries.

>>> rows = simulate(X, y, SimulationConfig(rounds=10, query_size=20))
>>> write_results(rows, "out/sim")      # results.csv, accuracy.png, summary.json
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .engines import METHOD_NAMES, SOURCE_PSEUDO
from .loop import ActiveLoop

#: Fine-tunes the backbone on ``(rows, person ids, weights)`` (rows of the full ``X``) and returns new
#: embeddings of every row of ``X``. The simulation asks its factory for a fresh one per method.
Finetuner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

__all__ = [
    "AUTO_QUERY_FRACTION", "COLUMNS", "SimulationConfig", "Split", "split_pool", "simulate", "summarize",
    "write_results", "plot_results",
]

log = logging.getLogger(__name__)

#: Columns of ``results.csv`` (the first seven are the protocol's; the rest are diagnostics).
COLUMNS = ("method", "round", "human_labels", "fraction_annotated", "pseudo_labels", "pseudo_label_precision",
           "test_accuracy", "people_known", "people_total", "people_modelled", "reviews", "review_fixes",
           "wrong_human_labels", "flagged", "pool_size")

#: Default query size as a fraction of the pool: the released CACD set-up asks
#: 1,000 of 40,000 unlabelled faces per query round.
AUTO_QUERY_FRACTION = 0.025


@dataclass
class SimulationConfig:
    """Protocol settings; ``settings`` are engine overrides shared by every method.

    ``query_size`` None: 2.5% of the pool per round (the released CACD ratio,
    which keeps the released pace growth per query round meaningful).
    ``open_set``: fraction of people seeded. ``label_noise``: probability that
    the annotator gives a wrong name. ``center``: subtract the pool's mean
    embedding and re-normalise before classification (for from-scratch
    backbones whose unit embeddings share a large common component; off by default).
    """

    methods: Sequence[str] = ("aspl", "ceal", "random", "all", "spl")
    seed_labels: int = 1
    query_size: int | None = None
    rounds: int = 15
    test_fraction: float = 0.2
    seed: int = 0
    open_set: float = 1.0
    label_noise: float = 0.0
    center: bool = False
    settings: dict[str, Any] = field(default_factory=lambda: {"min_labels": 1})

    def validate(self) -> None:
        bad = [m for m in self.methods if m not in METHOD_NAMES]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {', '.join(bad) or '(none given)'}; "
                             f"valid choices: {', '.join(METHOD_NAMES)}")
        if self.seed_labels < 0 or (self.query_size is not None and self.query_size < 1) or self.rounds < 0:
            raise ValueError(f"need seed_labels >= 0, query_size >= 1, rounds >= 0; got "
                             f"{self.seed_labels!r}, {self.query_size!r}, {self.rounds!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not 0 < self.open_set <= 1:
            raise ValueError(f"open_set (fraction of people seeded) must be in (0, 1], got {self.open_set!r}")
        if not 0 <= self.label_noise < 1:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise!r}")


@dataclass(frozen=True)
class Split:
    """Row indices: ``pool`` (to label), ``test`` (held out), ``seeded`` (pool rows labelled at start)."""

    pool: np.ndarray
    test: np.ndarray
    seeded: np.ndarray
    seeded_people: np.ndarray


def split_pool(y: np.ndarray, test_fraction: float, seed_labels: int, open_set: float = 1.0,
               seed: int = 0) -> Split:
    """Per person: ``round(test_fraction * n)`` (at least 1) test faces, the rest pooled;
    ``seed_labels`` pool faces of each seeded person (a random ``open_set`` fraction of people) labelled."""
    y = np.asarray(y).reshape(-1)
    rng = np.random.default_rng(seed)
    people = np.unique(y)
    n_seeded = max(1, int(round(open_set * people.size)))
    seeded_people = np.sort(rng.permutation(people)[:n_seeded]) if open_set < 1 else people
    pool, test, seeded = [], [], []
    for p in people:
        rows = rng.permutation(np.flatnonzero(y == p))
        k = min(max(1, int(round(test_fraction * rows.size))), rows.size - 1)
        test.append(rows[:k])
        rest = rows[k:]
        pool.append(rest)
        if p in seeded_people:
            seeded.append(rest[:seed_labels])
    cat = lambda a: np.sort(np.concatenate(a)) if a else np.zeros(0, dtype=np.int64)  # noqa: E731
    return Split(cat(pool), cat(test), cat(seeded), seeded_people)


def _noisy(truth: np.ndarray, people: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    out = truth.copy()
    if rate > 0 and people.size > 1:
        flip = rng.random(truth.size) < rate
        for i in np.flatnonzero(flip):
            out[i] = rng.choice(people[people != truth[i]])
    return out


def simulate(X: np.ndarray, y: np.ndarray, config: SimulationConfig | None = None, *,
             finetuner: Callable[[], Finetuner] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run every method of ``config`` on embeddings ``X`` with true person ids ``y``; return result rows.

    Each method is an :class:`~aspl.engine.loop.ActiveLoop` (the loop the app
    runs) driven by an oracle: the pool's rows are its face ids, the annotator
    answers its queries and reviews its flagged labels. With a ``finetuner``
    factory and ``settings['finetune_every'] > 0``, the loop's fine-tuning
    rounds call the finetuner on :meth:`~aspl.engine.loop.ActiveLoop.finetune_targets`
    and continue on the new embeddings. Deterministic for ``config.seed``.
    """
    cfg = config or SimulationConfig()
    cfg.validate()
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (faces x dims) with one label per row, got X {X.shape} and y {y.shape}")
    _, y = np.unique(y, return_inverse=True)  # person ids 0..P-1
    y = y.astype(np.int64)
    split = split_pool(y, cfg.test_fraction, cfg.seed_labels, cfg.open_set, cfg.seed)
    people = np.unique(y)
    k = cfg.query_size if cfg.query_size is not None else max(1, int(round(AUTO_QUERY_FRACTION * split.pool.size)))
    ytr, yte = y[split.pool], y[split.test]
    ids = split.pool  # face ids = rows of X

    rows: list[dict[str, Any]] = []
    total = len(cfg.methods) * (cfg.rounds + 1)
    bar = tqdm(total=total, desc="simulate", unit="round", disable=not progress)
    for method in cfg.methods:
        loop = ActiveLoop(method, {**cfg.settings, "query_size": k, "random_state": cfg.seed}, center=cfg.center)
        tune = finetuner() if finetuner is not None and cfg.settings.get("finetune_every", 0) > 0 else None
        rng = np.random.default_rng([cfg.seed, 1])
        labels = np.full(split.pool.size, -1, dtype=np.int64)
        pos = np.searchsorted(split.pool, split.seeded)
        labels[pos] = _noisy(ytr[pos], people, cfg.label_noise, rng)
        Z = X
        reviews = fixes = 0
        for t in range(cfg.rounds + 1):
            rnd = loop.step(ids, Z[ids], labels)
            res = rnd.result
            auto = res.train_source >= SOURCE_PSEUDO
            prec = float(np.mean(res.train_labels[auto] == ytr[auto])) if auto.any() else math.nan
            acc = float(np.mean(loop.predict(Z[split.test]) == yte))
            human = labels >= 0
            rows.append(dict(method=method, round=t, human_labels=int(human.sum()),
                             fraction_annotated=float(human.mean()), pseudo_labels=int(auto.sum()),
                             pseudo_label_precision=prec, test_accuracy=acc,
                             people_known=int(np.unique(ytr[human]).size), people_total=int(people.size),
                             people_modelled=int(loop.classes_.size), reviews=reviews, review_fixes=fixes,
                             wrong_human_labels=int(np.sum(human & (labels != ytr))),
                             flagged=int(res.set_aside.size), pool_size=int(split.pool.size)))
            bar.update(1)
            if t == cfg.rounds or (human.all() and not res.queries.size):
                break
            aside = np.searchsorted(ids, rnd.set_aside)
            if aside.size:  # the annotator reviews flagged labels and fixes wrong ones
                reviews += int(aside.size)
                wrong = aside[labels[aside] != ytr[aside]]
                labels[wrong] = ytr[wrong]
                fixes += int(wrong.size)
                loop.confirm(ids[np.setdiff1d(aside, wrong)])
            q = np.searchsorted(ids, rnd.queries)
            labels[q] = _noisy(ytr[q], people, cfg.label_noise, rng)
            if tune is not None and rnd.finetune_due:
                Z = np.asarray(tune(*loop.finetune_targets()), dtype=np.float32)
        bar.update(cfg.rounds - t)  # rounds skipped by an early stop
    bar.close()
    return rows


def _by_method(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return out


def summarize(rows: Sequence[dict[str, Any]], within: float = 0.01) -> dict[str, dict[str, Any]]:
    """Per method: the fraction annotated needed to come within ``within`` of AL_ALL's accuracy,
    pooled auto-label precision, final accuracy, and (open set) people discovered and at what cost.

    Without an ``all`` run the ceiling is the best accuracy any method reached.
    """
    by = _by_method(rows)
    if not by:
        return {}
    ceiling = by["all"][-1]["test_accuracy"] if "all" in by else max(r["test_accuracy"] for r in rows)
    out = {}
    for m, rs in by.items():
        reach = [r for r in rs if r["test_accuracy"] >= ceiling - within - 1e-12]
        used = sum(r["pseudo_labels"] for r in rs)
        right = sum(r["pseudo_labels"] * r["pseudo_label_precision"] for r in rs if r["pseudo_labels"])
        first, last = rs[0], rs[-1]
        all_known = [r for r in rs if r["people_known"] == r["people_total"]]
        out[m] = dict(
            ceiling_accuracy=ceiling,
            fraction_to_ceiling=reach[0]["fraction_annotated"] if reach else None,
            human_labels_to_ceiling=reach[0]["human_labels"] if reach else None,
            auto_label_precision=right / used if used else None,
            auto_labels_used=used,
            final_accuracy=last["test_accuracy"],
            final_fraction=last["fraction_annotated"],
            people_seeded=first["people_known"],
            people_discovered=last["people_known"] - first["people_known"],
            people_total=last["people_total"],
            human_labels_to_discover_all=all_known[0]["human_labels"] if all_known else None,
        )
    return out


def write_results(rows: Sequence[dict[str, Any]], out_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``accuracy.png`` and ``summary.json`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    with csv_path.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        wr.writeheader()
        for r in rows:
            wr.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summarize(rows), indent=2, default=float) + "\n")
    png = plot_results(rows, out / "accuracy.png", title)
    return {"csv": csv_path, "png": png, "summary": summary_path}


_STYLE = {"aspl": ("tab:red", "o"), "aspl-margin": ("tab:orange", "v"), "aspl-guarded": ("tab:purple", "P"),
          "ceal": ("tab:blue", "s"),
          "random": ("tab:gray", "^"), "spl": ("tab:green", "d"), "all": ("black", "")}
_NAMES = {"aspl": "ASPL", "aspl-margin": "ASPL (margin queries)", "aspl-guarded": "ASPL (guarded)", "ceal": "CEAL", "random": "AL_RAND", "spl": "SPL",
          "all": "AL_ALL"}


def plot_results(rows: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Test accuracy against fraction annotated, one line per method (AL_ALL as a dashed ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for m, rs in _by_method(rows).items():
        color, marker = _STYLE.get(m, (None, "x"))
        label = _NAMES.get(m, m)
        if m == "all":
            ax.axhline(rs[-1]["test_accuracy"], color=color, ls="--", lw=1, label=f"{label} (100% labelled)")
            continue
        ax.plot([r["fraction_annotated"] for r in rs], [r["test_accuracy"] for r in rs],
                marker=marker, ms=3, lw=1.3, color=color, label=label)
    ax.set_xlabel("fraction of pool annotated by a person")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
