#!/bin/bash
# Cluster failover with strongSwan as the client of our nodes: charon + Linux
# XFRM in the client namespace (connection pkgA to the package address,
# transport, AES-GCM, PSK, start_action = trap, no DPD), ripsec daemons on
# node1 and node2 as in cluster.sh. The first ping sets up an SA with node1;
# node1 crashes and the package moves to node2, which sees ESP for an unknown
# SPI and initiates a new IKE SA with INITIAL_CONTACT. strongSwan (unique =
# no) honours it as responder: it destroys the old IKE and Child SAs of the
# identity, so XFRM ends with exactly the new pair. Then the same back, node2
# crashes and node1 takes over. Recovery (address move -> first reply) is
# printed as a "# " line per failover.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/ike-lib.sh"
CL_CLIENT_IMPL=strongswan
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
SW_LOG=/tmp/sw-client/charon.log

dump_logs() {
  for ns in node1 node2; do echo "--- $ns daemon log (tail)"; tail -25 "$CL_DIR/$ns.log" | cut -c1-220; done
  echo "--- charon log (tail)"; tail -40 "$SW_LOG"
  echo "--- client XFRM"; ip -n client xfrm state; ip -n client xfrm policy
}
trap 'cl_traffic_stop; cl_save_logs 65-failover-strongswan-client; cl_down' EXIT

# sw_ike_ids: the unique ids of the client's IKE SAs of pkgA (sorted).
sw_ike_ids() { sw client --list-sas --raw 2>/dev/null | grep -o 'pkgA {uniqueid=[0-9]*' | sed 's/.*=//' | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# sw_remote_host: the peer address of the client's established IKE SA.
sw_remote_host() { sw client --list-sas --raw 2>/dev/null | grep -o 'remote-host=[0-9.]*' | head -1 | sed 's/.*=//'; }
xfrm_pair_is() { [ "$(cl_xfrm_spis client)" = "$1" ]; }

if cl_up; then ok "cluster up: ripsec on node1 and node2, charon on the client"
else not_ok "cluster up" "$(tail -5 /tmp/sw-client/stdout 2>/dev/null)"; dump_logs; exit 1; fi
if cl_ping_until 30; then ok "client's first ping triggers IKE (strongSwan trap) with pkgA on node1"
else not_ok "client's first ping triggers IKE with pkgA on node1"; dump_logs; exit 1; fi
check "strongSwan: one IKE SA with one Child SA" wait_for 15 cl_client_one_pair
check "node1: one IKE SA with one Child SA" wait_for 10 cl_one_pair node1
check_eq "strongSwan authenticated the package identity" "1" "$(sw client --list-sas --raw 2>/dev/null | grep -c "remote-id=$CL_PKG_ID")"
spis=$(cl_xfrm_spis client)
check_eq "client XFRM holds one pair, node1's SAs crosswise" "$(cl_crosswise "$(cl_sa_spis node1)")" "$spis"
ike_ids=$(sw_ike_ids)
check "client: traffic through XFRM" nsx client ping -c 3 -i 0.2 -W 2 "$CL_PKG"

cl_traffic_start
check "background traffic flows" cl_wait_reply_after "$(now_s)" 10

# failover FROM TO: crash FROM, move the package to TO, check the client.
failover() {
  local from=$1 to=$2 t sw0 old_out ids want now spi
  sw0=$(wc -l < "$SW_LOG")   # charon's lines from here on belong to this failover
  old_out=$(sed 's/.*out:0x//' <<< "$spis")
  cl_crash_failover "$from" "$to"
  if [ -n "$CL_REC_MS" ]; then ok "$from -> $to: traffic recovered"
  else not_ok "$from -> $to: traffic recovered" "no reply within 30 s"; dump_logs; fi
  echo "# failover $from -> $to with a strongSwan client: ${CL_REC_MS:-none} ms from the address move to the first reply"
  cl_timeline "$CL_T0" "$from" "$to"
  tail -n +$((sw0 + 1)) "$SW_LOG" > "$SW_LOG.$to"
  grep -E "INIT_CONTACT|duplicate|IKE_SA .* established|CHILD_SA .* established|deleting|destroying" "$SW_LOG.$to" | head -12 | sed 's/^/  charon: /'
  t=$(date -u -d "@$CL_T0" +%Y-%m-%dT%H:%M:%S.%6NZ)
  check "$from -> $to: $to saw ESP for the client's old outbound SPI $old_out" \
    awk -v t="$t" -v p="ESP for an unknown SPI spi=\"$old_out\"" '$1 > t && index($0, p) { f = 1 } END { exit !f }' "$CL_DIR/$to.log"
  check "$from -> $to: $to initiated the new IKE SA" \
    awk -v t="$t" '$1 > t && /IKE SA established .* as initiator conn="pkgA"/ { f = 1 } END { exit !f }' "$CL_DIR/$to.log"
  check "$from -> $to: $to's IKE_AUTH request carried INITIAL_CONTACT (charon parsed it)" \
    grep -q 'parsed IKE_AUTH request 1 \[.*N(INIT_CONTACT)' "$SW_LOG.$to"
  check "$from -> $to: strongSwan destroyed the old IKE SA on INITIAL_CONTACT" \
    grep -q "destroying duplicate IKE_SA for peer '$CL_PKG_ID', received INITIAL_CONTACT" "$SW_LOG.$to"
  check "$from -> $to: strongSwan: exactly one IKE SA with one Child SA" wait_for 10 cl_client_one_pair
  ids=$(sw_ike_ids)
  check "$from -> $to: the IKE SA is new (unique id $ike_ids -> $ids)" test -n "$ids" -a "$ids" != "$ike_ids"
  check_eq "$from -> $to: strongSwan's IKE SA is with the package address" "$CL_PKG" "$(sw_remote_host)"
  check "$from -> $to: $to has one IKE SA with one Child SA" wait_for 10 cl_one_pair "$to"
  want=$(cl_crosswise "$(cl_sa_spis "$to")")
  check "$from -> $to: client XFRM holds exactly $to's new pair ($want)" wait_for 10 xfrm_pair_is "$want"
  now=$(cl_xfrm_spis client)
  for spi in $spis; do
    check "$from -> $to: old $spi gone from the client's XFRM (now: $now)" \
      test "$(ip -n client xfrm state | grep -c "spi ${spi#*:} ")" = 0
  done
  check_eq "$from -> $to: $from (restarted, standby) holds no SA" 0 "$(cl_sa_count "$from")"
  check "$from -> $to: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$CL_PKG"
  spis=$now ike_ids=$ids
}

failover node1 node2
check "background traffic flows again" cl_wait_reply_after "$(now_s)" 10
failover node2 node1
cl_traffic_stop
check_eq "package ends on node1" "node1 eth0" "$(pkg_where)"
