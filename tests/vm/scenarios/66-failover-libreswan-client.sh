#!/bin/bash
# Cluster failover with libreswan as the client of our nodes: pluto + Linux
# XFRM in the client namespace (connection pkgA to the package address,
# transport, AES-GCM, PSK, auto=ondemand routed, no DPD), ripsec daemons on
# node1 and node2 as in cluster.sh. The first ping sets up an SA with node1;
# node1 crashes and the package moves to node2, which sees ESP for an unknown
# SPI and initiates a new IKE SA with INITIAL_CONTACT; then the same back.
# Recovery (address move -> first reply) is printed as a "# " line.
#
# What libreswan 4.10 does here, as seen in these runs and asserted below: it
# drops the unprotected INVALID_SPI hint ("no corresponding IKE SA"), accepts
# the new IKE SA (it parses the INITIAL_CONTACT notify), and the new Child SA
# replaces the old one: the old SPIs leave XFRM. But it does not delete the
# old IKE SA: each failover leaves one more established IKE SA behind (with
# no DPD nothing ever removes it: the node it belonged to is gone). The
# checks assert exactly that, so a change in libreswan's behaviour shows.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/ike-lib.sh"
CL_CLIENT_IMPL=libreswan
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
LS_LOG=/tmp/ls-client/pluto.log

dump_logs() {
  for ns in node1 node2; do echo "--- $ns daemon log (tail)"; tail -25 "$CL_DIR/$ns.log" | cut -c1-220; done
  echo "--- pluto log (tail)"; tail -40 "$LS_LOG"
  echo "--- client XFRM"; ip -n client xfrm state; ip -n client xfrm policy
}
trap 'cl_traffic_stop; cl_save_logs 66-failover-libreswan-client; cl_down' EXIT

# ls_states: pluto's states of pkgA, one "#SERIAL KIND" per line.
ls_states() { lsw client --showstates 2>/dev/null | sed -n 's/^[0-9]* *#\([0-9]*\): "pkgA".* STATE_V2_ESTABLISHED_\(IKE\|CHILD\)_SA.*/#\1 \2/p'; }
ls_ike_serials() { ls_states | awk '$2 == "IKE" { print $1 }' | tr '\n' ' ' | sed 's/ $//'; }
# ls_child_parent: the IKE SA ("#N") of the client's only established Child SA.
ls_child_parent() { lsw client --showstates 2>/dev/null | sed -n 's/.*STATE_V2_ESTABLISHED_CHILD_SA.*IKE SA \(#[0-9]*\).*/\1/p'; }
ls_counts_are() { [ "$(ls_counts client)" = "$1" ]; }
xfrm_pair_is() { [ "$(cl_xfrm_spis client)" = "$1" ]; }

if cl_up; then ok "cluster up: ripsec on node1 and node2, pluto on the client"
else not_ok "cluster up" "$(tail -5 /tmp/ls-client/stdout 2>/dev/null)"; dump_logs; exit 1; fi
if cl_ping_until 30; then ok "client's first ping triggers IKE (libreswan ondemand) with pkgA on node1"
else not_ok "client's first ping triggers IKE with pkgA on node1"; dump_logs; exit 1; fi
check "libreswan: one IKE SA with one Child SA" wait_for 15 cl_client_one_pair
check "node1: one IKE SA with one Child SA" wait_for 10 cl_one_pair node1
spis=$(cl_xfrm_spis client)
check_eq "client XFRM holds one pair, node1's SAs crosswise" "$(cl_crosswise "$(cl_sa_spis node1)")" "$spis"
ike0=$(ls_ike_serials) leftover=0
check "client: traffic through XFRM" nsx client ping -c 3 -i 0.2 -W 2 "$CL_PKG"
echo "--- libreswan before the failover"; lsw client --showstates; lsw client --trafficstatus

cl_traffic_start
check "background traffic flows" cl_wait_reply_after "$(now_s)" 10

