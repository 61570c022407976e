#!/usr/bin/env bash
# Fuzzes every target (one libFuzzer process at a time) for SECONDS each, or
# for N executions each, then prints per target the executions, exec/s,
# wall seconds, coverage (libFuzzer's cov:/ft: on its last stats line) and
# crashes (files in fuzz/artifacts/<target>). New inputs go to
# fuzz/corpus/<target> (gitignored, with its log in
# fuzz/artifacts/<target>.log), so a later run goes on from there; the
# committed seeds in fuzz/seeds/<target> are read too.
# Stable toolchain: cargo-fuzz needs RUSTC_BOOTSTRAP=1 for -Zsanitizer.
# Usage: scripts/fuzz.sh SECONDS [TARGET...]    (default: every target)
#        scripts/fuzz.sh --runs N [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz.sh SECONDS|--runs N [TARGET...]"
if [ "${1:-}" = --runs ]; then
  limit=(-runs="${2:?$usage}")
  shift 2
else
  limit=(-max_total_time="${1:?$usage}")
  shift
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
# cargo-fuzz has no --locked: fail here rather than let it rewrite the lock.
cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null
# No sanitizer: what is fuzzed is safe Rust, where a bug is a panic or a
# broken invariant, and AddressSanitizer cost the engine targets 6x the
# executions (engine_cn: 645 against 4 301 a second).
cargo fuzz build -s none
printf '%-14s %12s %8s %7s %7s %7s %7s\n' target execs exec/s seconds cov ft crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t.log"
  # A crash ends the target's run; the others still run.
  start=$SECONDS
  cargo fuzz run -s none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    "${limit[@]}" -print_final_stats=1 >"$log" 2>&1 || true
  took=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  printf '%-14s %12s %8s %7s %7s %7s %7s\n' "$t" "${execs:-?}" "${rate:-?}" "$took" "${cov:-?}" "${ft:-?}" "$crashes"
done
