#!/bin/bash
# SA and module lifecycle under traffic: lifetimes expire (soft, then hard,
# which removes the SA), SAs are deleted and re-added while two flows use
# them, a hard expiry races a delete, a namespace holding SAs is deleted
# while its traffic runs, and the module is unloaded under traffic and
# loaded again. Nothing may oops, warn, leak or wedge; the kernel log is
# checked at the end of the VM run and kmemleak here.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
K=0x0123456789abcdef0123456789abcdef01020304

# sas NS ME PEER OUT IN [ARGS]: a transport SA pair and its policies in NS.
sas() {
  local ns=$1 me=$2 peer=$3 out=$4 in=$5; shift 5
  nsx "$ns" "$RIPSEC" sa add --spi "$out" --dir out --src "$me" --dst "$peer" --alg aes128gcm --key $K "$@" &&
    nsx "$ns" "$RIPSEC" sa add --spi "$in" --dir in --src "$peer" --dst "$me" --alg aes128gcm --key $K &&
    nsx "$ns" "$RIPSEC" policy add --dir out --src "$me" --dst "$peer" --action protect >/dev/null &&
    nsx "$ns" "$RIPSEC" policy add --dir in --src "$peer" --dst "$me" --action protect >/dev/null
}
protect_pair() { sas "$1" 192.0.2.1 192.0.2.2 0x100 0x200 && sas "$2" 192.0.2.2 192.0.2.1 0x200 0x100; }
sa_count() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
ctr() { json_get "$(nsx "$1" "$RIPSEC" stats --json)" ".counters.$2"; }
tcp_bg() { # tcp_bg FROM TO SECONDS LOG: iperf3 with two streams, in the background.
  nsx "$2" iperf3 -s -D -1 --logfile "/tmp/iperf3-s-$2.log"
  sleep 0.5
  nsx "$1" timeout $(( $3 + 20 )) iperf3 -c 192.0.2.2 -t "$3" -P 2 > "$4" 2>&1 &
}

load_module

# --- lifetimes -------------------------------------------------------------
pair_up a b
protect_pair a b
nsx a "$RIPSEC" sa del --spi 0x100 --dst 192.0.2.2
nsx a "$RIPSEC" sa add --spi 0x100 --dir out --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K \
  --soft-packets 5 --hard-packets 10
nsx a "$RIPSEC" monitor --json --count 3 --timeout 30 > /tmp/expire.json 2> /tmp/expire.err &
mon=$!
for _ in $(seq 300); do grep -q monitoring /tmp/expire.err 2>/dev/null && break; sleep 0.1; done
nsx a ping -c 14 -i 0.05 -W 1 192.0.2.2 >/dev/null 2>&1
wait $mon
check "soft expiry, then hard expiry, then ACQUIRE for the next packet" python3 -c 'import json
ev = [json.loads(l) for l in open("/tmp/expire.json")]
kinds = [(e["event"], e.get("hard", False)) for e in ev]
assert kinds == [("expire", False), ("expire", True), ("acquire", False)], kinds
assert all(e["spi"] == "0x00000100" for e in ev[:2]), ev'
check_eq "the hard-expired SA is gone" 1 "$(sa_count a)"
check_eq "it carried exactly its hard limit" 10 "$(ctr a out_packets)"
check "packets after it are dropped and counted as needing an SA" test "$(ctr a out_no_sa)" -ge 1
# Time limits: soft after 1 s, hard after 3 s, with no traffic at all.
nsx a "$RIPSEC" monitor --json --count 2 --timeout 20 > /tmp/expire-t.json 2> /tmp/expire-t.err &
mon=$!
for _ in $(seq 300); do grep -q monitoring /tmp/expire-t.err 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
nsx a "$RIPSEC" sa add --spi 0x300 --dir in --src 192.0.2.2 --dst 192.0.2.1 --alg aes128gcm --key $K \
  --soft-secs 1 --hard-secs 3
wait $mon
t1=$(date +%s.%N)
check "time limits: soft then hard EXPIRE for the SA" python3 -c 'import json
ev = [json.loads(l) for l in open("/tmp/expire-t.json")]
assert [(e["event"], e["spi"], e.get("hard", False)) for e in ev] == [("expire", "0x00000300", False), ("expire", "0x00000300", True)], ev'
check "time limits: the hard expiry came 3 to 6 s after the add" python3 -c "import sys; d = $t1 - $t0; sys.exit(not 3 <= d <= 6.5)"
check "time limits: the SA is gone" sh -c "! ip netns exec a $RIPSEC sa list --json | grep -q 0x00000300"
check_fails "a replay window above 4096 is refused" nsx a "$RIPSEC" sa add --spi 0x301 --dir in --src 192.0.2.2 \
  --dst 192.0.2.1 --alg aes128gcm --key $K --replay-window 70000
check_fails "a TFC padding target above 65535 is refused" nsx a "$RIPSEC" sa add --spi 0x302 --dir out --src 192.0.2.1 \
  --dst 192.0.2.2 --mode tunnel --alg aes128gcm --key $K --tfc-pad 70000
check "a TFC padding target of 65535 is accepted" nsx a "$RIPSEC" sa add --spi 0x303 --dir out --src 192.0.2.1 \
  --dst 192.0.2.2 --mode tunnel --alg aes128gcm --key $K --tfc-pad 65535
cleanup_all

