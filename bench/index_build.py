"""Index builds: CREATE VECTOR INDEX ... USING IVF_PQ vs faiss IndexIVFPQ (train + add) vs
pylance create_index(IVF_PQ), on the same vectors, engines interleaved in every repetition.

vecfusion runs with Faiss's iteration counts (IVF 10, PQ 25) so the comparison is at equal
work; every engine builds in its own process, whose peak RSS is reported (faiss's includes
the base vectors it holds in RAM; vecfusion reads them from its dataset, memory-mapped).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
from cases import load1, machine, markdown, run_json, write_results

HERE = Path(__file__).resolve().parent
# (dataset, partitions, sub-vectors)
CASES = [
    ("gmm-100k-128", 256, 16),
    ("gmm-1m-128", 1024, 16),
    ("gmm-200k-768", 256, 48),
    ("sift-opencv-100k-128", 256, 16),
    ("fashion-mnist-60k-784", 256, 16),
]
QUICK = [("gmm-100k-128", 256, 16)]


def engine(*args: str) -> dict:
    return run_json([sys.executable, str(HERE / "baselines.py"), *args])


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    env = machine()
    rows, table = [], []
    for name, nlist, m in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base, _, _ = datasets.ensure(name)
        with tempfile.TemporaryDirectory() as tmp:
            vf_dir, lance_dir = Path(tmp) / "vf", Path(tmp) / "lance"
            subprocess.run([str(binary), "load", "--data", str(base), "--dataset", str(vf_dir)],
                           check=True, capture_output=True)
            engine("lance_write", str(base), str(lance_dir))
            index = (f"USING IVF_PQ WITH (num_partitions = {nlist}, num_sub_vectors = {m}, "
                     "max_iterations = 10, pq_max_iterations = 25, accelerator = 'cpu')")
            vf, fa, la = [], [], []
            for _ in range(repeat):
                vf.append(run_json([str(binary), "build", "--dataset", str(vf_dir), "--index", index]) | {"load1": load1()})
                fa.append(engine("faiss_build", str(base), str(nlist), str(m)) | {"load1": load1()})
                la.append(engine("lance_build", str(lance_dir), str(nlist), str(m)) | {"load1": load1()})
                print(f"  {name}: vecfusion {vf[-1]['wall_seconds']:.2f} s, faiss {fa[-1]['seconds']:.2f} s, "
                      f"lance {la[-1]['seconds']:.2f} s", flush=True)
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        v, f, l = med(vf, "wall_seconds"), med(fa, "seconds"), med(la, "seconds")
        phases = " / ".join(f"{med(vf, 'seconds_' + p):.2f}" for p in
                            ["sample", "train_ivf", "train_quantizer", "encode", "write"])
        rows.append({"bench": "build", "dataset": name, "nlist": nlist, "m": m, "repeat": repeat,
                     "machine": env, "vecfusion": vf, "faiss": fa, "lance": la,
                     "ratio_vecfusion_over_faiss": v / f, "ratio_vecfusion_over_lance": v / l})
        table.append([name, nlist, m, f"{v:.2f}", f"{f:.2f}", f"{l:.2f}", f"{v / f:.2f}", f"{v / l:.2f}",
                      phases, f"{med(vf, 'peak_rss_mb'):.0f}", f"{med(fa, 'peak_rss_mb'):.0f}",
                      f"{med(la, 'peak_rss_mb'):.0f}"])
    header = ["dataset", "partitions", "sub-vectors", "vecfusion s", "faiss s", "lance s",
              "vecfusion / faiss", "vecfusion / lance",
              "vecfusion phases s (sample / IVF / PQ / encode / write)",
              "vecfusion peak RSS MB", "faiss peak RSS MB", "lance peak RSS MB"]
    text = (f"IVF_PQ build (train + encode + write), medians of {repeat} run(s), engines interleaved. "
            f"Machine: {env.get('cpu', '?')}, {env['cpus']} CPUs, faiss OMP_WAIT_POLICY={env['omp_wait_policy']}.\n\n"
            + markdown(header, table))
    write_results("build", rows, text)
