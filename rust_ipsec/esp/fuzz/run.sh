#!/usr/bin/env bash
# Runs every cargo-fuzz target of ripsec-esp for a number of executions.
# Usage: fuzz/run.sh [runs]   (default 1000000)
# Exits non-zero if a target crashes (the reproducer lands in
# fuzz/artifacts/<target>/).
set -euo pipefail
RUNS="${1:-1000000}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); a stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1

for target in decap udp_classify; do
    # New inputs go to a scratch corpus so the committed seeds stay small.
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "== fuzz $target: $RUNS runs"
    cargo fuzz run "$target" "$work" "corpus/$target" -- -runs="$RUNS" -max_len=4096
    rm -rf "$work"
    trap - EXIT
done
echo "fuzz: all targets passed $RUNS runs"
