#!/bin/bash
# Cluster failover without INITIAL_CONTACT from the adoptive node:
#  - hint + liveness: the nodes are set not to initiate on an SPI miss
#    (initiate_on_spi_miss = false); node2 only sends the unprotected
#    INVALID_SPI hint; the client runs its short liveness check, finds the old
#    peer dead, flushes, and the next packet negotiates (trap).
#  - liveness only: the adoptive node's daemon is not running (no hint at
#    all); the client detects the dead peer by liveness on inbound silence,
#    flushes, and recovers once the node's daemon is up.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"

dump_logs() { for ns in client node1 node2; do echo "--- $ns daemon log (tail)"; tail -25 "$CL_DIR/$ns.log" | cut -c1-220; done; }
trap 'cl_traffic_stop; cl_save_logs 61-failover-hint; cl_down' EXIT

CL_INITIATE=false
# No periodic liveness on the client in the first part: only the hint may
# start the check (the liveness-only part turns it on).
if cl_up; then ok "cluster up (nodes: initiate_on_spi_miss = false)"; else not_ok "cluster up (nodes: initiate_on_spi_miss = false)"; exit 1; fi
if cl_ping_until 30; then ok "client's first ping triggers IKE with pkgA on node1"
else not_ok "client's first ping triggers IKE with pkgA on node1"; dump_logs; exit 1; fi
check "client: one IKE SA with one Child SA" wait_for 10 cl_one_pair client
read -r _ _ c_in c_out _ <<< "$(cl_summary client)"
check "steady traffic: no liveness failure while replies flow" nsx client ping -c 20 -i 0.1 -W 1 "$PKG4"
check "steady traffic: the client kept its SAs" test "$(cl_summary client | cut -d' ' -f3)" = "$c_in"

# --- hint + liveness ---------------------------------------------------------
cl_traffic_start
sleep 1
cl_fail node1
cl_move node2 eth0
t0=$CL_T0
if r=$(cl_wait_reply_after "$t0" 40); then ok "hint path: traffic recovered ($(ms_between "$t0" "$r") ms after the move)"
else not_ok "hint path: traffic recovered" "no reply in 40 s"; dump_logs; fi
cl_traffic_stop
cl_timeline "$t0" node1 node2
check "hint path: node2 sent the INVALID_SPI hint" grep -q "InvalidSpiSent" "$CL_DIR/node2.log"
check "hint path: the client received the hint and started a liveness check" grep -q "InvalidSpiHint" "$CL_DIR/client.log"
check "hint path: the old IKE SA was declared dead by the liveness check" grep -q "reason=LivenessFailed" "$CL_DIR/client.log"
check_fails "hint path: no INITIAL_CONTACT flush (node2 did not initiate)" grep -q "reason=InitialContact" "$CL_DIR/client.log"
init=$(cl_ctl client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["initiator"])')
check_eq "hint path: the client initiated the new IKE SA (trap)" True "$init"
check "hint path: client has exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
check "hint path: node2 has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair node2
read -r _ _ h_in _ _ <<< "$(cl_summary client)"
check "hint path: new Child SA ($c_in -> $h_in)" test "$h_in" != "$c_in" -a "$h_in" != -
check_eq "hint path: client module holds only the new pair" 2 "$(cl_sa_count client)"
check "hint path: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"

# --- liveness only: node1 takes the package back with no daemon running ------
cl_conf client 'liveness_interval = "1s"'
check "liveness only: client reloads with liveness_interval = 1s" cl_ctl client reload
check "liveness only: client renegotiates with node2 by traffic" cl_ping_until 30
check "liveness only: client has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
cl_traffic_start
sleep 1
before=$(grep -c "reason=LivenessFailed" "$CL_DIR/client.log")
hints=$(grep -c "InvalidSpiHint" "$CL_DIR/client.log")
cl_fail node2
cl_move node1 eth0     # node1's daemon is still dead: nobody sends a hint
t0=$CL_T0
client_flushed() { [ "$(grep -c "reason=LivenessFailed" "$CL_DIR/client.log")" -gt "$before" ]; }
if wait_for 20 client_flushed; then ok "liveness only: the client declared the silent peer dead ($(ms_between "$t0" "$(now_s)") ms after the move)"
else not_ok "liveness only: the client declared the silent peer dead"; dump_logs; fi
check_eq "liveness only: no hint was received" "$hints" "$(grep -c "InvalidSpiHint" "$CL_DIR/client.log")"
no_pkg_child() { read -r _ c _ _ _ <<< "$(cl_summary client)"; [ "$c" = 0 ] || [ "$c" = - ]; }
check "liveness only: the client flushed its Child SAs with the dead peer" wait_for 5 no_pkg_child
t1=$(now_s)
cl_start node1
if r=$(cl_wait_reply_after "$t1" 40); then ok "liveness only: traffic recovered once node1's daemon is up ($(ms_between "$t1" "$r") ms)"
else not_ok "liveness only: traffic recovered once node1's daemon is up"; dump_logs; fi
cl_traffic_stop
check "liveness only: client has exactly one IKE SA and one Child SA pair" wait_for 15 cl_one_pair client
check_eq "liveness only: client module holds only the new pair" 2 "$(cl_sa_count client)"
