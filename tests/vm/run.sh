#!/bin/bash
# Boots the test kernel in QEMU, runs VM scenarios inside it, and fails on any
# failed check or any kernel WARN/BUG/oops/KASAN/kmemleak report.
#   tests/vm/run.sh [SCENARIO...]     (files under tests/vm/scenarios/ or tests/vm/; default: all scenarios)
# The guest gives each scenario 600 s, or what its file asks for in a line "# vm-timeout: SECONDS".
# Env: VARIANT=test|debug (kernel), VM_CPUS (2), VM_CPU (QEMU -cpu model: max), VM_MEM (2048 MiB), VM_TIMEOUT (s),
#      VM_VERBOSE=1 (stream the guest console), VM_APPEND (more kernel arguments), RIPSEC_CACHE.
# The guest sees the host root read-only over 9p, so host tools and this checkout's
# build outputs are usable inside it; there is no network device to the outside.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${RIPSEC_CACHE:-$HOME/.cache/rust_ipsec}
KB=$("$root/tests/kernel/build.sh" --print-dir)
BZ=$KB/arch/x86/boot/bzImage
[ -f "$BZ" ] || { echo "vm: no kernel at $BZ (run: make kernel)" >&2; exit 1; }
[ -f "$root/rust_ipsec/rust_ipsec.ko" ] || { echo "vm: module not built (run: make)" >&2; exit 1; }

scenarios=()
if [ $# = 0 ]; then
  for f in "$here"/scenarios/*.sh; do scenarios+=("scenarios/$(basename "$f" .sh)"); done
else
  # A name is a file under tests/vm/, with or without scenarios/ and .sh.
  for s in "$@"; do
    s=${s%.sh}; s=${s#tests/vm/}
    [ -f "$here/$s.sh" ] || s=scenarios/$s
    [ -f "$here/$s.sh" ] || { echo "vm: no scenario $s" >&2; exit 2; }
    scenarios+=("$s")
  done
fi

OUT=$root/build/vm/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$OUT"
ln -sfn "$OUT" "$root/build/vm/last"

# KVM only if a quick probe once showed that it boots; otherwise TCG.
accel=(-accel tcg)
probe=$CACHE/kvm-probe-$(uname -r)
if [ -w /dev/kvm ] && [ ! -f "$probe" ]; then
  mkdir -p "$CACHE"
  if timeout 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 -nographic -no-reboot \
       -nic none -kernel "$BZ" -append "console=ttyS0 panic=-1 rdinit=/nonexistent" 2>&1 |
       grep -q "Kernel panic\|No working init"; then
    echo yes > "$probe"
  else
    echo no > "$probe"
  fi
fi
# VM_CPU=qemu64 gives a guest without AES-NI/PCLMULQDQ/AVX, for the portable crypto paths.
[ "$(cat "$probe" 2>/dev/null)" = yes ] && accel=(-accel kvm -cpu "${VM_CPU:-host}") || accel=(-accel tcg -cpu "${VM_CPU:-max}")

cpus=${VM_CPUS:-2}
mem=${VM_MEM:-2048}
timeout_s=${VM_TIMEOUT:-3600}
scen_list=$(IFS=,; echo "${scenarios[*]}")
append="console=ttyS0 root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose"
# A TCG guest on a busy 2-core host can go seconds without running a vCPU; the
# default 21 s RCU stall timeout then reports stalls that are the host's load.
append+=" ro init=$root/tests/vm/init.sh panic=-1 kmemleak=on quiet loglevel=4 rcupdate.rcu_cpu_stall_timeout=120"
append+=" RIPSEC_ROOT=$root RIPSEC_SCENARIOS=$scen_list RIPSEC_CACHE=$CACHE"
[ -n "${RIPSEC_DEMO:-}" ] && append+=" RIPSEC_DEMO=1"
# Under TCG the debug kernel spends minutes evaluating the ACPI _PRT of the
# PCI bus (AE_AML_LOOP_TIMEOUT); its interrupts route without ACPI just as
# well, and ACPI still describes the CPUs.
[ "${VARIANT:-test}" = debug ] && append+=" acpi=noirq RIPSEC_SLOW=4"
append+=${VM_APPEND:+ $VM_APPEND}

echo "vm: booting $(basename "$KB") (${accel[*]}, $cpus vCPUs) for: ${scenarios[*]}"
t0=$(date +%s)
set +e
qemu() {
  timeout "$timeout_s" qemu-system-x86_64 "${accel[@]}" -smp "$cpus" -m "$mem" \
    -nographic -no-reboot -nic none \
    -kernel "$BZ" -append "$append" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$root",mount_tag=checkout,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$OUT",mount_tag=out,security_model=none \
    </dev/null
}
if [ "${VM_VERBOSE:-0}" = 1 ]; then
  qemu 2>&1 | tee "$OUT/console.log"; qrc=${PIPESTATUS[0]}
else
  qemu > "$OUT/console.log" 2>&1; qrc=$?
fi
set -e
echo "vm: guest ran $(( $(date +%s) - t0 )) s (logs: $OUT)"

# Results: every "ok - ..." / "not ok - ..." line the guest wrote.
results=$OUT/results.txt
touch "$results"
passed=$(grep -c '^ok - ' "$results" || true)
failed=$(grep -c '^not ok - ' "$results" || true)
if [ ! -f "$OUT/finished" ]; then
  echo "not ok - vm: the guest did not finish (qemu exit $qrc; timeout ${timeout_s}s?)" | tee -a "$results"
  failed=$((failed + 1))
fi
# The console catches what the guest could not write itself (a panic in softirq).
if grep -aE 'Kernel panic|BUG:|Oops|WARNING:|KASAN|general protection' "$OUT/console.log" > "$OUT/console-bad.txt"; then
  if ! grep -q '^not ok - kernel log' "$results"; then
    echo "not ok - kernel log: console shows a kernel error" | tee -a "$results"
    failed=$((failed + 1))
  fi
fi
grep -E '^(ok|not ok) - ' "$results" | sed 's/^/  /'
if [ "$failed" != 0 ]; then
  echo "vm: failures; excerpts:"
  grep -E '^not ok - ' "$results" | sed 's/^/  /'
  tail -30 "$OUT/console-bad.txt" 2>/dev/null | sed 's/^/  console: /' || true
fi
echo "vm: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" != 0 ]
