#!/usr/bin/env bash
# Runs the GPU index-build benchmark (bench/gpu.py) on a machine with an NVIDIA GPU, the
# driver and PyTorch, from the binaries scripts/build-cuda.sh left in target/cuda/dist/.
# No Rust toolchain or network is needed there.
#
#   scripts/gpu-bench.sh OUT_DIR [bench/gpu.py options, e.g. --cases gmm-1m-128 --engines cuda,torch]
#
# The CUDA 13 runtime libraries come from PyTorch's nvidia-* packages when the loader does
# not find them on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-bench.sh OUT_DIR [options]}"; shift
dist=target/cuda/dist
bin="${VECFUSION_GPU_BIN_DIR:-/tmp/vecfusion-cuda}"
mkdir -p "$bin"
[ -x "$bin/vecfusion-bench" ] || xz -dc "$dist/vecfusion-bench.xz" > "$bin/vecfusion-bench"
chmod +x "$bin/vecfusion-bench"

# PyTorch's CUDA libraries: every nvidia/*/lib folder of the Python that has torch.
libs="$(python3 - <<'EOF'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib"))})))
EOF
)"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing="$(ldd "$bin/vecfusion-bench" | grep 'not found' || true)"
if [ -n "$missing" ]; then
  echo "vecfusion-bench cannot find these libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH):" >&2
  echo "$missing" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 bench/gpu.py --bench "$bin/vecfusion-bench" --work "${VECFUSION_GPU_WORK:-/tmp/vecfusion-gpu}" --out "$out" "$@"
