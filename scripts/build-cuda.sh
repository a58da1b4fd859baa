#!/usr/bin/env bash
# Builds the `vecfusion` binary (and `vecfusion-bench`) with candle's CUDA backend on a machine
# that has neither a GPU nor the CUDA toolkit, from NVIDIA's PyPI wheels (CUDA 13.0: the lent
# GPUs' driver 580 runs CUDA <= 13.0, and a newer nvvm emits PTX their ptxas rejects).
#
#   scripts/build-cuda.sh [--release] [--all-targets] [--compute-cap 90]
#
# --all-targets also builds the test targets with the cuda feature (then
# `cargo test --workspace --features vecfusion/cuda` with the same --config runs them); with
# VECFUSION_CUDA_TARGET pointing at the default build's target directory it reuses its
# DataFusion, whose features differ between a bins-only and an all-targets build.
#
# One binary for every machine: candle-core 0.11 asks cudarc for dynamic *linking*, which
# makes the binary refuse to start without libcuda.so.1. This script builds candle-core from
# its crates.io package with that one feature switched to cudarc's dynamic *loading* (a
# `[patch]` given on the command line; nothing is vendored, Cargo.lock is restored after), so
# the driver and the CUDA libraries are opened only when a CUDA device is asked for:
# `accelerator = 'auto'` falls back to the CPU on a machine without a GPU, and
# `accelerator = 'cuda'` there is an error naming the missing library
# (src/kmeans/cuda_libraries.rs). scripts/check-cuda-binary.sh checks exactly that on the
# built binary at the end.
#
# Output: <target>/<profile>/vecfusion{,-bench}, plus stripped, xz-compressed copies in
# <target>/dist/ (small enough to carry to a GPU machine, where scripts/gpu-bench.sh unpacks
# and runs them). <target> is $VECFUSION_CUDA_TARGET, default target/cuda. Where they use a
# GPU, the binaries need the NVIDIA driver (libcuda.so.1) and the CUDA 13 libraries
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libnvrtc.so.13 (PyTorch's nvidia-*
# packages carry them; scripts/gpu-bench.sh puts their lib folders on LD_LIBRARY_PATH).
# Nothing in the default build, the tests or CI needs this.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dev
cap=90
targets=--bins
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --all-targets) targets=--all-targets ;;
    --compute-cap) cap="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

venv="${VECFUSION_CUDA_VENV:-target/cuda/toolkit}"
target="${VECFUSION_CUDA_TARGET:-target/cuda}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"

# 1. The toolkit pieces candle needs to build (nvcc compiles candle's kernels to PTX; cudarc
#    reads the CUDA version from it), from PyPI, all pinned to 13.0.
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q \
  "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-runtime==13.0.*" \
  "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" \
  "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand"
CU="$(cd "$("$venv/bin/python" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))')/nvidia/cu13" && pwd)"
export PATH="$CU/bin:$PATH" CUDA_ROOT="$CU" CUDA_PATH="$CU" CUDA_HOME="$CU" CUDA_COMPUTE_CAP="$cap"
nvcc --version | tail -1

# 2. candle-core from the registry, with cudarc's dynamic loading instead of dynamic linking.
cargo fetch --locked
candle_version="$(awk '/^name = "candle-core"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)"
crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"candle-core-$candle_version.crate" | head -1)"
patched="$target/patched/candle-core-$candle_version"
rm -rf "$patched" && mkdir -p "$target/patched"
tar -xzf "$crate" -C "$target/patched"
sed -i 's/"dynamic-linking",/"dynamic-loading",/' "$patched/Cargo.toml"
if ! grep -q '"dynamic-loading",' "$patched/Cargo.toml" || grep -q '"dynamic-linking"' "$patched/Cargo.toml"; then
  echo "candle-core $candle_version no longer lists cudarc's dynamic-linking feature; update this script" >&2
  exit 1
fi

# 3. candle-kernels 0.11 links its statically compiled MoE kernels against `cudart`: offer the
#    linker only NVIDIA's static CUDA runtime under that name (through LIBRARY_PATH, which the
#    C compiler driver reads and cargo does not fingerprint, so nothing rebuilds), so the binary
#    does not need libcudart.so at start-up either; the static runtime opens the driver itself.
link="$target/link"
mkdir -p "$link"
cp -f "$CU/lib/libcudart_static.a" "$link/libcudart.a"
export LIBRARY_PATH="$link${LIBRARY_PATH:+:$LIBRARY_PATH}"

# 4. Build. The patch changes Cargo.lock's entry for candle-core: keep the committed one.
cp Cargo.lock "$target/Cargo.lock.committed"
trap 'cp "$target/Cargo.lock.committed" Cargo.lock' EXIT
export CARGO_TARGET_DIR="$target"
# `--workspace` (not `-p vecfusion-cli -p vecfusion-bench`): the workspace's feature
# unification, as the default build has it.
cargo build --profile "$profile" --workspace "$targets" --features vecfusion/cuda \
  --config "patch.crates-io.candle-core.path=\"$patched\""

out="$target/$( [ "$profile" = dev ] && echo debug || echo release )"
if ldd "$out/vecfusion" | grep -E 'libcuda|libcublas|libcurand|libnvrtc'; then
  echo "the binary still links CUDA libraries at start-up; it would not start without a GPU" >&2
  exit 1
fi
scripts/check-cuda-binary.sh "$out/vecfusion"

mkdir -p "$target/dist"
echo "$(git rev-parse HEAD)$(git status --porcelain --untracked-files=no | grep -q . && echo -dirty)" > "$target/dist/commit.txt"
echo "$( [ "$profile" = dev ] && echo debug || echo release )" > "$target/dist/profile.txt"
for bin in vecfusion vecfusion-bench; do
  strip -o "$target/dist/$bin" "$out/$bin"
  xz -T2 -6 -f "$target/dist/$bin"
done
ls -la "$target/dist"
echo "CUDA build ready: $target/dist (uses a GPU where the NVIDIA driver and CUDA 13 libraries are; runs on the CPU elsewhere)"
