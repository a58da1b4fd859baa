"""KMeans alone: vecfusion vs faiss.Kmeans on the same training rows, same iterations.

Per case: seconds per iteration (median over iterations, median over repetitions), the
assignment step's achieved GFLOP/s (2·n·k·d flops), the machine's sgemm GFLOP/s on the same
shape (numpy/OpenBLAS, measured in the same run: the practical ceiling), and each model's
objective as the mean squared distance of every row of the *full* dataset to its nearest
centroid (computed the same way, with faiss, for both).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

import datasets
from cases import load1, machine, markdown, run_json, write_results

# (dataset, k). Both engines train on the same min(n, 256·k) rows: faiss.Kmeans would
# subsample to max_points_per_centroid = 256 itself, so the harness does it for both.
CASES = [
    ("gmm-100k-128", 256),
    ("gmm-1m-128", 1024),
    ("gmm-200k-768", 256),
    ("gmm-200k-1536", 1024),
    ("sift-opencv-100k-128", 256),
    ("fashion-mnist-60k-784", 256),
]
QUICK = [("gmm-100k-128", 256), ("sift-opencv-100k-128", 256)]
POINTS_PER_CENTROID = 256
ITERATIONS = 20
SEED = 1234


def sgemm_gflops(x: np.ndarray, k: int) -> float:
    c = np.random.default_rng(0).standard_normal((k, x.shape[1]), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x @ c.T
        best = min(best, time.perf_counter() - t)
    return 2 * x.shape[0] * k * x.shape[1] / best / 1e9


def full_mse(base: np.ndarray, centroids: np.ndarray) -> float:
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    total = 0.0
    for start in range(0, len(base), 200_000):
        d, _ = index.search(np.ascontiguousarray(base[start : start + 200_000]), 1)
        total += float(d.sum())
    return total / len(base)


def run_faiss(sample: np.ndarray, k: int) -> tuple[dict, np.ndarray]:
    d = sample.shape[1]
    km = faiss.Kmeans(
        d, k, niter=ITERATIONS, seed=SEED, max_points_per_centroid=POINTS_PER_CENTROID, verbose=False
    )
    t = time.perf_counter()
    km.train(sample)
    total = time.perf_counter() - t
    stats = km.iteration_stats
    times = [stats[0]["time"]] + [stats[i]["time"] - stats[i - 1]["time"] for i in range(1, len(stats))]
    search = [stats[0]["time_search"]] + [
        stats[i]["time_search"] - stats[i - 1]["time_search"] for i in range(1, len(stats))
    ]
    per_search = statistics.median(search)
    return {
        "seconds_total": total,
        "seconds_per_iteration_median": statistics.median(times),
        "assign_gflops": 2 * sample.shape[0] * k * d / per_search / 1e9,
        "objective_last": stats[-1]["obj"],
    }, km.centroids


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    rows, table = [], []
    env = machine()
    for name, k in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base_path, _, _ = datasets.ensure(name)
        base = np.load(base_path)
        rng = np.random.default_rng(SEED)
        sample_size = POINTS_PER_CENTROID * k
        if sample_size < len(base):
            sample = base[np.sort(rng.choice(len(base), sample_size, replace=False))]
        else:
            sample = base
        n, d = sample.shape
        with tempfile.TemporaryDirectory() as tmp:
            sample_path = Path(tmp) / "sample.npy"
            np.save(sample_path, np.ascontiguousarray(sample, dtype=np.float32))
            vf, fa, ceiling = [], [], []
            for r in range(repeat):
                ceiling.append(sgemm_gflops(sample, k))
                cpath = Path(tmp) / "vf.npy"
                before = load1()
                v = run_json(
                    [str(binary), "kmeans", "--data", str(sample_path), "--k", str(k),
                     "--iterations", str(ITERATIONS), "--seed", str(SEED),
                     "--centroids-out", str(cpath), "--label", name, "--out", "/dev/null"]
                )
                v["mse_full"] = full_mse(base, np.load(cpath))
                v["load1"] = before
                vf.append(v)
                before = load1()
                f, fc = run_faiss(sample, k)
                f["mse_full"] = full_mse(base, fc)
                f["load1"] = before
                fa.append(f)
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        vf_it, fa_it = med(vf, "seconds_per_iteration_median"), med(fa, "seconds_per_iteration_median")
        vf_g, fa_g, top = med(vf, "assign_gflops"), med(fa, "assign_gflops"), statistics.median(ceiling)
        vf_mse, fa_mse = med(vf, "mse_full"), med(fa, "mse_full")
        row = {
            "bench": "kmeans", "dataset": name, "n_train": n, "dim": d, "k": k,
            "iterations": ITERATIONS, "repeat": repeat, "machine": env,
            "vecfusion": vf, "faiss": fa, "sgemm_gflops": ceiling,
            "ratio_time_vecfusion_over_faiss": vf_it / fa_it,
            "ratio_mse_vecfusion_over_faiss": vf_mse / fa_mse,
        }
        rows.append(row)
        table.append([
            name, f"{n:,} x {d}", k, f"{vf_it:.3f}", f"{fa_it:.3f}", f"{vf_it / fa_it:.2f}",
            f"{vf_g:.0f}", f"{fa_g:.0f}", f"{top:.0f}", f"{100 * vf_g / top:.0f}%",
            f"{vf_mse:.4g}", f"{fa_mse:.4g}", f"{vf_mse / fa_mse:.4f}",
        ])
        print(f"  {name}: vecfusion {vf_it:.3f} s/it, faiss {fa_it:.3f} s/it", flush=True)
    header = [
        "dataset", "train rows x dim", "k", "vecfusion s/iter", "faiss s/iter", "time ratio",
        "vecfusion assign GFLOP/s", "faiss assign GFLOP/s", "sgemm GFLOP/s (numpy)",
        "vecfusion % of sgemm", "vecfusion MSE (full data)", "faiss MSE (full data)", "MSE ratio",
    ]
    text = (
        f"KMeans, {ITERATIONS} iterations, same training rows; medians of {repeat} run(s). "
        f"Machine: {env.get('cpu', '?')}, {env['cpus']} CPUs, faiss OMP_WAIT_POLICY={env['omp_wait_policy']}.\n\n"
        + markdown(header, table)
    )
    write_results("kmeans", rows, text)
