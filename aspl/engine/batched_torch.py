"""The torch half of :class:`~aspl.engine.batched.BatchedOneVsAll`: the same finite Newton on a torch device.

:mod:`aspl.engine.batched` keeps the algorithm (working sets, passes, warm starts, bookkeeping in numpy);
this module holds only the array work that grows with the data, written for torch so that it runs on a
CUDA device when there is one: the passes over all faces (``people x faces`` score blocks, thresholded or
top-k on the device, only the hits copied back), each group's Newton iterations (gathered rows, Hessians,
solves and line search on the device) and scoring (top-2 per face on the device).

Every function mirrors its numpy twin in :mod:`aspl.engine.batched` operation for operation (float32
products, float64 weights, Hessians and solves), so both reach the same optimum within ``tol``;
``tests/test_engine_batched.py`` checks that on the CPU device.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from .batched import _Problem

__all__ = ["resolve_device", "DeviceData", "map_blocks", "newton_group", "top2_blocks"]

#: Device names accepted by ``BatchedOneVsAll(device=...)``.
DEVICE_CHOICES = ("auto", "numpy", "cpu", "cuda", "cuda:N")


def resolve_device(device: str | None) -> torch.device | None:
    """The torch device for ``device`` (None: the numpy path).

    ``"auto"`` (or None): CUDA when torch sees a GPU, else numpy; ``"numpy"``: numpy; ``"cpu"``, ``"cuda"``,
    ``"cuda:1"``: that torch device (ValueError when CUDA is asked for and torch sees none).
    """
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if name == "numpy":
        return None
    if name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device "
                             f"(valid choices: {', '.join(DEVICE_CHOICES)}; 'auto' falls back to the CPU)")
        return dev
    raise ValueError(f"unknown device {device!r}; valid choices: {', '.join(DEVICE_CHOICES)}")


class DeviceData:
    """A fit's rows on the device: augmented rows ``Xt``, the negatives ``Xn`` and the local index map."""

    def __init__(self, prob: "_Problem", device: torch.device):
        self.device = device
        self.Xt = torch.from_numpy(prob.Xt).to(device)
        self.Xn = self.Xt if prob.Xn is prob.Xt else torch.from_numpy(np.ascontiguousarray(prob.Xn)).to(device)


