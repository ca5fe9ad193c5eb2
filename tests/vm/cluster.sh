# The seed's cluster with ripsec daemons (sourced after lib.sh and topology.sh).
#
# Every node runs `ripsec daemon` with the same package configuration
# (identity @pkgA.cluster.example, one PSK, local_addr = the package address);
# the client runs a daemon whose connection goes to the package address with
# the package identity as remote id. The heartbeat link is left in clear by a
# bypass policy on each node.
#
#   cl_up [NODE_EXTRA [CLIENT_EXTRA]]  topology, package on node1, daemons everywhere
#   cl_fail NODE          kill -9 NODE's daemon (no Deletes), flush its module state
#   cl_start NS [EXTRA]   (re)write NS's configuration and start its daemon
#   cl_ctl NS ARGS...     ripsec ARGS --socket NS's socket (inside NS)
#   cl_summary NS         "IKE_ESTABLISHED CHILDREN SPI_IN SPI_OUT" of connection pkgA
#   cl_sa_count NS        SAs in NS's module
#   cl_down               stop daemons, remove the topology
# Logs: /tmp/cluster/NS.log (daemon, debug), all timestamps UTC.
#
# The client's IKE implementation: CL_CLIENT_IMPL=ripsec (default), strongswan
# or libreswan: charon or pluto with Linux XFRM in the client namespace (the
# scenario sources tests/vm/ike-lib.sh before this file), the same connection
# pkgA (transport, AES-GCM, PSK, the same identities), started by traffic
# (start_action = trap; auto=ondemand + route). CL_SW_DPD: strongSwan's
# dpd_delay (default 0: off); CL_SW_CHARON: extra strongswan.conf lines.
CL_DIR=/tmp/cluster
# The package and client addresses the connection uses: IPv4 unless a scenario
# sets CL_FAMILY=6 before sourcing this file.
if [ "${CL_FAMILY:-4}" = 6 ]; then CL_PKG=$PKG6 CL_CLIENT=$CLIENT6; else CL_PKG=$PKG4 CL_CLIENT=$CLIENT4; fi
CL_PSK="pkgA shared key: the same file on every node of the cluster"
CL_PKG_ID="pkgA.cluster.example"
CL_CLIENT_ID="client.example"
declare -A CL_PID=()
mkdir -p "$CL_DIR"

# Short timers so that recoveries take seconds: retransmit 0.5 s x1.5, 3 tries;
# hint budget 0.3 s x1.5, 3 retransmissions (gives up after about 2.4 s).
CL_TIMERS='retransmit = { timeout = "500ms", base = 1.5, tries = 3 }
hint_retransmit = { timeout = "300ms", base = 1.5, tries = 3 }'

# cl_conf NS EXTRA: writes $CL_DIR/NS.toml.
cl_conf() {
  local ns=$1 extra=${2:-}
  if [ "$ns" = client ]; then
    cat > "$CL_DIR/$ns.toml" <<EOF
[daemon]
stats_interval = "200ms"

[[connection]]
name = "pkgA"
local_addr = "$CL_CLIENT"
remote_addrs = ["$CL_PKG"]
local_id = "@$CL_CLIENT_ID"
remote_id = "@$CL_PKG_ID"
psk = "$CL_PSK"
ike = ["aes128gcm16-prfsha256-x25519"]
esp = ["aes256gcm16"]
mode = "transport"
start = "trap"
$CL_TIMERS
$extra
EOF
  else
    # The package configuration: identical on node1 and node2.
    cat > "$CL_DIR/$ns.toml" <<EOF
[daemon]
stats_interval = "200ms"

[[connection]]
name = "pkgA"
local_addr = "$CL_PKG"
remote_addrs = ["$CL_CLIENT"]
local_id = "@$CL_PKG_ID"
remote_id = "@$CL_CLIENT_ID"
psk = "$CL_PSK"
ike = ["aes128gcm16-prfsha256-x25519"]
esp = ["aes256gcm16"]
mode = "transport"
start = "none"
initiate_on_spi_miss = ${CL_INITIATE:-true}
$CL_TIMERS
$extra
EOF
  fi
}

