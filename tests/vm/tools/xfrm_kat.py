#!/usr/bin/env python3
"""Helpers for tests/vm/capture-xfrm-kat.sh, which records ESP packets made by
Linux XFRM as known-answer data for ripsec-esp's host tests.

  xfrm_kat.py send FAM SRC DST ID LEN TAG
      In the sending namespace: builds one IPv4/IPv6 + UDP packet with fully
      fixed header fields (so the plaintext is known before XFRM sees it),
      sends it through a raw header-included socket (XFRM policies apply to
      it as to any local output), and captures the first ESP packet from SRC
      to DST that eth0 then transmits (AF_PACKET sees outgoing frames).
      Prints "plain=HEX" and "esp=HEX" (both starting at the IP header).
  xfrm_kat.py recv
      In the receiving namespace: prints "got FAM HEX" for every datagram on
      UDP port 5000 (IPv4 and IPv6), i.e. what XFRM decrypted and delivered.
"""
import select
import socket
import struct
import sys
import time

PORT = 5000
ETH_P_ALL = 0x0003
PROTO_ESP, PROTO_UDP = 50, 17


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def payload(tag, length):
    # Readable start, then a counting pattern: any byte out of place shows.
    head = ("rust_ipsec xfrm kat %s " % tag).encode()
    body = bytes((i * 7 + 3) & 0xFF for i in range(max(0, length - len(head))))
    return (head + body)[:length]


def udp(src, dst, fam, data):
    ulen = 8 + len(data)
    if fam == 4:
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, PROTO_UDP, ulen)
    else:
        pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                  + struct.pack("!IxxxB", ulen, PROTO_UDP))
    hdr = struct.pack("!HHHH", PORT, PORT, ulen, 0)
    c = csum(pseudo + hdr + data) or 0xFFFF
    return struct.pack("!HHHH", PORT, PORT, ulen, c) + data


def packet(fam, src, dst, ident, data):
    seg = udp(src, dst, fam, data)
    if fam == 4:
        # DF set, TTL 64, TOS 0, the given ID: what a plain UDP socket would send.
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), ident, 0x4000, 64, PROTO_UDP, 0,
                        socket.inet_aton(src), socket.inet_aton(dst))
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        return h + seg
    # Traffic class 0, flow label 0, hop limit 64.
    h = struct.pack("!IHBB16s16s", 6 << 28, len(seg), PROTO_UDP, 64,
                    socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
    return h + seg


def is_esp_from(ip, fam, src, dst):
    """True if `ip` (starting at the IP header) is ESP or ESP-in-UDP from src to dst."""
    if fam == 4:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return False
        if ip[12:16] != socket.inet_aton(src) or ip[16:20] != socket.inet_aton(dst):
            return False
        proto, l4 = ip[9], ip[(ip[0] & 15) * 4:]
    else:
        if len(ip) < 40 or ip[0] >> 4 != 6:
            return False
        if (ip[8:24] != socket.inet_pton(socket.AF_INET6, src)
                or ip[24:40] != socket.inet_pton(socket.AF_INET6, dst)):
            return False
        proto, l4 = ip[6], ip[40:]
    if proto == PROTO_ESP:
        return True
    # ESP-in-UDP: port 4500 and not a non-ESP marker (first four bytes zero).
    return proto == PROTO_UDP and len(l4) > 12 and struct.unpack("!H", l4[2:4])[0] == 4500 \
        and l4[8:12] != b"\0\0\0\0"


def send(fam, src, dst, ident, length, tag):
    fam = int(fam)
    pkt = packet(fam, src, dst, int(ident, 0), payload(tag, int(length)))
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind(("eth0", 0))
    if fam == 4:
        tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        tx.sendto(pkt, (dst, 0))
    else:
        # IPPROTO_RAW on an IPv6 socket implies IPV6_HDRINCL.
        tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        tx.sendto(pkt, (dst, 0))
    deadline = time.time() + 5
    while time.time() < deadline:
        r, _, _ = select.select([cap], [], [], 0.5)
        if not r:
            continue
        frame, addr = cap.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            continue
        ip = frame[14:]  # veth: Ethernet framing
        if is_esp_from(ip, fam, src, dst):
            # Trim Ethernet padding (minimum frame size) by the IP length.
            n = struct.unpack("!H", ip[2:4])[0] if fam == 4 else 40 + struct.unpack("!H", ip[4:6])[0]
            print("plain=" + pkt.hex())
            print("esp=" + ip[:n].hex())
            return 0
    print("no ESP packet seen", file=sys.stderr)
    return 1


def recv():
    socks = []
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, PORT))
        socks.append(s)
    print("ready", flush=True)
    while True:
        r, _, _ = select.select(socks, [], [])
        for s in r:
            data, _ = s.recvfrom(65535)
            print("got %d %s" % (4 if s.family == socket.AF_INET else 6, data.hex()), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"] and len(sys.argv) == 8:
        sys.exit(send(*sys.argv[2:]))
    if sys.argv[1:] == ["recv"]:
        recv()
    print(__doc__, file=sys.stderr)
    sys.exit(2)
