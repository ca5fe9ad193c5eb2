#!/bin/bash
# PID 1 of the test VM: the host root is mounted read-only over 9p. Sets up a
# writable /tmp, /run, /var, runs the scenarios named in RIPSEC_SCENARIOS and
# writes their results and the kernel log to the "out" 9p share.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp/home LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts 2>/dev/null; mount -t devpts devpts /dev/pts 2>/dev/null
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mount -t debugfs debugfs /sys/kernel/debug
for d in /tmp /run /var/tmp /var/log /var/lib; do mount -t tmpfs tmpfs "$d"; done
# The checkout has its own share: it may live under a directory just covered.
mkdir -p "$RIPSEC_ROOT" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro checkout "$RIPSEC_ROOT"
# /etc stays the host's, read-only: daemons get their configuration from their
# own directories under /tmp (STRONGSWAN_CONF, libreswan's --config).
mkdir -p /tmp/out /tmp/home
mount -t 9p -o trans=virtio,version=9p2000.L out /tmp/out
hostname ripsec-vm
ip link set lo up

OUT=/tmp/out
RESULTS=$OUT/results.txt
export RIPSEC_ROOT RIPSEC_CACHE OUT RESULTS
echo "ripsec-vm: kernel $(uname -r), $(nproc) CPUs"
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null

cd "$RIPSEC_ROOT" || { echo "not ok - vm: no checkout at $RIPSEC_ROOT" >> "$RESULTS"; poweroff -f; }
# shellcheck source=tests/vm/lib.sh
. tests/vm/lib.sh

IFS=, read -r -a scenarios <<< "$RIPSEC_SCENARIOS"
for s in "${scenarios[@]}"; do
  name=$(basename "$s")
  echo "=== scenario $name"
  start=$(date +%s)
  # 600 s per scenario, unless its file asks for more ("# vm-timeout: SECONDS").
  limit=$(sed -n 's/^# vm-timeout: \([0-9][0-9]*\)$/\1/p' "tests/vm/$s.sh" | head -1)
  # The debug kernel (KASAN, lockdep, kmemleak) runs several times slower under TCG.
  limit=$(( ${limit:-600} * ${RIPSEC_SLOW:-1} ))
  timeout "$limit" bash "tests/vm/$s.sh" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  if [ $rc != 0 ]; then
    echo "not ok - $name: scenario exited with status $rc" | tee -a "$RESULTS"
  fi
  echo "=== scenario $name done in $(( $(date +%s) - start )) s (rc=$rc)"
  # Leave nothing behind for the next scenario.
  cleanup_all >/dev/null 2>&1
done

kmemleak_check "no kmemleak reports at the end of the run"
kernel_log_check all
dmesg > "$OUT/dmesg.txt"
touch "$OUT/finished"
sync
umount /tmp/out
poweroff -f