# cl_bypass NODE: the heartbeat subnets stay in clear, whatever else is protected.
cl_bypass() {
  local n=$1 d net
  for net in 192.0.2.0/24 2001:db8:2::/64; do
    for d in in out; do
      nsx "$n" "$RIPSEC" policy add --dir $d --src "$net" --dst "$net" --action bypass --priority 0 >/dev/null
    done
  done
}

# cl_peer_start: the client as strongSwan or libreswan (CL_CLIENT_IMPL).
cl_peer_start() {
  local d
  case $CL_CLIENT_IMPL in
  strongswan)
    d=/tmp/sw-client; mkdir -p "$d"; : > "$d/charon.log"
    cat > "$d/swanctl.conf" <<EOF
connections {
  pkgA {
    version = 2
    local_addrs = $CL_CLIENT
    remote_addrs = $CL_PKG
    proposals = aes128gcm16-prfsha256-x25519
    rekey_time = 0
    dpd_delay = ${CL_SW_DPD:-0}
    local { auth = psk
            id = @$CL_CLIENT_ID }
    remote { auth = psk
             id = @$CL_PKG_ID }
    children {
      pkgA { mode = transport
             esp_proposals = aes256gcm16
             start_action = trap
             dpd_action = trap
             rekey_time = 0 }
    }
  }
}
secrets {
  ike-pkgA { id-a = @$CL_CLIENT_ID
             id-b = @$CL_PKG_ID
             secret = "$CL_PSK" }
}
EOF
    sw_start client "${CL_SW_CHARON:-}" && sw_load client >/dev/null ;;
  libreswan)
    d=/tmp/ls-client; mkdir -p "$d"; : > "$d/pluto.log"
    cat > "$d/ipsec.conf" <<EOF
config setup
  plutodebug=${LS_DEBUG:-none}
  logtime=yes
conn pkgA
  ikev2=yes
  authby=secret
  left=$CL_CLIENT
  leftid=@$CL_CLIENT_ID
  right=$CL_PKG
  rightid=@$CL_PKG_ID
  type=transport
  ike=aes_gcm128-sha2_256;dh31
  esp=aes_gcm256
  pfs=no
  mobike=no
  ikelifetime=24h
  salifetime=24h
  leftupdown=%disabled
  auto=ondemand
EOF
    echo "@$CL_CLIENT_ID @$CL_PKG_ID : PSK \"$CL_PSK\"" > "$d/ipsec.secrets"; chmod 600 "$d/ipsec.secrets"
    ls_start client && ls_load client pkgA >/dev/null && { lsw client --route --name pkgA >/dev/null; true; } ;;
  *) echo "cluster: unknown CL_CLIENT_IMPL=$CL_CLIENT_IMPL" >&2; return 1 ;;
  esac
}

# cl_start NS [EXTRA]: start NS's daemon (waits for its control socket).
cl_start() {
  local ns=$1
  if [ "$ns" = client ] && [ "${CL_CLIENT_IMPL:-ripsec}" != ripsec ]; then cl_peer_start; return; fi
  cl_conf "$ns" "${2:-}"
  rm -f "$CL_DIR/$ns.sock"
  ip netns exec "$ns" "$RIPSEC" daemon --config "$CL_DIR/$ns.toml" --socket "$CL_DIR/$ns.sock" \
    --log-level debug >> "$CL_DIR/$ns.log" 2>&1 &
  CL_PID[$ns]=$!
  local _
  # Bounded: a loaded TCG guest can take seconds to exec the daemon over 9p.
  for _ in $(seq 300); do
    [ -S "$CL_DIR/$ns.sock" ] && return 0
    kill -0 "${CL_PID[$ns]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster: daemon in $ns did not open its socket" >&2
  return 1
}

# cl_stop NS: SIGTERM (the daemon deletes its SAs), bounded wait, then SIGKILL.
cl_stop() {
  local p=${CL_PID[$1]:-} _
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  unset "CL_PID[$1]"
}