def _own_cells(prob: "_Problem", js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(block row, negative column)`` of each person's own faces among the negatives (set to -inf)."""
    rows, cols = [], []
    for r, j in enumerate(js):
        lp = prob.local[prob.pos[j]]
        lp = lp[lp >= 0]
        rows.append(np.full(lp.size, r, np.int64))
        cols.append(lp)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def map_blocks(prob: "_Problem", dd: DeviceData, D: np.ndarray, js: np.ndarray, step: int,
               fn: Callable[[int, torch.Tensor], Any]) -> list:
    """``fn(a, S)`` per block of people starting at ``a``: ``S`` the device scores people x negatives with
    each person's own faces at -inf (as ``_Problem._map_blocks``)."""
    Dt = torch.from_numpy(np.ascontiguousarray(D, dtype=np.float32)).to(dd.device)
    out = []
    for a in range(0, js.size, step):
        S = Dt[a:a + step] @ dd.Xn.T
        r, c = _own_cells(prob, js[a:a + step])
        if r.size:
            S[torch.from_numpy(r).to(dd.device), torch.from_numpy(c).to(dd.device)] = -torch.inf
        out.append(fn(a, S))
    return out


def scan_top(prob: "_Problem", dd: DeviceData, D: np.ndarray, js: np.ndarray, k: np.ndarray,
             step: int) -> list[np.ndarray]:
    """Per person, the rows of the ``k`` negatives most similar to its direction (sorted rows)."""
    def top(a: int, S: torch.Tensor) -> list[np.ndarray]:
        kk = np.minimum(k[a:a + S.shape[0]], S.shape[1]).astype(np.int64)
        vals, cols = torch.topk(S, int(kk.max()), dim=1)
        vals, cols = vals.cpu().numpy(), cols.cpu().numpy()
        res = []
        for r in range(S.shape[0]):
            v, c = vals[r, :kk[r]], cols[r, :kk[r]]
            res.append(prob.neg_rows[np.sort(c[np.isfinite(v)])])
        return res

    return [rows for part in map_blocks(prob, dd, D, js, step, top) for rows in part]


def scan_above(prob: "_Problem", dd: DeviceData, W: np.ndarray, js: np.ndarray, thr: float, also: float,
               step: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per person, the negatives scoring above ``thr``, and those of them scoring above ``also``."""
    def above(a: int, S: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        hit = (S > thr).nonzero()  # row-major order: rows increasing, columns increasing within a row
        vals = S[hit[:, 0], hit[:, 1]].cpu().numpy()
        rr, cc = hit[:, 0].cpu().numpy(), hit[:, 1].cpu().numpy()
        cuts = np.searchsorted(rr, np.arange(1, S.shape[0]))
        return [(prob.neg_rows[c], prob.neg_rows[c[v > also]])
                for c, v in zip(np.split(cc, cuts), np.split(vals, cuts))]

    pairs = [p for part in map_blocks(prob, dd, W, js, step, above) for p in part]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def newton_group(prob: "_Problem", dd: DeviceData, cand: list[np.ndarray], W: np.ndarray, grp: np.ndarray,
                 K: int, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """``batched._newton_group`` on the device: solve people ``grp`` together, rows of ``W`` updated."""
    dev = dd.device
    B, d1 = grp.size, prob.Xt.shape[1]
    C = prob.C
    idx = np.zeros((B, K), dtype=np.int64)
    yg_np = np.zeros((B, K), dtype=np.float32)
    cg_np = np.zeros((B, K), dtype=np.float32)
    for r, j in enumerate(grp):
        pp, nn = prob.pos[j], cand[j]
        a, c = pp.size, nn.size
        idx[r, :a], idx[r, a:a + c] = pp, nn
        yg_np[r, :a], yg_np[r, a:a + c] = 1.0, -1.0
        cg_np[r, :a] = prob.cw * prob.s[pp]
        cg_np[r, a:a + c] = prob.neg_scale[j] * prob.s[nn]
    Xg = dd.Xt[torch.from_numpy(idx.ravel()).to(dev)].reshape(B, K, d1)
    yg, cg = torch.from_numpy(yg_np).to(dev), torch.from_numpy(cg_np).to(dev)
    w = torch.from_numpy(W[grp].copy()).to(dev)  # float64
    live = np.arange(B)
    iters = np.zeros(B, dtype=np.int64)
    conv = np.ones(B, dtype=bool)
    G = None
    valid = cg > 0
    eye = torch.eye(d1, dtype=torch.float64, device=dev)
    zero = torch.zeros((), dtype=torch.float32, device=dev)
    r = 1.0 - yg * torch.matmul(Xg, w.float()[:, :, None])[:, :, 0]

    def finish(done: torch.Tensor) -> np.ndarray:
        d = done.cpu().numpy()
        W[grp[live[d]]] = w[done].cpu().numpy()
        return ~d

    for _ in range(max_iter):
        act = (r > 0) & valid
        a = torch.where(act, cg, zero)
        g = w + 2.0 * C * torch.matmul((-(yg * a * r))[:, None, :], Xg)[:, 0, :].double()
        done = torch.linalg.vector_norm(g, dim=1) * prob.xmax <= tol
        if bool(done.any()):
            keep_np = finish(done)
            if not keep_np.any():
                break
            keep = torch.from_numpy(keep_np).to(dev)
            live = live[keep_np]
            Xg, yg, cg, valid, w, g, r, act = (v[keep] for v in (Xg, yg, cg, valid, w, g, r, act))
            G = None if G is None else G[keep]
        n_act = act.sum(1)
        comp = valid.sum(1) - n_act < n_act
        any_comp = bool(comp.any())
        if any_comp and G is None:
            G = weighted_gram(Xg, cg)
        H = weighted_gram(Xg, cg, torch.where(comp[:, None], valid & ~act, act))
        if any_comp:
            H[comp] = G[comp] - H[comp]
        H *= 2.0 * C
        H += eye
        delta = torch.linalg.solve(H, -g[:, :, None])[:, :, 0]
        q = yg * torch.matmul(Xg, delta.float()[:, :, None])[:, :, 0]
        t = line_search(w, delta, r, q, cg, C)
        w += t[:, None] * delta
        r -= t.float()[:, None] * q
        iters[live] += 1
        done = t * torch.linalg.vector_norm(delta, dim=1) * prob.xmax <= tol
        if bool(done.any()):
            keep_np = finish(done)
            if not keep_np.any():
                break
            keep = torch.from_numpy(keep_np).to(dev)
            live = live[keep_np]
            Xg, yg, cg, valid, w, r = (v[keep] for v in (Xg, yg, cg, valid, w, r))
            G = None if G is None else G[keep]
    else:
        W[grp[live]] = w.cpu().numpy()
        conv[live] = False
    return iters, conv


def weighted_gram(Xg: torch.Tensor, c: torch.Tensor, sel: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_k c[b,k] x[b,k] x[b,k]^T`` per ``b`` (float64), over the rows where ``sel`` (all: None)."""
    B, K, d1 = Xg.shape
    if sel is not None:
        L = int(sel.sum(1).max()) if B else 0
        if L == 0:
            return torch.zeros((B, d1, d1), dtype=torch.float64, device=Xg.device)
        c = torch.where(sel, c, torch.zeros((), dtype=c.dtype, device=c.device))
        if L < 0.8 * K:
            pick = torch.sort((~sel).to(torch.uint8), dim=1, stable=True).indices[:, :L]
            c = c.gather(1, pick)
            Xg = Xg.gather(1, pick[:, :, None].expand(B, L, d1))
    return torch.matmul(Xg.transpose(1, 2) * c[:, None, :], Xg).double()


def line_search(w: torch.Tensor, delta: torch.Tensor, r: torch.Tensor, q: torch.Tensor, cg: torch.Tensor,
                C: float, steps: int = 10) -> torch.Tensor:
    """``batched._line_search`` on the device: the exact step in (0, 1] per row."""
    wd = (w * delta).sum(1)
    dd = (delta * delta).sum(1)
    zero = torch.zeros((), dtype=torch.float32, device=r.device)

    def slope(t: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rr, qq = r[rows], q[rows]
        rt = rr - t.float()[:, None] * qq
        cq = torch.where(rt > 0, cg[rows] * qq, zero)
        d1 = wd[rows] + t * dd[rows] - 2.0 * C * (cq * rt).sum(1, dtype=torch.float64)
        d2 = dd[rows] + 2.0 * C * (cq * qq).sum(1, dtype=torch.float64)
        return d1, d2

    t = torch.ones(w.shape[0], dtype=torch.float64, device=w.device)
    rows = torch.arange(w.shape[0], device=w.device)
    d1, d2 = slope(t, rows)
    for _ in range(steps):
        more = d1 > 1e-9 * wd[rows].abs()
        if not bool(more.any()):
            break
        rows, d1, d2 = rows[more], d1[more], d2[more]
        t[rows] = torch.minimum(torch.clamp(t[rows] - d1 / torch.clamp(d2, min=1e-300), min=1e-12), t[rows])
        d1, d2 = slope(t[rows], rows)
    return t


def _device_blocks(X: np.ndarray, Wt: np.ndarray, b: np.ndarray, step: int, device: torch.device):
    """``(first row, device scores)`` of ``X`` in blocks of ``step`` rows."""
    Wd = torch.from_numpy(Wt).to(device)
    bd = torch.from_numpy(b).to(device)
    for a in range(0, X.shape[0], step):
        yield a, torch.from_numpy(np.ascontiguousarray(X[a:a + step])).to(device) @ Wd.T + bd


def score_blocks(X: np.ndarray, Wt: np.ndarray, b: np.ndarray, step: int, device: torch.device):
    """``(first row, float32 numpy scores)`` of ``X`` in blocks of ``step`` rows, products on ``device``."""
    for a, S in _device_blocks(X, Wt, b, step, device):
        yield a, S.cpu().numpy()


def top2_blocks(X: np.ndarray, Wt: np.ndarray, b: np.ndarray, step: int, device: torch.device
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best and second-best column and score per face, the scores never leaving ``device``.

    Ties go to the lower column (as numpy's argmax): scores are ranked by value, then by column.
    """
    n, P = X.shape[0], Wt.shape[0]
    first = np.full(n, -1, dtype=np.int64)
    second = np.full(n, -1, dtype=np.int64)
    s1 = np.full(n, -np.inf)
    s2 = np.full(n, -np.inf)
    if P == 0:
        return first, s1, second, s2
    for a, S in _device_blocks(X, Wt, b, step, device):
        part = slice(a, a + S.shape[0])
        v, c = torch.max(S, dim=1)  # the first maximal column, as numpy's argmax
        first[part], s1[part] = c.cpu().numpy(), v.cpu().numpy()
        if P >= 2:
            S[torch.arange(S.shape[0], device=device), c] = -torch.inf
            v, c = torch.max(S, dim=1)
            second[part], s2[part] = c.cpu().numpy(), v.cpu().numpy()
    return first, s1, second, s2
