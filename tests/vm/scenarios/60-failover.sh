#!/bin/bash
# Cluster failover on the seed's topology, with ripsec daemons on client,
# node1 and node2 (same package configuration on both nodes):
#   standby node silent; `ripsec check` on active and standby nodes; standby
#   interface (eth0 -> eth1, same SAs); node1 dies -> INITIAL_CONTACT path;
#   planned fail back (node2's daemon still running drops its SAs after the
#   release grace); manual flush `ripsec sa flush --peer` on the client.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"

dump_logs() { for ns in client node1 node2; do echo "--- $ns daemon log (tail)"; tail -25 "$CL_DIR/$ns.log" | cut -c1-220; done; }
trap 'cl_traffic_stop; cl_save_logs 60-failover; cl_down' EXIT

if cl_up; then ok "cluster and daemons up"; else not_ok "cluster and daemons up"; exit 1; fi
if cl_ping_until 30; then ok "client's first ping triggers IKE with pkgA on node1"
else not_ok "client's first ping triggers IKE with pkgA on node1"; dump_logs; exit 1; fi
check "client: one IKE SA with one Child SA to pkgA" wait_for 10 cl_one_pair client
check "node1: one IKE SA with one Child SA" wait_for 10 cl_one_pair node1
read -r _ _ c_in c_out _ <<< "$(cl_summary client)"
read -r _ _ n_in n_out _ <<< "$(cl_summary node1)"
check_eq "SPIs match crosswise (client in/out = node1 out/in)" "$c_in $c_out" "$n_out $n_in"
remote_id=$(cl_ctl client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["remote_id"])')
check_eq "client authenticated the package identity" "$CL_PKG_ID" "${remote_id#@}"

# --- standby node stays silent --------------------------------------------
# Capture everything node2 sends (IKE and ESP) while the client works with node1:
# steady traffic, then a fresh negotiation (down + traffic).
ip netns exec node2 timeout 8 tcpdump -i any -Q out -nn -U -w "$CL_DIR/node2-out.pcap" \
  'udp port 500 or udp port 4500 or esp' > "$CL_DIR/tcpdump.log" 2>&1 &
tcpd=$!
sleep 1.5
nsx client ping -c 10 -i 0.1 -W 1 "$PKG4" >/dev/null
cl_ctl client down pkgA --timeout 10 >/dev/null
check "standby test: renegotiation with node1 by traffic" cl_ping_until 20
nsx client ping -c 10 -i 0.1 -W 1 "$PKG4" >/dev/null
wait "$tcpd"
sent=$(tcpdump -nn -r "$CL_DIR/node2-out.pcap" 2>/dev/null | wc -l)
if grep -q "listening on" "$CL_DIR/tcpdump.log"; then check_eq "standby node2 sent no IKE or ESP packet while node1 held the package" 0 "$sent"
else not_ok "standby node2 packet capture" "$(head -3 "$CL_DIR/tcpdump.log" | tr '\n' ' ')"; fi
read -r e _ _ _ t <<< "$(cl_summary node2)"
check_eq "standby node2: no IKE SA" "0 0" "$e $t"
check_eq "standby node2: no SA in its module" 0 "$(cl_sa_count node2)"

# --- ripsec check ----------------------------------------------------------
out=$(nsx node1 "$RIPSEC" check --socket "$CL_DIR/node1.sock" 2>&1); rc=$?
check_eq "ripsec check on the active node1: exit 0 ($(echo "$out" | tail -1))" 0 "$rc"
out=$(nsx node2 "$RIPSEC" check --socket "$CL_DIR/node2.sock" --json 2>&1); rc=$?
check_eq "ripsec check on the standby node2: exit 0" 0 "$rc"
check_eq "ripsec check --json on node2: package not assigned here" False "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["connections"][0]["assigned"])' "$out" 2>&1)"
nsx node2 "$RIPSEC" check --socket "$CL_DIR/none.sock" >/dev/null 2>&1
check_eq "ripsec check without a daemon: exit 5" 5 $?
# A stray SA for the package address on the standby node is inconsistent.
nsx node2 "$RIPSEC" sa add --spi 0x1234 --dir out --src "$PKG4" --dst "$CLIENT4" --alg aes128gcm \
  --key 000102030405060708090a0b0c0d0e0f10111213 >/dev/null
nsx node2 "$RIPSEC" check --socket "$CL_DIR/node2.sock" >/dev/null 2>&1
check_eq "ripsec check with a package SA on the standby node: exit 7 (inconsistent)" 7 $?
nsx node2 "$RIPSEC" sa del --spi 0x1234 --dst "$CLIENT4" >/dev/null
nsx node2 "$RIPSEC" check --socket "$CL_DIR/node2.sock" >/dev/null 2>&1
check_eq "ripsec check after removing it: exit 0" 0 $?

