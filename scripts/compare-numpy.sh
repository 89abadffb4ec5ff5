#!/usr/bin/env bash
# Alternates `relu-iht bench` and the NumPy + OpenBLAS baseline on the same problem size so both
# see the same machine conditions; prints one JSON line per run. Needs: pip install numpy threadpoolctl
# Usage: scripts/compare-numpy.sh [ROUNDS] [N] [D] [M] [S] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} n=${2:-50000} d=${3:-100} m=${4:-1000} s=${5:-1000} steps=${6:-15}
cargo build --release --quiet
for _ in $(seq "$rounds"); do
  ./target/release/relu-iht bench --n "$n" --d "$d" --m "$m" --s "$s" --steps "$steps" --repeats 5 --json
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 scripts/numpy_iht.py \
    --n "$n" --d "$d" --m "$m" --s "$s" --steps "$steps" --seed 0 2>/dev/null
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 scripts/numpy_iht.py \
    --n "$n" --d "$d" --gemm-only --tile 256 "$m" 2>/dev/null
done
