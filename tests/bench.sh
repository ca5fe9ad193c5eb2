#!/bin/bash
# make bench: every benchmark, one name=value line per figure (ratios are against
# a peer measured in the same run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rust_ipsec/esp/benches/bench.sh
# VM benchmarks: the figures are the name=value lines of each script's log.
for b in bench-datapath bench-failover bench-ike; do
  [ -f "tests/vm/$b.sh" ] || continue
  out=$(tests/vm/run.sh "$b" | sed -n 's/^vm: guest ran .*(logs: \(.*\))$/\1/p')
  grep -E '^[a-z0-9_]+=[-0-9.]+$' "$out/$b.log" || echo "bench: $b printed no figures (see $out)" >&2
done
