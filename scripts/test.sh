#!/usr/bin/env bash
# Installs what the tests need (Debian: tshark, scapy with the cryptography
# module its IPsec layer uses, iproute2, strongSwan, chromium) and runs the
# whole suite. Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v tshark >/dev/null || need+=(tshark)
/usr/bin/python3 -c 'import scapy.layers.inet6' 2>/dev/null || need+=(python3-scapy)
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
command -v ip >/dev/null || need+=(iproute2)
# strongSwan charon with kernel-libipsec as the interop peer (testbed/tests/strongswan.rs)
. scripts/strongswan-packages.sh
command -v openssl >/dev/null || need+=(openssl)  # Ed25519 keys
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v ping >/dev/null || need+=(iputils-ping)
# Renders the demo's report.html to PNG (testbed/tests/report.rs)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]}: install them (as root: apt-get install ${need[*]})" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

cargo build -p common --locked          # the core alone: no I/O dependency
bash -n scripts/bench.sh                 # the one-table bench runner parses (it runs for 20 minutes: not here)
# The simulator scale bench at 10 nodes, the flood bench at 1 packet a
# millisecond, the loss bench at 2 seeds, the IKE load bench at 1 s a
# responder and the MOBIKE bench at one move a stack (root, charon), in the
# test profile (`cargo test` runs a bench binary without `--bench`), so
# they keep building and running.
cargo test -p testbed --bench sim --bench flood --bench loss --bench ike_load --bench mobike --locked
# And common's (codec, ESP, IKE, and the bindings bench at 1 000 bindings).
BINDINGS=1000 cargo test -p common --benches --locked
cargo test --workspace --locked
# The fuzz targets keep building and running (issue 14): a plain build,
# without cargo-fuzz or its sanitizer (the instrumented release build
# alone takes minutes), into the workspace's target directory so the
# dependencies built above are reused; each binary runs its committed
# seeds and mutations of them up to 2 000 runs, and the harness's own test.
fuzz=(--manifest-path fuzz/Cargo.toml --locked)
CARGO_TARGET_DIR=target cargo build "${fuzz[@]}" --bins
CARGO_TARGET_DIR=target cargo test "${fuzz[@]}" --lib
for f in fuzz/fuzz_targets/*.rs; do
  t=$(basename "$f" .rs)
  d=target/fuzz-smoke/$t
  rm -rf "$d" && mkdir -p "$d"
  "target/debug/$t" -runs=2000 "$d" "fuzz/seeds/$t" 2>"$d.log" || { tail -40 "$d.log"; exit 1; }
done
