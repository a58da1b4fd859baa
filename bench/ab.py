#!/usr/bin/env python3
"""A/B of two vecfusion builds on the same data, interleaved in one run: is a change within
noise of what came before?

    python3 bench/ab.py A_BINARY B_BINARY [--dataset gmm-1m-128] [--repeat 3]

A_BINARY and B_BINARY are `vecfusion-bench` binaries (e.g. the release build of the parent
commit and of the change: `git worktree add /tmp/base HEAD~1 && (cd /tmp/base && cargo build
--release --workspace --bin vecfusion-bench)`, sharing the target directory so only vecfusion recompiles).
For each repetition, A then B: one timed IVF_PQ build (1024 partitions, 16 sub-vectors, CPU)
and one search sweep (1,000 queries, nprobes 1..50, refine 1 and 10: recall@10, p50 through
the Rust API and through SQL, batch QPS). Prints min and median per figure and appends every
measurement, with the machine, to bench/results/ab.jsonl. Run it inside bench/.venv
(bench/run.py creates it) or any Python with numpy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cases  # noqa: E402
import datasets  # noqa: E402

INDEX = "USING IVF_PQ WITH (num_partitions = {p}, num_sub_vectors = {m}, accelerator = 'cpu', tolerance = 0)"


def jsonl(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--dataset", default="gmm-1m-128")
    ap.add_argument("--partitions", type=int, default=1024)
    ap.add_argument("--sub-vectors", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    index = INDEX.format(p=args.partitions, m=args.sub_vectors)
    base_path, q_path, _ = datasets.ensure(args.dataset)
    gt_path = datasets.ground_truth(args.dataset)
    env = cases.machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "q.npy", np.ascontiguousarray(np.load(q_path)[:1000], dtype=np.float32))
        np.save(tmp / "gt.npy", np.load(gt_path)[:1000].astype(np.float32))
        for label, binary in (("A", args.a), ("B", args.b)):
            subprocess.run([str(binary), "load", "--data", str(base_path), "--dataset", str(tmp / label)],
                           check=True, capture_output=True)
        for rep in range(args.repeat):
            for label, binary in (("A", args.a), ("B", args.b)):
                build = jsonl([str(binary), "build", "--dataset", str(tmp / label), "--index", index])[-1]
                rows.append({"what": "build", "side": label, "binary": str(binary), "rep": rep,
                             "seconds": build["wall_seconds"], "peak_rss_mb": build["peak_rss_mb"]})
                # `search` builds its own index the first time and keeps it for later reps.
                for r in jsonl([str(binary), "search", "--dataset", str(tmp / label), "--queries",
                                str(tmp / "q.npy"), "--groundtruth", str(tmp / "gt.npy"), "--index", index]):
                    rows.append({"what": "search", "side": label, "binary": str(binary), "rep": rep} | r)
                print(f"  rep {rep} {label}: build {build['wall_seconds']:.2f} s", flush=True)
    for r in rows:
        r.update({"bench": "ab", "dataset": args.dataset, "machine": env})
    out = HERE / "results" / "ab.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    def stat(side: str, key: str, **match) -> str:
        values = [r[key] for r in rows if r["side"] == side and all(r.get(k) == v for k, v in match.items())]
        return f"{min(values):.3f} / {statistics.median(values):.3f}" if values else "-"

    header = ["figure", "A min / median", "B min / median"]
    table = [["build seconds", stat("A", "seconds", what="build"), stat("B", "seconds", what="build")],
             ["build peak RSS MB", stat("A", "peak_rss_mb", what="build"), stat("B", "peak_rss_mb", what="build")]]
    for refine in (1, 10):
        for nprobes in (1, 5, 10, 20, 50):
            m = {"what": "search", "nprobes": nprobes, "refine_factor": refine}
            for key, name in (("recall", "recall@10"), ("p50_ms", "API p50 ms"), ("sql_p50_ms", "SQL p50 ms"),
                              ("qps_batch", "batch QPS")):
                table.append([f"nprobes {nprobes} refine {refine}: {name}", stat("A", key, **m), stat("B", key, **m)])
    print(f"\nA = {args.a}\nB = {args.b}\n{args.dataset}, {args.repeat} repetitions interleaved, "
          f"{env.get('cpu', '?')} ({', '.join(env['cpu_flags'])}), {env['cpus']} CPUs, {env['time']}\n")
    print(cases.markdown(header, table))


if __name__ == "__main__":
    main()