# --- standby interface: eth0 -> eth1 -> eth0 on node1, same SAs -----------
read -r _ _ c_in c_out _ <<< "$(cl_summary client)"
ike_before=$(cl_ctl client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["id"])')
spis_before=$(cl_sa_spis node1)
pkt_before=$(cl_sa_packets node1 "$c_out")
pkg_place node1 eth1
check_eq "package address now on node1 eth1" "node1 eth1" "$(pkg_where)"
check "standby interface: traffic flows over eth1" nsx client ping -c 5 -i 0.2 -W 2 "$PKG4"
sleep 3   # longer than the release grace (2 s): the SAs must stay
check "standby interface: traffic still flows after the release grace" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"
pkt_after=$(cl_sa_packets node1 "$c_out")
check_eq "standby interface: node1 keeps the same SAs" "$spis_before" "$(cl_sa_spis node1)"
read -r _ _ i2 o2 _ <<< "$(cl_summary client)"
check_eq "standby interface: client keeps the same Child SA" "$c_in $c_out" "$i2 $o2"
ike_after=$(cl_ctl client status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["id"])')
check_eq "standby interface: no renegotiation (same IKE SA)" "$ike_before" "$ike_after"
check "standby interface: ESP went through the old SA on eth1 ($pkt_before -> $pkt_after packets)" test "${pkt_after:-0}" -ge $(( ${pkt_before:-0} + 8 ))
pkg_place node1 eth0
check "standby interface: back on eth0, traffic flows" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"
check_eq "standby interface: still the same SAs after moving back" "$spis_before" "$(cl_sa_spis node1)"

# --- node1 dies: INITIAL_CONTACT path ---------------------------------------
cl_traffic_start
sleep 1
cl_fail node1
cl_move node2 eth0
t0=$CL_T0
if r=$(cl_wait_reply_after "$t0" 30); then ok "failover: traffic recovered ($(ms_between "$t0" "$r") ms after the move)"
else not_ok "failover: traffic recovered" "no reply in 30 s"; dump_logs; fi
cl_traffic_stop
cl_timeline "$t0" node1 node2
check "failover: client has exactly one IKE SA and one Child SA pair to pkgA" wait_for 10 cl_one_pair client
check "failover: node2 has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair node2
read -r _ _ f_in f_out _ <<< "$(cl_summary client)"
check "failover: the client's Child SA is new ($c_in -> $f_in)" test "$f_in" != "$c_in" -a "$f_in" != -
check_eq "failover: client module holds only the new pair" "2" "$(cl_sa_count client)"
check "failover: node2 sent INITIAL_CONTACT and the client flushed the old IKE SA" grep -q "reason=InitialContact" "$CL_DIR/client.log"
check "failover: node2 saw the SPI miss" grep -q "ESP for an unknown SPI spi=\"${c_out#0x}\"" "$CL_DIR/node2.log"
check "failover: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"
check "failover: ripsec check on node2 (now active): exit 0" nsx node2 "$RIPSEC" check --socket "$CL_DIR/node2.sock"

# --- planned fail back: node2's daemon keeps running -------------------------
cl_start node1
sleep 0.5
check "fail back: ripsec check on node1 (standby again): exit 0" nsx node1 "$RIPSEC" check --socket "$CL_DIR/node1.sock"
cl_move node1 eth0
t0=$CL_T0
if wait_for 30 nsx client ping -c 1 -W 0.5 "$PKG4"; then ok "fail back: traffic recovered ($(ms_between "$t0" "$(now_s)") ms after the move, within)"
else not_ok "fail back: traffic recovered"; dump_logs; fi
check "fail back: client has exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
check "fail back: node1 has one IKE SA and one Child SA pair" wait_for 10 cl_one_pair node1
read -r _ _ b_in _ _ <<< "$(cl_summary client)"
check "fail back: new Child SA ($f_in -> $b_in)" test "$b_in" != "$f_in" -a "$b_in" != -
node2_clean() { [ "$(cl_sa_count node2)" = 0 ] && read -r _ _ _ _ t <<< "$(cl_summary node2)" && [ "$t" = 0 ]; }
check "fail back: node2 dropped its SAs after the release grace (no IKE SA, no module SA)" wait_for 10 node2_clean
check "fail back: node2 logged the release" grep -q "still absent: dropped" "$CL_DIR/node2.log"
check "fail back: ripsec check on node2 (standby): exit 0" nsx node2 "$RIPSEC" check --socket "$CL_DIR/node2.sock"
check "fail back: ping through the new SAs" nsx client ping -c 3 -i 0.2 -W 2 "$PKG4"

# --- manual flush on the client ---------------------------------------------
read -r _ _ m_in _ _ <<< "$(cl_summary client)"
out=$(nsx client "$RIPSEC" sa flush --peer "$PKG4" --socket "$CL_DIR/client.sock" 2>&1); rc=$?
check_eq "manual flush: exit 0 ($out)" 0 "$rc"
pkg_sas=$(nsx client "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(1 for s in json.load(sys.stdin) if sys.argv[1] in (s["src"], s["dst"])))' "$PKG4")
check_eq "manual flush: no SA to the package address left in the client's module" 0 "$pkg_sas"
read -r e _ _ _ t <<< "$(cl_summary client)"
check_eq "manual flush: the client daemon forgot its IKE SA" "0 0" "$e $t"
check "manual flush: the next packet negotiates anew (trap) and flows" cl_ping_until 30
read -r _ _ m2_in _ _ <<< "$(cl_summary client)"
check "manual flush: new Child SA ($m_in -> $m2_in)" test "$m2_in" != "$m_in" -a "$m2_in" != -
check "manual flush: client has exactly one IKE SA and one Child SA pair" wait_for 10 cl_one_pair client
check "manual flush: node1 replaced its old SAs (INITIAL_CONTACT from the client)" wait_for 10 cl_one_pair node1
# Without a daemon, the flush still empties the module.
cl_stop client
out=$(nsx client "$RIPSEC" sa flush --peer "$PKG4" --socket "$CL_DIR/none.sock" 2>&1)
check_eq "manual flush without a daemon: exit 0 ($out)" 0 $?
