#!/usr/bin/env bash
# Builds what `scripts/gpu-check.sh` needs on a machine that cannot build (no toolchain, no
# registry): a stripped release binary and a stripped integration-test binary in .gpu-kit/
# (git-ignored). On that machine, from the repository root:
#   scripts/gpu-check.sh --bin .gpu-kit/relu-iht --tests .gpu-kit/it --peak-gflops X
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true
mkdir -p .gpu-kit
cargo build --release --locked
cp target/release/relu-iht .gpu-kit/relu-iht
it=$(cargo test --release --locked --test it --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -n "$it" ] || { echo "gpu-kit: no test binary built" >&2; exit 1; }
cp "$it" .gpu-kit/it
ls -l .gpu-kit
