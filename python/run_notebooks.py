"""Executes every notebook in notebooks/ top to bottom; fails on the first error."""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

root = Path(__file__).resolve().parent.parent / "notebooks"
failed = False
for path in sorted(root.glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
        print(f"ok   {path.name}")
    except Exception as e:  # noqa: BLE001 (report every notebook)
        print(f"FAIL {path.name}: {e}")
        failed = True
sys.exit(1 if failed else 0)
