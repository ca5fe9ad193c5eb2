#!/bin/bash
# Wire compatibility with Linux XFRM: rust_ipsec in namespace a, `ip xfrm` with
# the same keys in namespace b; traffic both ways for each family, mode,
# encapsulation and AEAD.
. "$RIPSEC_ROOT/tests/vm/lib.sh"

load_module
pair_up a b
declare -A ADDR=([a4]=192.0.2.1 [b4]=192.0.2.2 [a6]=2001:db8::1 [b6]=2001:db8::2)
K16=0x0123456789abcdef0123456789abcdef01020304
K32=0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01020304

# XFRM drops ESP-in-UDP unless a socket holds port 4500 with UDP_ENCAP_ESPINUDP,
# as an IKE daemon's would.
nsx b python3 "$RIPSEC_ROOT/tests/vm/tools/xfrm_encap_socket.py" > /tmp/encap.log 2>&1 &
encap_sock=$!
for _ in $(seq 50); do grep -q ready /tmp/encap.log 2>/dev/null && break; sleep 0.2; done

setup() { # FAM MODE ENCAP ALG
  local fam=$1 mode=$2 encap=$3 alg=$4 A=${ADDR[a$1]} B=${ADDR[b$1]} key=$K16 xalg e=() xe=() t=()
  case $alg in
    aes128gcm) xalg="rfc4106(gcm(aes))" ;;
    chacha20poly1305) xalg="rfc7539esp(chacha20,poly1305)"; key=$K32 ;;
  esac
  local any=0.0.0.0; [ "$fam" = 6 ] && any=::
  [ "$encap" = udp ] && { e=(--encap 4500:4500); xe=(encap espinudp 4500 4500 "$any"); }
  [ "$mode" = tunnel ] && t=(--tun-src "$A" --tun-dst "$B")
  local R="nsx a $RIPSEC"
  $R sa add --spi 0x100 --dir out --src "$A" --dst "$B" --mode "$mode" --alg "$alg" --key "$key" "${e[@]}" &&
  $R sa add --spi 0x200 --dir in --src "$B" --dst "$A" --mode "$mode" --alg "$alg" --key "$key" "${e[@]}" &&
  $R policy add --dir out --src "$A" --dst "$B" --action protect --mode "$mode" "${t[@]}" >/dev/null &&
  $R policy add --dir in --src "$B" --dst "$A" --action protect --mode "$mode" "${t[@]}" >/dev/null &&
  ip -n b xfrm state add src "$A" dst "$B" proto esp spi 0x100 reqid 1 mode "$mode" aead "$xalg" "$key" 128 "${xe[@]}" &&
  ip -n b xfrm state add src "$B" dst "$A" proto esp spi 0x200 reqid 1 mode "$mode" aead "$xalg" "$key" 128 "${xe[@]}" &&
  ip -n b xfrm policy add src "$B" dst "$A" dir out tmpl src "$B" dst "$A" proto esp reqid 1 mode "$mode" &&
  ip -n b xfrm policy add src "$A" dst "$B" dir in tmpl src "$A" dst "$B" proto esp reqid 1 mode "$mode"
}
teardown() {
  nsx a "$RIPSEC" sa flush >/dev/null; nsx a "$RIPSEC" policy flush >/dev/null
  ip -n b xfrm state flush; ip -n b xfrm policy flush
}
xfrm_packets() { ip -n b -s xfrm state get src "$1" dst "$2" proto esp spi "$3" 2>/dev/null | awk '/lifetime current:/ {getline; sub(/\(packets\)/, "", $2); print $2; exit}'; }

for fam in 4 6; do
  for mode in transport tunnel; do
    for encap in raw udp; do
      for alg in aes128gcm chacha20poly1305; do
        c="IPv$fam $mode $encap $alg"
        if ! setup $fam $mode $encap $alg; then not_ok "$c: configured"; teardown; continue; fi
        A=${ADDR[a$fam]} B=${ADDR[b$fam]}
        r1=0; nsx a ping -c 2 -i 0.3 -W 2 "$B" >/dev/null 2>&1 || r1=$?
        r2=0; nsx b ping -c 2 -i 0.3 -W 2 "$A" >/dev/null 2>&1 || r2=$?
        xin=$(xfrm_packets "$A" "$B" 0x100); xout=$(xfrm_packets "$B" "$A" 0x200)
        if [ $r1 = 0 ] && [ $r2 = 0 ] && [ "${xin:-0}" -ge 4 ] && [ "${xout:-0}" -ge 4 ]; then
          ok "$c: rust_ipsec <-> XFRM both ways (XFRM saw $xin in, $xout out)"
        else
          not_ok "$c: rust_ipsec <-> XFRM both ways" "ping a->b $r1, b->a $r2, XFRM in ${xin:-none} out ${xout:-none}"
        fi
        teardown
      done
    done
  done
done
# After a flush, namespace a has hooks but no rust_ipsec configuration: XFRM on
# both ends must work through it untouched.
for side in a b; do
  me=192.0.2.1 peer=192.0.2.2; [ $side = b ] && { me=192.0.2.2; peer=192.0.2.1; }
  ip -n $side xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode transport aead "rfc4106(gcm(aes))" $K16 128
  ip -n $side xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x200 reqid 1 mode transport aead "rfc4106(gcm(aes))" $K16 128
  ip -n $side xfrm policy add src $me dst $peer dir out tmpl src $me dst $peer proto esp reqid 1 mode transport
done
seen() { json_get "$(nsx a "$RIPSEC" stats --json)" .counters.in_no_sa; }
before=$(seen)
check "XFRM on both ends works through a flushed rust_ipsec namespace" nsx a ping -c 2 -W 2 192.0.2.2
check_eq "rust_ipsec left that ESP alone" "$before" "$(seen)"
ip -n a xfrm state flush; ip -n a xfrm policy flush; ip -n b xfrm state flush; ip -n b xfrm policy flush
kill $encap_sock 2>/dev/null
ip netns del a; ip netns del b
check "rmmod after interop" rmmod rust_ipsec
