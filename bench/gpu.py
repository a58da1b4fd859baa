"""GPU index builds: vecfusion `accelerator = 'cuda'` vs `accelerator = 'cpu'` (the machine's
cores) vs the PyTorch reference (`gpu_torch_reference.py`), same vectors, same work, one run.
Needs numpy and torch (a GPU machine's PyTorch install) and a `vecfusion-bench` built by
`scripts/build-cuda.sh`; `scripts/gpu-bench.sh` sets it up and says how to run it on a lease.

    python bench/gpu.py --bench BIN --work /tmp/gpu --out results/ [--device cpu] [--cases ...]

Fair by construction:
- the same work: IVF_PQ, num_partitions × 256 IVF training rows, 20 IVF and 25 PQ iterations,
  `tolerance = 0` for vecfusion (the reference has no early stop), iterations run recorded;
- warm-up (CUDA context, kernel loading) outside the timers for both, reported apart;
- GPU memory from the same source for both: nvidia-smi's used memory sampled every 100 ms,
  the rise over the level before the command;
- TFLOP/s computed the same way for both, from each engine's own IVF training seconds:
  2 × training rows × partitions × dim × iterations / seconds (assignment GEMMs only, so an
  under-estimate of the work done; the same under-estimate for both);
- data generated on the device (`gpu_data.py`), not in single-threaded numpy.

Cases run in priority order, smoke case first; every command has a timeout, and a deadline
stops starting new ones so the table is still written. Every result line is appended to
gpu.jsonl as it is produced and gpu.md is rewritten after each, so a cut run still reports.
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

import gpu_data
from cases import machine, markdown

HERE = Path(__file__).resolve().parent
# (dataset, partitions, sub-vectors), in the order they run: the smoke case checks the setup
# in seconds, LanceDB's headline (1M × 1536, 4096 partitions) comes last.
CASES = [
    ("gmm-20k-64", 64, 8),
    ("gmm-1m-128", 1024, 16),
    ("gmm-1m-768", 1024, 48),
    ("gmm-1m-1536", 4096, 48),
]
IVF_ITERATIONS = 20
PQ_ITERATIONS = 25
SAMPLE_RATE = 256
# (case, engine) pairs left out by default: vecfusion's CPU path on 1M × 1536 with 4096
# partitions takes minutes a 15-minute lease does not have.
SKIP = "gmm-1m-1536:cpu"


class GpuMemory:
    """Samples nvidia-smi's used memory every 100 ms; `rise_mb()` is the peak over the level
    before the command. `None` where nvidia-smi does not answer (no GPU)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.baseline = self.read()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def read() -> float | None:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True, timeout=5,
            ).stdout
            return float(out.strip().splitlines()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return None

    def run(self) -> None:
        while not self.stop.wait(0.1):
            v = self.read()
            if v is not None:
                self.samples.append(v)

    def __enter__(self) -> "GpuMemory":
        if self.baseline is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def rise_mb(self) -> float | None:
        if self.baseline is None:
            return None
        return max(self.samples, default=self.baseline) - self.baseline


def run_json(cmd: list[str], timeout: float) -> dict:
    """The last stdout line of `cmd` as JSON, or {"error": ...} (failure or timeout)."""
    print("+", " ".join(cmd), flush=True)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-2000:]}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no JSON result: {done.stdout.strip()[-500:]}"}


