"""Random access (`take`): the same random rows fetched by position from vecfusion, from
Parquet and from Lance, one row at a time and 100 at a time.

- vecfusion: `Dataset::take` by row address (Rust, `vecfusion-bench take`).
- Parquet: the same binary, from one file written the way a user tuning Parquet for random
  access would (no compression, no dictionary, 8 KiB data pages, page statistics and offset
  index), reading only the row groups and pages that hold the rows (Rust, arrow-rs).
- Lance: `LanceDataset.take` on a dataset written from that Parquet file (pylance; its time
  includes the Python call, some tens of microseconds).

Each run measures every fetch list once per engine (engines interleaved run by run); a run's
figure is the median over its fetches, and the table gives the median and the minimum over
runs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cases import machine, markdown, write_results

ENGINES = ("vecfusion", "parquet", "lance")


def lance_run(ds, fetches: dict[str, list[list[int]]], ids: list[int], run: int, rows: int) -> list[dict]:
    """Lance's take of every fetch list; `ids` is the id at each row position (a check)."""
    out = []
    for batch, lists in fetches.items():
        times = []
        for wanted in lists:
            t = time.perf_counter()
            got = ds.take(wanted, columns=["id", "embedding"])
            times.append(time.perf_counter() - t)
            if got.column("id").to_pylist() != [ids[r] for r in wanted]:
                raise RuntimeError("Lance returned other rows than asked for")
        out.append({"engine": "lance", "run": run, "rows": rows, "rows_per_fetch": int(batch),
                    "fetches": len(lists), "median_us": statistics.median(times) * 1e6})
    return out


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    import lance
    import pyarrow.parquet as pq

    env = machine()
    rows = 100_000 if quick else 1_000_000
    fetches = 200 if quick else 2000
    lines: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = None
        for r in range(max(1, repeat)):
            out = subprocess.run(
                [str(binary), "take", "--rows", str(rows), "--fetches", str(fetches), "--runs", "1",
                 "--dir", str(tmp), "--fetches-out", str(tmp / "fetches.json")],
                check=True, capture_output=True, text=True).stdout
            lines += [json.loads(line) | {"run": r} for line in out.splitlines() if line.startswith("{")]
            if ds is None:
                table = pq.read_table(tmp / "take.parquet")
                ids = table.column("id").to_pylist()
                lance.write_dataset(table, str(tmp / "lance"))
                ds = lance.dataset(str(tmp / "lance"))
                del table
            lines += lance_run(ds, json.loads((tmp / "fetches.json").read_text()), ids, r, rows)
    table, rows_out = [], []
    for batch in sorted({line["rows_per_fetch"] for line in lines}):
        figures = {}
        for engine in ENGINES:
            runs = [line["median_us"] for line in lines if line["engine"] == engine and line["rows_per_fetch"] == batch]
            figures[engine] = (statistics.median(runs), min(runs), runs)
        vf = figures["vecfusion"][0]
        table.append([batch] + [f"{figures[e][0]:.1f} ({figures[e][1]:.1f})" for e in ENGINES]
                     + [f"{figures['parquet'][0] / vf:.1f}x", f"{figures['lance'][0] / vf:.1f}x"])
        rows_out.append({"bench": "take", "rows": rows, "dim": 128, "rows_per_fetch": batch, "fetches": fetches,
                         **{f"{e}_us_median": figures[e][0] for e in ENGINES},
                         **{f"{e}_us_min": figures[e][1] for e in ENGINES},
                         **{f"{e}_us_runs": figures[e][2] for e in ENGINES},
                         "machine": env})
    header = (f"Random access, {rows:,} rows x 128 dims, {fetches} fetches per run, {max(1, repeat)} runs; "
              f"µs per fetch, median over runs (min). Parquet: uncompressed, no dictionary, 8 KiB pages, "
              f"row groups and pages selected through the page index; Lance through pylance (Python call "
              f"included). Machine: {env.get('cpu', '?')} ({', '.join(env.get('cpu_flags', []))}), "
              f"{env['cpus']} CPUs, profile {env['profile']}, commit {env.get('git_commit')}.\n\n")
    write_results("take", rows_out, header + markdown(
        ["rows per fetch", "vecfusion µs", "Parquet µs", "Lance µs", "Parquet / vecfusion", "Lance / vecfusion"],
        table))
