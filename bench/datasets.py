"""Benchmark datasets, written once to bench/data/ as float32 .npy files.

- gmm-<n>-<d>: a deterministic Gaussian mixture built to look like embeddings rather than
  noise (the recipe of shared/notes/baselines.md): 1000 clusters with Dirichlet(2) weights,
  centres ~ N(0, 1/(2d)), per-cluster spread 0.8 x LogNormal(0, 0.3), each cluster spread over
  its own random 16-dimensional subspace plus isotropic noise 0.1. Queries come from an
  independent stream of the same mixture.
- sift-opencv-100k-128 and fashion-mnist-60k-784: the real sets in shared/data (uint8 stored,
  cast to float32), with their exact ground truth.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SHARED = Path(os.environ.get("VECFUSION_SHARED", HERE.parent.parent / "shared")) / "data"

REAL = {
    "sift-opencv-100k-128": "sift_opencv/sift_opencv",
    "fashion-mnist-60k-784": "fashion_mnist/fashion_mnist",
}


def _gmm(n: int, d: int, seed: int, stream: int, clusters: int = 1000) -> np.ndarray:
    model = np.random.default_rng([seed, d, clusters])
    weights = model.dirichlet(np.full(clusters, 2.0))
    centres = model.normal(0.0, np.sqrt(1.0 / (2 * d)), size=(clusters, d)).astype(np.float32)
    spread = (0.8 * model.lognormal(0.0, 0.3, size=clusters)).astype(np.float32)
    sub = 16 if d >= 16 else d
    bases = []
    for _ in range(clusters):
        q, _ = np.linalg.qr(model.normal(size=(d, sub)))
        bases.append(q.T.astype(np.float32))  # sub x d
    bases = np.stack(bases)
    rng = np.random.default_rng([seed, d, clusters, stream])
    out = np.empty((n, d), dtype=np.float32)
    step = 65536
    for start in range(0, n, step):
        m = min(step, n - start)
        c = rng.choice(clusters, size=m, p=weights)
        z = rng.normal(size=(m, sub)).astype(np.float32) * (spread[c] / np.sqrt(sub))[:, None]
        x = centres[c] + np.einsum("ms,msd->md", z, bases[c])
        x += rng.normal(0.0, 0.1 / np.sqrt(d), size=(m, d)).astype(np.float32)
        out[start : start + m] = x
    return out


def path_of(name: str, part: str = "base") -> Path:
    return DATA / f"{name}.{part}.npy"


def ensure(name: str) -> tuple[Path, Path | None, Path | None]:
    """Writes the dataset if missing; returns (base, queries, groundtruth) paths."""
    DATA.mkdir(parents=True, exist_ok=True)
    base, queries, gt = path_of(name), path_of(name, "queries"), path_of(name, "gt")
    if name in REAL:
        src = SHARED / REAL[name]
        if not base.exists():
            np.save(base, np.load(f"{src}_base.npy").astype(np.float32))
            np.save(queries, np.load(f"{src}_queries.npy").astype(np.float32))
            np.save(gt, np.load(f"{src}_groundtruth.npy").astype(np.int64))
        return base, queries, gt
    _, n, d = name.split("-")
    n = int(n.replace("k", "000").replace("m", "000000"))
    d = int(d)
    if not base.exists():
        np.save(base, _gmm(n, d, seed=0, stream=0))
        np.save(queries, _gmm(1000, d, seed=0, stream=1))
    return base, (queries if queries.exists() else None), (gt if gt.exists() else None)


def ground_truth(name: str, k: int = 100) -> Path:
    """Exact top-k by L2 for the queries (float32 GEMM candidates, float64 re-rank)."""
    base, queries, gt = ensure(name)
    if gt is not None and gt.exists():
        return gt
    x = np.load(base, mmap_mode="r")
    q = np.load(queries)
    qn = (q.astype(np.float64) ** 2).sum(1)
    best_d = np.full((len(q), k * 2), np.inf)
    best_i = np.zeros((len(q), k * 2), dtype=np.int64)
    for start in range(0, len(x), 100_000):
        xb = np.asarray(x[start : start + 100_000])
        d = qn[:, None] - 2 * (q @ xb.T) + (xb.astype(np.float64) ** 2).sum(1)[None, :]
        idx = np.argpartition(d, k * 2 - 1, axis=1)[:, : k * 2]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, idx, 1)], 1)
        cand_i = np.concatenate([best_i, idx + start], 1)
        keep = np.argpartition(cand_d, k * 2 - 1, axis=1)[:, : k * 2]
        best_d = np.take_along_axis(cand_d, keep, 1)
        best_i = np.take_along_axis(cand_i, keep, 1)
    exact = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):
        cand = best_i[i]
        dd = ((np.asarray(x[np.sort(cand)]).astype(np.float64) - q[i]) ** 2).sum(1)
        order = np.lexsort((np.sort(cand), dd))[:k]
        exact[i] = np.sort(cand)[order]
    path = path_of(name, "gt")
    np.save(path, exact)
    return path
