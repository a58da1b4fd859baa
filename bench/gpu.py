"""GPU index builds on a machine with an NVIDIA GPU: vecfusion `accelerator = 'cuda'` vs
`accelerator = 'cpu'` vs the PyTorch reference (`gpu_torch_reference.py`), same vectors,
same iterations, one run. Needs only numpy and torch (a GPU machine's PyTorch install) and
a `vecfusion-bench` built with `scripts/build-cuda.sh`; `scripts/gpu-bench.sh` sets it up.

    python bench/gpu.py --bench target/cuda/release/vecfusion-bench --work /tmp/gpu --out results/

Writes gpu.jsonl and gpu.md (a table) into --out. The data is the benchmarks' Gaussian mixture
(`datasets.py`, written to bench/data/ where it runs: 1M × 1536 float32 is 6 GB, not carried).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import datasets
from cases import markdown

HERE = Path(__file__).resolve().parent
# (dataset, partitions, sub-vectors): the cases, LanceDB's headline last.
CASES = [
    ("gmm-1m-128", 1024, 16),
    ("gmm-1m-768", 1024, 48),
    ("gmm-1m-1536", 4096, 48),
]
# A seconds-long case to check the setup (--cases gmm-20k-64); not run by default.
SMOKE = ("gmm-20k-64", 64, 8)
IVF_ITERATIONS = 20
PQ_ITERATIONS = 25


class GpuMemory:
    """Samples nvidia-smi's used memory every 100 ms; `peak_mb()` is the rise over the baseline."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.baseline = self.read()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def read() -> float:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True, timeout=5,
            ).stdout
            return float(out.strip().splitlines()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return float("nan")

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.samples.append(self.read())

    def __enter__(self) -> "GpuMemory":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def peak_mb(self) -> float:
        return max(self.samples, default=self.baseline) - self.baseline


def run_json(cmd: list[str]) -> dict:
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="vecfusion-bench built with --features cuda")
    ap.add_argument("--work", required=True, help="scratch folder for the vecfusion datasets")
    ap.add_argument("--out", required=True, help="folder for gpu.jsonl and gpu.md")
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--engines", default="cuda,cpu,torch")
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    engines = args.engines.split(",")
    rows_out = []
    for name, k, m in [*CASES, SMOKE]:
        if name not in args.cases.split(","):
            continue
        t = time.perf_counter()
        data, _, _ = datasets.ensure(name)
        print(f"{name}: data ready in {time.perf_counter() - t:.1f} s", flush=True)
        dataset = work / name
        if not dataset.exists():
            run_json([args.bench, "load", "--data", str(data), "--dataset", str(dataset)])
        # The assignment step alone, on the IVF training rows: achieved GFLOP/s.
        sample = work / f"{name}-ivf-sample.npy"
        if not sample.exists():
            np.save(sample, np.load(data, mmap_mode="r")[: k * 256])
        for engine in engines:
            with GpuMemory() as mem:
                if engine == "torch":
                    r = run_json([sys.executable, str(HERE / "gpu_torch_reference.py"), "--data", str(data),
                                  "--partitions", str(k), "--sub-vectors", str(m),
                                  "--ivf-iterations", str(IVF_ITERATIONS), "--pq-iterations", str(PQ_ITERATIONS)])
                else:
                    index = (f"USING IVF_PQ WITH (num_partitions = {k}, num_sub_vectors = {m}, "
                             f"max_iterations = {IVF_ITERATIONS}, pq_max_iterations = {PQ_ITERATIONS}, "
                             f"tolerance = 0, accelerator = '{engine}')")
                    r = run_json([args.bench, "build", "--dataset", str(dataset), "--index", index])
                    r["kmeans"] = run_json([args.bench, "kmeans", "--data", str(sample), "--k", str(k),
                                            "--iterations", "3", "--accelerator", engine,
                                            "--out", str(out / "gpu-kmeans.jsonl")])
            r.update({"case": name, "engine": engine if engine == "torch" else f"vecfusion-{engine}",
                      "gpu_memory_rise_mb": mem.peak_mb()})
            print(json.dumps(r), flush=True)
            rows_out.append(r)
            with open(out / "gpu.jsonl", "a") as f:
                f.write(json.dumps(r) + "\n")
    write_table(rows_out, out / "gpu.md")


def write_table(rows: list[dict], path: Path) -> None:
    def f(v, fmt=".2f"):
        return format(v, fmt) if isinstance(v, (int, float)) else "–"

    header = ["case", "engine", "total s", "sample s", "IVF train s", "PQ train s", "encode s", "write s",
              "assign TFLOP/s", "GPU memory MB", "error"]
    table = []
    for r in rows:
        tflops = r.get("ivf_assign_tflops") or (r.get("kmeans", {}).get("assign_gflops") or 0) / 1e3 or None
        table.append([
            r["case"], r["engine"], f(r.get("seconds_total")), f(r.get("seconds_sample")),
            f(r.get("seconds_train_ivf")), f(r.get("seconds_train_pq", r.get("seconds_train_quantizer"))),
            f(r.get("seconds_encode")), f(r.get("seconds_write")), f(tflops, ".1f"),
            f(r.get("peak_gpu_mb", r.get("gpu_memory_rise_mb")), ".0f"),
            r.get("error", "")[:80].replace("|", "/").replace("\n", " "),
        ])
    lines = [markdown(header, table)]
    peaks = [r for r in rows if "sgemm_fp32_tflops" in r]
    if peaks:
        p = peaks[-1]
        lines.append("")
        lines.append(f"GPU: {p.get('gpu', '?')}; measured matmul peak fp32 {p['sgemm_fp32_tflops']:.1f} TFLOP/s, "
                     f"TF32 {p.get('sgemm_tf32_tflops', float('nan')):.1f} TFLOP/s. CPU: {os.cpu_count()} cores.")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
