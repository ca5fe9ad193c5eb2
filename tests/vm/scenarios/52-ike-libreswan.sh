#!/bin/bash
# IKEv2 interop with libreswan: ripsec daemon + rust_ipsec in namespace a,
# pluto + Linux XFRM in namespace b. The same checks as scenario 51 (which
# does this with strongSwan): each case negotiates with PSK, checks the
# negotiated algorithms on both ends, sends traffic both ways and counts it
# on both datapaths, then deletes from the initiator and checks the other end
# removed its own SAs. Cases cover both initiators, transport and tunnel
# mode, raw ESP and forced UDP encapsulation (from either side), AES-GCM-16
# 128/256 and ChaCha20-Poly1305, X25519, ECP-256 and MODP-2048, FQDN and
# address identities.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/ike-lib.sh"

load_module
pair_up a b
inner_up a b
mkdir -p /tmp/ripsec-a /tmp/ls-b
PSK="a pre-shared key for the interop test"
# pluto reads "config setup" at start; each case rewrites the connection and
# re-adds it.
ls_conf() {
  cat > /tmp/ls-b/ipsec.conf <<EOF2
config setup
  plutodebug=${LS_DEBUG:-none}
  logtime=yes
$1
EOF2
}
ls_conf ""
touch /tmp/ls-b/ipsec.secrets; chmod 600 /tmp/ls-b/ipsec.secrets
ls_start b || not_ok "pluto started in b" "$(tail -5 /tmp/ls-b/stdout)"

# run_case NAME INIT MODE ENCAP RIP_IKE LS_IKE SUITE RIP_ESP LS_ESP ALG IDS [iperf]
#   INIT: ripsec|libreswan; MODE: transport|tunnel; ENCAP: no|ripsec|libreswan
#   (which side forces UDP encapsulation); SUITE/ALG: what ripsec must report;
#   IDS: fqdn|addr.
run_case() {
  local c=$1 init=$2 mode=$3 encap=$4 rike=$5 lsike=$6 suite=$7 resp=$8 lsesp=$9 alg=${10} ids=${11} perf=${12:-}
  local lid rid lsl lsr subnets="" lts rts a_ip=192.0.2.1 b_ip=192.0.2.2 a_in=192.0.2.1 b_in=192.0.2.2
  if [ "$ids" = fqdn ]; then lid='local_id = "@a.example"'; rid='remote_id = "@b.example"'; lsl=@b.example; lsr=@a.example
  else lid=""; rid=""; lsl=$b_ip; lsr=$a_ip; fi
  if [ "$mode" = tunnel ]; then
    lts='local_ts = ["198.51.100.0/24"]'; rts='remote_ts = ["203.0.113.0/24"]'
    subnets=$'  leftsubnet=203.0.113.0/24\n  rightsubnet=198.51.100.0/24'
    a_in=198.51.100.1; b_in=203.0.113.1
  else lts=""; rts=""; fi
  cat > /tmp/ripsec-a/ripsec.toml <<EOF2
[[connection]]
name = "c"
local_addr = "$a_ip"
remote_addrs = ["$b_ip"]
$lid
$rid
psk = "$PSK"
ike = ["$rike"]
esp = ["$resp"]
$lts
$rts
mode = "$mode"
force_encap = $([ "$encap" = ripsec ] && echo true || echo false)
EOF2
  # encapsulation=auto (the default) when libreswan does not force it: "no"
  # would refuse it even when ripsec fakes a NAT (RFC 7296 §2.23).
  ls_conf "conn c
  ikev2=yes
  authby=secret
  left=$b_ip
  leftid=$lsl
  right=$a_ip
  rightid=$lsr
  type=$mode
$subnets
  ike=$lsike
  esp=$lsesp
  pfs=no
  encapsulation=$([ "$encap" = libreswan ] && echo yes || echo auto)
  mobike=no
  ikelifetime=24h
  salifetime=24h
  leftupdown=%disabled
  auto=add"
  echo "$lsl $lsr : PSK \"$PSK\"" > /tmp/ls-b/ipsec.secrets
  echo "=== case $c" >> /tmp/ripsec-a/log; echo "=== case $c" >> /tmp/ls-b/pluto.log
  rip_start a || { not_ok "$c: ripsec daemon started"; return; }
  check "$c: libreswan loaded the connection" ls_load b c
  if [ "$init" = ripsec ]; then check "$c: ripsec up" rip a up c --timeout 20
  else check "$c: whack --initiate" lsw b --initiate --name c; fi
  if wait_for 15 test "$(rip_counts a) $(ls_counts b)" = "1 1 1 1"; then ok "$c: one IKE SA and one Child SA on each end"
  else not_ok "$c: one IKE SA and one Child SA on each end" "ripsec $(rip_counts a), libreswan $(ls_counts b)"; fi
  check_eq "$c: IKE suite" "$suite" "$(rip_sa_field a suite)"
  check_eq "$c: ESP algorithm" "$alg" "$(rip_sa_field a child.alg)"
  check_eq "$c: Child SA mode" "$mode" "$(rip_sa_field a child.mode)"
  local want_enc="None:None None:None" want_xenc=0
  [ "$encap" != no ] && { want_enc="4500:4500 4500:4500"; want_xenc=2; }
  check_eq "$c: rust_ipsec SAs' UDP encapsulation" "$want_enc" "$(rip_encap a)"
  check_eq "$c: XFRM states with UDP encapsulation" "$want_xenc" "$(xfrm_encap b)"
  local src=() ; [ "$mode" = tunnel ] && src=(-I "$a_in")
  local bsrc=(); [ "$mode" = tunnel ] && bsrc=(-I "$b_in")
  check "$c: ping a -> b" nsx a ping -c 3 -i 0.2 -W 2 "${src[@]}" "$b_in"
  check "$c: ping b -> a" nsx b ping -c 3 -i 0.2 -W 2 "${bsrc[@]}" "$a_in"
  local rout rin xin xout
  rout=$(rip_sa_packets a out); rin=$(rip_sa_packets a in)
  xin=$(xfrm_packets b "$a_ip" "$b_ip"); xout=$(xfrm_packets b "$b_ip" "$a_ip")
  if [ "$rout" -ge 6 ] && [ "$rin" -ge 6 ] && [ "$xin" -ge 6 ] && [ "$xout" -ge 6 ]; then
    ok "$c: traffic through rust_ipsec ($rout out, $rin in) and XFRM ($xin in, $xout out)"
  else not_ok "$c: traffic through rust_ipsec and XFRM" "rust_ipsec out=$rout in=$rin, XFRM in=$xin out=$xout"; fi
  if [ -n "$perf" ]; then
    nsx b iperf3 -s -D -1 -B "$b_in" --logfile /tmp/iperf-$c.log; sleep 0.5
    local mbps
    mbps=$(nsx a timeout 30 iperf3 -c "$b_in" -B "$a_in" -t 3 -J 2>/dev/null |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6, 2))' 2>/dev/null || echo 0)
    local xin2; xin2=$(xfrm_packets b "$a_ip" "$b_ip")
    if python3 -c "import sys; sys.exit(not float('$mbps') > 0)" && [ "$xin2" -gt $((xin + 100)) ]; then
      ok "$c: iperf3 TCP a -> b through both datapaths ($mbps Mbit/s, XFRM in +$((xin2 - xin)))"
    else not_ok "$c: iperf3 TCP a -> b" "$mbps Mbit/s, XFRM in $xin -> $xin2"; fi
  fi
  # The initiator deletes; the other end must remove its SAs on the Delete.
  if [ "$init" = ripsec ]; then
    check "$c: ripsec down" rip a down c --timeout 20
    check "$c: libreswan removed its SAs (ripsec's Delete)" wait_for 10 test "$(xfrm_states b)" = 0
  else
    check "$c: whack --terminate" lsw b --terminate --name c
    check "$c: ripsec removed its SAs (libreswan's Delete)" wait_for 10 test "$(rip_sa_count a)" = 0
  fi
  check_eq "$c: no IKE SA left on ripsec" "0 0" "$(rip_counts a)"
  check_eq "$c: no IKE SA left on libreswan" "0 0" "$(ls_counts b)"
  rip_stop a
  check_eq "$c: rust_ipsec empty after the daemon exit" 0 "$(rip_sa_count a)"
  lsw b --delete --name c >/dev/null 2>&1
}

