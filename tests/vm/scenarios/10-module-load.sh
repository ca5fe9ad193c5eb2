#!/bin/bash
# Module load/unload, crypto self-tests, refusal when a self-test fails, and the
# CLI's answer when the module is absent.
. "$RIPSEC_ROOT/tests/vm/lib.sh"

unload_module
out=$("$RIPSEC" stats 2>&1); rc=$?
check_eq "ripsec stats without the module exits 3" 3 "$rc"
case "$out" in *"module is not loaded"*) ok "ripsec stats without the module says so";;
  *) not_ok "ripsec stats without the module says so" "$out";; esac

dmesg -C
check "insmod rust_ipsec.ko" insmod "$MODULE"
check "self-tests logged as passed" sh -c 'dmesg | grep -q "rust_ipsec: crypto self-tests passed"'
json=$("$RIPSEC" stats --json)
check_eq "ripsec stats reports the module version" "0.1.0" "$(json_get "$json" .module.version)"
n_ctr=$(grep -cE '^\s+RIPSEC_CTR_[A-Z_]+,' rust_ipsec/uapi/rust_ipsec.h)
check "module lists every counter of the uapi ($n_ctr)" python3 -c "import json,sys; assert len(json.loads(sys.argv[1])['counters']) == int(sys.argv[2])" "$json" "$n_ctr"
check "rmmod rust_ipsec" rmmod rust_ipsec

fails=0
for i in $(seq 1 20); do
  insmod "$MODULE" || fails=$((fails + 1))
  "$RIPSEC" stats >/dev/null || fails=$((fails + 1))
  rmmod rust_ipsec || fails=$((fails + 1))
done
check_eq "20 load/query/unload cycles" 0 "$fails"

dmesg -C
check_fails "insmod with a failing self-test is refused" insmod "$MODULE" selftest_fail=1
check "the refusal names the failed self-test" sh -c \
  'dmesg | grep -q "^\[[ 0-9.]*\] rust_ipsec: crypto self-test failed (aes-128-gcm: encrypt output differs from the known answer); refusing to load"'
check_fails "module is not left loaded after the refusal" sh -c 'lsmod | grep -q "^rust_ipsec "'
check "module loads again after the refusal" insmod "$MODULE"
unload_module
kmemleak_check "no leaks after load/unload cycles"