# --- delete and re-add under traffic ----------------------------------------
load_module
pair_up a b
protect_pair a b
tcp_bg a b 8 /tmp/iperf3-churn.log
nsx a ping -q -c 2000 -i 0.004 -w 20 192.0.2.2 > /tmp/ping-churn.log 2>&1 &
pinger=$!
churn_ok=0 rounds=0
end=$((SECONDS + 20))
for i in $(seq 60); do
  [ $SECONDS -lt $end ] || break
  rounds=$((rounds + 1))
  nsx a "$RIPSEC" sa del --spi 0x100 --dst 192.0.2.2 &&
    nsx a "$RIPSEC" sa add --spi 0x100 --dir out --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K &&
    nsx b "$RIPSEC" sa del --spi 0x100 --dst 192.0.2.2 &&
    nsx b "$RIPSEC" sa add --spi 0x100 --dir in --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K &&
    churn_ok=$((churn_ok + 1))
  if [ $((i % 20)) = 0 ]; then
    # A flush empties the namespace (the hooks' fast path) under traffic too.
    nsx a "$RIPSEC" sa flush >/dev/null
    nsx a "$RIPSEC" sa add --spi 0x100 --dir out --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K
    nsx a "$RIPSEC" sa add --spi 0x200 --dir in --src 192.0.2.2 --dst 192.0.2.1 --alg aes128gcm --key $K
  fi
done
wait $pinger
wait
# Bounded by count and by time (TCG is slow under load): every round must succeed.
check_eq "every delete/add round under TCP and ping succeeded" "$rounds" "$churn_ok"
check "at least 5 rounds ran ($rounds)" test "$rounds" -ge 5
check_eq "a holds exactly its two SAs afterwards" 2 "$(sa_count a)"
check_eq "b holds exactly its two SAs afterwards" 2 "$(sa_count b)"
check "traffic flows on the re-added SAs" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
check_eq "no authentication failures in b" 0 "$(ctr b in_auth_fail)"
check "TCP ran through the churn" grep -q "sender" /tmp/iperf3-churn.log
# Update: both ends of a -> b move to a new key in place.
K2=0xfedcba9876543210fedcba9876543210a1a2a3a4
check "sa update (a, outbound) to a new key" nsx a "$RIPSEC" sa update --spi 0x100 --dir out --src 192.0.2.1 \
  --dst 192.0.2.2 --alg aes128gcm --key $K2
check "sa update (b, inbound) to the same key" nsx b "$RIPSEC" sa update --spi 0x100 --dir in --src 192.0.2.1 \
  --dst 192.0.2.2 --alg aes128gcm --key $K2
check "traffic flows on the updated SAs" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
check_eq "still exactly two SAs in a after the update" 2 "$(sa_count a)"
check_eq "no authentication failures in b after the update" 0 "$(ctr b in_auth_fail)"
out=$(nsx a "$RIPSEC" sa update --spi 0x999 --dir out --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K2 2>&1)
rc=$?
check "updating a missing SA fails (exit $rc)" test "$rc" -ne 0
check "and the error says why ($out)" python3 -c 'import sys; sys.exit("no SA with this SPI" not in sys.argv[1])' "$out"
cleanup_all

# --- hard expiry racing a delete --------------------------------------------
load_module
pair_up a b
protect_pair a b
raced=0
for i in $(seq 20); do
  nsx a "$RIPSEC" sa del --spi 0x100 --dst 192.0.2.2 2>/dev/null
  nsx a "$RIPSEC" sa add --spi 0x100 --dir out --src 192.0.2.1 --dst 192.0.2.2 --alg aes128gcm --key $K \
    --hard-packets $((5 + i % 7)) || continue
  nsx a ping -c 12 -i 0.01 -W 1 192.0.2.2 >/dev/null 2>&1 &
  sleep 0.0$((i % 10))
  nsx a "$RIPSEC" sa del --spi 0x100 --dst 192.0.2.2 >/dev/null 2>&1
  wait
  raced=$((raced + 1))
done
check_eq "20 expiry/delete races ran" 20 "$raced"
check_eq "only the inbound SA is left" 1 "$(sa_count a)"
cleanup_all

# --- namespace deletion under traffic ---------------------------------------
load_module
pair_up c d
protect_pair c d
tcp_bg c d 10 /tmp/iperf3-netns.log
nsx c ping -q -c 3000 -i 0.003 -w 12 192.0.2.2 >/dev/null 2>&1 &
sleep 3
check "namespaces with SAs and traffic are deleted" sh -c 'ip netns del c && ip netns del d'
# The namespaces die once their last process does.
pkill -f "iperf3 -c 192.0.2.2"; pkill -f "iperf3 -s -D -1"; pkill -f "ping -q -c 3000"
wait
sleep 2
check "the module still serves a new namespace" sh -c "ip netns add e && ip netns exec e $RIPSEC stats >/dev/null"
ip netns del e
cleanup_all

# --- unload under traffic ---------------------------------------------------
load_module
pair_up a b
protect_pair a b
tcp_bg a b 10 /tmp/iperf3-unload.log
nsx a ping -q -c 3000 -i 0.003 -w 12 192.0.2.2 >/dev/null 2>&1 &
sleep 3
check "rmmod under traffic" rmmod rust_ipsec
check "the module is gone" sh -c '! lsmod | grep -q "^rust_ipsec "'
wait
check "it loads again" insmod "$MODULE"
check "and protects traffic again" protect_pair a b
check "ping through fresh SAs" nsx a ping -c 3 -i 0.2 -W 2 192.0.2.2
check "SAs deleted right before rmmod" sh -c "ip netns exec a $RIPSEC sa flush >/dev/null && rmmod rust_ipsec"
cleanup_all
kmemleak_check "no leaks after the lifecycle tests"
