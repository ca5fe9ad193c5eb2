#!/bin/bash
# Two ripsec daemons (one per namespace) negotiate transport-mode SAs with
# IKEv2/PSK through rust_ipsec: `ripsec up`, status on both ends, SAs in the
# module, ping through them, `ripsec down`; then the same started by traffic
# (trap policy -> ACQUIRE).
. "$RIPSEC_ROOT/tests/vm/lib.sh"

load_module
ip netns add a; ip netns add b
ip link add eth0 netns a type veth peer name eth0 netns b
for ns in a b; do ip -n $ns link set lo up; ip -n $ns link set eth0 up; done
ip -n a addr add 192.0.2.1/24 dev eth0; ip -n b addr add 192.0.2.2/24 dev eth0

PIDS=()
# conf NAME ME PEER START: a config file for one side.
conf() {
  cat > "/tmp/ripsec-$1.toml" <<EOF
[[connection]]
name = "peer"
local_addr = "$2"
remote_addrs = ["$3"]
local_id = "@$1.example"
remote_id = "@$5.example"
psk = "a pre-shared key for the test"
ike = ["aes128gcm16-prfsha256-x25519"]
esp = ["aes256gcm16"]
mode = "transport"
start = "$4"
${EXTRA:-}
EOF
}
start_one() {
  local ns=$1
  rm -f /tmp/ripsec-$ns.sock
  # Not through nsx: a backgrounded function would be a subshell, and $!
  # its pid. ip netns exec execs the daemon in place.
  ip netns exec $ns "$RIPSEC" daemon --config /tmp/ripsec-$ns.toml --socket /tmp/ripsec-$ns.sock --log-level debug \
    >> /tmp/ripsec-$ns.log 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do [ -S /tmp/ripsec-$ns.sock ] && break; sleep 0.1; done
}
start_daemons() {
  conf a "${A_ADDR:-192.0.2.1}" 192.0.2.2 "$1" b; conf b 192.0.2.2 "${A_ADDR:-192.0.2.1}" "$2" a
  PIDS=()
  start_one a; start_one b
}
stop_daemons() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  PIDS=()
}
ctl() { local ns=$1; shift; nsx $ns timeout 30 "$RIPSEC" "$@" --socket /tmp/ripsec-$ns.sock; }

# status_summary NS: "IKE_ESTABLISHED CHILDREN SPI_IN SPI_OUT" of connection "peer".
status_summary() {
  ctl "$1" status --json | python3 -c 'import json,sys
v=json.load(sys.stdin); s=[x for x in v["ike_sas"] if x["conn"]=="peer"]
est=[x for x in s if x["state"]=="established"]
ch=[c for x in est for c in x["children"]]
print(len(est), len(ch), ch[0]["spi_in"] if ch else "-", ch[0]["spi_out"] if ch else "-")'
}
# sa_spis NS: "COUNT in=SPI,... out=SPI,..." from the module.
sa_spis() {
  nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
v=json.load(sys.stdin)
print(len(v), "in=" + ",".join(sorted(s["spi"] for s in v if s["dir"]=="in")), "out=" + ",".join(sorted(s["spi"] for s in v if s["dir"]=="out")))'
}
sa_packets() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(s["stats"]["packets"] for s in json.load(sys.stdin) if s["spi"] == sys.argv[1]))' "$2"; }
# wait_for SECONDS CMD...: retries CMD until it succeeds.
wait_for() { local t=$1; shift; local end=$(( $(date +%s) + t )); until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge $end ] && return 1; sleep 0.2; done; }
established() { read -r e c _ _ <<< "$(status_summary "$1")"; [ "$e" = 1 ] && [ "$c" = 1 ]; }
no_sas() { [ "$(nsx "$1" "$RIPSEC" sa list --json)" = "[]" ]; }
no_ike_sa() { [ "$(ctl "$1" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["ike_sas"]))')" = 0 ]; }
has_protect_policy() { nsx "$1" "$RIPSEC" policy list --json | grep -q '"protect"'; }

# --- 0. CLI without daemon ---------------------------------------------------
nsx a "$RIPSEC" status --socket /tmp/ripsec-none.sock >/dev/null 2>&1
check_eq "status without a daemon exits 5" 5 $?

