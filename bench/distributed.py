"""The same IVF_PQ build in-process and on local Ballista clusters of 1 and 2 executors
(`vecfusion-scheduler`, `vecfusion-executor` on 127.0.0.1), on one dataset, in one run:
cluster overhead = 1-executor cluster / in-process (goal <= 1.15).

Today a build runs as one task on one executor (sample, train and encode inside it), so a
second executor cannot shorten it; the per-stage figures the issue asks for (tasks per stage,
bytes between stages, slowest task per stage) come with the multi-stage build. Figures are the
median of the repetitions with the minimum beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import datasets
from cases import ROOT, machine, markdown, write_results

INDEX = "USING IVF_PQ WITH (num_partitions = {p}, num_sub_vectors = {m}, accelerator = 'cpu', tolerance = 0)"
CASES = [("gmm-1m-128", 1024, 16)]
QUICK = [("gmm-100k-128", 256, 16)]


def build_cluster_binaries() -> None:
    profile = os.environ.get("VECFUSION_BENCH_PROFILE", "release")
    subprocess.check_call(["cargo", "build", "--quiet", "--profile", profile, "--workspace",
                           "--bin", "vecfusion-scheduler", "--bin", "vecfusion-executor"], cwd=ROOT)


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    build_cluster_binaries()
    env = machine()
    rows, table = [], []
    for name, partitions, sub_vectors in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base, _, _ = datasets.ensure(name)
        with tempfile.TemporaryDirectory() as tmp:
            vf = Path(tmp) / "vf"
            subprocess.run([str(binary), "load", "--data", str(base), "--dataset", str(vf)],
                           check=True, capture_output=True)
            out = subprocess.run([str(binary), "distributed", "--dataset", str(vf), "--index",
                                  INDEX.format(p=partitions, m=sub_vectors), "--repeat", str(repeat)],
                                 check=True, capture_output=True, text=True).stdout
        runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for r in runs:
            r.update({"bench": "distributed", "dataset": name, "machine": env})
        rows += runs

        def seconds(executors: int) -> list[float]:
            return [r["wall_seconds"] for r in runs if r["executors"] == executors]

        in_process = statistics.median(seconds(0))
        for executors in (0, 1, 2):
            s = seconds(executors)
            where = "in-process" if executors == 0 else f"cluster, {executors} executor(s)"
            table.append([name, where, f"{min(s):.2f}", f"{statistics.median(s):.2f}",
                          f"{statistics.median(s) / in_process:.2f}", "1"])
    header = ["dataset", "where", "min s", "median s", "÷ in-process (median)", "build tasks"]
    text = (f"{env.get('cpu', '?')} ({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs, "
            f"profile {env['profile']}, commit {env['git_commit']}, {env['time']}\n\n"
            + markdown(header, table))
    print(text)
    write_results("distributed", rows, text)
