#!/usr/bin/env bash
# Fuzz the IKE message decoder (decode_message) and SK payload opening
# (sk_open). Usage: run.sh [runs per target] [target...]
# (default 1000000 runs, both targets).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets stable build it.
# Exits non-zero if libFuzzer finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
RUNS="${1:-1000000}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(decode_message sk_open)
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: $RUNS runs"
    # libFuzzer exits non-zero on a crash; set -e propagates it.
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -runs="$RUNS" -max_len=4096
done
