"""Guidance and RotNet pretraining vs random init: simulated label efficiency (ASPL, 1 seed label/person).

20 lfw-dev people x <=15 faces, overfeat-fast-025 @112 on CPU; pretraining uses all 300 faces unlabelled
(guidance: dlib-resnet embeddings as the guide). Writes bench/results/methods_pretrain.md and saves the
guided weights for the other benchmarks.
"""
from __future__ import annotations

import sys

from methods_common import CENTRING_NOTE, HEADER, WEIGHTS, Timer, efficiency, fmt_row, setup, write

from aspl.methods.guidance import GuidanceSettings, guide_target
from aspl.methods.rotnet import RotNetSettings, rotnet_pretrain
from models import create_backbone

BACKBONE = sys.argv[1] if len(sys.argv) > 1 else "overfeat-fast-025"
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
ROT_EPOCHS = int(sys.argv[3]) if len(sys.argv) > 3 else 3


def main() -> None:
    import torch

    fc = setup()
    dlib = create_backbone("dlib-resnet")
    rows = [fmt_row("dlib-resnet (guide, frozen, pretrained)", efficiency(dlib, fc))]
    G = dlib.embed(list(fc.crops))
    emb = create_backbone(BACKBONE, device="cpu")
    rows.append(fmt_row(f"{BACKBONE} random init, raw (not centred)", efficiency(emb, fc, center=False)))
    rows.append(fmt_row(f"{BACKBONE} random init", efficiency(emb, fc)))
    emb = create_backbone(BACKBONE, device="cpu")
    with Timer() as t:
        r = rotnet_pretrain(emb, fc.crops, RotNetSettings(epochs=ROT_EPOCHS))
    rows.append(fmt_row(f"{BACKBONE} RotNet {ROT_EPOCHS} ep (rot acc {r.accuracy[-1]:.2f})", efficiency(emb, fc), t.s))
    emb = create_backbone(BACKBONE, device="cpu")
    with Timer() as t:
        guide_target(emb, fc.crops, dlib, G, GuidanceSettings(epochs=EPOCHS))
    rows.append(fmt_row(f"{BACKBONE} guided by dlib {EPOCHS} ep, raw (not centred)", efficiency(emb, fc, center=False),
                        t.s))
    rows.append(fmt_row(f"{BACKBONE} guided by dlib {EPOCHS} ep", efficiency(emb, fc), t.s))
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    torch.save(emb.net.state_dict(), WEIGHTS / f"{BACKBONE}-guided.pt")
    write("methods_pretrain", "# Guidance and RotNet pretraining: simulated label efficiency\n\n"
          f"lfw-dev, {len(set(fc.labels))} people, {len(fc.crops)} faces; ASPL simulation, 1 seed label per "
          "person, 6 rounds of 12 queries, 25% test split; CPU (2 shared cores). Guidance: embedding "
          "distillation (linear head, cosine + InfoNCE at T=0.1 to the guide's centred embeddings, centred "
          "relational term, unit-cosine match), Adam lr 1e-3, batch 32.\n\n" + CENTRING_NOTE + "\n\n" + HEADER + "\n"
          + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
