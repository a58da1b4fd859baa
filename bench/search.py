"""ANN search: recall@10 and latency of vecfusion vs faiss IndexIVFPQ (+IndexRefineFlat) vs
pylance on the same vectors, queries and ground truth, at nprobes 1/5/10/20/50 with and
without refinement (refine_factor / k_factor 10).

Latency is one query per call on one thread: vecfusion through its Rust API (search + fetch
of the ids) and through SQL (`ORDER BY l2_distance(...) LIMIT 10`, planning included); faiss
with one OpenMP thread; Lance through `to_table(nearest=...)`. Batched QPS runs all queries
on every core (the median of 5 passes over the queries, for each engine); vecfusion's SQL is
timed as text and as a prepared statement (`EXECUTE`) through the Rust API, and as text typed
into the `vecfusion` shell and passed to `session.sql` in Python (the same profile's shell and
wheel, built by the harness).
The same built indexes are searched `--repeat` times (default 3), the engines interleaved per
run, vecfusion's after one untimed batched pass that reads every partition (its steady state); the tables give the median and the minimum (best for QPS) of every figure, the JSON every
run. Draws recall@10 against p50 latency per dataset (PNG).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import datasets
from cases import (build_binaries, figure, install_python_package, machine, markdown, save_figure,
                   write_results)

HERE = Path(__file__).resolve().parent
CASES = [
    ("gmm-1m-128", 1024, 16),
    ("sift-opencv-100k-128", 256, 16),
    # 384 dimensions, the width of small text-embedding models (all-MiniLM-L6-v2): synthetic,
    # with the partitions and sub-vectors of the held-out text-embedding case.
    ("gmm-150k-384", 256, 48),
    ("fashion-mnist-60k-784", 256, 16),
]
QUICK = [("sift-opencv-100k-128", 256, 16)]
NPROBES = [1, 5, 10, 20, 50]
REFINES = [1, 10]
K = 10
# Passes over the 1,000 queries per batched-throughput figure, their median taken (the same in
# vecfusion-bench's search).
BATCH_PASSES = 5


def recall(found: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(g[:K])) / K for f, g in zip(found, gt)]))


def build_faiss(base: np.ndarray, nlist: int, m: int):
    import faiss

    d = base.shape[1]
    ivf = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, nlist, m, 8)
    ivf.train(base)
    ivf.add(base)
    refined = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(base))
    refined.k_factor = 10
    return ivf, refined


def one_at_a_time(index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Searches a faiss index with each query alone: the latencies (ms) and the ids found."""
    lat = []
    found = np.empty((len(queries), K), dtype=np.int64)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        _, ids = index.search(q[None, :], K)
        lat.append((time.perf_counter() - t) * 1e3)
        found[i] = ids[0]
    return lat, found


