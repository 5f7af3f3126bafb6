"""Compression, CNN-SVM head and init schemes on overfeat-fast-025 (20 lfw-dev people x <=15 faces, CPU).

* compression: params, CPU forward time (batch 32 @112), label efficiency after the same guidance training;
* init schemes: label efficiency at initialisation and after the same guidance training;
* CNN-SVM vs softmax: fine-tune the guided network on 2/3 of each person's faces, then a linear SVM and
  1-nearest-neighbour on the (centred) embeddings are scored on the rest.
Writes bench/results/methods_compress.md, methods_init.md, methods_svm_head.md.
"""
from __future__ import annotations

import copy
import sys

import numpy as np
import torch
from methods_common import CENTRING_NOTE, HEADER, Timer, efficiency, fmt_row, setup, write

from aspl.engine.classifier import OneVsAllSVM
from aspl.finetune import FineTuneSettings, finetune_embedder
from aspl.engine.preprocess import center_embeddings, mean_pairwise_cosine
from aspl.methods.guidance import GuidanceSettings, guide_target
from models import create_backbone
from models.compress import count_params

BACKBONE = "overfeat-fast-025"
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
PARTS = sys.argv[2].split(",") if len(sys.argv) > 2 else ["compress", "init", "svm"]


def guided(emb, fc, G):
    with Timer() as t:
        guide_target(emb, fc.crops, None, G, GuidanceSettings(epochs=EPOCHS))
    return t.s


def fwd_ms(emb) -> float:
    x = torch.randn(32, 3, 112, 112)
    emb.eval()
    with torch.no_grad():
        emb.net(x)
        with Timer() as t:
            for _ in range(3):
                emb.net(x)
    return 1000 * t.s / 3


def main() -> None:
    fc = setup()
    G = create_backbone("dlib-resnet").embed(list(fc.crops))
    # compression
    rows = ["| model | params | CPU ms / batch of 32 | mean pairwise cosine (raw) | acc @1 label | mean acc | "
            "final acc | guidance s |", "|---|---|---|---|---|---|---|---|"]
    for rank in ((None, 32, 16, 8) if "compress" in PARTS else ()):
        emb = create_backbone(BACKBONE, device="cpu", **({"compress_rank": rank} if rank else {}))
        ms = fwd_ms(emb)
        secs = guided(emb, fc, G)
        r = efficiency(emb, fc)
        rows.append(f"| {BACKBONE}{'' if rank is None else f' rank {rank}'} | {count_params(emb) / 1e6:.3f} M | "
                    f"{ms:.0f} | {r['mean_cosine']:.3f} | {r['acc_start']:.3f} | {r['acc_mean']:.3f} | "
                    f"{r['acc_end']:.3f} | {secs:.0f} |")
    if "compress" in PARTS:
        write("methods_compress", f"# A-priori compression (one-way factorised filters)\n\nEach network trained "
              f"the same way: {EPOCHS} epochs of guidance by dlib-resnet embeddings; ASPL simulation as in "
              f"methods_pretrain.\n\n{CENTRING_NOTE}\n\n" + "\n".join(rows) + "\n")
    # init schemes
    rows = [HEADER]
    base = None
    for scheme in ("kaiming", "orthogonal", "dct", "gabor") if "init" in PARTS else ("kaiming",):
        emb = create_backbone(BACKBONE, device="cpu", init=scheme)
        if "init" in PARTS:
            rows.append(fmt_row(f"{scheme}, at init", efficiency(emb, fc)))
        secs = guided(emb, fc, G)
        if "init" in PARTS:
            rows.append(fmt_row(f"{scheme}, after {EPOCHS} ep guidance", efficiency(emb, fc), secs))
        if scheme == "kaiming":
            base = copy.deepcopy(emb)
    if "init" in PARTS:
        write("methods_init", f"# Filter design: initialisation schemes for {BACKBONE}\n\n{CENTRING_NOTE}\n\n"
              + "\n".join(rows) + "\n")
    if "svm" not in PARTS:
        return
    # CNN-SVM vs softmax
    y = fc.y
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.permutation(np.flatnonzero(y == p))[: int(np.sum(y == p) * 2 / 3)]
                            for p in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), train)
    rows = ["| start | fine-tuning loss | final train loss | mean pairwise cosine (raw) | test acc, linear SVM "
            "(centred) | test acc, 1-NN cosine (centred) | seconds |", "|---|---|---|---|---|---|---|"]

    def score(emb) -> str:
        X = emb.embed(list(fc.crops))
        mu = X[train].mean(0)
        Xtr, Xte = center_embeddings(X[train], mu), center_embeddings(X[test], mu)
        svm = float(np.mean(OneVsAllSVM(min_labels=1).fit(Xtr, y[train]).predict(Xte) == y[test]))
        nn1 = float(np.mean(y[train][np.argmax(Xte @ Xtr.T, axis=1)] == y[test]))
        return f"{mean_pairwise_cosine(X):.3f} | {svm:.3f} | {nn1:.3f}"

    for start, net in (("guided", base), ("random init", create_backbone(BACKBONE, device="cpu"))):
        rows.append(f"| {start} | none | - | {score(net)} | - |")
        for loss, lr in (("softmax", 0.01), ("svm", 0.01)):
            emb = copy.deepcopy(net)
            with Timer() as t:
                res = finetune_embedder(emb, [fc.crops[i] for i in train], y[train], None,
                                        FineTuneSettings(epochs=5, lr=lr, batch_size=32, loss=loss))
            rows.append(f"| {start} | {loss} | {res.losses[-1]:.3f} | {score(emb)} | {t.s:.0f} |")
    write("methods_svm_head", f"# CNN-SVM head vs softmax in the engine's fine-tuning\n\n{BACKBONE} guided "
          f"({EPOCHS} ep, kaiming init) or at random init, then 5 epochs of fine-tuning (SGD lr 0.01) on 2/3 of "
          f"each person's faces ({train.size} faces, {len(np.unique(y))} people); test on the other {test.size}.\n\n"
          + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
