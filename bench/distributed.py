"""The same IVF_PQ build in-process and on local Ballista clusters of 1 and 2 executors
(`vecfusion-scheduler`, `vecfusion-executor` on 127.0.0.1), on one dataset, in one run:
cluster overhead = 1-executor cluster / in-process (goal <= 1.15).

A build runs as stages (sample tasks, one training task, encode tasks, one commit). For each
cluster run (with a partition per task slot: target_partitions = executors x slots) the
stages come from the executors' logs: tasks per stage (a Ballista task runs
as many partitions as the executor has free slots), the slowest task, the bytes each stage
wrote for the next. On a machine with fewer cores than partitions wall time cannot show
scaling, so the table also gives the stage plan's time with one core per partition: the sum
over stages of the slowest partition (the build's `seconds_total`). Figures are the median of the
repetitions with the minimum beside it; the stage table is the median-time repetition's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import datasets
import numpy as np
from cases import build_binaries, machine, markdown, write_results

INDEX = "USING IVF_PQ WITH (num_partitions = {p}, num_sub_vectors = {m}, accelerator = 'cpu', tolerance = 0)"
CASES = [("gmm-1m-128", 1024, 16)]
QUICK = [("gmm-100k-128", 256, 16)]
FRAGMENTS = 8


def build_cluster_binaries() -> None:
    build_binaries("vecfusion-scheduler", "vecfusion-executor")


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    build_cluster_binaries()
    env = machine()
    rows, table, stage_table = [], [], []
    for name, partitions, sub_vectors in QUICK if quick else CASES:
        if only and name not in only:
            continue
        base, _, _ = datasets.ensure(name)
        total = np.load(base, mmap_mode="r").shape[0]
        with tempfile.TemporaryDirectory() as tmp:
            vf = Path(tmp) / "vf"
            # A table written by several INSERTs: fragments are what encode tasks divide.
            bounds = [total * i // FRAGMENTS for i in range(FRAGMENTS + 1)]
            for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
                subprocess.run([str(binary), "load", "--data", str(base), "--dataset", str(vf),
                                "--rows", f"{start}:{end}"] + (["--append"] if i else []),
                               check=True, capture_output=True)
            out = subprocess.run([str(binary), "distributed", "--dataset", str(vf), "--index",
                                  INDEX.format(p=partitions, m=sub_vectors), "--repeat", str(repeat)],
                                 check=True, capture_output=True, text=True).stdout
        runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for r in runs:
            r.update({"bench": "distributed", "dataset": name, "machine": env})
        rows += runs

        def of(executors: int) -> list[dict]:
            return [r for r in runs if r["executors"] == executors]

        def critical_path(r: dict) -> float:
            # The build's own figure: per stage its slowest partition, summed.
            return r["seconds_total"]

        in_process = statistics.median(r["wall_seconds"] for r in of(0))
        for executors in (0, 1, 2):
            s = [r["wall_seconds"] for r in of(executors)]
            where = "in-process" if executors == 0 else f"cluster, {executors} executor(s)"
            path = statistics.median(critical_path(r) for r in of(executors))
            table.append([name, where, f"{min(s):.2f}", f"{statistics.median(s):.2f}",
                          f"{statistics.median(s) / in_process:.2f}", f"{path:.2f}"])
            if executors == 0:
                continue
            middle = sorted(of(executors), key=lambda r: r["wall_seconds"])[len(s) // 2]
            for st in middle["stages"]:
                stage_table.append([name, executors, st["stage"], st["name"], st["tasks"],
                                    f"{st['slowest_task_seconds']:.2f}",
                                    f"{sum(st['task_seconds']):.2f}",
                                    f"{st['bytes_out'] / 2**10:,.1f}"])
    header = ["dataset", "where", "min s", "median s", "÷ in-process (median)",
              "stage plan s, a core per partition (median)"]
    stage_header = ["dataset", "executors", "stage", "block", "tasks", "slowest task s",
                    "all tasks s", "KiB to next stage"]
    text = (f"{env.get('cpu', '?')} ({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs, "
            f"profile {env['profile']}, commit {env['git_commit']}, {env['time']}\n\n"
            + markdown(header, table) + "\n\nStages (the median-time run of each cluster):\n\n"
            + markdown(stage_header, stage_table))
    print(text)
    write_results("distributed", rows, text)