# failover FROM TO: crash FROM, move the package to TO, check the client.
failover() {
  local from=$1 to=$2 t ls0 old_out want now spi ike new
  ls0=$(wc -l < "$LS_LOG")
  old_out=$(sed 's/.*out:0x//' <<< "$spis")
  cl_crash_failover "$from" "$to"
  if [ -n "$CL_REC_MS" ]; then ok "$from -> $to: traffic recovered"
  else not_ok "$from -> $to: traffic recovered" "no reply within 30 s"; dump_logs; fi
  echo "# failover $from -> $to with a libreswan client: ${CL_REC_MS:-none} ms from the address move to the first reply"
  cl_timeline "$CL_T0" "$from" "$to"
  tail -n +$((ls0 + 1)) "$LS_LOG" > "$LS_LOG.$to"
  echo "--- pluto during $from -> $to"; cut -c1-200 "$LS_LOG.$to" | head -40
  echo "--- libreswan after $from -> $to"; lsw client --showstates; lsw client --trafficstatus
  echo "--- client XFRM after $from -> $to"; ip -n client xfrm state | grep -E '^src|spi'
  t=$(date -u -d "@$CL_T0" +%Y-%m-%dT%H:%M:%S.%6NZ)
  check "$from -> $to: $to saw ESP for the client's old outbound SPI $old_out" \
    awk -v t="$t" -v p="ESP for an unknown SPI spi=\"$old_out\"" '$1 > t && index($0, p) { f = 1 } END { exit !f }' "$CL_DIR/$to.log"
  check "$from -> $to: $to initiated the new IKE SA" \
    awk -v t="$t" '$1 > t && /IKE SA established .* as initiator conn="pkgA"/ { f = 1 } END { exit !f }' "$CL_DIR/$to.log"
  check "$from -> $to: $to has one IKE SA with one Child SA" wait_for 10 cl_one_pair "$to"
  want=$(cl_crosswise "$(cl_sa_spis "$to")")
  check "$from -> $to: client XFRM holds exactly $to's new pair ($want)" wait_for 10 xfrm_pair_is "$want"
  now=$(cl_xfrm_spis client)
  for spi in $spis; do
    check "$from -> $to: old $spi gone from the client's XFRM (now: $now)" \
      test "$(ip -n client xfrm state | grep -c "spi ${spi#*:} ")" = 0
  done
  check "$from -> $to: libreswan parsed INITIAL_CONTACT in $to's IKE_AUTH request" \
    grep -q 'processing decrypted IKE_AUTH request: SK{IDi,N(INITIAL_CONTACT)' "$LS_LOG.$to"
  check "$from -> $to: libreswan dropped the unprotected INVALID_SPI hint (no IKE SA for it)" \
    grep -q "packet from $CL_PKG:500: INFORMATIONAL request has no corresponding IKE SA; message dropped" "$LS_LOG.$to"
  # One more IKE SA each failover, still one Child SA: the old IKE SA stays.
  leftover=$((leftover + 1))
  check "$from -> $to: libreswan: $((leftover + 1)) established IKE SAs ($leftover left behind) and one Child SA" \
    wait_for 10 ls_counts_are "$((leftover + 1)) 1"
  ike=$(ls_ike_serials)
  new=${ike##* }
  check "$from -> $to: the old IKE SAs ($ike0) are still established, one new ($new)" test "$ike" = "$ike0 $new"
  check "$from -> $to: libreswan logged no deletion of an IKE SA" test "$(grep -c 'deleting IKE SA\|deleting old state' "$LS_LOG.$to")" = 0
  check_eq "$from -> $to: the Child SA belongs to the new IKE SA" "$new" "$(ls_child_parent)"
  check_eq "$from -> $to: $from (restarted, standby) holds no SA" 0 "$(cl_sa_count "$from")"
  check "$from -> $to: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$CL_PKG"
  spis=$now ike0=$ike
}

failover node1 node2
check "background traffic flows again" cl_wait_reply_after "$(now_s)" 10
failover node2 node1
cl_traffic_stop
check_eq "package ends on node1" "node1 eth0" "$(pkg_where)"