# cl_fail NODE: the node dies: no Delete can leave it, its module state is lost.
cl_fail() {
  local n=$1 p=${CL_PID[$1]:-}
  if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; unset "CL_PID[$n]"; fi
  nsx "$n" "$RIPSEC" sa flush >/dev/null
  nsx "$n" "$RIPSEC" policy flush >/dev/null
  [ "${CL_BYPASS_ON_FAIL:-1}" = 1 ] && cl_bypass "$n"
  return 0
}

cl_ctl() { local ns=$1; shift; nsx "$ns" timeout 30 "$RIPSEC" "$@" --socket "$CL_DIR/$ns.sock"; }

# cl_summary NS: "IKE_ESTABLISHED CHILDREN SPI_IN SPI_OUT IKE_TOTAL" for pkgA.
cl_summary() {
  cl_ctl "$1" status --json 2>/dev/null | python3 -c 'import json,sys
try: v=json.load(sys.stdin)
except Exception: print("- - - - -"); sys.exit()
s=[x for x in v["ike_sas"] if x["conn"]=="pkgA"]
est=[x for x in s if x["state"]=="established"]
ch=[c for x in est for c in x["children"]]
print(len(est), len(ch), ch[0]["spi_in"] if ch else "-", ch[0]["spi_out"] if ch else "-", len(s))'
}
# (grep, not python: these run in loops and python starts slowly in the guest)
cl_sa_count() { nsx "$1" "$RIPSEC" sa list --json | grep -o '"spi":' | wc -l; }
# cl_sa_spis NS: sorted SPIs in NS's module ("dir:spi ...").
cl_sa_spis() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(" ".join(sorted("%s:%s" % (s["dir"], s["spi"]) for s in json.load(sys.stdin))))'; }
cl_sa_packets() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(s["stats"]["packets"] for s in json.load(sys.stdin) if s["spi"] == sys.argv[1]))' "$2"; }
# One established IKE SA with exactly one Child SA (and nothing else) for pkgA.
# (Every configuration here has the one connection pkgA.)
cl_one_pair() {
  local j; j=$(cl_ctl "$1" status --json 2>/dev/null) || return 1
  [ "$(grep -o '"state":"established"' <<< "$j" | wc -l) $(grep -o '"spi_in":' <<< "$j" | wc -l) $(grep -o '"spi_i":' <<< "$j" | wc -l)" = "1 1 1" ]
}

# cl_xfrm_spis NS: NS's XFRM states as "in:SPI out:SPI ..." (sorted; "in" =
# towards the client's address), the form of cl_sa_spis. Larval states (SPI 0:
# the kernel's placeholder for a pending ACQUIRE, gone after xfrm_acq_expires)
# are not SAs and are left out; cl_xfrm_larval counts them.
cl_xfrm_spis() {
  ip -n "$1" xfrm state list 2>/dev/null | awk -v me="$CL_CLIENT" '
    /^src / { dir = ($4 == me) ? "in" : "out" }
    /proto esp spi/ && $4 != "0x00000000" { print dir ":" $4 }' | sort | tr '\n' ' ' | sed 's/ $//'
}
cl_xfrm_larval() { ip -n "$1" xfrm state list 2>/dev/null | grep -c 'proto esp spi 0x00000000 '; }
# cl_crosswise SPIS: the same SAs seen from the other end (in <-> out), sorted.
cl_crosswise() { tr ' ' '\n' <<< "$1" | sed 's/^in:/X:/; s/^out:/in:/; s/^X:/out:/' | sort | tr '\n' ' ' | sed 's/ $//'; }
# cl_client_one_pair: the client (any CL_CLIENT_IMPL) holds one IKE SA with one Child SA.
cl_client_one_pair() {
  case ${CL_CLIENT_IMPL:-ripsec} in
  strongswan) [ "$(sw_counts client)" = "1 1" ] ;;
  libreswan) [ "$(ls_counts client)" = "1 1" ] ;;
  *) cl_one_pair client ;;
  esac
}

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds.
wait_for() { local t=$1; shift; local end=$(( $(date +%s) + t )); until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge $end ] && return 1; sleep 0.1; done; }

now_s() { date +%s.%N; }

