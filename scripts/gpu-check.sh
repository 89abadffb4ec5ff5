#!/usr/bin/env bash
# The one command to check and measure relu-iht on a GPU: lists the adapters, runs the GPU tests
# with RELU_IHT_REQUIRE_GPU=1 (a missing adapter fails them), times `bench --backend gpu` at
# n = 50 000, d = 100, m = 1000, s = 1000 and at n = 10⁶ (per-kernel device times from timestamps,
# host wait per readback, and with --peak-gflops the gradient kernel's fraction of the card's
# fp32 peak) and again with --gpu-f16 and with --gpu-subgroups at the first size, and fits a 512 × 512 photo (streamed) on the GPU with --profile; then writes one
# JSON report. Exit status: 0 when every part ran and the tests passed, 1 otherwise.
#
# Usage: scripts/gpu-check.sh [--bin PATH] [--tests PATH] [--peak-gflops X] [--image PATH]
#                             [--out DIR] [--quick]
#   --bin          the relu-iht binary (default: target/release/relu-iht, built with cargo when
#                  missing and cargo is present)
#   --tests        a prebuilt integration-test binary (`scripts/gpu-kit.sh` makes one); default:
#                  `cargo test --release --test it -- gpu::` when cargo is present
#   --peak-gflops  the card's fp32 peak in GFLOP/s, from its vendor's sheet
#   --image        the photo of the INR part (default: assets/camera.png, 512 × 512, bundled)
#   --out          where the report and logs go (default: gpu-check-out)
#   --quick        smaller sizes (a smoke test of the script itself, e.g. on Lavapipe)
# The report, DIR/report.json: {"machine", "devices", "tests", "bench", "bench_large",
# "bench_f16", "bench_subgroups", "inr", "seconds"} with each part's own JSON (the binary's --json output) and its wall seconds; the
# per-kernel table of the INR fit is in DIR/inr-profile.txt.
set -uo pipefail
cd "$(dirname "$0")/.."

bin=target/release/relu-iht
tests=""
peak=""
image=assets/camera.png
out=gpu-check-out
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --tests) tests=$2; shift 2 ;;
    --peak-gflops) peak=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$bin" ]; then
  if command -v cargo >/dev/null; then
    cargo build --release --locked || exit 1
  else
    echo "gpu-check: no binary at $bin and no cargo to build one (see scripts/gpu-kit.sh)" >&2
    exit 2
  fi
fi
[ -f "$image" ] || { echo "gpu-check: no image at $image" >&2; exit 2; }
mkdir -p "$out" || exit 2
export RELU_IHT_REQUIRE_GPU=1
status=0
t_all=$(date +%s%N)

# Seconds since a `date +%s%N` stamp, with three decimals.
since() {
  local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# Runs "$@" with its stdout to $out/$name.out and stderr to $out/$name.err; sets $secs and $rc.
part() {
  local name=$1; shift
  local t0; t0=$(date +%s%N)
  "$@" >"$out/$name.out" 2>"$out/$name.err"
  rc=$?
  secs=$(since "$t0")
  echo "gpu-check: $name: exit $rc in ${secs} s" >&2
  [ $rc -eq 0 ] || status=1
}

# JSON lines of a file as a JSON array (the lines are the binary's --json objects).
lines_array() {
  local f=$1
  printf '['
  grep '^{' "$f" | paste -sd, - | tr -d '\n'
  printf ']'
}

# A string as a JSON string.
json_str() {
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr '\n\t' '  ')"
}

if [ $quick -eq 1 ]; then
  small=(--n 5000 --d 20 --m 100 --s 100 --steps 5 --repeats 1)
  large=(--n 100000 --d 4 --m 8 --s 8 --steps 3 --repeats 1)
  inr_extra=(--max-side 64 --steps 5)
else
  small=(--n 50000 --d 100 --m 1000 --s 1000 --steps 15)
  large=(--n 1000000 --d 100 --m 1000 --s 1000 --steps 15)
  inr_extra=()
