#!/bin/bash
# Datapath benchmark inside the VM (make bench): TCP through rust_ipsec, through
# Linux XFRM with the same cipher and mode, and in clear, side by side in one
# run; SA install rate over netlink against `ip xfrm state add`. Prints
# name=value lines. Figures under TCG say nothing absolute: compare ratios.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
K16=0x0123456789abcdef0123456789abcdef01020304
load_module
pair_up a b

tcp_mbps() { # STREAMS
  pkill -x iperf3; sleep 0.5
  nsx b iperf3 -s -D -1 --logfile /tmp/iperf-srv.log; sleep 1
  nsx a timeout 40 iperf3 -c 192.0.2.2 -t 5 -P "$1" -J 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6, 2))' 2>/dev/null || echo 0
}
udp64_pps() { # 64-byte UDP datagrams received per second
  pkill -x iperf3; sleep 0.5
  nsx b iperf3 -s -D -1 --logfile /tmp/iperf-srv.log; sleep 1
  nsx a timeout 40 iperf3 -c 192.0.2.2 -u -l 64 -b 200M -t 3 -J 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(round((s["packets"] - s["lost_packets"]) / s["seconds"]))' 2>/dev/null || echo 0
}
ripsec_on() {
  for side in a b; do
    local me=192.0.2.1 peer=192.0.2.2 o=0x100 i=0x200
    [ $side = b ] && { me=192.0.2.2; peer=192.0.2.1; o=0x200; i=0x100; }
    nsx $side "$RIPSEC" sa add --spi $o --dir out --src $me --dst $peer --alg aes128gcm --key $K16
    nsx $side "$RIPSEC" sa add --spi $i --dir in --src $peer --dst $me --alg aes128gcm --key $K16
    nsx $side "$RIPSEC" policy add --dir out --src $me --dst $peer --action protect >/dev/null
  done
}
ripsec_off() { for s in a b; do nsx $s "$RIPSEC" sa flush >/dev/null; nsx $s "$RIPSEC" policy flush >/dev/null; done; }
xfrm_on() {
  for side in a b; do
    local me=192.0.2.1 peer=192.0.2.2; [ $side = b ] && { me=192.0.2.2; peer=192.0.2.1; }
    ip -n $side xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode transport aead "rfc4106(gcm(aes))" $K16 128
    ip -n $side xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x200 reqid 1 mode transport aead "rfc4106(gcm(aes))" $K16 128
    ip -n $side xfrm policy add src $me dst $peer dir out tmpl src $me dst $peer proto esp reqid 1 mode transport
  done
}
xfrm_off() { for s in a b; do ip -n $s xfrm state flush; ip -n $s xfrm policy flush; done; }

clear1=$(tcp_mbps 1); clear_u=$(udp64_pps)
ripsec_on; rip1=$(tcp_mbps 1); rip4=$(tcp_mbps 4); rip_u=$(udp64_pps); ripsec_off
xfrm_on; x1=$(tcp_mbps 1); x4=$(tcp_mbps 4); x_u=$(udp64_pps); xfrm_off
# The same with the built-in RustCrypto AEAD instead of the kernel crypto
# API (aead= module parameter): this comparison is what picks the default.
backend=$(json_get "$("$RIPSEC" stats --json)" .module.backend)
rmmod rust_ipsec && insmod "$MODULE" aead=rustcrypto
ripsec_on; rc1=$(tcp_mbps 1); rc4=$(tcp_mbps 4); ripsec_off
rmmod rust_ipsec && load_module
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(round(a / b, 3) if b else 0)" "$1" "$2"; }
echo "vm_aead_default_backend=$backend"
echo "vm_tcp_ripsec_rustcrypto_mbps=$rc1"
echo "vm_tcp_kernel_aead_vs_rustcrypto=$(ratio "$rip1" "$rc1")"
echo "vm_tcp4_ripsec_rustcrypto_mbps=$rc4"
echo "vm_tcp4_kernel_aead_vs_rustcrypto=$(ratio "$rip4" "$rc4")"
echo "vm_udp64_clear_pps=$clear_u"
echo "vm_udp64_ripsec_pps=$rip_u"
echo "vm_udp64_xfrm_pps=$x_u"
echo "vm_udp64_vs_xfrm=$(ratio "$rip_u" "$x_u")"
echo "vm_tcp_clear_mbps=$clear1"
echo "vm_tcp_ripsec_mbps=$rip1"
echo "vm_tcp_xfrm_mbps=$x1"
echo "vm_tcp_vs_xfrm=$(ratio "$rip1" "$x1")"
echo "vm_tcp4_ripsec_mbps=$rip4"
echo "vm_tcp4_xfrm_mbps=$x4"
echo "vm_tcp4_vs_xfrm=$(ratio "$rip4" "$x4")"
echo "vm_tcp_ripsec_vs_clear=$(ratio "$rip1" "$clear1")"

# SA install rate: one SA per command for both (process start-up included), and
# XFRM's `ip -batch` for reference.
N=200
t0=$(date +%s.%N)
for i in $(seq 1 $N); do nsx a "$RIPSEC" sa add --spi $((0x10000 + i)) --dir in --src 192.0.2.2 --dst 192.0.2.1 --alg aes128gcm --key $K16; done
t1=$(date +%s.%N)
for i in $(seq 1 $N); do ip -n a xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi $((0x10000 + i)) mode transport aead "rfc4106(gcm(aes))" $K16 128; done
t2=$(date +%s.%N)
for i in $(seq 1 $N); do echo "xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi $((0x20000 + i)) mode transport aead rfc4106(gcm(aes)) $K16 128"; done > /tmp/batch
t3=$(date +%s.%N); ip -n a -batch /tmp/batch; t4=$(date +%s.%N)
python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import sys
n = int(sys.argv[1]); t = [float(x) for x in sys.argv[2:]]
r, x, xb = n / (t[1] - t[0]), n / (t[2] - t[1]), n / (t[4] - t[3])
print(f"vm_sa_install_ripsec_per_s={r:.1f}")
print(f"vm_sa_install_xfrm_per_s={x:.1f}")
print(f"vm_sa_install_vs_xfrm={r / x:.3f}")
print(f"vm_sa_install_xfrm_batch_per_s={xb:.1f}")
PY
check_eq "all $N SAs installed" "$N" "$(nsx a "$RIPSEC" sa list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
ripsec_off; xfrm_off
ip netns del a; ip netns del b
