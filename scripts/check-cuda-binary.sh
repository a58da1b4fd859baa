#!/usr/bin/env bash
# Checks a CUDA build of the `vecfusion` shell (scripts/build-cuda.sh) where it runs.
#
#   scripts/check-cuda-binary.sh path/to/vecfusion
#
# Where `nvidia-smi -L` lists a GPU: `accelerator = 'cuda'` and `'auto'` both build an index on
# cuda:0. Elsewhere: the binary starts (it loads the CUDA libraries only when asked to),
# `'auto'` builds on the CPU, and `'cuda'` fails with an error that names what is missing
# (libcuda.so.1 where no driver is installed). Exits non-zero, saying why, otherwise.
set -euo pipefail
bin="${1:?usage: scripts/check-cuda-binary.sh path/to/vecfusion}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "check-cuda-binary: $*" >&2; exit 1; }

# One table, then one index per statement; prints the accelerator the build ran on.
"$bin" -q --format csv -c "CREATE EXTERNAL TABLE t (id BIGINT, embedding FLOAT[16])
  STORED AS VECFUSION LOCATION '$work/t'" \
  -c "INSERT INTO t SELECT id, vector FROM random_vectors(2000, 16)" >/dev/null \
  || fail "the binary could not create a table: it does not start on this machine"
build() {
  "$bin" -q --format csv \
    -c "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '$work/t'" \
    -c "CREATE VECTOR INDEX $1 ON t (embedding) USING IVF_PQ
        WITH (num_partitions = 4, num_sub_vectors = 4, accelerator = '$2')" 2>&1
}
accelerator_of() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "accelerator") c = i }
                            NR == 2 && c { print $c }'; }

auto_out="$(build with_auto auto)" || fail "accelerator 'auto' failed: $auto_out"
auto="$(printf '%s\n' "$auto_out" | grep -A1 '^name,' | accelerator_of)"
set +e
cuda_out="$(build with_cuda cuda)"
cuda_status=$?
set -e

if nvidia-smi -L >/dev/null 2>&1; then
  [ "$auto" = "cuda:0" ] || fail "a GPU is present but 'auto' built on '$auto'"
  [ $cuda_status -eq 0 ] || fail "a GPU is present but 'cuda' failed: $cuda_out"
  echo "check-cuda-binary: GPU present; 'auto' and 'cuda' built on cuda:0"
else
  [ "$auto" = "cpu" ] || fail "no GPU here, yet 'auto' built on '$auto': $auto_out"
  [ $cuda_status -ne 0 ] || fail "no GPU here, yet 'cuda' succeeded: $cuda_out"
  case "$cuda_out" in
    *"accelerator 'cuda:0' is not available"*"has CUDA support"*) ;;
    *) fail "'cuda' failed without saying why: $cuda_out" ;;
  esac
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    case "$cuda_out" in
      *libcuda.so.1*) ;;
      *) fail "no driver here, but the error does not name libcuda.so.1: $cuda_out" ;;
    esac
  fi
  echo "check-cuda-binary: no GPU; the binary starts, 'auto' built on the CPU, 'cuda' said:"
  printf '  %s\n' "$(printf '%s\n' "$cuda_out" | grep -m1 'not available')"
fi