fi
peak_arg=()
[ -n "$peak" ] && peak_arg=(--peak-gflops "$peak")

part devices "$bin" devices --json
devices_rc=$rc; devices_secs=$secs

if [ -n "$tests" ]; then
  part tests "$tests" gpu:: --test-threads 1
elif command -v cargo >/dev/null; then
  part tests cargo test --release --locked --test it -- gpu:: --test-threads 1
else
  echo "gpu-check: no test binary (--tests) and no cargo: tests not run" >&2
  echo "not run: no test binary and no cargo" >"$out/tests.out"; : >"$out/tests.err"; rc=-1; secs=0
  status=1
fi
tests_rc=$rc; tests_secs=$secs
tests_summary=$(grep -h "test result" "$out/tests.out" "$out/tests.err" 2>/dev/null | tail -1)
tests_failed=$(grep -h "^test .* FAILED$" "$out/tests.out" 2>/dev/null | paste -sd, -)

part bench "$bin" bench --backend gpu "${small[@]}" "${peak_arg[@]}" --json
bench_rc=$rc; bench_secs=$secs
part bench_large "$bin" bench --backend gpu "${large[@]}" "${peak_arg[@]}" --json
large_rc=$rc; large_secs=$secs
# The optional kernel variants at the first size (each falls back to the portable kernels, and
# says so in its backend name, where the adapter lacks the feature).
part bench_f16 "$bin" bench --backend gpu "${small[@]}" "${peak_arg[@]}" --gpu-f16 --json
f16_rc=$rc; f16_secs=$secs
part bench_subgroups "$bin" bench --backend gpu "${small[@]}" "${peak_arg[@]}" --gpu-subgroups --json
sg_rc=$rc; sg_secs=$secs
part inr "$bin" inr --image "$image" --backend gpu --profile --quiet --json "${inr_extra[@]}" \
  --out "$out/inr.png"
inr_rc=$rc; inr_secs=$secs
cp "$out/inr.err" "$out/inr-profile.txt"

total=$(since "$t_all")
{
  printf '{"machine":{"uname":%s,"cpus":%s,"binary":%s},\n' \
    "$(json_str "$(uname -srm)")" "$(nproc)" "$(json_str "$bin")"
  printf '"devices":{"rc":%s,"seconds":%s,"adapters":%s},\n' "$devices_rc" "$devices_secs" \
    "$(lines_array "$out/devices.out")"
  printf '"tests":{"rc":%s,"seconds":%s,"summary":%s,"failed":%s},\n' "$tests_rc" "$tests_secs" \
    "$(json_str "$tests_summary")" "$(json_str "$tests_failed")"
  printf '"bench":{"rc":%s,"seconds":%s,"rows":%s},\n' "$bench_rc" "$bench_secs" \
    "$(lines_array "$out/bench.out")"
  printf '"bench_large":{"rc":%s,"seconds":%s,"rows":%s},\n' "$large_rc" "$large_secs" \
    "$(lines_array "$out/bench_large.out")"
  printf '"bench_f16":{"rc":%s,"seconds":%s,"rows":%s},\n' "$f16_rc" "$f16_secs" \
    "$(lines_array "$out/bench_f16.out")"
  printf '"bench_subgroups":{"rc":%s,"seconds":%s,"rows":%s},\n' "$sg_rc" "$sg_secs" \
    "$(lines_array "$out/bench_subgroups.out")"
  inr_json=$(grep '^{' "$out/inr.out" | tail -1)
  printf '"inr":{"rc":%s,"seconds":%s,"image":%s,"result":%s},\n' "$inr_rc" "$inr_secs" \
    "$(json_str "$image")" "${inr_json:-null}"
  printf '"seconds":%s,"ok":%s}\n' "$total" "$([ $status -eq 0 ] && echo true || echo false)"
} >"$out/report.json"
echo "gpu-check: report in $out/report.json (${total} s)" >&2
exit $status
