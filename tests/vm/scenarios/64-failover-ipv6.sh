#!/bin/bash
# Cluster failover with an IPv6 package address (2001:db8:1::98): the client's
# connection, the nodes' package configuration and the traffic are IPv6 only.
# node1 dies -> INITIAL_CONTACT path; then a planned fail back. Neighbour
# discovery to the package address passes outside IPsec, so the client
# reaches whichever node holds the address.
CL_FAMILY=6
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"

dump_logs() { for ns in client node1 node2; do echo "--- $ns daemon log (tail)"; tail -25 "$CL_DIR/$ns.log" | cut -c1-220; done; }
trap 'cl_traffic_stop; cl_save_logs 64-failover-ipv6; cl_down' EXIT

if cl_up; then ok "IPv6 cluster and daemons up"; else not_ok "IPv6 cluster and daemons up"; exit 1; fi
if cl_ping_until 30; then ok "client's first ping to $CL_PKG triggers IKE with node1"
else not_ok "client's first ping to $CL_PKG triggers IKE with node1"; dump_logs; exit 1; fi
check "client: one IKE SA with one Child SA to pkgA" wait_for 10 cl_one_pair client
check "node1: one IKE SA with one Child SA" wait_for 10 cl_one_pair node1
read -r _ _ c_in c_out _ <<< "$(cl_summary client)"
v6_sas=$(nsx client "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(1 for s in json.load(sys.stdin) if sys.argv[1] in (s["src"], s["dst"])))' "$CL_PKG")
check_eq "client's module: the Child SA pair is between the IPv6 addresses" 2 "$v6_sas"
read -r _ _ e _ t <<< "$(cl_summary node2)"
check_eq "standby node2: no IKE SA" "0" "$t"

# --- node1 dies: INITIAL_CONTACT path ---------------------------------------
cl_traffic_start
sleep 1
cl_fail node1
cl_move node2 eth0
t0=$CL_T0
if r=$(cl_wait_reply_after "$t0" 30); then ok "IPv6 failover: traffic recovered ($(ms_between "$t0" "$r") ms after the move)"
else not_ok "IPv6 failover: traffic recovered" "no reply in 30 s"; dump_logs; fi
cl_traffic_stop
cl_timeline "$t0" node1 node2
check "IPv6 failover: client has exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
check "IPv6 failover: node2 has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair node2
read -r _ _ f_in _ _ <<< "$(cl_summary client)"
check "IPv6 failover: the client's Child SA is new ($c_in -> $f_in)" test "$f_in" != "$c_in" -a "$f_in" != -
check_eq "IPv6 failover: client module holds only the new pair" 2 "$(cl_sa_count client)"
check "IPv6 failover: node2 sent INITIAL_CONTACT and the client flushed the old IKE SA" grep -q "reason=InitialContact" "$CL_DIR/client.log"
check "IPv6 failover: node2 saw the SPI miss" grep -q "ESP for an unknown SPI spi=\"${c_out#0x}\"" "$CL_DIR/node2.log"
check "IPv6 failover: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$CL_PKG"

# --- planned fail back ---------------------------------------------------------
cl_start node1
sleep 0.5
cl_move node1 eth0
t0=$CL_T0
if wait_for 30 nsx client ping -c 1 -W 0.5 "$CL_PKG"; then ok "IPv6 fail back: traffic recovered ($(ms_between "$t0" "$(now_s)") ms after the move, within)"
else not_ok "IPv6 fail back: traffic recovered"; dump_logs; fi
check "IPv6 fail back: client has exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
check "IPv6 fail back: node1 has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair node1
node2_clean() { [ "$(cl_sa_count node2)" = 0 ] && read -r _ _ _ _ t <<< "$(cl_summary node2)" && [ "$t" = 0 ]; }
check "IPv6 fail back: node2 dropped its SAs after the release grace" wait_for 10 node2_clean
