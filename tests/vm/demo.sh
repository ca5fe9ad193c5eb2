#!/bin/bash
# make demo (inside the VM): the seed's cluster failover, end to end.
# client talks IPsec (IKEv2, ESP in rust_ipsec) to package pkgA at 198.51.100.98
# on node1; node1 dies (daemon SIGKILLed: no Delete leaves it; module state
# flushed); the address moves to node2. node2 sees ESP with an unknown SPI,
# answers with the INVALID_SPI hint and opens an IKE SA carrying
# INITIAL_CONTACT under the package identity; the client flushes its old SAs
# and traffic flows on the new ones. Then the same back to node1.
# Ends the failover part with "recovery_ms=N" (address move -> first reply
# through a new SA), the fail back with "failback_recovery_ms=N".
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
SCEN=demo

say() { printf '[%6.2fs] %s\n' "$(awk '{print $1}' /proc/uptime)" "$*"; }
indent() { sed 's/^/            /'; }
demo_end() { cl_traffic_stop; cl_down; }
trap demo_end EXIT

cl_up || { not_ok "daemons started"; exit 1; }
say "rust_ipsec loaded: $(nsx client "$RIPSEC" stats | head -1)"
say "cluster up: client $CLIENT4, node1 ${LAN4[node1]}, node2 ${LAN4[node2]} on the data LAN 198.51.100.0/24;"
say "            heartbeat node1<->node2 on 192.0.2.0/24 (bypass policy: left in clear)"
say "package pkgA at $PKG4 on $(pkg_where); node1 and node2 run 'ripsec daemon' with the same"
say "            package configuration (identity @$CL_PKG_ID, one PSK); client: remote id @$CL_PKG_ID, start = trap"
check "heartbeat in clear between the nodes" nsx node1 ping -c 1 -W 2 "${HB4[node2]}"

say "client pings $PKG4 every 100 ms; the first packet triggers IKE (ACQUIRE)"
cl_traffic_start
t_start=$(now_s)
if r=$(cl_wait_reply_after "$t_start" 30); then
  ok "first reply from pkgA on node1 after $(ms_between "$t_start" "$r") ms (IKE on demand)"
else
  not_ok "traffic to pkgA on node1" "$(tail -3 "$CL_DIR/client.log" | tr '\n' ' ')"; exit 1
fi
sleep 1
say "SAs:"
cl_ctl client status | grep -v '^Connections:' | grep -v '^  pkgA:' | sed 's/^/ client /' | indent
read -r _ _ old_in old_out _ <<< "$(cl_summary client)"
say "node1 module: $(cl_sa_count node1) SAs; node2 module: $(cl_sa_count node2) SAs (standby: silent)"

# failover NAME FROM TO: fail FROM, move the package to TO, print the timeline;
# sets REC_MS (empty if no recovery).
failover() {
  local name=$1 from=$2 to=$3 t0 r e c i o t
  read -r _ _ i o _ <<< "$(cl_summary client)"
  say "=== $name: $from fails (daemon SIGKILL: no Delete; module SAs and policies flushed)"
  cl_fail "$from"
  sleep 0.5   # traffic now black-holed: the client still sends on SA out $o
  cl_move "$to" eth0
  t0=$CL_T0
  say "=== $name: t=0: package address $PKG4 added on $to (gratuitous ARP right after)"
  REC_MS=
  if r=$(cl_wait_reply_after "$t0" 30); then
    REC_MS=$(ms_between "$t0" "$r")
  fi
  sleep 0.5
  say "timeline (relative to the address move):"
  cl_timeline "$t0" "$from" "$to"
  read -r e c ni no t <<< "$(cl_summary client)"
  if [ -n "$REC_MS" ]; then ok "$name: traffic recovered in $REC_MS ms"; else not_ok "$name: traffic recovered" "no reply within 30 s"; fi
  check_eq "$name: client holds one IKE SA with one Child SA to @$CL_PKG_ID" "1 1 1" "$e $c $t"
  check "$name: the client's Child SA is new (in $i -> $ni)" test "$ni" != "$i" -a "$ni" != -
  check_eq "$name: client module holds exactly the new SA pair" "2" "$(cl_sa_count client)"
  say "client SAs now:"
  cl_ctl client status | grep -v '^Connections:' | grep -v '^  pkgA:' | sed 's/^/ client /' | indent
}

failover failover node1 node2
[ -n "$REC_MS" ] && echo "recovery_ms=$REC_MS"
FAILOVER_MS=$REC_MS

say "node1 is repaired: its daemon starts again as the standby node"
cl_start node1
sleep 1
failover "fail back" node2 node1
[ -n "$REC_MS" ] && echo "failback_recovery_ms=$REC_MS"
FAILBACK_MS=$REC_MS

cl_traffic_stop
sent=$(grep -c 'bytes from' "$CL_DIR/ping.log" || true)
say "ping: $sent replies in total"
if [ -n "$FAILOVER_MS" ] && [ -n "$FAILBACK_MS" ]; then
  say "both recoveries happened: failover $FAILOVER_MS ms, fail back $FAILBACK_MS ms"
else
  not_ok "both recoveries happened" "failover '${FAILOVER_MS}' fail back '${FAILBACK_MS}'"
  for ns in client node1 node2; do echo "--- $ns daemon log (tail)"; tail -15 "$CL_DIR/$ns.log" | cut -c1-200 | indent; done
  exit 1
fi