run_case transport-ripsec-init ripsec transport no \
  aes128gcm16-prfsha256-x25519 'aes_gcm128-sha2_256;dh31' AesGcm16_128/HmacSha256/Curve25519 \
  aes128gcm16 aes_gcm128 AesGcm16_128 fqdn
run_case transport-libreswan-init libreswan transport no \
  aes256gcm16-prfsha256-ecp256 'aes_gcm256-sha2_256;dh19' AesGcm16_256/HmacSha256/Ecp256 \
  aes256gcm16 aes_gcm256 AesGcm16_256 addr
run_case tunnel-ripsec-init ripsec tunnel no \
  aes256gcm16-prfsha384-modp2048 'aes_gcm256-sha2_384;dh14' AesGcm16_256/HmacSha384/Modp2048 \
  aes256gcm16 aes_gcm256 AesGcm16_256 addr iperf
run_case tunnel-libreswan-init libreswan tunnel no \
  aes128gcm16-prfsha256-x25519 'aes_gcm128-sha2_256;dh31' AesGcm16_128/HmacSha256/Curve25519 \
  chacha20poly1305 chacha20_poly1305 ChaCha20Poly1305 fqdn
run_case transport-encap-by-ripsec ripsec transport ripsec \
  aes256gcm16-prfsha256-x25519 'aes_gcm256-sha2_256;dh31' AesGcm16_256/HmacSha256/Curve25519 \
  aes256gcm16 aes_gcm256 AesGcm16_256 fqdn
run_case transport-encap-by-libreswan libreswan transport libreswan \
  aes128gcm16-prfsha256-ecp256 'aes_gcm128-sha2_256;dh19' AesGcm16_128/HmacSha256/Ecp256 \
  aes128gcm16 aes_gcm128 AesGcm16_128 addr
run_case tunnel-encap-ripsec-init-libreswan-forces ripsec tunnel libreswan \
  aes128gcm16-prfsha256-modp2048 'aes_gcm128-sha2_256;dh14' AesGcm16_128/HmacSha256/Modp2048 \
  aes128gcm16 aes_gcm128 AesGcm16_128 fqdn iperf
run_case tunnel-encap-libreswan-init-ripsec-forces libreswan tunnel ripsec \
  aes256gcm16-prfsha256-x25519 'aes_gcm256-sha2_256;dh31' AesGcm16_256/HmacSha256/Curve25519 \
  aes256gcm16 aes_gcm256 AesGcm16_256 addr

ls_stop b
keep_logs 52 /tmp/ripsec-a/log /tmp/ls-b/pluto.log /tmp/ls-b/stdout
echo "--- ripsec log (tail)"; tail -30 /tmp/ripsec-a/log
echo "--- pluto log (tail)"; tail -40 /tmp/ls-b/pluto.log
ip netns del a; ip netns del b
