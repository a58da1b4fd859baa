"""Index builds: CREATE VECTOR INDEX ... USING IVF_PQ vs faiss IndexIVFPQ (train + add) vs
pylance create_index(IVF_PQ), on the same vectors, engines interleaved in every repetition.

Equal work: vecfusion runs Faiss's iteration counts (IVF 10, PQ 25) with `tolerance = 0`, so
every iteration runs as in Faiss, which has no early stop; Lance gets `max_iterations = 10`
(its IVF KMeans; pylance exposes no PQ iteration count, so its PQ training runs its own).
Faiss runs under both OpenMP wait policies, each in its own process (the policy is read when
OpenMP starts): PASSIVE (idle threads sleep) and ACTIVE (they spin); the better median is the
one compared. Every engine builds in its own process, whose peak RSS is reported (faiss's
includes the base vectors it holds in RAM; vecfusion reads them from its dataset,
memory-mapped). The 4096-partition case (LanceDB's headline size, 1M × 256 here) trains on 64
rows per list in every engine (Faiss's `max_points_per_centroid`, Lance's and vecfusion's
`sample_rate`), so that its flat KMeans fits the run, and is built by vecfusion twice: flat
KMeans, as Faiss, and `ivf_kmeans = 'hierarchical'`, as Lance trains above 256 partitions.
Each timed index is then searched — recall@10 at nprobes 20, refine 1 and 10
— so the quality beside a time is that of the very index timed. Figures are the median over
repetitions with the minimum beside it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import datasets
from cases import load1, machine, markdown, run_json, write_results

HERE = Path(__file__).resolve().parent
# (dataset, partitions, sub-vectors, IVF training rows per partition, vecfusion's IVF KMeans)
CASES = [
    ("gmm-100k-128", 256, 16, 256, ("flat",)),
    ("gmm-1m-128", 1024, 16, 256, ("flat",)),
    ("gmm-200k-768", 256, 48, 256, ("flat",)),
    ("sift-opencv-100k-128", 256, 16, 256, ("flat",)),
    ("fashion-mnist-60k-784", 256, 16, 256, ("flat",)),
    ("gmm-1m-256", 4096, 32, 64, ("flat", "hierarchical")),
]
QUICK = [("gmm-100k-128", 256, 16, 256, ("flat", "hierarchical"))]
POLICIES = ("PASSIVE", "ACTIVE")
RECALL_NPROBES = 20
REFINES = (1, 10)
K = 10


def engine(*args: str) -> dict:
    return run_json([sys.executable, str(HERE / "baselines.py"), *args])


def recall(found: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(g[:K])) / K for f, g in zip(found, gt)]))


def faiss_recall(index_path: Path, base: np.ndarray, queries: np.ndarray, gt: np.ndarray) -> dict:
    """recall@10 of a saved faiss index at RECALL_NPROBES, per refine factor."""
    import faiss

    ivf = faiss.read_index(str(index_path))
    ivf.nprobe = RECALL_NPROBES
    out = {}
    for refine in REFINES:
        index = ivf
        if refine > 1:
            index = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(base))
            index.k_factor = refine
        _, ids = index.search(queries, K)
        out[refine] = recall(ids, gt)
    return out


def vecfusion_recall(binary: Path, vf_dir: Path, q_path: Path, gt_path: Path) -> dict:
    """recall@10 of the dataset's index (the one just built) at RECALL_NPROBES, per refine factor."""
    out = subprocess.run([str(binary), "search", "--dataset", str(vf_dir), "--queries", str(q_path),
                          "--groundtruth", str(gt_path), "--index", "", "--nprobes", str(RECALL_NPROBES),
                          "--refine", ",".join(map(str, REFINES)), "--sql-queries", "1"],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["refine_factor"]: r["recall"] for r in rows}


def lance_recall(lance_dir: Path, q_path: Path, gt_path: Path) -> dict:
    return {refine: engine("lance_search", str(lance_dir), str(q_path), str(gt_path), str(RECALL_NPROBES),
                           str(refine))["runs"][0]["recall"] for refine in REFINES}


