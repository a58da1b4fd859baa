#!/usr/bin/env python3
"""vecfusion's benchmark harness: one command, its own virtual environment.

    python3 bench/run.py                    # every case, full sizes (tens of minutes)
    python3 bench/run.py kmeans --quick     # one case, small sizes
    python3 bench/run.py kmeans --repeat 5  # more repetitions (medians are reported)

Creates bench/.venv (numpy, faiss-cpu, pylance, pyarrow, matplotlib, maturin) on first use
(and updates it when requirements.txt changes), builds the `vecfusion-bench` binary (the search
case also the `vecfusion` shell and the Python package), runs vecfusion beside faiss and
pylance on the same data in the same run (engines interleaved, so machine drift hits all of
them), appends JSON lines to bench/results/<case>.jsonl and writes the markdown tables to
bench/results/<case>.md.

faiss runs with OMP_WAIT_POLICY=PASSIVE unless the environment says otherwise: with the
default policy its idle OpenMP threads spin and, on a busy 2-core machine, steal the other
core (see shared/notes/baselines.md). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv"


def ensure_venv() -> None:
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    # The requirements as last installed: an environment made before they changed is updated.
    wanted = (HERE / "requirements.txt").read_text()
    installed = VENV / "requirements.installed"
    if not installed.exists() or installed.read_text() != wanted:
        subprocess.check_call(
            [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")]
        )
        installed.write_text(wanted)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def main() -> None:
    ensure_venv()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(HERE))
    import cases  # noqa: E402  (needs the venv)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: all of {', '.join(cases.ALL)})")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--datasets", default="", help="comma-separated datasets to run (default: the case's list)")
    args = parser.parse_args()
    chosen = args.cases or list(cases.ALL)
    unknown = [c for c in chosen if c not in cases.ALL]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(cases.ALL)}")
    binary = cases.build_bench_binary()
    for name in chosen:
        only = [d for d in args.datasets.split(",") if d]
        cases.ALL[name](binary, quick=args.quick, repeat=1 if args.quick else args.repeat, only=only)


if __name__ == "__main__":
    main()
