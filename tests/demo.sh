#!/bin/bash
# make demo: boots the test VM and runs tests/vm/demo.sh with its console shown.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RIPSEC_DEMO=1 VM_VERBOSE=1 "$root/tests/vm/run.sh" demo | grep -vE '^\s*$' |
  grep -E '^\[|^(ok|not ok) - |^vm: |^ +' || true
grep -q '^not ok' "$root/build/vm/last/results.txt" && exit 1
test -f "$root/build/vm/last/finished"
