"""Faiss and Lance operations run in their own process, so each one's peak RSS is its own.

    python baselines.py faiss_build <base.npy> <nlist> <m> [<out.faissindex>]
    python baselines.py lance_write <base.npy> <dataset dir>
    python baselines.py lance_build <dataset dir> <nlist> <m>

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


def faiss_build(base: str, nlist: str, m: str, out: str | None = None) -> dict:
    import faiss

    x = np.load(base)
    d = x.shape[1]
    t = time.perf_counter()
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, int(nlist), int(m), 8)
    index.train(x)
    train = time.perf_counter() - t
    index.add(x)
    seconds = time.perf_counter() - t
    if out:
        faiss.write_index(index, out)
    return {"seconds": seconds, "train_seconds": train, "add_seconds": seconds - train}


def lance_write(base: str, path: str) -> dict:
    import lance
    import pyarrow as pa

    x = np.load(base)
    n, d = x.shape
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "vector": vectors})
    t = time.perf_counter()
    lance.write_dataset(table, path, mode="overwrite")
    return {"seconds": time.perf_counter() - t}


def lance_build(path: str, nlist: str, m: str) -> dict:
    import lance

    ds = lance.dataset(path)
    t = time.perf_counter()
    ds.create_index(
        "vector", index_type="IVF_PQ", num_partitions=int(nlist), num_sub_vectors=int(m),
        num_bits=8, metric="L2", replace=True,
    )
    return {"seconds": time.perf_counter() - t}


if __name__ == "__main__":
    fn = {"faiss_build": faiss_build, "lance_write": lance_write, "lance_build": lance_build}[sys.argv[1]]
    result = fn(*sys.argv[2:])
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
