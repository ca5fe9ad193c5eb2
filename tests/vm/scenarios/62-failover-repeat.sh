#!/bin/bash
# 20 failovers in a row (node1 <-> node2, the failing node's daemon SIGKILLed
# and its module state flushed each time, INITIAL_CONTACT path): every one
# recovers, and the client ends with exactly one IKE SA and one Child SA pair
# to the package, no leaked SA in any module.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
N=${FAILOVERS:-20}
CL_BYPASS_ON_FAIL=0   # keep each cycle short: no protect policy covers the heartbeat here
trap 'cl_traffic_stop; cl_save_logs 62-failover-repeat; cl_down' EXIT

if cl_up; then ok "cluster and daemons up"; else not_ok "cluster and daemons up"; exit 1; fi
check "client's first ping triggers IKE with pkgA on node1" cl_ping_until 30
cl_traffic_start
from=node1 to=node2 recovered=0 times=()
start=$(date +%s)
for i in $(seq "$N"); do
  # Bounded well inside the guest's 600 s per scenario, even on a loaded host.
  [ $(( $(date +%s) - start )) -gt 480 ] && { echo "time budget spent after $((i - 1)) failovers"; break; }
  cl_crash_failover $from $to
  if [ -n "$CL_REC_MS" ]; then recovered=$((recovered + 1)); times+=("$CL_REC_MS")
  else echo "failover $i ($from -> $to): no recovery"; fi
  echo "failover $i: $from -> $to: ${CL_REC_MS:-none} ms"
  tmp=$from; from=$to; to=$tmp
done
cl_traffic_stop
check_eq "$N failovers in a row: every one recovered" "$N" "$recovered"
read -r med p95 <<< "$(printf '%s\n' "${times[@]}" | stats_ms)"
ok "recovery over $N failovers: median $med ms, p95 $p95 ms"
active=$from standby=$to
check_eq "package ends on $active" "$active eth0" "$(pkg_where)"
check "client: exactly one IKE SA and one Child SA pair to pkgA" wait_for 10 cl_one_pair client
check_eq "client module: exactly 2 SAs (no leak)" 2 "$(cl_sa_count client)"
check "active $active: exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair $active
check_eq "active $active module: exactly 2 SAs" 2 "$(cl_sa_count $active)"
read -r e _ _ _ t <<< "$(cl_summary $standby)"
check_eq "standby $standby: no IKE SA" "0 0" "$e $t"
check_eq "standby $standby module: no SA" 0 "$(cl_sa_count $standby)"
pol=$(nsx client "$RIPSEC" policy list --json | python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin) if p.get("action") == "protect"))')
check "client: protect policies bounded ($pol: trap + one Child SA pair)" test "$pol" -le 4
check "ping through the final SAs" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"
