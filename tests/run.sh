#!/bin/bash
# make test: host tests (cargo, clippy), then the VM tests. Prints
#   host: N passed, N failed
#   vm: N passed, N failed
#   N passed, N failed        (the total, last line)
# and exits non-zero on any failure.
#   tests/run.sh [--host-only|--vm-only]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-all}
LOG=$root/build/test; mkdir -p "$LOG"
hp=0; hf=0; vp=0; vf=0

if [ "$mode" != --vm-only ]; then
  echo "== host: cargo test"
  RUSTFLAGS="-D warnings" cargo test --workspace --release 2>&1 | tee "$LOG/cargo-test.log" |
    grep -E '^(test result|error|warning|failures:|---- )|panicked' || true
  rc=${PIPESTATUS[0]}
  hp=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$LOG/cargo-test.log" | paste -sd+ | bc)
  hf=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$LOG/cargo-test.log" | paste -sd+ | bc)
  hp=${hp:-0}; hf=${hf:-0}
  if [ "$rc" != 0 ] && [ "$hf" = 0 ]; then
    echo "host: cargo test failed to build or run (see $LOG/cargo-test.log)"; tail -20 "$LOG/cargo-test.log"; hf=$((hf + 1))
  fi
  echo "== host: cargo clippy (warnings are errors)"
  if cargo clippy -q --workspace --all-targets --release -- -D warnings > "$LOG/clippy.log" 2>&1; then
    hp=$((hp + 1)); echo "ok - clippy clean"
  else
    hf=$((hf + 1)); echo "not ok - clippy"; head -40 "$LOG/clippy.log"
  fi
  echo "host: $hp passed, $hf failed"
fi

if [ "$mode" != --host-only ]; then
  # vm_boot LOG [run.sh args...]: one guest boot; adds its counts to vp/vf.
  vm_boot() {
    local log=$1; shift
    tests/vm/run.sh "$@" 2>&1 | tee "$log"
    local p f
    p=$(sed -n 's/^vm: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^vm: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
    vp=$((vp + ${p:-0})); vf=$((vf + ${f:-1}))
  }
  echo "== vm: scenarios in QEMU"
  vm_boot "$LOG/vm.log"
  # The portable crypto paths: a guest CPU without AES-NI, PCLMULQDQ or AVX.
  echo "== vm: module and AEAD backends on a CPU without AES-NI (-cpu qemu64)"
  VM_CPU=qemu64 vm_boot "$LOG/vm-qemu64.log" 10-module-load 43-aead-backends
fi

[ "$mode" = all ] && { echo "host: $hp passed, $hf failed"; echo "vm: $vp passed, $vf failed"; }
echo "$((hp + vp)) passed, $((hf + vf)) failed"
[ $((hf + vf)) = 0 ]
