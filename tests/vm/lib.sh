# Shared helpers for VM scenarios (sourced). Each check appends one line
# "ok - SCENARIO: what" or "not ok - SCENARIO: what (why)" to $RESULTS.
SCEN=${SCEN:-$(basename "${0%.sh}")}
RIPSEC=$RIPSEC_ROOT/target/release/ripsec
MODULE=$RIPSEC_ROOT/rust_ipsec/rust_ipsec.ko

ok() { echo "ok - $SCEN: $1" | tee -a "$RESULTS"; }
not_ok() { echo "not ok - $SCEN: $1${2:+ ($2)}" | tee -a "$RESULTS"; }

# check WHAT CMD...: passes when CMD exits 0.
check() {
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what" "exit $?: $(echo "$out" | tail -3 | tr '\n' ' ')"; fi
}

# check_fails WHAT CMD...: passes when CMD exits non-zero.
check_fails() {
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then not_ok "$what" "unexpectedly succeeded"; else ok "$what"; fi
}

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected '$2', got '$3'"; fi
}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

load_module() { lsmod | grep -q '^rust_ipsec ' || insmod "$MODULE" "$@"; }
unload_module() { ! lsmod | grep -q '^rust_ipsec ' || rmmod rust_ipsec; }

# json_get JSON PATH: one value from ripsec's --json output (PATH like .module.version).
json_get() { python3 -c 'import json,sys; v=json.loads(sys.argv[1])
for k in sys.argv[2].strip(".").split("."): v=v[k]
print(v)' "$1" "$2"; }

# kmemleak_check WHAT: a fresh scan must find no unreferenced objects.
kmemleak_check() {
  local f=/sys/kernel/debug/kmemleak
  [ -e $f ] || { not_ok "$1" "kmemleak not available"; return; }
  # Objects younger than 5 s are never reported: age them, scan twice.
  sleep 6; echo scan > $f; sleep 1; echo scan > $f
  local leaks; leaks=$(cat $f)
  if [ -z "$leaks" ]; then ok "$1"; else
    not_ok "$1" "$(echo "$leaks" | grep -c 'unreferenced object') leak(s)"
    echo "$leaks" | head -60
  fi
  echo clear > $f
}

# kernel_log_check WHAT: no WARN/BUG/oops/KASAN/lockdep report since boot.
kernel_log_check() {
  local bad
  bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|KASAN|general protection|UBSAN|possible recursive locking|circular locking|suspicious RCU|INFO: task .* blocked|rcu_sched detected stall|suspected memory leak' || true)
  if [ -z "$bad" ]; then ok "kernel log clean ($1)"; else
    echo "not ok - kernel log: errors reported ($1)" | tee -a "$RESULTS"
    echo "$bad" | head -40
  fi
}

# pair_up A B: namespaces A (192.0.2.1, 2001:db8::1) and B (192.0.2.2,
# 2001:db8::2) joined by one veth, DAD off.
pair_up() {
  local a=$1 b=$2 ns
  ip netns add "$a"; ip netns add "$b"
  ip link add eth0 netns "$a" type veth peer name eth0 netns "$b"
  for ns in "$a" "$b"; do
    nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up
  done
  ip -n "$a" addr add 192.0.2.1/24 dev eth0; ip -n "$b" addr add 192.0.2.2/24 dev eth0
  ip -n "$a" addr add 2001:db8::1/64 dev eth0 nodad; ip -n "$b" addr add 2001:db8::2/64 dev eth0 nodad
}

# Removes namespaces and unloads the module: every scenario starts clean.
cleanup_all() {
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do ip netns del "$ns"; done
  unload_module
}
