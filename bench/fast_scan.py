"""4-bit PQ scanned in registers against 8-bit PQ, both refined by exact distances, at equal
code bytes per row: does fast scan + refine beat 8-bit PQ + refine at equal recall?

Four indexes per dataset, all IVF with the same partitions:
- vecfusion IVF_PQ, m sub-vectors × 8 bits (float tables of 256 entries);
- vecfusion IVF_PQ, 2m sub-vectors × 4 bits (byte tables in registers, `fast_scan.rs`);
- faiss IndexIVFPQ (m, 8) and IndexIVFPQFastScan (2m, 4), each under IndexRefineFlat.
Every index is searched at nprobes × refine (refine_factor / k_factor; 1 = no refinement),
one query per call on one thread (vecfusion through its Rust API, after one untimed pass
that reads every partition, as a running process has; faiss with one OpenMP thread), `--repeat` times with the engines interleaved; recall@10 is that of the very indexes
timed. The summary gives, per recall target, the fastest operating point (median p50) of each
index that reaches it. Draws recall@10 against p50 per dataset (PNG).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import datasets
from cases import figure, machine, markdown, save_figure, write_results
from search import K, aggregate, one_at_a_time, recall

# (dataset, partitions, 8-bit sub-vectors); the 4-bit index has twice the sub-vectors.
CASES = [
    ("gmm-1m-128", 1024, 16),
    ("sift-opencv-100k-128", 256, 16),
    ("gmm-200k-768", 256, 16),
]
QUICK = [("sift-opencv-100k-128", 256, 16)]
NPROBES = [1, 5, 10, 20, 50]
REFINES = [1, 10, 25]
TARGETS = [0.8, 0.9, 0.95, 0.98]
INDEXES = ["vecfusion 8-bit", "vecfusion 4-bit", "faiss 8-bit", "faiss 4-bit"]


def build_faiss(base: np.ndarray, nlist: int, m: int, bits: int):
    import faiss

    d = base.shape[1]
    if bits == 4:
        ivf = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(d), d, nlist, m, 4)
    else:
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, nlist, m, 8)
    t = time.perf_counter()
    ivf.train(base)
    ivf.add(base)
    built = time.perf_counter() - t
    return ivf, faiss.IndexRefineFlat(ivf, faiss.swig_ptr(base)), built


def search_faiss(built, queries: np.ndarray, gt: np.ndarray, engine: str) -> list[dict]:
    import faiss

    ivf, refined, _ = built
    faiss.omp_set_num_threads(1)
    rows = []
    for refine in REFINES:
        index = refined if refine > 1 else ivf
        refined.k_factor = refine
        for nprobe in NPROBES:
            ivf.nprobe = nprobe
            lat, found = one_at_a_time(index, queries)
            rows.append({"engine": engine, "nprobes": nprobe, "refine_factor": refine,
                         "recall": recall(found, gt), "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99))})
    return rows


def search_vecfusion(binary: Path, dataset: Path, tmp: Path, index: str, engine: str) -> list[dict]:
    out = subprocess.run(
        [str(binary), "search", "--dataset", str(dataset), "--queries", str(tmp / "q.npy"),
         "--groundtruth", str(tmp / "gt.npy"), "--index", index, "--sql-queries", "0",
         "--nprobes", ",".join(map(str, NPROBES)), "--refine", ",".join(map(str, REFINES))],
        check=True, capture_output=True, text=True).stdout
    return [row | {"engine": engine}
            for row in map(json.loads, filter(lambda line: line.startswith("{"), out.splitlines()))]


def fastest(rows: list[dict], engine: str, target: float) -> dict | None:
    """The operating point of `engine` with the lowest median p50 whose recall reaches `target`."""
    ok = [r for r in rows if r["engine"] == engine and r["recall"] >= target]
    return min(ok, key=lambda r: r["p50_ms"], default=None)


def plot(name: str, rows: list[dict]) -> Path:
    fig, ax = figure()
    for engine, colour in zip(INDEXES, ["C0", "C1", "C2", "C3"]):
        for refine, style in zip(REFINES, [":", "-", "--"]):
            pts = sorted((r["p50_ms"], r["recall"]) for r in rows
                         if r["engine"] == engine and r["refine_factor"] == refine)
            if pts:
                ax.plot(*zip(*pts), style, color=colour, marker="o", markersize=3,
                        label=f"{engine}, refine {refine}")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (log scale; one thread)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"{name}: 4-bit fast scan vs 8-bit PQ (nprobes {NPROBES[0]}–{NPROBES[-1]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, f"fastscan-{name}.png")


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    import faiss

    env = machine() | {"faiss_simd_level": faiss.SIMDConfig.get_level_name()}
    summary, points, all_rows = [], [], []
    for name, nlist, m in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base_path, q_path, _ = datasets.ensure(name)
        base = np.load(base_path)
        queries = np.load(q_path)[:1000]
        gt = np.load(datasets.ground_truth(name))[:1000]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            np.save(tmp / "q.npy", np.ascontiguousarray(queries, dtype=np.float32))
            np.save(tmp / "gt.npy", gt.astype(np.float32))
            vf = {}
            for bits, subvectors in [(8, m), (4, 2 * m)]:
                path = tmp / f"vf{bits}"
                subprocess.run([str(binary), "load", "--data", str(base_path), "--dataset", str(path)],
                               check=True, capture_output=True)
                vf[f"vecfusion {bits}-bit"] = (path, (
                    f"USING IVF_PQ WITH (num_partitions = {nlist}, num_sub_vectors = {subvectors}, "
                    f"num_bits = {bits}, accelerator = 'cpu')"))
            fa = {"faiss 8-bit": build_faiss(base, nlist, m, 8),
                  "faiss 4-bit": build_faiss(base, nlist, 2 * m, 4)}
            runs = {engine: [] for engine in INDEXES}
            # The same indexes searched `repeat` times, engines interleaved per run (the first
            # vecfusion run builds its index; later runs open it).
            for _ in range(max(1, repeat)):
                for engine, (path, index) in vf.items():
                    runs[engine].append(search_vecfusion(binary, path, tmp, index, engine))
                for engine, built in fa.items():
                    runs[engine].append(search_faiss(built, queries, gt, engine))
            rows = [r for engine in INDEXES for r in aggregate(runs[engine])]
            del fa
        png = plot(name, rows)
        for r in rows:
            bits = 4 if "4-bit" in r["engine"] else 8
            r.update({"bench": "fastscan", "dataset": name, "nlist": nlist, "bits": bits,
                      "m": 2 * m if bits == 4 else m, "machine": env})
        all_rows += rows
        for target in TARGETS:
            best = {e: fastest(rows, e, target) for e in INDEXES}
            fmt = lambda r: "—" if r is None else (f"{r['p50_ms']:.3f} (np {r['nprobes']}, "
                                                     f"rf {r['refine_factor']}, R {r['recall']:.3f})")
            v8, v4 = best["vecfusion 8-bit"], best["vecfusion 4-bit"]
            ratio = f"{v4['p50_ms'] / v8['p50_ms']:.2f}×" if v8 and v4 else "—"
            summary.append([name, target, *(fmt(best[e]) for e in INDEXES), ratio])
        by = {(r["engine"], r["nprobes"], r["refine_factor"]): r for r in rows}
        for refine in REFINES:
            for nprobe in NPROBES:
                cells = [by.get((e, nprobe, refine)) for e in INDEXES]
                points.append([name, nprobe, refine,
                               *(f"{c['recall']:.3f}" for c in cells),
                               *(f"{c['p50_ms']:.3f} ({c['p50_ms_min']:.3f})" for c in cells)])
        print(f"  {name}: plot {png}", flush=True)
    runs = max(1, repeat)
    text = (f"4-bit PQ fast scan vs 8-bit PQ at equal code bytes per row (8-bit: m sub-vectors; "
            f"4-bit: 2m), single-query p50 in ms on one thread, median of {runs} run(s) of the same "
            f"indexes (minimum in parentheses). Machine: {env.get('cpu', '?')} "
            f"({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs; bench profile {env['profile']}; "
            f"vecfusion kernels: {env['kernel_path']}, faiss SIMD level {env['faiss_simd_level']}; "
            f"commit {env.get('git_commit')}.\n\n"
            "Fastest operating point reaching each recall@10 target (np = nprobes, rf = refine "
            "factor; 4-bit / 8-bit compares vecfusion's two):\n\n"
            + markdown(["dataset", "recall ≥", *INDEXES, "vecfusion 4-bit / 8-bit"], summary)
            + "\n\nEvery operating point:\n\n"
            + markdown(["dataset", "nprobes", "refine", *(f"{e} R@10" for e in INDEXES),
                        *(f"{e} p50 ms" for e in INDEXES)], points))
    write_results("fastscan", all_rows, text)
