#!/bin/bash
# Static SAs between two namespaces through rust_ipsec: every address family,
# mode, encapsulation and AEAD; TCP and UDP through an SA; cleartext refused.
. "$RIPSEC_ROOT/tests/vm/lib.sh"

load_module
pair_up a b
declare -A ADDR=([a4]=192.0.2.1 [b4]=192.0.2.2 [a6]=2001:db8::1 [b6]=2001:db8::2)
K16=0x0123456789abcdef0123456789abcdef01020304
K32=0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01020304

# sa_pair FAM MODE ENCAP ALG: SAs and policies on both sides, a -> b SPI 0x100, b -> a 0x200.
sa_pair() {
  local fam=$1 mode=$2 encap=$3 alg=$4 key=$K16 e=()
  [ "$alg" = aes128gcm ] || key=$K32
  [ "$encap" = udp ] && e=(--encap 4500:4500)
  local A=${ADDR[a$fam]} B=${ADDR[b$fam]} t=()
  for side in a b; do
    local me=$A peer=$B; [ $side = b ] && { me=$B; peer=$A; }
    local out_spi=0x100 in_spi=0x200; [ $side = b ] && { out_spi=0x200; in_spi=0x100; }
    [ "$mode" = tunnel ] && t=(--tun-src "$me" --tun-dst "$peer")
    nsx $side "$RIPSEC" sa add --spi $out_spi --dir out --src "$me" --dst "$peer" --mode "$mode" --alg "$alg" --key "$key" "${e[@]}" || return 1
    nsx $side "$RIPSEC" sa add --spi $in_spi --dir in --src "$peer" --dst "$me" --mode "$mode" --alg "$alg" --key "$key" "${e[@]}" || return 1
    nsx $side "$RIPSEC" policy add --dir out --src "$me" --dst "$peer" --action protect --mode "$mode" "${t[@]}" "${e[@]}" >/dev/null || return 1
    nsx $side "$RIPSEC" policy add --dir in --src "$peer" --dst "$me" --action protect --mode "$mode" "${t[@]}" "${e[@]}" >/dev/null || return 1
  done
}
flush() { for ns in a b; do nsx $ns "$RIPSEC" sa flush >/dev/null; nsx $ns "$RIPSEC" policy flush >/dev/null; done; }
sa_packets() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(s["stats"]["packets"] for s in json.load(sys.stdin) if s["spi"] == sys.argv[1]))' "$2"; }

for fam in 4 6; do
  for mode in transport tunnel; do
    for encap in raw udp; do
      for alg in aes128gcm aes256gcm chacha20poly1305; do
        c="IPv$fam $mode $encap $alg"
        if ! sa_pair $fam $mode $encap $alg; then not_ok "$c: SAs installed"; flush; continue; fi
        if nsx a ping -c 3 -i 0.2 -W 2 "${ADDR[b$fam]}" >/dev/null 2>&1; then
          sent=$(sa_packets a 0x00000100); got=$(sa_packets b 0x00000100)
          if [ "$sent" -ge 3 ] && [ "$got" -ge 3 ]; then ok "$c: ping through ESP ($sent out, $got in)"
          else not_ok "$c: ping through ESP" "SA counters a->b out=$sent in=$got"; fi
        else
          not_ok "$c: ping through ESP" "no reply"
        fi
        flush
      done
    done
  done
done

# Cleartext that an inbound protect policy covers is dropped and counted.
sa_pair 4 transport raw aes128gcm
nsx a "$RIPSEC" policy flush >/dev/null
before=$(json_get "$(nsx b "$RIPSEC" stats --json)" .counters.in_policy_drop)
check_fails "cleartext ping refused by b's inbound policy" nsx a ping -c 1 -W 1 192.0.2.2
after=$(json_get "$(nsx b "$RIPSEC" stats --json)" .counters.in_policy_drop)
check "refused cleartext is counted" test "$after" -gt "$before"
flush

# TCP and UDP through one SA pair, default MTU: ESP's overhead lowers the path MTU.
sa_pair 4 transport raw aes128gcm
nsx b iperf3 -s -D -1 --logfile /tmp/iperf3-b.log
sleep 0.5
if out=$(nsx a timeout 30 iperf3 -c 192.0.2.2 -t 3 -J 2>&1); then
  bps=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' <<< "$out")
  check "TCP through ESP (iperf3 3 s, $((bps / 1000)) kbit/s)" test "$bps" -gt 0
else
  not_ok "TCP through ESP (iperf3)" "$(echo "$out" | tail -2)"
fi
nsx b iperf3 -s -D -1 --logfile /tmp/iperf3-b2.log
sleep 0.5
if out=$(nsx a timeout 30 iperf3 -u -c 192.0.2.2 -t 2 -b 2M -J 2>&1); then
  lost=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum"]["lost_percent"])' <<< "$out")
  check "UDP through ESP (iperf3 2 s, ${lost}% lost)" python3 -c "import sys; sys.exit(0 if $lost < 5 else 1)"
else
  not_ok "UDP through ESP (iperf3)" "$(echo "$out" | tail -2)"
fi
esp_in=$(sa_packets b 0x00000100)
check "the iperf3 traffic went through the SA ($esp_in ESP packets)" test "$esp_in" -gt 1000
check "no outbound errors" test "$(json_get "$(nsx a "$RIPSEC" stats --json)" .counters.out_errors)" = 0
check "no inbound authentication failures" test "$(json_get "$(nsx b "$RIPSEC" stats --json)" .counters.in_auth_fail)" = 0
flush
ip netns del a; ip netns del b
check "rmmod after traffic" rmmod rust_ipsec
