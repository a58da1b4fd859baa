"""Living indexes: what `OPTIMIZE VECTOR INDEX` costs after an append, and what many segments
cost a query. vecfusion beside pylance's `optimize_indices` on the same data in one run.

Appends. The dataset's first (1 - x) rows are loaded and indexed (IVF_PQ), its last x rows
(0.1 %, 1 %, 10 %) appended as one fragment, then one OPTIMIZE is timed: vecfusion's
`OPTIMIZE VECTOR INDEX` (the new rows encoded with the existing model into a new segment) and
Lance's `optimize_indices(num_indices_to_merge=0)` (the same work: a delta index with the
existing model, nothing merged). Each repetition runs on a fresh copy of the appended dataset,
beside one full build of all rows by each engine; the ratio is OPTIMIZE over that full build.
recall@10 (nprobes 20) is measured on the very index that was optimized in the last repetition.

Segments. An index is built on the first half of the rows and the second half appended in 9
or 49 slices, each optimized into its own segment (Lance: delta index), giving 10 and 50
segments; for vecfusion also the same segments merged into one (`merge_segments`: codes
re-used, so recall is exactly the segmented index's, and the p50 ratio isolates what segments
cost); and the full build over all rows (1 segment, trained on everything). Query p50 (one
query per call on one thread: vecfusion's Rust API, Lance's `to_table(nearest=...)`) and
recall@10 at nprobes 10/20/50, `repeat` runs each.

Both engines build with 20 IVF iterations and 256 training rows per partition (vecfusion's
defaults; Lance's default of 50 iterations is lowered to 20); PQ training runs at each
engine's default (vecfusion 25 iterations). Ids are row numbers, so the ground truth of the
whole file holds for every dataset here.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import datasets
from cases import figure, machine, markdown, save_figure, write_results

HERE = Path(__file__).resolve().parent
CASE = ("gmm-1m-128", 1024, 16)
QUICK = ("gmm-100k-128", 256, 16)
FRACTIONS = [0.001, 0.01, 0.1]
SEGMENTS = [10, 50]
NPROBES = [10, 20, 50]
RECALL_NPROBES = 20
IVF_ITERATIONS = 20


def jsonl(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def lance(*args: str) -> dict:
    return jsonl([sys.executable, str(HERE / "baselines.py"), *map(str, args)])[-1]


def min_med(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))} / {fmt.format(statistics.median(values))}"


class Vecfusion:
    def __init__(self, binary: Path, base: Path, nlist: int, m: int):
        self.binary, self.base = str(binary), str(base)
        self.index = (f"USING IVF_PQ WITH (num_partitions = {nlist}, num_sub_vectors = {m}, "
                      f"max_iterations = {IVF_ITERATIONS}, accelerator = 'cpu')")

    def load(self, dataset: Path, start: int, end: int, append: bool = False) -> None:
        cmd = [self.binary, "load", "--data", self.base, "--dataset", str(dataset), "--rows", f"{start}:{end}"]
        jsonl(cmd + (["--append"] if append else []))

    def build(self, dataset: Path, keep: bool) -> dict:
        return jsonl([self.binary, "build", "--dataset", str(dataset), "--index", self.index]
                     + (["--keep"] if keep else []))[-1]

    def sql(self, dataset: Path, statement: str) -> dict:
        return jsonl([self.binary, "sql", "--dataset", str(dataset), statement])[-1]

    def optimize(self, dataset: Path, options: str = "") -> dict:
        return self.sql(dataset, f"OPTIMIZE VECTOR INDEX bench_idx ON t {options}".strip())

    def search(self, dataset: Path, queries: Path, gt: Path, nprobes: list[int]) -> list[dict]:
        return jsonl([self.binary, "search", "--dataset", str(dataset), "--queries", str(queries),
                      "--groundtruth", str(gt), "--index", self.index, "--nprobes",
                      ",".join(map(str, nprobes)), "--refine", "1", "--sql-queries", "20"])


def appends(vf: Vecfusion, base: Path, n: int, nlist: int, m: int, tmp: Path, q: Path, gt: Path,
            repeat: int) -> tuple[list[dict], list[list]]:
    full_vf, full_lance = tmp / "full.vf", tmp / "full.lance"
    vf.load(full_vf, 0, n)
    lance("lance_write", base, full_lance)
    prepared = {}
    for x in FRACTIONS:
        cut = n - max(1, round(n * x))
        d_vf, d_lance = tmp / f"append-{x}.vf", tmp / f"append-{x}.lance"
        vf.load(d_vf, 0, cut)
        vf.build(d_vf, keep=True)
        vf.load(d_vf, cut, n, append=True)
        lance("lance_write", base, d_lance, 0, cut)
        lance("lance_build", d_lance, nlist, m, IVF_ITERATIONS)
        lance("lance_write", base, d_lance, cut, n, "append")
        prepared[x] = (n - cut, d_vf, d_lance)
    runs = {"full_vf": [], "full_lance": [], **{(e, x): [] for x in FRACTIONS for e in ("vf", "lance")}}
    recalls = {}
    for rep in range(repeat):
        # The last full build is kept: it is the 1-segment index of the segments part.
        runs["full_vf"].append(vf.build(full_vf, keep=rep == repeat - 1))
        runs["full_lance"].append(lance("lance_build", full_lance, nlist, m, IVF_ITERATIONS))
        for x, (rows, d_vf, d_lance) in prepared.items():
            for engine, src in (("vf", d_vf), ("lance", d_lance)):
                copy = tmp / f"run.{engine}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(src, copy)
                result = vf.optimize(copy) if engine == "vf" else lance("lance_optimize", copy)
                runs[(engine, x)].append(result)
                if rep == repeat - 1:  # the quality of the very index that was timed
                    if engine == "vf":
                        r = vf.search(copy, q, gt, [RECALL_NPROBES])[0]
                    else:
                        r = lance("lance_search", copy, q, gt, RECALL_NPROBES)["runs"][0]
                    recalls[(engine, x)] = r["recall"]
                shutil.rmtree(copy)
        print(f"  rep {rep}: full build vecfusion {runs['full_vf'][-1]['wall_seconds']:.1f} s, "
              f"lance {runs['full_lance'][-1]['seconds']:.1f} s; optimize at 1 %: vecfusion "
              f"{runs[('vf', 0.01)][-1]['wall_seconds']:.2f} s, lance {runs[('lance', 0.01)][-1]['seconds']:.2f} s",
              flush=True)
    full_v = statistics.median(r["wall_seconds"] for r in runs["full_vf"])
    full_l = statistics.median(r["seconds"] for r in runs["full_lance"])
    rows, table = [], []
    for x, (appended, _, _) in prepared.items():
        v = [r["wall_seconds"] for r in runs[("vf", x)]]
        l = [r["seconds"] for r in runs[("lance", x)]]
        rows.append({"part": "append", "fraction": x, "rows_appended": appended,
                     "vecfusion": runs[("vf", x)], "lance": runs[("lance", x)],
                     "vecfusion_full_build": runs["full_vf"], "lance_full_build": runs["full_lance"],
                     "recall_at_nprobes": RECALL_NPROBES,
                     "vecfusion_recall": recalls[("vf", x)], "lance_recall": recalls[("lance", x)]})
        table.append([f"{x * 100:g} %", appended, min_med(v), f"{full_v:.1f}",
                      f"{100 * statistics.median(v) / full_v:.2f} %", min_med(l), f"{full_l:.1f}",
                      f"{100 * statistics.median(l) / full_l:.2f} %",
                      f"{recalls[('vf', x)]:.3f}", f"{recalls[('lance', x)]:.3f}"])
    header = ["appended", "rows", "vecfusion OPTIMIZE s (min / median)", "vecfusion full build s",
              "vecfusion OPTIMIZE / build", "lance optimize_indices s (min / median)", "lance full build s",
              "lance optimize / build", f"vecfusion R@10 after (nprobes {RECALL_NPROBES})",
              f"lance R@10 after (nprobes {RECALL_NPROBES})"]
    return rows, [header, *table]


def segments(vf: Vecfusion, base: Path, n: int, nlist: int, m: int, tmp: Path, q: Path, gt: Path,
             repeat: int) -> tuple[list[dict], list[list]]:
    """Runs after `appends`, whose last full builds (tmp/full.*) are the 1-segment indexes."""
    half = n // 2
    seed_vf, seed_lance = tmp / "half.vf", tmp / "half.lance"
    vf.load(seed_vf, 0, half)
    vf.build(seed_vf, keep=True)
    lance("lance_write", base, seed_lance, 0, half)
    lance("lance_build", seed_lance, nlist, m, IVF_ITERATIONS)
    full = "full build, 1 segment"
    configs = {("vecfusion", full): (tmp / "full.vf", 1), ("lance", full): (tmp / "full.lance", 1)}
    for count in SEGMENTS:
        d_vf, d_lance = tmp / f"seg-{count}.vf", tmp / f"seg-{count}.lance"
        shutil.copytree(seed_vf, d_vf)
        shutil.copytree(seed_lance, d_lance)
        bounds = np.linspace(half, n, count, dtype=np.int64)
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            vf.load(d_vf, lo, hi, append=True)
            segs = vf.optimize(d_vf)["segments_after"]
            lance("lance_write", base, d_lance, lo, hi, "append")
            deltas = lance("lance_optimize", d_lance)["deltas_after"]
        configs[("vecfusion", f"{count} segments")] = (d_vf, int(segs))
        configs[("lance", f"{count} segments")] = (d_lance, int(deltas))
        merged = tmp / f"seg-{count}-merged.vf"
        shutil.copytree(d_vf, merged)
        vf.optimize(merged, f"WITH (merge_segments = {count})")
        configs[("vecfusion", f"{count} segments merged into 1")] = (merged, 1)
    measured = {key: [] for key in configs}
    for _ in range(repeat):
        for (engine, name), (d, _) in configs.items():
            if engine == "vecfusion":
                measured[(engine, name)].append(vf.search(d, q, gt, NPROBES))
            else:
                measured[(engine, name)].append(lance("lance_search", d, q, gt, ",".join(map(str, NPROBES)))["runs"])

    def p50(key: tuple[str, str], nprobes: int) -> list[float]:
        return [r["p50_ms"] for run in measured[key] for r in run if r["nprobes"] == nprobes]

    rows, table = [], []
    for (engine, name), (_, count) in configs.items():
        for nprobes in NPROBES:
            at = [r for run in measured[(engine, name)] for r in run if r["nprobes"] == nprobes]
            same_codes = (engine, name.replace("segments", "segments merged into 1"))
            ratio = "-"
            if count > 1 and same_codes in measured:
                ratio = f"{statistics.median(p50((engine, name), nprobes)) / statistics.median(p50(same_codes, nprobes)):.2f}"
            rows.append({"part": "segments", "engine": engine, "config": name, "segments": count,
                         "nprobes": nprobes, "runs": at})
            table.append([engine, name, count, nprobes, f"{at[-1]['recall']:.3f}",
                          min_med(p50((engine, name), nprobes), "{:.3f}"), ratio])
    header = ["engine", "index", "segments", "nprobes", "R@10", "p50 ms (min / median)",
              "p50 / same codes in 1 segment"]
    return rows, [header, *table]


def plot(name: str, rows: list[dict]) -> Path:
    fig, ax = figure()
    for engine, config in dict.fromkeys((r["engine"], r["config"]) for r in rows):
        pts = [(statistics.median(x["p50_ms"] for x in r["runs"]), r["runs"][-1]["recall"])
               for r in rows if (r["engine"], r["config"]) == (engine, config)]
        ax.plot(*zip(*pts), "--" if engine == "lance" else "-", marker="o", label=f"{engine}: {config}")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (log scale; vecfusion one thread, Rust API; Lance to_table)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"{name}: IVF_PQ with segments (nprobes {', '.join(map(str, NPROBES))})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, f"optimize-{name}.png")


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    name, nlist, m = QUICK if quick else CASE
    if only and name not in only:
        return
    env = machine()
    base, q_path, _ = datasets.ensure(name)
    gt_path = datasets.ground_truth(name)
    n = len(np.load(base, mmap_mode="r"))
    vf = Vecfusion(binary, base, nlist, m)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        q, gt = tmp / "q.npy", tmp / "gt.npy"
        np.save(q, np.ascontiguousarray(np.load(q_path)[:1000], dtype=np.float32))
        np.save(gt, np.load(gt_path)[:1000].astype(np.float32))
        append_rows, append_table = appends(vf, base, n, nlist, m, tmp, q, gt, repeat)
        seg_rows, seg_table = segments(vf, base, n, nlist, m, tmp, q, gt, repeat)
    rows = append_rows + seg_rows
    for r in rows:
        r.update({"bench": "optimize", "dataset": name, "nlist": nlist, "m": m, "repeat": repeat, "machine": env})
    png = plot(name, seg_rows)
    text = (f"{name}, IVF_PQ {nlist} partitions × {m} sub-vectors, {repeat} run(s) per figure. "
            f"Machine: {env.get('cpu', '?')} ({', '.join(env.get('cpu_flags', []))}), {env['cpus']} CPUs, "
            f"commit {env['git_commit']}, {env['time']}, vecfusion-bench profile {env['profile']}.\n\n"
            f"OPTIMIZE after an append, against a full build of all rows:\n\n"
            + markdown(append_table[0], append_table[1:])
            + f"\n\nQueries against segmented indexes ({png.name}):\n\n"
            + markdown(seg_table[0], seg_table[1:]))
    write_results("optimize", rows, text)
