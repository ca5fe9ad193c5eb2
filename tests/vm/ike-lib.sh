# IKE interop helpers for VM scenarios and benchmarks (sourced after lib.sh):
# ripsec daemons, strongSwan (charon + swanctl) and libreswan (pluto) instances,
# one per namespace, each with its files under /tmp/<impl>-<ns>/.

# wait_for SECONDS CMD...: retries CMD until it succeeds.
wait_for() { local t=$1; shift; local end=$(( $(date +%s) + t )); until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge $end ] && return 1; sleep 0.2; done; }

# inner_up A B: tunnel-mode subnets behind the pair_up namespaces:
# 198.51.100.1 behind A, 203.0.113.1 behind B (on lo), routed over eth0.
inner_up() {
  ip -n "$1" addr add 198.51.100.1/32 dev lo; ip -n "$2" addr add 203.0.113.1/32 dev lo
  ip -n "$1" route add 203.0.113.0/24 dev eth0 src 198.51.100.1
  ip -n "$2" route add 198.51.100.0/24 dev eth0 src 203.0.113.1
}

# ---- ripsec ---------------------------------------------------------------
declare -A RIP_PID
# rip_start NS: a daemon in NS with /tmp/ripsec-NS/ripsec.toml (written by the caller).
rip_start() {
  local ns=$1 d=/tmp/ripsec-$1
  rm -f "$d/sock"
  # Not through nsx: ip netns exec execs the daemon in place, so $! is its pid.
  ip netns exec "$ns" "$RIPSEC" daemon --config "$d/ripsec.toml" --socket "$d/sock" --log-level "${RIP_LOG:-debug}" \
    >> "$d/log" 2>&1 &
  RIP_PID[$ns]=$!
  wait_for 10 test -S "$d/sock"
}
rip_stop() {
  local ns=$1 p=${RIP_PID[$1]:-}
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  unset "RIP_PID[$ns]"
}
rip() { local ns=$1; shift; nsx "$ns" timeout 30 "$RIPSEC" "$@" --socket "/tmp/ripsec-$ns/sock"; }
# rip_sa_field NS FIELD: FIELD of the first established IKE SA with a Child SA
# (suite, udp_encap, id, ...), or of its first Child SA with child.FIELD.
rip_sa_field() {
  rip "$1" status --json | python3 -c 'import json,sys
v=json.load(sys.stdin); f=sys.argv[1]
s=[x for x in v["ike_sas"] if x["state"]=="established" and x["children"]]
if not s: print("-"); sys.exit()
x=s[0]
print(x["children"][0][f[6:]] if f.startswith("child.") else x[f])' "$2"
}
# rip_counts NS: "IKE_ESTABLISHED CHILD_SAS" over all connections.
rip_counts() {
  rip "$1" status --json | python3 -c 'import json,sys
v=json.load(sys.stdin); e=[x for x in v["ike_sas"] if x["state"]=="established"]
print(len(e), sum(len(x["children"]) for x in e))'
}
# rip_sa_packets NS DIR: ESP packets counted by rust_ipsec on SAs of direction DIR.
rip_sa_packets() {
  nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(s["stats"]["packets"] for s in json.load(sys.stdin) if s["dir"]==sys.argv[1]))' "$2"
}
rip_sa_count() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# rip_encap NS: the sorted "sport:dport" of every module SA ("None:None" if raw).
rip_encap() {
  nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(" ".join(sorted("%s:%s" % (s.get("encap_sport"), s.get("encap_dport")) for s in json.load(sys.stdin))))'
}

# ---- Linux XFRM (the peer's side) -----------------------------------------
# xfrm_packets NS SRC DST: packets counted by XFRM on the states SRC -> DST.
xfrm_packets() {
  ip -n "$1" -s xfrm state list src "$2" dst "$3" 2>/dev/null |
    awk '/lifetime current:/ {getline; sub(/\(packets\)/, "", $2); n += $2} END {print n + 0}'
}
xfrm_states() { ip -n "$1" xfrm state list 2>/dev/null | grep -c '^src '; }
xfrm_encap() { ip -n "$1" xfrm state list 2>/dev/null | grep -c 'encap type espinudp'; }