def ivf_tflops(r: dict, dim: int, k: int) -> float | None:
    """The IVF training's assignment GEMM work over the engine's own IVF training seconds."""
    seconds = r.get("seconds_train_ivf")
    rows = r.get("ivf_training_rows") or min(r.get("rows_indexed") or 0, k * SAMPLE_RATE)
    iterations = r.get("ivf_iterations_run", IVF_ITERATIONS)
    if not seconds or not rows:
        return None
    return 2.0 * rows * k * dim * iterations / seconds / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="vecfusion-bench built by scripts/build-cuda.sh")
    ap.add_argument("--work", required=True, help="scratch folder for vectors and datasets")
    ap.add_argument("--out", required=True, help="folder for gpu.jsonl and gpu.md")
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--engines", default="cuda,cpu,torch")
    ap.add_argument("--skip", default=SKIP, help="case:engine pairs to leave out, comma-separated")
    ap.add_argument("--device", default="cuda", help="where the data and the PyTorch reference run ('cpu' to rehearse)")
    ap.add_argument("--timeout", type=float, default=240, help="seconds any one command may take")
    ap.add_argument("--deadline", type=float, default=540, help="start no command after this many seconds")
    args = ap.parse_args()
    started = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    engines = args.engines.split(",")
    skip = set(args.skip.split(",")) if args.skip else set()
    info = machine()
    info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True).stdout.strip() if has_nvidia_smi() else None
    rows_out: list[dict] = []

    def left() -> float:
        return args.deadline - (time.perf_counter() - started)

    def record(r: dict) -> None:
        r["machine"] = info
        print(json.dumps(r), flush=True)
        rows_out.append(r)
        with open(out / "gpu.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        write_table(rows_out, out / "gpu.md", info)

    for name, k, m in CASES:
        if name not in args.cases.split(","):
            continue
        _, dim = gpu_data.shape_of(name)
        if left() <= 0:
            record({"case": name, "error": "deadline reached before this case"})
            continue
        vectors = work / f"{name}.npy"
        if not vectors.exists():
            seconds = gpu_data.generate(name, vectors, args.device)
            print(f"{name}: vectors generated on {args.device} in {seconds:.1f} s", flush=True)
        dataset = work / name
        if not dataset.exists():
            r = run_json([args.bench, "load", "--data", str(vectors), "--dataset", str(dataset)], args.timeout)
            if "error" in r:
                record({"case": name, "engine": "load", **r})
                continue
        for engine in engines:
            if f"{name}:{engine}" in skip:
                continue
            if left() <= 0:
                record({"case": name, "engine": engine, "error": "deadline reached"})
                continue
            timeout = min(args.timeout, max(left(), 1.0) + 60)
            with GpuMemory() as mem:
                if engine == "torch":
                    r = run_json([sys.executable, str(HERE / "gpu_torch_reference.py"), "--data", str(vectors),
                                  "--partitions", str(k), "--sub-vectors", str(m), "--device", args.device,
                                  "--ivf-iterations", str(IVF_ITERATIONS), "--pq-iterations", str(PQ_ITERATIONS)],
                                 timeout)
                else:
                    index = (f"USING IVF_PQ WITH (num_partitions = {k}, num_sub_vectors = {m}, "
                             f"sample_rate = {SAMPLE_RATE}, max_iterations = {IVF_ITERATIONS}, "
                             f"pq_max_iterations = {PQ_ITERATIONS}, tolerance = 0, accelerator = '{engine}')")
                    r = run_json([args.bench, "build", "--dataset", str(dataset), "--index", index,
                                  "--warmup", engine], timeout)
                    r.setdefault("ivf_iterations_run", IVF_ITERATIONS)
                    r.setdefault("pq_iterations_run", PQ_ITERATIONS)
            r.update({"case": name, "engine": engine if engine == "torch" else f"vecfusion-{engine}",
                      "gpu_memory_rise_mb": mem.rise_mb(), "ivf_tflops": ivf_tflops(r, dim, k)})
            record(r)
    print(f"done in {time.perf_counter() - started:.0f} s; results in {out}", flush=True)


def has_nvidia_smi() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def write_table(rows: list[dict], path: Path, info: dict) -> None:
    def f(v, fmt=".2f"):
        return format(v, fmt) if isinstance(v, (int, float)) else "–"

    header = ["case", "engine", "device", "warm-up s", "total s", "sample s", "IVF train s", "PQ train s",
              "encode s", "write s", "IVF TFLOP/s", "GPU memory rise MB", "error"]
    table = []
    for r in rows:
        table.append([
            r.get("case", "?"), r.get("engine", "–"), r.get("accelerator", r.get("device", "–")),
            f(r.get("seconds_warmup")), f(r.get("seconds_total")), f(r.get("seconds_sample")),
            f(r.get("seconds_train_ivf")), f(r.get("seconds_train_pq", r.get("seconds_train_quantizer"))),
            f(r.get("seconds_encode")), f(r.get("seconds_write")), f(r.get("ivf_tflops"), ".3g"),
            f(r.get("gpu_memory_rise_mb"), ".0f"),
            str(r.get("error", ""))[:80].replace("|", "/").replace("\n", " "),
        ])
    lines = [f"<!-- bench/gpu.py, {info.get('time')}, commit {info.get('git_commit')} -->", markdown(header, table), ""]
    peaks = [r for r in rows if "sgemm_fp32_tflops" in r]
    peak = (f"measured matmul peak fp32 {peaks[-1]['sgemm_fp32_tflops']:.1f} TFLOP/s"
            + (f", TF32 {peaks[-1]['sgemm_tf32_tflops']:.1f} TFLOP/s" if "sgemm_tf32_tflops" in peaks[-1] else "")
            if peaks else "no matmul peak measured")
    lines.append(f"GPU: {info.get('gpu') or 'none'}; {peak}. CPU: {info.get('cpu')} "
                 f"({', '.join(info.get('cpu_flags') or [])}), {os.cpu_count()} cores.")
    lines.append("Same work for every engine: IVF_PQ, partitions × 256 IVF training rows, "
                 f"{IVF_ITERATIONS} IVF and {PQ_ITERATIONS} PQ iterations, no early stop; warm-up not timed.")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
