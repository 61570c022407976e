#!/usr/bin/env bash
# Runs the benchmarks and prints one table: each headline figure against
# its baseline measured in the same run, their ratio and the goal.
#
#   scripts/bench.sh            # all of them (about 25 minutes)
#   scripts/bench.sh sim esp    # some of them
#
# Each bench's whole output stays in target/bench-report/BENCH.log; the
# table is also written to target/bench-report/summary.md. The benches on
# real interfaces (daemons, ike_load, mobike) need root, iperf3, ethtool,
# radvd and strongSwan's charon (installed here when run as root on Debian);
# without them they say what is missing and their rows are left out.
# Nothing else should run beside it: the figures are ratios of one run,
# but a busy machine moves them.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(sim bindings esp codec ike ike_load mobike daemons flood loss)
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=("${all[@]}")
for b in "${benches[@]}"; do
  [[ " ${all[*]} " == *" $b "* ]] || { echo "unknown bench $b (one of: ${all[*]})" >&2; exit 2; }
done

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ping >/dev/null || need+=(iputils-ping)
command -v radvd >/dev/null || need+=(radvd)
. scripts/strongswan-packages.sh
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

out=target/bench-report
mkdir -p "$out"
# The daemons bench runs the release daemons beside target/release/testbed.
cargo build --release --locked -p mn -p cn -p ha -p testbed

# A criterion figure: the mean time of one iteration, in ns (criterion
# writes an id's slashes as underscores).
mean_ns() {
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"])' \
    "target/criterion/$1/new/estimates.json" 2>/dev/null || echo ""
}
# One row as the benches print theirs (testbed::summary):
# row ITEM WHAT OURS BASELINE BASE GOAL.
row() { target/release/testbed figure "$@"; }
per_second() { [ -n "$1" ] && /usr/bin/python3 -c "print(1e9 / $1)" || echo ""; }

run() {
  local pkg=$1 bench=$2 log=$3
  shift 3
  echo "== cargo bench -p $pkg --bench $bench $*" >&2
  local t=$SECONDS
  if ! cargo bench --locked -p "$pkg" --bench "$bench" -- "$@" >"$log" 2>&1; then
    echo "   FAILED: see $log" >&2
    echo "summary | $bench | FAILED: see $log | - | - | - | - |" >>"$log"
  fi
  echo "   $((SECONDS - t)) s" >&2
}

rows=()
for b in "${benches[@]}"; do
  log=$out/$b.log
  case $b in
    sim) run testbed sim "$log" 1000 10000 100000 ;;
    daemons | flood | loss | ike_load | mobike) run testbed "$b" "$log" ;;
    bindings)
      # Each engine in a process of its own, so its memory is its own.
      run common bindings "$log" bu/cn
      run common bindings "$out/bindings-ha.log" bu/ha
      cat "$out/bindings-ha.log" >>"$log"
      n=${BINDINGS:-1000000}
      for e in cn ha; do
        one=$(mean_ns "bu_$e/bindings_1")
        many=$(mean_ns "bu_$e/bindings_$n")
        mem=$(sed -n "s/^bu\/$e with $n: .* B each; .* bindings filled in .* s, \([0-9]*\) B each$/\1/p" "$log")
        pair=$(sed -n "s/^bu\/$e with $n: $n SA pairs installed in .* s, \([0-9]*\) B each;.*/\1/p" "$log")
        echo "$(row "4 a million bindings" "$e BU/s at $n bindings" "$(per_second "$many")" "1 binding" "$(per_second "$one")" "≥ 500 k at 1 M")" >>"$log"
        echo "$(row "4 a million bindings" "$e BU/s at 1 binding" "$(per_second "$one")" "the goal" 1000000 "≥ 1 M")" >>"$log"
        echo "$(row "4 a million bindings" "$e bytes a binding, at $n" "$mem" "bytes an SA pair" "$pair" "≤ 200 B")" >>"$log"
      done
      ;;
    esp)
      run common esp "$log" "aes256gcm16/(bare_)?(seal|open)/1400"
      for op in seal open; do
        echo "$(row "ESP" "AES-256-GCM $op 1400 B, ns" "$(mean_ns "esp_aes256gcm16/${op}_1400")" "the bare AEAD call" "$(mean_ns "esp_aes256gcm16/bare_${op}_1400")" "≈ 1")" >>"$log"
      done
      ;;
    codec)
      run common codec "$log"
      for g in bu_hao ike_auth; do
        echo "$(row "codec" "$g parse, ns" "$(mean_ns "$g/parse")" "a copy of its bytes" "$(mean_ns "$g/baseline_copy")" "-")" >>"$log"
      done
      ;;
    ike)
      run common ike "$log"
      for a in psk ed25519; do
        hs=$(mean_ns "handshake/${a}_aes256gcm")
        echo "$(row "3 IKE" "$a handshakes/s, both sides in one process" "$(per_second "$hs")" "X25519 alone (both sides)" "$(per_second "$(mean_ns handshake/x25519_only)")" "-")" >>"$log"
      done
      ;;
  esac
  mapfile -t -O ${#rows[@]} rows < <(grep '^summary | ' "$log" | sed 's/^summary //' || true)
done

{
  echo "Benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo "| item | figure | ours | baseline (same run) | ours ÷ baseline | goal |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "whole outputs: $out/BENCH.log"
} | tee "$out/summary.md"