# --- 1. ripsec up / down ------------------------------------------------------
start_daemons none none
check "daemon a answers status" ctl a status
check "daemon b answers status" ctl b status
check "ripsec up (a initiates)" ctl a up peer --timeout 20
if wait_for 10 established b; then ok "b: IKE SA and Child SA established"; else not_ok "b: IKE SA and Child SA established" "$(status_summary b)"; fi
read -r ea ca ina outa <<< "$(status_summary a)"
read -r eb cb inb outb <<< "$(status_summary b)"
check_eq "a: one established IKE SA with one Child SA" "1 1" "$ea $ca"
check_eq "Child SA SPIs match crosswise (a in = b out)" "$ina" "$outb"
check_eq "Child SA SPIs match crosswise (a out = b in)" "$outa" "$inb"
check_eq "a: module has the SAs negotiated" "2 in=$ina out=$outa" "$(sa_spis a)"
check_eq "b: module has the SAs negotiated" "2 in=$inb out=$outb" "$(sa_spis b)"
check "ping a -> b" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
sent=$(sa_packets a "$outa"); got=$(sa_packets b "$inb")
if [ "${sent:-0}" -ge 3 ] && [ "${got:-0}" -ge 3 ]; then ok "ping went through the SAs ($sent out on a, $got in on b)"
else not_ok "ping went through the SAs" "a out=$sent b in=$got"; fi
check "ping b -> a" nsx b ping -c 2 -i 0.2 -W 2 192.0.2.1
# ripsec status carries the module's counters per Child SA, as sa list does.
st=$(ctl a status --json | python3 -c 'import json,sys
c=[c for x in json.load(sys.stdin)["ike_sas"] if x["conn"]=="peer" for c in x["children"]][0]
print(c.get("packets_out", "-"), c.get("packets_in", "-"), c.get("bytes_out", 0) > 0)')
check_eq "status --json: the Child SA's module counters (out, in, bytes)" "$(sa_packets a "$outa") $(sa_packets a "$ina") True" "$st"
check "text status" ctl a status
check "ripsec down (a)" ctl a down peer --timeout 20
check "a: SAs removed from the module" wait_for 10 no_sas a
check "b: SAs removed from the module (peer's Delete)" wait_for 10 no_sas b
check "b: no IKE SA left" wait_for 10 no_ike_sa b
check "cleartext ping after down" nsx a ping -c 1 -W 2 192.0.2.2

# reload: a bad file is refused and the old configuration kept.
cp /tmp/ripsec-a.toml /tmp/ripsec-a.good
echo 'replay_window = "lots"' >> /tmp/ripsec-a.toml
line=$(wc -l < /tmp/ripsec-a.toml)
out=$(ctl a reload 2>&1); rc=$?
if [ $rc != 0 ] && echo "$out" | grep -q "ripsec-a.toml:$line: field replay_window"; then ok "reload of a bad file refused with file:line:field ($out)"
else not_ok "reload of a bad file refused with file:line:field" "rc=$rc: $out"; fi
cp /tmp/ripsec-a.good /tmp/ripsec-a.toml
check "reload of an unchanged file" ctl a reload
check "up after reloads" ctl a up peer --timeout 20
check "ping after re-establishing" nsx a ping -c 2 -i 0.2 -W 2 192.0.2.2
out=$(ctl a reload --json 2>&1)
check_eq "reload keeps the unchanged connection" '["peer"]' "$(json_get "$out" .unchanged | tr -d " '" | sed 's/^\[\(.*\)\]$/["\1"]/')"
check "SAs of the unchanged connection survive the reload" established a
# A changed connection is rebuilt: its SAs are deleted (on both sides).
sed -i 's/^esp = .*/esp = ["chacha20poly1305"]/' /tmp/ripsec-a.toml
out=$(ctl a reload --json 2>&1)
check_eq "reload reports the changed connection" "['peer']" "$(json_get "$out" .changed)"
check "changed connection: a's old SAs removed" wait_for 10 no_sas a
check "changed connection: b's SAs removed (a's Delete)" wait_for 10 no_sas b
sed -i 's/^esp = .*/esp = ["chacha20poly1305", "aes256gcm16"]/' /tmp/ripsec-b.toml
check "b reloads too" ctl b reload
check "changed connection: up with the new proposal" ctl a up peer --timeout 20
alg=$(nsx a "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(" ".join(sorted(set(s["alg"] for s in json.load(sys.stdin)))))')
check_eq "changed connection: new SAs use chacha20poly1305" chacha20poly1305 "$alg"
check "changed connection: ping" nsx a ping -c 2 -i 0.2 -W 2 192.0.2.2
# Two connections to one peer address share an engine in the daemon: a
# reload that changes one must leave the other's SAs alone.
# conn_spi NS CONN: spi_in of CONN's first Child SA, or "-".
conn_spi() {
  ctl "$1" status --json | python3 -c 'import json,sys
v=json.load(sys.stdin); ch=[c for x in v["ike_sas"] if x["conn"]==sys.argv[1] and x["state"]=="established" for c in x["children"]]
print(ch[0]["spi_in"] if ch else "-")' "$2"
}
second() { # second ME PEER MYID PEERID ESP: a second connection, UDP port 5000 only.
  printf '\n[[connection]]\nname = "second"\nlocal_addr = "%s"\nremote_addrs = ["%s"]\nlocal_id = "@%s"\nremote_id = "@%s"\npsk = "another key"\nike = ["aes128gcm16-prfsha256-x25519"]\nesp = [%s]\nmode = "transport"\nlocal_ts = ["%s udp 5000"]\nremote_ts = ["%s udp 5000"]\n' \
    "$1" "$2" "$3" "$4" "$5" "$1" "$2"
}
cp /tmp/ripsec-a.toml /tmp/ripsec-a.one; cp /tmp/ripsec-b.toml /tmp/ripsec-b.one
second 192.0.2.2 192.0.2.1 b2.example a2.example '"aes256gcm16", "aes128gcm16"' >> /tmp/ripsec-b.toml
second 192.0.2.1 192.0.2.2 a2.example b2.example '"aes256gcm16"' >> /tmp/ripsec-a.toml
check "b reloads with a second connection" ctl b reload
out=$(ctl a reload --json 2>&1)
check_eq "a: the second connection is added, the first unchanged" "['second'] ['peer']" "$(json_get "$out" .added) $(json_get "$out" .unchanged)"
check "ripsec up for the second connection" ctl a up second --timeout 20
peer_spi=$(conn_spi a peer); second_spi=$(conn_spi a second)
check "a: both connections established (peer $peer_spi, second $second_spi)" test "$peer_spi" != - -a "$second_spi" != -
sed -i 's/^esp = \["aes256gcm16"\]$/esp = ["aes128gcm16"]/' /tmp/ripsec-a.toml
out=$(ctl a reload --json 2>&1)
check_eq "a: reload reports second changed, peer unchanged" "['second'] ['peer']" "$(json_get "$out" .changed) $(json_get "$out" .unchanged)"
second_gone() { [ "$(conn_spi a second)" = - ]; }
check "a: the changed connection's SAs are gone" wait_for 10 second_gone
check_eq "a: the unchanged connection keeps its Child SA" "$peer_spi" "$(conn_spi a peer)"
check_eq "b: and so does its end" "$peer_spi" "$(ctl b status --json | python3 -c 'import json,sys
v=json.load(sys.stdin); print([c["spi_out"] for x in v["ike_sas"] if x["conn"]=="peer" for c in x["children"]][0])')"
check "ping on the unchanged connection's SAs" nsx a ping -c 2 -i 0.2 -W 2 192.0.2.2
check "ripsec up for the changed connection" ctl a up second --timeout 20
alg=$(nsx a "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(" ".join(sorted(set(s["alg"] for s in json.load(sys.stdin)))))')
check_eq "a: the peer connection's SAs and the second's new ones" "aes128gcm chacha20poly1305" "$alg"
cp /tmp/ripsec-a.one /tmp/ripsec-a.toml; cp /tmp/ripsec-b.one /tmp/ripsec-b.toml
stop_daemons
check "a: daemon exit removed its SAs" no_sas a
check_eq "a: daemon exit removed its policies" "[]" "$(nsx a "$RIPSEC" policy list --json)"
check "b: daemon exit removed its SAs" no_sas b

# --- 2. trap: traffic starts the negotiation ---------------------------------
start_daemons trap none
check "a: trap policy installed" wait_for 5 has_protect_policy a
# The first packets are dropped while IKE runs: retry within a bounded time.
if wait_for 30 nsx a ping -c 1 -W 1 192.0.2.2; then ok "ping a -> b triggers IKE (ACQUIRE) and then passes"
else not_ok "ping a -> b triggers IKE (ACQUIRE) and then passes" "$(tail -5 /tmp/ripsec-a.log | tr '\n' ' ')"; fi
read -r ea ca ina outa <<< "$(status_summary a)"
read -r eb cb inb outb <<< "$(status_summary b)"
check_eq "trap: both ends established with one Child SA" "1 1 1 1" "$ea $ca $eb $cb"
check_eq "trap: SPIs match crosswise" "$ina $outa" "$outb $inb"
check "trap: ping again" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
got=$(sa_packets b "$inb")
check "trap: ping went through the SA ($got ESP packets in on b)" test "${got:-0}" -ge 3
check "trap: ripsec down" ctl a down peer --timeout 20
check "trap: a's SAs gone" wait_for 10 no_sas a
check "trap: b's SAs gone" wait_for 10 no_sas b
check "trap: trap policy still installed after down" has_protect_policy a
stop_daemons

# --- 3. forced UDP encapsulation (IKE and ESP on port 4500) ------------------
EXTRA="force_encap = true" start_daemons none none
check "encap: ripsec up" ctl a up peer --timeout 20
enc=$(nsx a "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(" ".join(sorted("%s:%s" % (s.get("encap_sport"), s.get("encap_dport")) for s in json.load(sys.stdin))))')
check_eq "encap: both SAs use UDP 4500:4500" "4500:4500 4500:4500" "$enc"
encap_flag=$(ctl a status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["udp_encap"])')
check_eq "encap: status shows UDP encapsulation" True "$encap_flag"
read -r ea ca ina outa <<< "$(status_summary a)"
check "encap: ping a -> b" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
read -r eb cb inb outb <<< "$(status_summary b)"
got=$(sa_packets b "$inb")
check "encap: ping went through the SA ($got ESP-in-UDP packets in on b)" test "${got:-0}" -ge 3
stop_daemons

# --- 4. a node acts for a connection only while it holds the local address ---
# a's connection uses 192.0.2.11, not yet assigned: nothing happens until it is.
A_ADDR=192.0.2.11 start_daemons start none
check_fails "address absent: ripsec up refused" ctl a up peer --timeout 3
out=$(ctl a up peer --timeout 3 2>&1)
check "address absent: the refusal says why" grep -q "not assigned" <<< "$out"
sleep 1
check "address absent: no IKE SA" no_ike_sa a
ip -n a addr add 192.0.2.11/24 dev eth0
if wait_for 20 established a; then ok "address added: start connection initiated by itself"; else not_ok "address added: start connection initiated by itself" "$(status_summary a)"; fi
check "address added: ping from the package address" nsx a ping -c 2 -i 0.2 -W 2 -I 192.0.2.11 192.0.2.2
stop_daemons

# --- 5. failover: b loses all state (adoptive node); its daemon answers a's ESP
# with INVALID_SPI and, with initiate_on_spi_miss, a new IKE SA with
# INITIAL_CONTACT that replaces a's stale one.
EXTRA="initiate_on_spi_miss = true
hint_retransmit = { timeout = \"1s\", base = 2.0, tries = 2 }" start_daemons none none
check "failover: ripsec up" ctl a up peer --timeout 20
old_ike=$(ctl a status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_sas"][0]["id"])')
kill -9 "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null; unset 'PIDS[1]'
nsx b "$RIPSEC" sa flush >/dev/null; nsx b "$RIPSEC" policy flush >/dev/null
start_one b
if wait_for 40 nsx a ping -c 1 -W 1 192.0.2.2; then ok "failover: traffic flows again after b lost its state"
else not_ok "failover: traffic flows again after b lost its state" "$(tail -5 /tmp/ripsec-b.log | tr '\n' ' ')"; fi
if wait_for 20 established a && wait_for 20 established b; then ok "failover: one IKE SA and one Child SA on each side"
else not_ok "failover: one IKE SA and one Child SA on each side" "a: $(status_summary a) b: $(status_summary b)"; fi
new_ike=$(ctl a status --json | python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(sys.stdin)["ike_sas"]))')
check "failover: a's stale IKE SA $old_ike was replaced ($new_ike)" test "$new_ike" != "$old_ike"
check "failover: b saw the unknown SPI" grep -q "ESP for an unknown SPI" /tmp/ripsec-b.log
check "failover: ping through the new SAs" nsx a ping -c 2 -i 0.2 -W 2 192.0.2.2
stop_daemons

# --- 6. a daemon that dies leaves no SA alive for ever: the module removes
# each Child SA 30 s after its hard lifetime (4 s here) by itself.
EXTRA='child_rekey = "3s"
child_lifetime = "4s"' start_daemons none none
check "backstop: ripsec up" ctl a up peer --timeout 20
n=$(nsx a "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
kill -9 "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null; unset 'PIDS[0]'
t0=$(date +%s)
check "backstop: the dead daemon's SAs are still in the module ($n)" test "$n" -ge 2
if wait_for 60 no_sas a; then t=$(( $(date +%s) - t0 ))
  check "backstop: the module removed them by their hard lifetime plus 30 s (${t} s after the kill)" test "$t" -ge 20 -a "$t" -le 45
else not_ok "backstop: the module removed the dead daemon's SAs" "$(sa_spis a)"; fi
stop_daemons

for ns in a b; do echo "--- daemon log $ns (tail)"; tail -25 /tmp/ripsec-$ns.log; done
ip netns del a; ip netns del b
