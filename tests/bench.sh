#!/bin/bash
# make bench: every benchmark, one name=value line per figure (ratios are against
# a peer measured in the same run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -x rust_ipsec/esp/benches/bench.sh ]; then
  rust_ipsec/esp/benches/bench.sh
fi
