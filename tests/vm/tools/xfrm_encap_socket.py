#!/usr/bin/env python3
"""Holds UDP port 4500 the way an IKE daemon does, so that Linux XFRM accepts
ESP-in-UDP in this namespace: UDP_ENCAP_ESPINUDP on the socket plus a
per-socket policy bypass (without it the datagram itself meets the inbound
policy and is dropped as cleartext, XfrmInTmplMismatch). Runs until killed."""
import socket
import struct
import time

SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP = 17, 100, 2
IP_XFRM_POLICY, IPV6_XFRM_POLICY = 17, 35


def bypass(family, direction):
    # struct xfrm_userpolicy_info: selector (56), lifetime cfg (64), current (32),
    # priority, index, dir, action (0 = allow), flags, share; padded to 168.
    sel = bytearray(56)
    struct.pack_into("=H", sel, 40, family)
    return bytes(sel) + bytes(96) + struct.pack("=IIBBBB", 0, 0, direction, 0, 0, 0) + bytes(4)


socks = []
for fam, addr, level, opt in ((socket.AF_INET, "0.0.0.0", socket.IPPROTO_IP, IP_XFRM_POLICY),
                              (socket.AF_INET6, "::", socket.IPPROTO_IPV6, IPV6_XFRM_POLICY)):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 4500))
    s.setsockopt(SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
    for d in (0, 1):
        s.setsockopt(level, opt, bypass(fam, d))
    socks.append(s)
print("encap sockets ready", flush=True)
time.sleep(900)
