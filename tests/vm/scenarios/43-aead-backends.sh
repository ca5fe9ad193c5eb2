#!/bin/bash
# The module parameter aead= picks the AEAD implementation of new SAs: the
# kernel crypto API (rfc4106(gcm(aes)), rfc7539esp) or the built-in RustCrypto
# code (AES-NI/PCLMULQDQ inside FPU sections where the CPU has them). Both pass the load-time known answers and the
# byte-for-byte cross-check (a failure would refuse the load), and both carry
# traffic in every AEAD, with and without ESN; a bad value refuses the load.
. "$RIPSEC_ROOT/tests/vm/lib.sh"

unload_module
dmesg -C
check_fails "insmod aead=bogus is refused" insmod "$MODULE" aead=bogus
check "the refusal names the parameter" sh -c \
  'dmesg | grep -q "^\[[ 0-9.]*\] rust_ipsec: crypto self-test failed (aead parameter: must be auto, kernel or rustcrypto); refusing to load"'

K16=0x0123456789abcdef0123456789abcdef01020304
K32=0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01020304
# sa_pair ALG ESN MODE ENCAP: a <-> b over IPv4 (transport) or IPv6 (tunnel).
sa_pair() {
  local alg=$1 key=$K32 x=() e=() A=192.0.2.1 B=192.0.2.2
  [ "$alg" = aes128gcm ] && key=$K16
  [ "$2" = esn ] && x+=(--esn --replay-window 64)
  [ "$4" = udp ] && e+=(--encap 4500:4500)
  [ "$3" = tunnel ] && { A=2001:db8::1; B=2001:db8::2; }
  for side in a b; do
    local me=$A peer=$B out=0x100 in=0x200 t=()
    [ $side = b ] && { me=$B; peer=$A; out=0x200; in=0x100; }
    [ "$3" = tunnel ] && t=(--tun-src "$me" --tun-dst "$peer")
    nsx $side "$RIPSEC" sa add --spi $out --dir out --src "$me" --dst "$peer" --mode "$3" --alg "$alg" --key "$key" "${x[@]}" "${e[@]}" || return 1
    nsx $side "$RIPSEC" sa add --spi $in --dir in --src "$peer" --dst "$me" --mode "$3" --alg "$alg" --key "$key" "${x[@]}" "${e[@]}" || return 1
    nsx $side "$RIPSEC" policy add --dir out --src "$me" --dst "$peer" --action protect --mode "$3" "${t[@]}" "${e[@]}" >/dev/null || return 1
    nsx $side "$RIPSEC" policy add --dir in --src "$peer" --dst "$me" --action protect --mode "$3" "${t[@]}" "${e[@]}" >/dev/null || return 1
  done
}
flush() { for ns in a b; do nsx $ns "$RIPSEC" sa flush >/dev/null; nsx $ns "$RIPSEC" policy flush >/dev/null; done; }
sa_packets() { nsx "$1" "$RIPSEC" sa list --json | python3 -c 'import json,sys
print(sum(s["stats"]["packets"] for s in json.load(sys.stdin) if s["spi"] == sys.argv[1]))' "$2"; }

# The guest CPU decides which code each backend runs: -cpu max has AES-NI and
# PCLMULQDQ, VM_CPU=qemu64 (tests/run.sh's second boot) has neither.
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
  builtin=rustcrypto-aesni builtin_impl=aes-ni+pclmulqdq kernel_gcm=__rfc4106-gcm-aesni
else
  builtin=rustcrypto-soft builtin_impl=soft kernel_gcm="rfc4106(gcm_base(ctr(aes-generic),ghash-generic))"
fi
for backend in kernel rustcrypto; do
  dmesg -C
  check "insmod aead=$backend" insmod "$MODULE" aead=$backend
  want=$builtin; [ $backend = kernel ] && want=kernel-crypto-api
  check_eq "aead=$backend: ripsec stats names the backend" "$want" "$(json_get "$("$RIPSEC" stats --json)" .module.backend)"
  check "aead=$backend: the built-in AES-GCM runs on $builtin_impl" \
    sh -c "dmesg | grep -qF 'rust_ipsec: built-in AES-GCM runs on $builtin_impl'"
  if [ $backend = kernel ]; then
    check "aead=kernel: rfc4106 is $kernel_gcm" sh -c "dmesg | grep -qF 'rust_ipsec: kernel rfc4106(gcm(aes)) is $kernel_gcm'"
    check "aead=kernel: rfc7539esp is available" sh -c 'dmesg | grep -q "rust_ipsec: kernel rfc7539esp(chacha20,poly1305) is "'
  fi
  pair_up a b
  for alg in aes128gcm aes256gcm chacha20poly1305; do
    for esn in noesn esn; do
      for shape in "transport raw" "tunnel udp"; do
        set -- $shape
        c="aead=$backend $alg $esn $1 $2"
        if ! sa_pair $alg $esn $1 $2; then not_ok "$c: SAs installed"; flush; continue; fi
        dst=192.0.2.2; [ $1 = tunnel ] && dst=2001:db8::2
        if nsx a ping -c 2 -i 0.2 -W 2 -s 1200 $dst >/dev/null 2>&1; then
          sent=$(sa_packets a 0x00000100); got=$(sa_packets b 0x00000100)
          if [ "$sent" -ge 2 ] && [ "$got" -ge 2 ]; then ok "$c: ping through ESP ($sent out, $got in)"
          else not_ok "$c: ping through ESP" "SA counters a->b out=$sent in=$got"; fi
        else
          not_ok "$c: ping through ESP" "no reply"
        fi
        flush
      done
    done
  done
  # TCP: GSO segments and full-size packets through the backend.
  sa_pair aes128gcm noesn transport raw
  nsx b iperf3 -s -D -1 --logfile /tmp/iperf3-$backend.log
  sleep 0.3
  if out=$(nsx a timeout 30 iperf3 -c 192.0.2.2 -t 2 -J 2>&1); then
    bps=$(echo "$out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))')
    check "aead=$backend: TCP through ESP (iperf3 2 s, $((bps / 1000)) kbit/s)" test "$bps" -gt 0
  else
    not_ok "aead=$backend: TCP through ESP (iperf3)" "$(echo "$out" | tail -2)"
  fi
  check_eq "aead=$backend: no authentication failures" 0 "$(json_get "$(nsx b "$RIPSEC" stats --json)" .counters.in_auth_fail)"
  cleanup_all
done
kmemleak_check "no leaks after both backends"
