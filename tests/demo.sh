#!/bin/bash
# make demo: boots the test VM and runs tests/vm/demo.sh (the cluster failover
# and fail back) with its console shown. Exits 0 only when the VM run passed
# and both recoveries were measured.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
RIPSEC_DEMO=1 VM_VERBOSE=1 "$root/tests/vm/run.sh" demo 2>&1 | tr -d '\r' | tee "$log" | grep -vE '^\s*$' |
  grep -aE '^\[|^(ok|not ok) - |^vm: |^ +|^[a-z_]+=[0-9]+$'
rc=${PIPESTATUS[0]}
# This run's own directory (build/vm/last may be another concurrent run's).
out=$(sed -n 's/^vm: guest ran .* (logs: \(.*\))$/\1/p' "$log" | tail -1)
[ "$rc" = 0 ] || exit 1
[ -n "$out" ] && [ -f "$out/finished" ] || exit 1
grep -q '^not ok' "$out/results.txt" && exit 1
grep -aq '^recovery_ms=[0-9]' "$log" && grep -aq '^failback_recovery_ms=[0-9]' "$log"
