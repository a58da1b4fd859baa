"""Faiss and Lance operations run in their own process, so each one's peak RSS is its own.

    python baselines.py faiss_build <base.npy> <nlist> <m> [<out.faissindex> [<sample_rate>]]
    python baselines.py lance_write <base.npy> <dataset dir> [<start> <end> [append]]
    python baselines.py lance_build <dataset dir> <nlist> <m> [<max_iterations> [<sample_rate>]]
    python baselines.py lance_optimize <dataset dir>
    python baselines.py lance_search <dataset dir> <queries.npy> <gt.npy> <nprobes,...> [<refine>]

Each prints one JSON line: seconds (the operation only, not loading), peak_rss_mb.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from the
    parent, so a child of a large harness process would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def faiss_build(base: str, nlist: str, m: str, out: str | None = None, sample_rate: str = "256") -> dict:
    """`sample_rate`: IVF training rows per list (Faiss's `max_points_per_centroid`, 256 by
    default like vecfusion's `sample_rate`)."""
    import faiss

    x = np.load(base)
    d = x.shape[1]
    t = time.perf_counter()
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, int(nlist), int(m), 8)
    index.cp.max_points_per_centroid = int(sample_rate)
    index.train(x)
    train = time.perf_counter() - t
    index.add(x)
    seconds = time.perf_counter() - t
    if out:
        faiss.write_index(index, out)
    return {"seconds": seconds, "train_seconds": train, "add_seconds": seconds - train}


def lance_write(base: str, path: str, start: str = "0", end: str = "-1", mode: str = "overwrite") -> dict:
    """Rows start:end of the file (all by default) as a new dataset, or appended to one; ids are
    the row numbers, so the file's ground truth applies to a dataset written in slices."""
    import lance
    import pyarrow as pa

    x = np.load(base, mmap_mode="r")
    lo, hi = int(start), (len(x) if int(end) < 0 else int(end))
    x = np.ascontiguousarray(x[lo:hi])
    d = x.shape[1]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    table = pa.table({"id": pa.array(np.arange(lo, hi, dtype=np.int64)), "vector": vectors})
    t = time.perf_counter()
    lance.write_dataset(table, path, mode=mode)
    return {"seconds": time.perf_counter() - t, "rows": hi - lo}


def lance_build(path: str, nlist: str, m: str, max_iterations: str | None = None,
                sample_rate: str | None = None) -> dict:
    import lance

    ds = lance.dataset(path)
    kwargs = {"max_iterations": int(max_iterations)} if max_iterations else {}
    if sample_rate:
        kwargs["sample_rate"] = int(sample_rate)
    t = time.perf_counter()
    ds.create_index(
        "vector", index_type="IVF_PQ", num_partitions=int(nlist), num_sub_vectors=int(m),
        num_bits=8, metric="L2", replace=True, **kwargs,
    )
    return {"seconds": time.perf_counter() - t}


def lance_index_deltas(ds) -> int:
    """How many pieces (a base index plus deltas) the dataset's vector index has."""
    return sum(len(i.segments) for i in ds.describe_indices())


def lance_optimize(path: str) -> dict:
    """`optimize_indices` the way vecfusion's OPTIMIZE VECTOR INDEX works: the unindexed rows
    are encoded with the existing model into a new delta index, nothing is merged
    (num_indices_to_merge = 0; Lance's default of 1 would also rewrite the last index)."""
    import lance

    ds = lance.dataset(path)
    before = lance_index_deltas(ds)
    t = time.perf_counter()
    ds.optimize.optimize_indices(num_indices_to_merge=0)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "deltas_before": before, "deltas_after": lance_index_deltas(lance.dataset(path))}


def lance_search(path: str, queries: str, gt: str, nprobes: str, refine: str = "1", k: int = 10) -> dict:
    """recall@k and one-query p50 latency of the dataset's index at each of `nprobes`
    (comma-separated), with `refine` candidates per result re-ranked (1: none):
    {"runs": [{nprobes, recall, p50_ms}, ...]}."""
    import lance

    ds = lance.dataset(path)
    q, truth = np.load(queries), np.load(gt).astype(np.int64)
    runs = []
    for probes in map(int, nprobes.split(",")):
        hits, lat = 0, []
        for i, v in enumerate(q):
            t = time.perf_counter()
            ids = ds.to_table(columns=["id"], nearest={"column": "vector", "q": v, "k": k, "nprobes": probes,
                                                       "refine_factor": int(refine) if int(refine) > 1 else None}
                              ).column("id").to_numpy()
            lat.append((time.perf_counter() - t) * 1e3)
            hits += len(set(ids.tolist()) & set(truth[i, :k].tolist()))
        runs.append({"nprobes": probes, "recall": hits / (k * len(q)), "p50_ms": float(np.percentile(lat, 50))})
    return {"runs": runs}


if __name__ == "__main__":
    fn = {"faiss_build": faiss_build, "lance_write": lance_write, "lance_build": lance_build,
          "lance_optimize": lance_optimize, "lance_search": lance_search}[sys.argv[1]]
    result = fn(*sys.argv[2:])
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