def search_faiss(built, queries: np.ndarray, gt: np.ndarray) -> list[dict]:
    import faiss

    ivf, refined = built
    rows = []
    for refine in REFINES:
        index = refined if refine > 1 else ivf
        for nprobe in NPROBES:
            ivf.nprobe = nprobe
            faiss.omp_set_num_threads(1)
            lat, found = one_at_a_time(index, queries)
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            passes = []
            for _ in range(BATCH_PASSES):
                t = time.perf_counter()
                index.search(queries, K)
                passes.append(len(queries) / (time.perf_counter() - t))
            qps = statistics.median(passes)
            rows.append({"engine": "faiss", "nprobes": nprobe, "refine_factor": refine,
                         "recall": recall(found, gt), "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99)), "qps_batch": qps})
    return rows


# Statements per (nprobes, refine) point timed through the shell and through Python (the same
# count vecfusion-bench times its SQL with).
SURFACE_QUERIES = 200


def vector_literals(queries: np.ndarray) -> list[str]:
    """The first SURFACE_QUERIES queries as SQL vector literals (float32's shortest decimal
    for each number, as the Rust benchmark writes them)."""
    return ["[" + ",".join(str(v) for v in q) + "]" for q in queries[:SURFACE_QUERIES]]


def knn_sql(literal: str) -> str:
    return f"SELECT id FROM t ORDER BY l2_distance(embedding, {literal}) LIMIT {K}"


def points() -> list[tuple[int, int]]:
    return [(nprobe, refine) for refine in REFINES for nprobe in NPROBES]


def time_shell(shell: Path, dataset: Path, literals: list[str]) -> dict[tuple[int, int], float]:
    """The p50 ms of a query typed into the `vecfusion` shell, per (nprobes, refine): the
    statements are piped to its prompt one per line, as a user types them, and each one's
    time is what the shell's timing line reports (parse, plan, run and print the CSV)."""
    lines = [f"CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dataset}';"]
    for nprobe, refine in points():
        lines += [f"SET vecfusion.nprobes = {nprobe};", f"SET vecfusion.refine_factor = {refine};"]
        lines += [knn_sql(lit) + ";" for lit in literals]
    done = subprocess.run([str(shell), "--format", "csv"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=True)
    timed = [line.split(" row(s) in ", 1)[1].rstrip(".") for line in done.stderr.splitlines()
             if " row(s) in " in line]
    if len(timed) != len(lines):
        raise RuntimeError(f"the shell timed {len(timed)} of {len(lines)} statements:\n{done.stderr[-2000:]}")
    ms = [float(t.split()[0]) * (1.0 if t.endswith("ms") else 1e3) for t in timed]
    out, at = {}, 1
    for point in points():
        at += 2
        out[point] = statistics.median(ms[at:at + len(literals)])
        at += len(literals)
    return out


def time_python(dataset: Path, literals: list[str]) -> dict[tuple[int, int], float]:
    """The p50 ms of `session.sql(text).to_arrow()` from Python, per (nprobes, refine)."""
    import vecfusion

    session = vecfusion.connect()
    session.sql(f"CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dataset}'")
    out = {}
    for nprobe, refine in points():
        session.sql(f"SET vecfusion.nprobes = {nprobe}")
        session.sql(f"SET vecfusion.refine_factor = {refine}")
        lat = []
        for lit in literals:
            text = knn_sql(lit)
            t = time.perf_counter()
            session.sql(text).to_arrow()
            lat.append((time.perf_counter() - t) * 1e3)
        out[(nprobe, refine)] = statistics.median(lat)
    return out


def build_lance(base_path: Path, nlist: int, m: int, tmp: Path):
    import lance

    path = tmp / "lance"
    subprocess.run([sys.executable, str(HERE / "baselines.py"), "lance_write", str(base_path), str(path)],
                   check=True, capture_output=True)
    ds = lance.dataset(str(path))
    ds.create_index("vector", index_type="IVF_PQ", num_partitions=nlist, num_sub_vectors=m, num_bits=8, metric="L2")
    return ds


def search_lance(ds, queries: np.ndarray, gt: np.ndarray) -> list[dict]:
    rows = []
    for refine in REFINES:
        for nprobe in NPROBES:
            lat = []
            found = np.empty((len(queries), K), dtype=np.int64)
            for i, q in enumerate(queries):
                t = time.perf_counter()
                tbl = ds.to_table(columns=["id"], nearest={"column": "vector", "q": q, "k": K, "nprobes": nprobe,
                                                           "refine_factor": refine if refine > 1 else None})
                lat.append((time.perf_counter() - t) * 1e3)
                ids = tbl.column("id").to_numpy()
                found[i, : len(ids)] = ids
                found[i, len(ids):] = -1
            rows.append({"engine": "lance", "nprobes": nprobe, "refine_factor": refine,
                         "recall": recall(found, gt), "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99)), "qps_batch": None})
    return rows


# Latencies: the median over runs is the figure, the minimum beside it; throughput: median and best.
LATENCIES = ["p50_ms", "p99_ms", "p50_ms_surface_queries", "sql_p50_ms", "sql_prepared_p50_ms",
             "shell_p50_ms", "python_p50_ms"]


def aggregate(runs: list[list[dict]]) -> list[dict]:
    """One row per (engine, nprobes, refine) from several runs of the same indexes: every
    figure as the median over runs, with `<figure>_min` (`qps_batch_max`) and `<figure>_runs`."""
    out = []
    for same in zip(*runs):
        row = dict(same[0])
        for key in LATENCIES + ["qps_batch", "recall"]:
            values = [r[key] for r in same if r.get(key) is not None]
            if not values:
                continue
            row[key] = statistics.median(values)
            row[f"{key}_runs"] = values
            if key in LATENCIES:
                row[f"{key}_min"] = min(values)
            elif key == "qps_batch":
                row["qps_batch_max"] = max(values)
        row["runs"] = len(same)
        out.append(row)
    return out


def cell(row: dict, key: str, digits: int) -> str:
    """`median (min)` of a latency."""
    return f"{row[key]:.{digits}f} ({row[key + '_min']:.{digits}f})"


def plot(name: str, rows: list[dict], suffix: str = "") -> Path:
    fig, ax = figure()
    for engine, key in [("vecfusion", "p50_ms"), ("vecfusion", "sql_p50_ms"), ("faiss", "p50_ms"), ("lance", "p50_ms")]:
        for refine, style in [(1, "--"), (10, "-")]:
            pts = [(r[key], r["recall"]) for r in rows if r["engine"] == engine and r["refine_factor"] == refine and r.get(key)]
            if pts:
                label = f"{engine}{' (SQL)' if key == 'sql_p50_ms' else ''}{', refine 10' if refine > 1 else ''}"
                ax.plot(*zip(*pts), style, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (log scale; one thread)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"{name}: recall@10 vs latency (nprobes 1–50)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, f"search-{name}{suffix}.png")


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    # VECFUSION_KERNEL_PATH=avx2 caps vecfusion's kernels at AVX2; faiss is held to the same
    # level, and the results get their own files (search-avx2.md, ...).
    cap = os.environ.get("VECFUSION_KERNEL_PATH", "").strip().lower()
    suffix = f"-{cap}" if cap else ""
    import faiss
    if cap == "avx2":
        faiss.SIMDConfig.set_level(faiss.SIMDLevel_AVX2)
    elif cap:
        sys.exit(f"VECFUSION_KERNEL_PATH={cap}: the search benchmark holds faiss to avx2 only")
    env = machine() | {"faiss_simd_level": faiss.SIMDConfig.get_level_name()}
    shell = build_binaries("vecfusion")[0]
    install_python_package()
    table, all_rows = [], []
    for name, nlist, m in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base_path, q_path, _ = datasets.ensure(name)
        gt_path = datasets.ground_truth(name)
        base = np.load(base_path)
        queries = np.load(q_path)[:1000]
        gt = np.load(gt_path)[:1000]
        literals = vector_literals(queries)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            np.save(tmp / "q.npy", np.ascontiguousarray(queries, dtype=np.float32))
            np.save(tmp / "gt.npy", gt.astype(np.float32))
            subprocess.run([str(binary), "load", "--data", str(base_path), "--dataset", str(tmp / "vf")],
                           check=True, capture_output=True)
            faiss_index = build_faiss(base, nlist, m)
            lance_ds = build_lance(base_path, nlist, m, tmp)
            # The same three indexes searched `repeat` times, engines interleaved per run (the
            # first vecfusion run builds its index; later runs open it).
            runs = {"vecfusion": [], "faiss": [], "lance": []}
            for _ in range(max(1, repeat)):
                out = subprocess.run(
                    [str(binary), "search", "--dataset", str(tmp / "vf"), "--queries", str(tmp / "q.npy"),
                     "--groundtruth", str(tmp / "gt.npy"),
                     "--index", f"USING IVF_PQ WITH (num_partitions = {nlist}, num_sub_vectors = {m}, accelerator = 'cpu')"],
                    check=True, capture_output=True, text=True).stdout
                shell_p50 = time_shell(shell, tmp / "vf", literals)
                python_p50 = time_python(tmp / "vf", literals)
                runs["vecfusion"].append([
                    row | {"engine": "vecfusion",
                           "shell_p50_ms": shell_p50[(row["nprobes"], row["refine_factor"])],
                           "python_p50_ms": python_p50[(row["nprobes"], row["refine_factor"])]}
                    for row in map(json.loads, filter(lambda line: line.startswith("{"), out.splitlines()))])
                runs["faiss"].append(search_faiss(faiss_index, queries, gt))
                runs["lance"].append(search_lance(lance_ds, queries, gt))
            rows = [r for engine in runs.values() for r in aggregate(engine)]
            del faiss_index, lance_ds
        png = plot(name, rows, suffix)
        for r in rows:
            r.update({"bench": "search", "dataset": name, "nlist": nlist, "m": m, "machine": env})
        all_rows += rows
        by = {(r["engine"], r["nprobes"], r["refine_factor"]): r for r in rows}
        for nprobe, refine in points():
            v, f, l = (by.get((e, nprobe, refine)) for e in ("vecfusion", "faiss", "lance"))
            table.append([name, nprobe, refine,
                          f"{v['recall']:.3f}", f"{f['recall']:.3f}", f"{l['recall']:.3f}",
                          cell(v, "p50_ms", 3), cell(v, "sql_p50_ms", 3), cell(v, "sql_prepared_p50_ms", 3),
                          cell(v, "shell_p50_ms", 3), cell(v, "python_p50_ms", 3),
                          *(f"{v[key] / v.get('p50_ms_surface_queries', v['p50_ms']):.1f}×"
                            for key in ("sql_p50_ms", "shell_p50_ms", "python_p50_ms")),
                          cell(f, "p50_ms", 3), cell(l, "p50_ms", 2),
                          f"{v['p99_ms']:.2f}", f"{f['p99_ms']:.2f}", f"{l['p99_ms']:.2f}",
                          f"{v['qps_batch']:.0f} ({v['qps_batch_max']:.0f})",
                          f"{f['qps_batch']:.0f} ({f['qps_batch_max']:.0f})"])
        print(f"  {name}: plot {png}", flush=True)
    header = ["dataset", "nprobes", "refine", "vecfusion R@10", "faiss R@10", "lance R@10",
              "vecfusion p50 ms (API)", "vecfusion p50 ms (SQL)", "vecfusion p50 ms (EXECUTE)",
              "vecfusion p50 ms (shell)", "vecfusion p50 ms (Python)",
              "SQL / API", "shell / API", "Python / API", "faiss p50 ms", "lance p50 ms",
              "vecfusion p99 ms", "faiss p99 ms", "lance p99 ms", "vecfusion QPS (batch)", "faiss QPS (batch)"]
    runs = max(1, repeat)
    text = (f"ANN search, k = 10, 1,000 queries. Machine: {env.get('cpu', '?')} "
            f"({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs; bench profile "
            f"{env['profile']}; vecfusion kernels: {env['kernel_path']}, faiss SIMD level "
            f"{env['faiss_simd_level']}; commit {env.get('git_commit')}. Every latency is the median of "
            f"{runs} runs of the same indexes (minimum in parentheses), QPS the median (best); "
            f"SQL / API compares the medians over the same first {SURFACE_QUERIES} queries (the API's "
            f"median over all of them is the API column). SQL is the Rust API's `vf_sql(text)` collected; shell is a "
            f"statement typed into the `vecfusion` shell (piped to its prompt) as its timing line "
            f"reports it, printing included; Python is `session.sql(text).to_arrow()` "
            f"({SURFACE_QUERIES} queries each).\n\n"
            + markdown(header, table))
    write_results(f"search{suffix}", all_rows, text)
