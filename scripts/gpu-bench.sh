#!/usr/bin/env bash
# Runs the GPU index-build benchmark (bench/gpu.py) on a machine with an NVIDIA GPU, the
# driver and PyTorch, from the binaries scripts/build-cuda.sh left in target/cuda/dist/.
# No Rust toolchain or network is needed there.
#
#   scripts/gpu-bench.sh OUT_DIR [bench/gpu.py options, e.g. --cases gmm-20k-64 --engines cuda,torch]
#
# On a lent device machine (15 minutes of device time in all, the start included), exactly:
#   here:   scripts/build-cuda.sh --release          # ~20 min cold on 2 cores
#   device: run(command="scripts/gpu-bench.sh $OUT", carry=["target/cuda/dist"], timeout_s=600)
# target/cuda/dist holds vecfusion.xz, vecfusion-bench.xz (~28 MB each), commit.txt and profile.txt; the
# working tree travels with them (bench/ is all it uses). bench/gpu.py stops starting commands
# after 540 s (--deadline) and limits each to 240 s (--timeout), appending every result to
# OUT_DIR/gpu.jsonl and rewriting OUT_DIR/gpu.md as it goes, so a cut run still reports; the
# cases run smoke first, then 1M x 128, 1M x 768 and 1M x 1536 (its CPU engine left out).
# Before the benchmark, scripts/check-cuda-binary.sh checks the shell there ('cuda' and
# 'auto' must build on cuda:0).
#
# Rehearsal on a machine without a GPU (what CI-like machines can do): build the CUDA
# binaries, then
#   VECFUSION_GPU_PYTHON=/path/to/venv-with-torch/bin/python \
#     scripts/gpu-bench.sh /tmp/gpu-out --device cpu --cases gmm-20k-64 --engines cpu,torch,cuda
# runs the whole script on the CPU: the cuda engine's row then records the error a machine
# without a GPU gives.
#
# The CUDA 13 libraries come from PyTorch's nvidia-* packages when the loader does not find
# them on its own (the lent machines' image holds nvidia-cublas, nvidia-curand and
# nvidia-cuda-nvrtc for CUDA 13; a torch wheel alone may lack cuRAND, which candle opens with
# every CUDA device: then the cuda rows record that error).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-bench.sh OUT_DIR [options]}"; shift
python="${VECFUSION_GPU_PYTHON:-python3}"
dist="${VECFUSION_GPU_DIST:-target/cuda/dist}"
bin="${VECFUSION_GPU_BIN_DIR:-/tmp/vecfusion-cuda}"
mkdir -p "$bin" "$out"
for b in vecfusion vecfusion-bench; do
  [ -x "$bin/$b" ] || xz -dc "$dist/$b.xz" > "$bin/$b"
  chmod +x "$bin/$b"
done
[ -f "$dist/commit.txt" ] && export VECFUSION_GIT_COMMIT="$(cat "$dist/commit.txt")"
[ -f "$dist/profile.txt" ] && export VECFUSION_BENCH_PROFILE="$(cat "$dist/profile.txt")"

# PyTorch's CUDA libraries: every nvidia/*/lib folder of the Python that has torch.
libs="$("$python" - <<'PY'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib"))})))
PY
)"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "no GPU here (nvidia-smi did not answer)"
scripts/check-cuda-binary.sh "$bin/vecfusion" 2>&1 | tee "$out/check-cuda-binary.txt"
PYTHONUNBUFFERED=1 "$python" bench/gpu.py --bench "$bin/vecfusion-bench" \
  --work "${VECFUSION_GPU_WORK:-/tmp/vecfusion-gpu}" --out "$out" "$@"