# cl_up [NODE_EXTRA [CLIENT_EXTRA]]: the whole cluster, package on node1 eth0.
cl_up() {
  load_module
  topo_up
  pkg_place node1 eth0
  : > "$CL_DIR/client.log"; : > "$CL_DIR/node1.log"; : > "$CL_DIR/node2.log"
  cl_bypass node1; cl_bypass node2
  cl_start node1 "${1:-}" && cl_start node2 "${1:-}" && cl_start client "${2:-}"
}

# cl_save_logs PREFIX: the daemon and ping logs into the run's output directory.
cl_save_logs() {
  local f
  for f in "$CL_DIR"/*.log; do [ -f "$f" ] && cp "$f" "$OUT/$1-$(basename "$f")"; done
  case ${CL_CLIENT_IMPL:-ripsec} in
  strongswan) cp /tmp/sw-client/charon.log "$OUT/$1-client-charon.log" 2>/dev/null ;;
  libreswan) cp /tmp/ls-client/pluto.log "$OUT/$1-client-pluto.log" 2>/dev/null ;;
  esac
  return 0
}

# Not through `check` or $(...): the daemons' pids must stay in this shell.
cl_down() {
  local ns
  for ns in "${!CL_PID[@]}"; do cl_stop "$ns"; done
  case ${CL_CLIENT_IMPL:-ripsec} in strongswan) sw_stop client ;; libreswan) ls_stop client ;; esac
  topo_down
}

# cl_move TO [DEV]: pkg_place for the failover measurements: the same moves,
# but CL_T0 is the instant the address is added on TO (the move), and the
# gratuitous ARP is not waited for (arping lingers 1 s after sending it).
cl_move() {
  local to=$1 dev=${2:-eth0} from fdev
  read -r from fdev <<< "$(pkg_where)"
  if [ -n "$from" ]; then
    ip -n "$from" addr del "$PKG4/24" dev "$fdev"
    ip -n "$from" addr del "$PKG6/64" dev "$fdev" 2>/dev/null
  fi
  CL_T0=$(now_s)
  # Both addresses in one step; the IPv6 one is announced by the kernel
  # (unsolicited NA, ndisc_notify: it needs the address to start tentative,
  # so no nodad; DAD itself is off), the IPv4 one by a gratuitous ARP.
  printf 'addr add %s/24 dev %s\naddr add %s/64 dev %s\n' "$PKG4" "$dev" "$PKG6" "$dev" | ip -n "$to" -batch -
  ip netns exec "$to" arping -q -U -c 1 -I "$dev" -s "$PKG4" "$PKG4"
  return 0
}

# cl_ping_until SECONDS: client pings the package until one reply (0.2 s apart).
cl_ping_until() { wait_for "$1" nsx client ping -c 1 -W 0.5 "$CL_PKG"; }

# Background ping from the client every 100 ms with timestamps (ping -D).
cl_traffic_start() {
  ip netns exec client ping -D -i 0.1 -W 1 "$CL_PKG" > "$CL_DIR/ping.log" 2>&1 &
  CL_PING=$!
}
cl_traffic_stop() { [ -n "${CL_PING:-}" ] && { kill "$CL_PING" 2>/dev/null; wait "$CL_PING" 2>/dev/null; CL_PING=; }; return 0; }

# cl_first_reply_after T: epoch of the first ping reply after T (or nothing).
cl_first_reply_after() {
  awk -v t="$1" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > t + 0) { print ts; exit } }' "$CL_DIR/ping.log"
}
# cl_wait_reply_after T SECONDS: waits for a reply newer than T; prints its epoch.
cl_wait_reply_after() {
  local t=$1 end=$(( $(date +%s) + $2 )) r
  while [ "$(date +%s)" -lt $end ]; do
    r=$(cl_first_reply_after "$t"); [ -n "$r" ] && { echo "$r"; return 0; }
    sleep 0.1
  done
  return 1
}
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d\n", (b - a) * 1000 + 0.5 }'; }

# cl_timeline T0 [FROM_NODE TO_NODE]: the failover events after T0, from the
# daemon logs and the ping log, relative to T0.
cl_timeline() {
  python3 - "$1" "${2:-node1}" "${3:-node2}" "$CL_DIR" <<'EOF'
import sys, re, datetime
t0 = float(sys.argv[1]); old, new, d = sys.argv[2], sys.argv[3], sys.argv[4]
def epoch(line):
    m = re.match(r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z', line)
    if not m: return None
    return datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
ev = []
def first(ns, pat, text, fmt=None, every=False):
    try: lines = open(f"{d}/{ns}.log", errors="replace").read().splitlines()
    except OSError: return
    for l in lines:
        t = epoch(l)
        if t is None or t < t0: continue
        m = re.search(pat, l)
        if m:
            ev.append((t, ns, text.format(*m.groups())))
            if not every: return
first(new, r'address (\S+) added: serving', "daemon sees {0} assigned: now acting for the package")
first(new, r'ESP for an unknown SPI spi="(\w+)" src=(\S+)', "SPI miss: ESP from {1} with unknown SPI {0}")
first(new, r'InvalidSpiSent \{ remote: (\S+), spi', "INVALID_SPI hint sent (unprotected) to {0}")
first("client", r'InvalidSpiHint \{ from: (\S+),', "INVALID_SPI hint received from {0}: liveness check started")
first(new, r'initiating.*conn="pkgA"', "initiating IKE SA with INITIAL_CONTACT")
first(new, r'IKE SA established .* as (\w+) .*ike="(\w+)"', "IKE SA {1} established ({0})")
first("client", r'IKE SA established .* as (\w+) .*ike="(\w+)"', "IKE SA {1} established ({0})")
first("client", r'IKE SA down .*ike="(\w+)" .*reason=(\w+)', "old IKE SA {0} flushed (reason {1})", every=True)
first("client", r'Child SA removed spi_in="(\w+)" spi_out="(\w+)"', "old Child SA in {0} out {1} removed from the module", every=True)
first("client", r'Child SA installed .* spi_in="(\w+)" spi_out="(\w+)"', "new Child SA in {0} out {1} installed")
first(new, r'Child SA installed .* spi_in="(\w+)" spi_out="(\w+)"', "new Child SA in {0} out {1} installed")
try:
    for l in open(f"{d}/ping.log"):
        m = re.match(r'\[(\d+\.\d+)\] .*icmp_seq=(\d+).*time=(\S+ ms)', l)
        if m and float(m.group(1)) > t0:
            ev.append((float(m.group(1)), "client", f"first reply through the new SAs (icmp_seq={m.group(2)}, rtt {m.group(3)})")); break
except OSError: pass
for t, ns, text in sorted(ev):
    print(f"  {(t - t0) * 1000:+8.1f} ms  {ns:<6}  {text}")
EOF
}

# cl_crash_failover FROM TO: FROM dies (cl_fail), the package moves to TO
# (cl_move), and FROM's daemon comes back as the standby node. Needs the
# background ping (cl_traffic_start). Sets CL_REC_MS: address move -> first
# reply through a new SA (empty if none within CL_REC_WAIT s, default 30).
cl_crash_failover() {
  local from=$1 to=$2 r
  cl_fail "$from"
  cl_move "$to" eth0
  CL_REC_MS= CL_MISS_MS=
  if r=$(cl_wait_reply_after "$CL_T0" "${CL_REC_WAIT:-30}"); then
    CL_REC_MS=$(ms_between "$CL_T0" "$r")
    # The IPsec part alone (CL_MEASURE_MISS=1): first ESP seen by TO (its
    # SPI miss) -> first reply.
    local iso first
    if [ "${CL_MEASURE_MISS:-0}" = 1 ]; then
      # Log timestamps are UTC ISO 8601 with microseconds: they sort as text.
      iso=$(date -u -d "@$CL_T0" +%Y-%m-%dT%H:%M:%S.%6NZ)
      first=$(awk -v t="$iso" '/ESP for an unknown SPI/ && $1 > t { print $1; exit }' "$CL_DIR/$to.log")
      [ -n "$first" ] && CL_MISS_MS=$(ms_between "$(date -d "$first" +%s.%N)" "$r")
    fi
  fi
  cl_start "$from"
}

# median and p95 of numbers on stdin (nearest rank).
stats_ms() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- -"; exit }
  m = int((NR + 1) / 2); p = int(NR * 0.95 + 0.999); if (p > NR) p = NR; print v[m], v[p] }'; }
