"""Fine-tuning a trainable backbone from the library's labels, as the last phase of a round's job.

When the loop says fine-tuning is due (``engine['finetune_every']``), the round's
job fine-tunes a copy of the backbone on the loop's targets (human labels and
weighted pseudo-labels), re-embeds every face, rebuilds the FAISS index and
refits the classifiers on the new embeddings. The weights are saved in the
library folder (``backbones/<name>.round<N>.pt``) and named by the
``finetuned_weights`` setting in the same transaction as the new embeddings, so
the database never names weights that do not match its vectors; they are loaded
with ``torch.load(weights_only=True)``. A frozen backbone (dlib) is skipped with
a note in the round's metrics.
"""
from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from storage import IndexStore, Library

from ..engine.loop import ActiveLoop
from ..finetune import FineTuneSettings, finetune_embedder, is_trainable
from ..jobs import ProgressFn

log = logging.getLogger("aspl.service")

EMBED_BATCH = 64


def _weights_dir(lib: Library) -> Path | None:
    return None if lib.root is None else lib.root / "backbones"


def finetuned_weights_path(lib: Library, backbone: str) -> Path | None:
    """The file of ``backbone``'s fine-tuned weights in this library, or None (never fine-tuned)."""
    name = (lib.get_setting("finetuned_weights") or {}).get(backbone)
    d = _weights_dir(lib)
    return None if name is None or d is None else d / name


def load_finetuned(embedder: Any, path: Path) -> Any:
    """A copy of ``embedder`` with the weights at ``path`` (tensors only: ``weights_only=True``)."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned weights {path} named by the library are missing; "
                                f"re-run a fine-tuning round or remove the 'finetuned_weights' setting")
    tuned = copy.deepcopy(embedder)
    tuned.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    tuned.eval()
    return tuned


class TuningMixin:
    """Loads a library's fine-tuned weights for its backbone; fine-tunes after a round when due."""

    def _library_embedder(self, lib: Library, name: str) -> Any:
        """The embedder ``name`` as this library uses it (with its fine-tuned weights, if any)."""
        base = self._embedder(name)
        path = finetuned_weights_path(lib, name)
        if path is None:
            return base
        key = (name, str(path))
        cached = self._tuned_cache.get(key)
        if cached is None:
            cached = self._tuned_cache[key] = load_finetuned(base, path)
        return cached

    def _finetune_after_round(self, lib: Library, backbone: str, active: ActiveLoop, round_id: int,
                              actor: str, progress: ProgressFn) -> dict[str, Any]:
        """Fine-tune, re-embed, rebuild the index, refit; returns what happened (for the round's metrics)."""
        emb = self._library_embedder(lib, backbone)
        if not is_trainable(emb):
            note = (f"{backbone} is a frozen backbone: fine-tuning skipped (swap to a trainable backbone "
                    f"on the Admin page to fine-tune)")
            lib.log_event("finetune_skipped", actor, round=round_id, backbone=backbone, reason="frozen")
            return {"status": "skipped", "reason": note}
        face_ids, persons, weights = active.finetune_targets()
        progress(0, 3, f"fine-tuning {backbone} on {len(face_ids)} faces")
        tuned = copy.deepcopy(emb)
        res = finetune_embedder(tuned, lib.face_crops(face_ids), persons, weights, FineTuneSettings())
        if res.skipped:
            lib.log_event("finetune_skipped", actor, round=round_id, backbone=backbone, reason="people")
            return {"status": "skipped", "reason": "fine-tuning needs labelled faces of at least 2 people"}
        ids = lib.embedding_ids(backbone)
        vecs = []
        for i in range(0, len(ids), EMBED_BATCH):
            batch = ids[i:i + EMBED_BATCH]
            vecs.append(np.asarray(tuned.embed(lib.face_crops(batch)), dtype=np.float32))
            progress(1, 3, f"re-embedding {min(i + EMBED_BATCH, len(ids))}/{len(ids)} faces")
        X = np.concatenate(vecs) if vecs else np.zeros((0, tuned.info.embedding_dim), np.float32)
        path = self._save_weights(lib, backbone, tuned, round_id)
        indexes = IndexStore(lib)
        idx_file = indexes.path(backbone)
        if idx_file is not None:
            idx_file.unlink(missing_ok=True)  # a crash before the rebuild makes the next reader rebuild
        with lib.transaction():
            lib.put_embeddings(backbone, ids, X)
            if path is not None:
                names = dict(lib.get_setting("finetuned_weights") or {})
                names[backbone] = path.name
                lib.set_setting("finetuned_weights", names, actor)
            else:
                self._tuned_cache[(backbone, "memory")] = tuned
            progress(2, 3, "rebuilding the index and refitting the classifiers")
            keep = np.isin(ids, active.face_ids_)
            active.refit(ids[keep], X[keep])
            lib.save_loop_state(backbone, active.state_dict(), round_id)
            lib.log_event("finetuned", actor, round=round_id, backbone=backbone, faces=int(len(face_ids)),
                          people=int(res.persons.size), loss=[round(v, 4) for v in res.losses])
        indexes.rebuild(backbone)
        progress(3, 3, f"fine-tuned {backbone}; {len(ids)} faces re-embedded")
        return {"status": "done", "faces": int(len(face_ids)), "people": int(res.persons.size),
                "reembedded": int(len(ids)), "loss": [round(float(v), 4) for v in res.losses],
                "weights": None if path is None else path.name}

    @staticmethod
    def _save_weights(lib: Library, backbone: str, tuned: Any, round_id: int) -> Path | None:
        """Write the fine-tuned weights next to the database (None for an in-memory library)."""
        import torch

        d = _weights_dir(lib)
        if d is None:
            return None
        d.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", backbone)
        path = d / f"{safe}.round{round_id}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(tuned.state_dict(), tmp)
        tmp.replace(path)
        return path
