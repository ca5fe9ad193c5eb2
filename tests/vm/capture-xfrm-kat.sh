#!/bin/bash
# Records ESP packets produced by Linux XFRM with fixed keys, as known-answer
# data for ripsec-esp (rust_ipsec/esp/tests/data/xfrm-esp.txt, checked by
# rust_ipsec/esp/tests/xfrm_kat.rs). Not a scenario (`make test` does not run
# it); run it when the data needs to be made again:
#   tests/vm/run.sh capture-xfrm-kat
#   cp build/vm/last/xfrm-esp.txt rust_ipsec/esp/tests/data/
# Pure XFRM on both sides (the module is not loaded): namespace a holds the
# outbound SA and policy and sends one UDP datagram per case through a raw
# header-included socket, so the plaintext packet is fixed byte for byte;
# the ESP packet a's eth0 transmits is captured with AF_PACKET. Namespace b
# holds the inbound SA, and a check passes only if b's XFRM decrypted and
# delivered the datagram, so every recorded packet is one Linux accepts too.
# Cases: AES-GCM-128, AES-GCM-256 (rfc4106(gcm(aes))) and ChaCha20-Poly1305
# (rfc7539esp(chacha20,poly1305)); transport and tunnel; IPv4 and IPv6; raw
# ESP and ESP-in-UDP (encap espinudp 4500 4500).
. "$RIPSEC_ROOT/tests/vm/lib.sh"
TOOL=$RIPSEC_ROOT/tests/vm/tools/xfrm_kat.py
DATA=$OUT/xfrm-esp.txt

pair_up a b
declare -A ADDR=([a4]=192.0.2.1 [b4]=192.0.2.2 [a6]=2001:db8::1 [b6]=2001:db8::2)
# key || 4-byte salt, as IKE would derive (RFC 4106 section 8.1, RFC 7634 section 2).
declare -A KEY=(
  [aes128gcm]=0x000102030405060708090a0b0c0d0e0fa0a1a2a3
  [aes256gcm]=0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2fb0b1b2b3
  [chacha20poly1305]=0x303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4fc0c1c2c3)
declare -A XALG=([aes128gcm]="rfc4106(gcm(aes))" [aes256gcm]="rfc4106(gcm(aes))"
  [chacha20poly1305]="rfc7539esp(chacha20,poly1305)")

nsx b python3 "$RIPSEC_ROOT/tests/vm/tools/xfrm_encap_socket.py" > /tmp/encap.log 2>&1 &
encap_sock=$!
nsx b python3 -u "$TOOL" recv > /tmp/recv.log 2>&1 &
receiver=$!
for _ in $(seq 50); do
  grep -q ready /tmp/encap.log 2>/dev/null && grep -q ready /tmp/recv.log 2>/dev/null && break
  sleep 0.2
done

{
  echo "# ESP packets made by Linux XFRM ($(uname -r)), recorded by tests/vm/capture-xfrm-kat.sh."
  echo "# One record per blank-line-separated block; plain and esp start at the IP header."
  echo "# plain: the packet handed to XFRM (raw socket, header included)."
  echo "# esp: what XFRM transmitted for it (the SA's first packet: seq 1)."
} > "$DATA"

i=0
for alg in aes128gcm aes256gcm chacha20poly1305; do
  for fam in 4 6; do
    for mode in transport tunnel; do
      for encap in raw udp; do
        A=${ADDR[a$fam]} B=${ADDR[b$fam]}
        spi=$(printf '0x%x' $((0x1000 + i))); len=$((40 + i)); id=$(printf '0x%x' $((0x2100 + i)))
        c="$alg-v$fam-$mode-$encap"
        xe=(); any=0.0.0.0; [ "$fam" = 6 ] && any=::
        [ "$encap" = udp ] && xe=(encap espinudp 4500 4500 "$any")
        for ns in a b; do
          ip -n $ns xfrm state add src "$A" dst "$B" proto esp spi "$spi" reqid 1 mode "$mode" \
            aead "${XALG[$alg]}" "${KEY[$alg]}" 128 "${xe[@]}"
        done
        ip -n a xfrm policy add src "$A" dst "$B" dir out tmpl src "$A" dst "$B" proto esp reqid 1 mode "$mode"
        ip -n b xfrm policy add src "$A" dst "$B" dir in tmpl src "$A" dst "$B" proto esp reqid 1 mode "$mode"
        if out=$(nsx a python3 "$TOOL" send "$fam" "$A" "$B" "$id" "$len" "$c" 2>&1); then
          plain=$(echo "$out" | sed -n 's/^plain=//p'); esp=$(echo "$out" | sed -n 's/^esp=//p')
          want=${plain: -$((2 * len))}
          for _ in $(seq 25); do grep -q "^got $fam $want\$" /tmp/recv.log && break; sleep 0.2; done
          if grep -q "^got $fam $want\$" /tmp/recv.log; then
            ok "$c: XFRM sent ESP and the peer's XFRM delivered the datagram"
            {
              echo
              echo "case=$c"
              echo "alg=$alg"
              echo "keymat=${KEY[$alg]#0x}"
              echo "spi=$spi"
              echo "seq=1"
              echo "mode=$mode"
              echo "src=$A"
              echo "dst=$B"
              [ "$encap" = udp ] && echo "encap=4500:4500" || echo "encap=none"
              echo "plain=$plain"
              echo "esp=$esp"
            } >> "$DATA"
          else
            not_ok "$c: peer delivered the datagram" "$(ip -n b -s xfrm state | grep -A1 'stats' | tr '\n' ' ')"
          fi
        else
          not_ok "$c: ESP captured" "$(echo "$out" | tail -2 | tr '\n' ' ')"
        fi
        ip -n a xfrm state flush; ip -n a xfrm policy flush
        ip -n b xfrm state flush; ip -n b xfrm policy flush
        i=$((i + 1))
      done
    done
  done
done
kill $encap_sock $receiver 2>/dev/null
check_eq "records written" 24 "$(grep -c '^case=' "$DATA")"
echo "capture: $(grep -c '^case=' "$DATA") records in $DATA"
ip netns del a; ip netns del b