def fig(runs: list[dict], key: str, digits: int = 2) -> str:
    """`median (min)` of `key` over runs."""
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f})"


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    env = machine()
    rows, table = [], []
    for name, nlist, m, sample_rate, variants in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base, q_src, _ = datasets.ensure(name)
        gt = np.load(datasets.ground_truth(name))[:1000]
        queries = np.ascontiguousarray(np.load(q_src)[:1000], dtype=np.float32)
        base_rows = np.load(base)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            vf_dir, lance_dir, faiss_path = tmp / "vf", tmp / "lance", tmp / "index.faiss"
            q_path, gt_path = tmp / "q.npy", tmp / "gt.npy"
            np.save(q_path, queries)
            np.save(gt_path, gt.astype(np.float32))
            subprocess.run([str(binary), "load", "--data", str(base), "--dataset", str(vf_dir)],
                           check=True, capture_output=True)
            engine("lance_write", str(base), str(lance_dir))
            vf = {v: [] for v in variants}
            la = []
            fa = {p: [] for p in POLICIES}
            for _ in range(repeat):
                for variant in variants:
                    index = (f"USING IVF_PQ WITH (num_partitions = {nlist}, num_sub_vectors = {m}, "
                             f"sample_rate = {sample_rate}, ivf_kmeans = '{variant}', max_iterations = 10, "
                             "pq_max_iterations = 25, tolerance = 0, accelerator = 'cpu')")
                    r = run_json([str(binary), "build", "--dataset", str(vf_dir), "--index", index, "--keep"])
                    r |= {"load1": load1(), "recall": vecfusion_recall(binary, vf_dir, q_path, gt_path),
                          "ivf_kmeans": variant}
                    subprocess.run([str(binary), "sql", "--dataset", str(vf_dir), "DROP VECTOR INDEX bench_idx ON t"],
                                   check=True, capture_output=True)
                    vf[variant].append(r)
                for policy in POLICIES:
                    r = run_json([sys.executable, str(HERE / "baselines.py"), "faiss_build", str(base), str(nlist),
                                  str(m), str(faiss_path), str(sample_rate)], env={"OMP_WAIT_POLICY": policy})
                    fa[policy].append(r | {"load1": load1(), "omp_wait_policy": policy,
                                           "recall": faiss_recall(faiss_path, base_rows, queries, gt)})
                r = engine("lance_build", str(lance_dir), str(nlist), str(m), "10", str(sample_rate))
                la.append(r | {"load1": load1(), "recall": lance_recall(lance_dir, q_path, gt_path)})
                print(f"  {name}: " + ", ".join(f"vecfusion ({v}) {vf[v][-1]['wall_seconds']:.2f} s" for v in variants)
                      + ", " + ", ".join(f"faiss {p} {fa[p][-1]['seconds']:.2f} s" for p in POLICIES)
                      + f", lance {la[-1]['seconds']:.2f} s", flush=True)
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        rec = lambda runs, refine: statistics.median(r["recall"][refine] for r in runs)  # noqa: E731
        best = min(POLICIES, key=lambda p: med(fa[p], "seconds"))
        f, l = med(fa[best], "seconds"), med(la, "seconds")
        for variant in variants:
            runs = vf[variant]
            v = med(runs, "wall_seconds")
            phases = " / ".join(f"{med(runs, 'seconds_' + p):.2f}" for p in
                                ["sample", "train_ivf", "train_quantizer", "encode", "write"])
            recalls = " / ".join(f"{rec(r, 1):.3f}, {rec(r, 10):.3f}" for r in (runs, fa[best], la))
            rows.append({"bench": "build", "dataset": name, "nlist": nlist, "m": m, "sample_rate": sample_rate,
                         "ivf_kmeans": variant, "repeat": repeat, "machine": env, "vecfusion": runs, "faiss": fa,
                         "faiss_better_policy": best, "lance": la, "lance_max_iterations": 10,
                         "vecfusion_tolerance": 0, "ratio_vecfusion_over_faiss": v / f,
                         "ratio_vecfusion_over_lance": v / l})
            table.append([name, nlist, m, sample_rate, variant, fig(runs, "wall_seconds"),
                          fig(fa["PASSIVE"], "seconds"), fig(fa["ACTIVE"], "seconds"), fig(la, "seconds"),
                          f"{v / f:.2f}", f"{v / l:.2f}", recalls, phases, f"{med(runs, 'peak_rss_mb'):.0f}",
                          f"{med(fa[best], 'peak_rss_mb'):.0f}", f"{med(la, 'peak_rss_mb'):.0f}"])
    header = ["dataset", "partitions", "sub-vectors", "IVF rows per partition", "vecfusion IVF KMeans",
              "vecfusion s", "faiss s (PASSIVE)", "faiss s (ACTIVE)",
              "lance s", "vecfusion / faiss (better policy)", "vecfusion / lance",
              f"recall@10 at nprobes {RECALL_NPROBES}, refine 1, 10 (vecfusion / faiss / lance)",
              "vecfusion phases s (sample / IVF / PQ / encode / write)",
              "vecfusion peak RSS MB", "faiss peak RSS MB", "lance peak RSS MB"]
    text = (f"IVF_PQ build (train + encode + write), median (min) of {repeat} run(s), engines interleaved. "
            "Equal work: vecfusion and faiss IVF 10 / PQ 25 iterations on the same IVF rows per partition, "
            "vecfusion tolerance 0; lance max_iterations 10 (IVF; its PQ iterations are its own) and the same "
            "sample rate. vecfusion's IVF KMeans 'hierarchical' is less work by design (two levels of about "
            "√partitions centroids; faiss's is flat): compare its recall. "
            f"Machine: {env.get('cpu', '?')} ({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs, "
            f"profile {env['profile']}, commit {env.get('git_commit')}.\n\n"
            + markdown(header, table))
    write_results("build", rows, text)
