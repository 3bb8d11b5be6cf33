#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 600) on a copy of its seed
# corpus in fuzz/corpus/, and prints libFuzzer's closing statistics.
#
#   fuzz/run.sh              # every target, 10 minutes each, two at a time
#   fuzz/run.sh 5            # a smoke run (CI)
#   fuzz/run.sh 600 signature
#
# cargo-fuzz passes sanitizer flags (-Z) that need a nightly compiler; without
# a nightly toolchain this uses the stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature webhook_body backfill_line connection_patch)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1  # the stable compiler, taking cargo-fuzz's -Z flags
fi
cargo "${toolchain[@]}" fuzz build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
  local t=$1
  mkdir -p "$work/$t"
  cargo "${toolchain[@]}" fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$work/$t.log" 2>&1 || {
    echo "== $t: FAILED"; tail -40 "$work/$t.log"; return 1; }
  echo "== $t: $(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') executions, no finding"
}
status=0
# Two at a time: the machine has two cores.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do run "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
