"""Registry of benchmark cases and helpers they share."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def build_bench_binary() -> Path:
    """Builds `vecfusion-bench` in the release profile (VECFUSION_BENCH_PROFILE=dev for a
    quick look: the numeric kernels are optimised there too, SQL planning is not) and returns
    its path. Features are resolved for the whole workspace (`--workspace --bin`), as the
    test command builds them: `-p vecfusion-bench` alone would unify them differently and
    rebuild DataFusion instead of reusing the test build's artifacts."""
    return build_binaries("vecfusion-bench")[0]


def build_binaries(*names: str) -> list[Path]:
    """Builds the workspace's binaries `names` in the bench profile; returns their paths."""
    profile = bench_profile()
    args = [a for name in names for a in ("--bin", name)]
    subprocess.check_call(["cargo", "build", "--quiet", "--profile", profile, "--workspace", *args],
                          cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return [target / ("debug" if profile == "dev" else profile) / name for name in names]


def bench_profile() -> str:
    """The cargo profile benchmarks build in: release, or VECFUSION_BENCH_PROFILE."""
    return os.environ.get("VECFUSION_BENCH_PROFILE", "release")


def install_python_package() -> None:
    """Builds the `vecfusion` wheel in the bench binary's profile (maturin, sharing the cargo
    target directory) and installs it into this environment, replacing any older one."""
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.check_call([sys.executable, "-m", "maturin", "build", "--quiet", "--profile",
                               bench_profile(), "--interpreter", sys.executable, "--out", wheels],
                              cwd=ROOT / "python")
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--force-reinstall",
                               "--no-deps", *map(str, Path(wheels).glob("vecfusion-*.whl"))])


# /proc/cpuinfo's CPU identification, as result files name it: "AMD EPYC" alone does not tell
# Zen 3 (family 25, AVX2 only) from Zen 4 (25) or Zen 5 (26).
CPU_ID_FIELDS = {"cpu family": "cpu_family", "model": "cpu_model"}
# The instruction-set extensions the kernels choose between, as /proc/cpuinfo names them.
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "avx_vnni", "avx512_vp2intersect")


def _output(cmd: list[str]) -> str | None:
    """What `cmd` prints, or None where it is missing or fails."""
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict:
    """What a result was measured on and with: CPU model and SIMD flags, cores, library
    versions, the bench binary's profile, the git commit and the time."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "profile": bench_profile()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and "cpu" not in info:
                info["cpu"] = line.split(":", 1)[1].strip()
            key, _, value = line.partition(":")
            if key.strip() in CPU_ID_FIELDS:
                info.setdefault(CPU_ID_FIELDS[key.strip()], int(value))
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["cpu_flags"] = [f for f in SIMD_FLAGS if f in flags]
                break
    except OSError:
        pass
    info["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "default")
    # vecfusion's kernels capped at an instruction set (an AVX-512 host measuring AVX2 code).
    info["kernel_path"] = os.environ.get("VECFUSION_KERNEL_PATH", "widest")
    # A GPU machine gets a copy of the tree without .git or a Rust toolchain: the commit then
    # comes from VECFUSION_GIT_COMMIT (scripts/gpu-bench.sh reads it from the build's commit.txt).
    info["git_commit"] = os.environ.get("VECFUSION_GIT_COMMIT") or _output(["git", "rev-parse", "HEAD"])
    if info["git_commit"] and "VECFUSION_GIT_COMMIT" not in os.environ and _output(
            ["git", "status", "--porcelain", "--untracked-files=no"]):
        info["git_commit"] += "-dirty"
    info["rustc"] = _output(["rustc", "--version"])
    versions = {}
    for module in ("numpy", "faiss", "lance", "pyarrow", "torch"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001  (a missing or broken baseline is recorded, not fatal)
            versions[module] = None
    info["versions"] = versions
    return info


def load1() -> float:
    return os.getloadavg()[0]


def run_json(cmd: list[str], env: dict | None = None) -> dict:
    """The last line of what `cmd` prints, as JSON; `env` is added to the environment."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=None if env is None else os.environ | env).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_results(case: str, rows: list[dict], table: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{case}.jsonl", "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    header = f"<!-- generated by bench/run.py {case} on {time.strftime('%Y-%m-%d %H:%M')} -->\n"
    (RESULTS / f"{case}.md").write_text(header + table + "\n")
    print(table, flush=True)


def figure():
    """`(fig, ax)` of one off-screen chart, the size every benchmark's plot has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5))


def save_figure(fig, filename: str) -> Path:
    """Writes `fig` to bench/results/`filename` (PNG), releases it and returns the path."""
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / filename
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _kmeans(binary, quick, repeat, only):
    import kmeans

    kmeans.run(binary, quick=quick, repeat=repeat, only=only)


def _take(binary, quick, repeat, only):
    import take

    take.run(binary, quick=quick, repeat=repeat, only=only)


def _build(binary, quick, repeat, only):
    import index_build

    index_build.run(binary, quick=quick, repeat=repeat, only=only)


def _search(binary, quick, repeat, only):
    import search

    search.run(binary, quick=quick, repeat=repeat, only=only)


def _fastscan(binary, quick, repeat, only):
    import fast_scan

    fast_scan.run(binary, quick=quick, repeat=repeat, only=only)


def _optimize(binary, quick, repeat, only):
    import optimize

    optimize.run(binary, quick=quick, repeat=repeat, only=only)


def _embed(binary, quick, repeat, only):
    import embed

    embed.run(binary, quick=quick, repeat=repeat, only=only)


def _distributed(binary, quick, repeat, only):
    import distributed

    distributed.run(binary, quick=quick, repeat=repeat, only=only)


ALL = {"take": _take, "kmeans": _kmeans, "build": _build, "search": _search,
       "fastscan": _fastscan, "optimize": _optimize,
       "embed": _embed, "distributed": _distributed}
