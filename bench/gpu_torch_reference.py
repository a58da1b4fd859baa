"""PyTorch reference for the GPU index build: the same IVF_PQ work vecfusion does, written the
way LanceDB's GPU path trains (matmul distances + argmin, centroid update by index_add_).

Work, matching `CREATE VECTOR INDEX ... USING IVF_PQ` with tolerance 0:
  IVF    Lloyd on num_partitions × 256 sampled rows, `--ivf-iterations` iterations;
  PQ     Lloyd per sub-space (all sub-spaces batched) on 65,536 sampled residuals, 256 codes;
  encode every row: nearest IVF centroid, residual, nearest code per sub-space (chunked,
         host→device copies included, codes copied back).

Before the timers, a warm-up runs the same operations on a few thousand rows (CUDA context,
cuBLAS handles, kernel loading), reported apart as `seconds_warmup`, as vecfusion's is.
Prints one JSON line: seconds per phase, iterations run, the device's measured fp32 and TF32
matmul peaks (preallocated output) and PyTorch's own peak allocation. `bench/gpu.py` computes
the TFLOP/s of both engines' IVF training and samples GPU memory from nvidia-smi for both.
`--device cpu` runs it anywhere.

    python bench/gpu_torch_reference.py --data vectors.npy --partitions 4096 --sub-vectors 48
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

PQ_TRAINING_ROWS = 256 * 256
CODES = 256


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nearest(x: torch.Tensor, c: torch.Tensor, c_norms: torch.Tensor) -> torch.Tensor:
    """argmin_j ||x - c_j||² for each row of x (the ||x||² term does not change the argmin)."""
    return torch.addmm(c_norms, x, c.T, alpha=-2.0).argmin(dim=1)


def lloyd(x: torch.Tensor, k: int, iterations: int, gen: torch.Generator) -> torch.Tensor:
    """Plain Lloyd from k random rows, every iteration run (tolerance 0)."""
    n = x.shape[0]
    c = x[torch.randperm(n, generator=gen, device="cpu")[:k].to(x.device)].clone()
    for _ in range(iterations):
        labels = nearest(x, c, (c * c).sum(dim=1))
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        nonempty = counts > 0
        c[nonempty] = sums[nonempty] / counts[nonempty, None]
    return c


def pq_lloyd(r: torch.Tensor, m: int, iterations: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd in all m sub-spaces at once: r (n, m·ds) → codebooks (m, 256, ds)."""
    n, dim = r.shape
    ds = dim // m
    x = r.view(n, m, ds).transpose(0, 1).contiguous()  # (m, n, ds)
    pick = torch.randperm(n, generator=gen, device="cpu")[:CODES].to(r.device)
    c = x[:, pick, :].clone()  # (m, 256, ds)
    offsets = (torch.arange(m, device=r.device) * CODES)[:, None]  # (m, 1)
    for _ in range(iterations):
        d = torch.baddbmm((c * c).sum(dim=2)[:, None, :], x, c.transpose(1, 2), alpha=-2.0)
        labels = (d.argmin(dim=2) + offsets).flatten()  # (m·n,) into the m × 256 codes
        sums = torch.zeros(m * CODES, ds, device=r.device, dtype=r.dtype).index_add_(0, labels, x.reshape(m * n, ds))
        counts = torch.bincount(labels, minlength=m * CODES).to(r.dtype)
        nonempty = counts > 0
        flat = c.view(m * CODES, ds)
        flat[nonempty] = sums[nonempty] / counts[nonempty][:, None]
    return c


def matmul_peak(device: torch.device, tf32: bool) -> float:
    """TFLOP/s of a large square matmul (fp32, or TF32 tensor cores) into a preallocated
    output, so allocation is not timed."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    torch.matmul(a, b, out=c)
    sync(device)
    reps = 10
    t = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b, out=c)
    sync(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def warm_up(device: torch.device, dim: int, m: int) -> float:
    """The build's operations on 4,096 random rows: context, handles and kernels loaded."""
    t = time.perf_counter()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(4096, dim, generator=gen).to(device)
    c = lloyd(x, 64, 2, gen)
    r = x - c[nearest(x, c, (c * c).sum(dim=1))]
    pq_lloyd(r, m, 1, gen)
    sync(device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="float32 .npy, rows × dim")
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--sub-vectors", type=int, required=True)
    ap.add_argument("--ivf-iterations", type=int, default=20)
    ap.add_argument("--pq-iterations", type=int, default=25)
    ap.add_argument("--chunk", type=int, default=262_144, help="rows per encode chunk")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32, as vecfusion's default
    gen = torch.Generator().manual_seed(args.seed)
    data = np.load(args.data, mmap_mode="r")
    n, dim = data.shape
    k, m = args.partitions, args.sub_vectors
    out = {"engine": "torch", "device": str(device), "rows": n, "dim": dim, "partitions": k, "sub_vectors": m,
           "ivf_iterations_run": args.ivf_iterations, "pq_iterations_run": args.pq_iterations,
           "seconds_warmup": warm_up(device, dim, m)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    total = time.perf_counter()

    # Sample (host) and copy to the device.
    t = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n_sample = min(n, max(k * 256, PQ_TRAINING_ROWS))
    rows = np.sort(rng.choice(n, size=n_sample, replace=False))
    sample = torch.from_numpy(np.ascontiguousarray(data[rows])).to(device)
    sync(device)
    out["seconds_sample"] = time.perf_counter() - t

    t = time.perf_counter()
    ivf_rows = sample[: min(n_sample, k * 256)]
    centroids = lloyd(ivf_rows, k, args.ivf_iterations, gen)
    sync(device)
    out["seconds_train_ivf"] = time.perf_counter() - t
    out["ivf_training_rows"] = ivf_rows.shape[0]

    t = time.perf_counter()
    c_norms = (centroids * centroids).sum(dim=1)
    pq_rows = sample[: min(n_sample, PQ_TRAINING_ROWS)]
    residuals = pq_rows - centroids[nearest(pq_rows, centroids, c_norms)]
    codebooks = pq_lloyd(residuals, m, args.pq_iterations, gen)
    sync(device)
    out["seconds_train_pq"] = time.perf_counter() - t

    t = time.perf_counter()
    ds = dim // m
    cb_t = codebooks.transpose(1, 2)  # (m, ds, 256)
    cb_norms = (codebooks * codebooks).sum(dim=2)[:, None, :]  # (m, 1, 256)
    lists = np.empty(n, dtype=np.int32)
    codes = np.empty((n, m), dtype=np.uint8)
    for start in range(0, n, args.chunk):
        x = torch.from_numpy(np.array(data[start : start + args.chunk])).to(device)  # a writable copy
        part = nearest(x, centroids, c_norms)
        r = (x - centroids[part]).view(-1, m, ds).transpose(0, 1)  # (m, rows, ds)
        code = torch.baddbmm(cb_norms, r, cb_t, alpha=-2.0).argmin(dim=2).T
        lists[start : start + x.shape[0]] = part.to(torch.int32).cpu().numpy()
        codes[start : start + x.shape[0]] = code.to(torch.uint8).cpu().numpy()
    sync(device)
    out["seconds_encode"] = time.perf_counter() - t
    out["seconds_total"] = time.perf_counter() - total

    if device.type == "cuda":
        out["torch_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    out["sgemm_fp32_tflops"] = matmul_peak(device, tf32=False)
    if device.type == "cuda":
        out["sgemm_tf32_tflops"] = matmul_peak(device, tf32=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