# ---- strongSwan -----------------------------------------------------------
declare -A SW_PID
SW_CHARON=/usr/lib/ipsec/charon
# sw_start NS [EXTRA_CHARON_OPTIONS]: charon in NS, files in /tmp/sw-NS. Each
# instance gets a private /run (its pid file is fixed at /var/run/charon.pid)
# and its own vici socket; `sw NS ...` runs swanctl against it.
sw_start() {
  local ns=$1 d=/tmp/sw-$1
  mkdir -p "$d"
  cat > "$d/strongswan.conf" <<EOF
charon {
  load_modular = no
  load = random nonce openssl kdf hmac sha1 sha2 aes gcm pem pkcs1 x509 pubkey kernel-netlink socket-default vici
  install_routes = no
  install_virtual_ip = no
  retransmit_timeout = 2
  retransmit_tries = 3
  ${2:-}
  plugins {
    vici { socket = unix://$d/vici }
  }
  filelog {
    log { path = $d/charon.log
          time_format = %H:%M:%S
          default = ${SW_LOG:-1}
          ike = ${SW_LOG:-2}
          knl = ${SW_LOG:-2}
          enc = ${SW_LOG_ENC:-1} }
  }
  syslog { daemon { default = -1 } }
}
# swanctl reads this file too: PSKs need no plugins.
swanctl { load = random nonce }
EOF
  rm -f "$d/vici"
  ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=$d/strongswan.conf exec $SW_CHARON" \
    >> "$d/stdout" 2>&1 &
  SW_PID[$ns]=$!
  wait_for 20 test -S "$d/vici"
}
sw_stop() {
  local ns=$1 p=${SW_PID[$1]:-}
  [ -n "$p" ] || return 0
  # ip netns exec, unshare and sh all exec: $! is charon itself.
  kill "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  unset "SW_PID[$ns]"
}
sw() { local ns=$1; shift; nsx "$ns" env STRONGSWAN_CONF="/tmp/sw-$ns/strongswan.conf" timeout 30 swanctl "$@" --uri "unix:///tmp/sw-$ns/vici"; }
# sw_load NS: (re)loads /tmp/sw-NS/swanctl.conf (connections and secrets).
sw_load() { sw "$1" --load-all --noprompt --file "/tmp/sw-$1/swanctl.conf"; }
# sw_counts NS: "IKE_ESTABLISHED CHILD_INSTALLED".
sw_counts() {
  sw "$1" --list-sas --raw 2>/dev/null | python3 -c 'import sys,re
t=sys.stdin.read()
print(len(re.findall(r"state=ESTABLISHED", t)), len(re.findall(r"state=INSTALLED", t)))'
}

# keep_logs PREFIX FILE...: copies daemon logs next to the scenario's own log.
keep_logs() { local p=$1 f; shift; for f in "$@"; do [ -f "$f" ] && cp "$f" "$OUT/$p-$(echo "${f#/tmp/}" | tr / -)"; done; return 0; }

# ---- libreswan --------------------------------------------------------------
# Unpacked privately by tests/deps.sh (it conflicts with strongSwan as a
# package). One pluto per namespace, files in /tmp/ls-NS: ipsec.conf (written
# by the caller: "config setup" plus the connections), ipsec.secrets, an NSS
# database, the control socket and pid file under run/.
declare -A LS_PID
LS_EXEC=$RIPSEC_CACHE/libreswan/usr/libexec/ipsec
ls_start() {
  local ns=$1 d=/tmp/ls-$1
  mkdir -p "$d/nss" "$d/run"
  [ -f "$d/nss/cert9.db" ] || certutil -N -d "sql:$d/nss" --empty-password >> "$d/stdout" 2>&1
  rm -f "$d/run/pluto.ctl" "$d/run/pluto.pid"
  # pluto runs its helpers from /usr/libexec/ipsec, which the read-only host
  # root does not have: a private mount namespace lends it the unpacked ones.
  ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs tmpfs /usr/libexec && ln -s $LS_EXEC /usr/libexec/ipsec &&
    exec $LS_EXEC/pluto --nofork --config $d/ipsec.conf --rundir $d/run --nssdir $d/nss \
      --secretsfile $d/ipsec.secrets --ipsecdir $d --logfile $d/pluto.log --use-xfrm" \
    >> "$d/stdout" 2>&1 &
  LS_PID[$ns]=$!
  wait_for 20 test -S "$d/run/pluto.ctl"
}
ls_stop() {
  local ns=$1 p=${LS_PID[$1]:-}
  [ -n "$p" ] || return 0
  # ip netns exec, unshare and sh all exec: $! is pluto itself.
  kill "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  unset "LS_PID[$ns]"
}
lsw() { local ns=$1; shift; nsx "$ns" timeout 30 "$LS_EXEC/whack" --ctlsocket "/tmp/ls-$ns/run/pluto.ctl" "$@"; }
# ls_load NS CONN: (re)adds CONN from /tmp/ls-NS/ipsec.conf and rereads the secrets.
ls_load() {
  local ns=$1 d=/tmp/ls-$1
  nsx "$ns" timeout 30 "$LS_EXEC/addconn" --config "$d/ipsec.conf" --ctlsocket "$d/run/pluto.ctl" "$2" &&
    lsw "$ns" --rereadsecrets
}
# ls_counts NS: "IKE_ESTABLISHED CHILD_ESTABLISHED".
ls_counts() {
  lsw "$1" --showstates 2>/dev/null | python3 -c 'import sys
t=sys.stdin.read()
print(t.count("STATE_V2_ESTABLISHED_IKE_SA"), t.count("STATE_V2_ESTABLISHED_CHILD_SA"))'
}
