"""Sentence embeddings on the CPU: vecfusion (candle BERT, in-process) beside
sentence-transformers on PyTorch, on the same texts, the same model files and the same work
(all-MiniLM-L6-v2, max_seq_length 256, batches of 32, mean pooling + normalisation) in one run.

Texts: up to 10,000 paragraphs of Python's own documentation — standard-library docstrings (a
fixed list of modules) and the language reference's help topics (`pydoc_data`), PSF license —
deduplicated; the number used is recorded. Measured, `repeat` runs each:

- vecfusion `embedder`: `SentenceEmbedder::embed_timed` over all texts, tokenizer and model
  timed apart;
- vecfusion `sql_insert`: `INSERT INTO t SELECT id, text, minilm(text) FROM texts` into a
  fresh dataset (reading the texts, embedding, writing the fragment, committing);
- sentence-transformers `encode(batch_size=32)`, and its tokenizer alone on the same texts.

torch and sentence-transformers are installed into bench/.venv on first use (CPU wheels when
the PyTorch index is reachable, PyPI's otherwise). Threads: both use every core.
"""

from __future__ import annotations

import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cases import ROOT, machine, markdown, write_results

MODULES = [
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac",
    "html", "http.client", "http.server", "imaplib", "inspect", "io", "ipaddress", "itertools", "json",
    "logging", "lzma", "mailbox", "math", "mimetypes", "multiprocessing", "netrc", "operator", "optparse",
    "os", "pathlib", "pickle", "platform", "plistlib", "poplib", "pprint", "queue", "random", "re",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib", "socket",
    "socketserver", "sqlite3", "ssl", "statistics", "string", "struct", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback", "turtle", "typing",
    "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom",
    "xml.etree.ElementTree", "zipfile", "zlib", "array", "binascii", "bz2", "cmath", "codecs", "codeop",
    "colorsys", "compileall", "concurrent.futures", "contextvars", "ctypes", "curses", "dbm", "dis",
    "doctest", "email.message", "email.utils", "filecmp", "fileinput", "fnmatch", "graphlib", "importlib",
    "importlib.metadata", "locale", "numbers", "pdb", "pydoc", "py_compile", "pyclbr", "quopri", "reprlib",
    "rlcompleter", "runpy", "stat", "string.templatelib", "symtable", "sysconfig", "tabnanny", "tkinter",
    "tomllib", "trace", "tracemalloc", "types", "unicodedata", "venv", "webbrowser", "wsgiref.util",
    "xmlrpc.client", "xmlrpc.server", "zipimport", "zoneinfo",
]
LIMIT = 10_000


def texts(limit: int) -> list[str]:
    import importlib

    out, seen = [], set()

    def add(doc):
        for paragraph in (doc or "").split("\n\n"):
            text = " ".join(paragraph.split())
            if len(text.split()) >= 5 and text not in seen:
                seen.add(text)
                out.append(text)

    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 (a module missing on this Python is skipped)
            continue
        add(inspect.getdoc(module))
        for _, obj in sorted(vars(module).items()):
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
                add(inspect.getdoc(obj))
                if inspect.isclass(obj):
                    for _, member in sorted(vars(obj).items()):
                        if inspect.isfunction(member):
                            add(inspect.getdoc(member))
    # The language reference's help topics (what `help("for")` shows), paragraph by paragraph.
    try:
        from pydoc_data.topics import topics

        for _, text in sorted(topics.items()):
            add(text)
    except ImportError:
        pass
    return out[:limit]


def ensure_sentence_transformers() -> None:
    try:
        import sentence_transformers  # noqa: F401
        return
    except ImportError:
        pass
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    cpu = subprocess.run(pip + ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"])
    if cpu.returncode != 0:
        subprocess.check_call(pip + ["torch"])
    subprocess.check_call(pip + ["sentence-transformers"])


def min_med(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def run(binary: Path, quick: bool, repeat: int, only: list[str]) -> None:
    model = subprocess.run(["bash", str(ROOT / "scripts" / "fetch-models.sh")], check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    corpus = texts(500 if quick else LIMIT)
    print(f"embed: {len(corpus)} texts, model {model}", flush=True)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus))
        out = subprocess.run([str(binary), "embed", "--model", model, "--texts", str(path), "--work", work,
                              "--repeat", str(repeat)], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                rows.setdefault(f"vecfusion {r['path']}", []).append(r)

    ensure_sentence_transformers()
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model, device="cpu", local_files_only=True)
    st.encode(corpus[:64], batch_size=32)  # warm-up, as vecfusion's first batch is not timed apart either
    for run_ in range(repeat):
        start = time.perf_counter()
        st.tokenize(corpus)
        tokenize = time.perf_counter() - start
        start = time.perf_counter()
        st.encode(corpus, batch_size=32, convert_to_numpy=True)
        rows.setdefault("sentence-transformers encode", []).append(
            {"run": run_, "texts": len(corpus), "seconds": time.perf_counter() - start, "tokenize_seconds": tokenize})

    info = machine()
    info["versions"]["torch"] = torch.__version__
    info["versions"]["sentence_transformers"] = __import__("sentence_transformers").__version__
    info["torch_threads"] = torch.get_num_threads()
    best_baseline = statistics.median(r["seconds"] for r in rows["sentence-transformers encode"])
    table_rows, results = [], []
    for engine, runs in rows.items():
        seconds = [r["seconds"] for r in runs]
        tok = [r["tokenize_seconds"] for r in runs if "tokenize_seconds" in r]
        model_s = [r["model_seconds"] for r in runs if "model_seconds" in r]
        med = statistics.median(seconds)
        table_rows.append([engine, len(corpus), min_med(seconds), min_med(tok) if tok else "—",
                           min_med(model_s) if model_s else "—", f"{len(corpus) / med:.1f}",
                           f"{best_baseline / med:.2f}×"])
        results.append({"case": "embed", "engine": engine, "texts": len(corpus), "runs": runs,
                        "sentences_per_second_median": len(corpus) / med, "machine": info})
    table = markdown(["engine", "texts", "total s (min / median)", "tokenize s", "model s", "sentences/s",
                      "vs sentence-transformers"], table_rows)
    table += ("\n\nsentence-transformers' tokenize column times its tokenizer alone on the same texts (its "
              "encode tokenizes again inside); the vecfusion sql_insert row also reads the texts and writes "
              f"and commits the fragment. Runs: {repeat}; profile: {info['profile']}.")
    write_results("embed", results, table)
