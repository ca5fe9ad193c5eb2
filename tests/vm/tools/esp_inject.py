#!/usr/bin/env python3
"""Crafts ESP packets (RFC 4303 / 4106, transport mode, IPv4) and sends them raw or
in UDP to a rust_ipsec peer, for the bad-input VM tests. Needs root in the
sending namespace and python3-cryptography.

  esp_inject.py DST KEYHEX SPI CASE [--count N] [--udp] [--seq N]
CASE: valid | badicv | badpad | truncated | random | randspi | marker | keepalive
"""
import argparse
import os
import random
import socket
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def icmp_echo(ident, seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ripsec-bad-input" * 2
    s = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return body[:2] + struct.pack("!H", ~s & 0xFFFF) + body[4:]


def esp(keymat, spi, seq, payload, next_header=1, bad_pad=False, bad_icv=False):
    key, salt = keymat[:-4], keymat[-4:]
    padlen = (4 - (len(payload) + 2) % 4) % 4
    pad = bytes(range(1, padlen + 1))
    if bad_pad:
        padlen = 3
        pad = b"\x01\x09\x03"
    pt = payload + pad + bytes([padlen, next_header])
    iv = struct.pack("!Q", seq)
    hdr = struct.pack("!II", spi, seq)
    ct = AESGCM(key).encrypt(salt + iv, pt, hdr)
    if bad_icv:
        ct = ct[:-1] + bytes([ct[-1] ^ 0x80])
    return hdr + iv + ct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dst")
    ap.add_argument("key")
    ap.add_argument("spi", type=lambda s: int(s, 0))
    ap.add_argument("case")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--seq", type=int, default=1)
    ap.add_argument("--udp", action="store_true")
    a = ap.parse_args()
    keymat = bytes.fromhex(a.key[2:] if a.key.startswith("0x") else a.key)
    if a.udp or a.case in ("marker", "keepalive"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 4500))
        send = lambda b: s.sendto(b, (a.dst, 4500))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        send = lambda b: s.sendto(b, (a.dst, 0))
    rnd = random.Random(4303)
    for i in range(a.count):
        seq = a.seq + i
        if a.case == "valid":
            pkt = esp(keymat, a.spi, seq, icmp_echo(0x4242, seq))
        elif a.case == "badicv":
            pkt = esp(keymat, a.spi, seq, icmp_echo(0x4242, seq), bad_icv=True)
        elif a.case == "badpad":
            pkt = esp(keymat, a.spi, seq, icmp_echo(0x4242, seq), bad_pad=True)
        elif a.case == "truncated":
            full = esp(keymat, a.spi, seq, icmp_echo(0x4242, seq))
            pkt = full[: rnd.choice([4, 8, 12, 16, 20, 24, 31, len(full) - 1])]
        elif a.case == "random":
            pkt = struct.pack("!I", a.spi) + os.urandom(rnd.randrange(0, 1400))
        elif a.case == "randspi":
            pkt = struct.pack("!I", rnd.randrange(256, 1 << 32)) + os.urandom(rnd.randrange(40, 200))
        elif a.case == "marker":
            pkt = b"\x00\x00\x00\x00" + b"IKE-looking payload"
        elif a.case == "keepalive":
            pkt = b"\xff"
        else:
            raise SystemExit("unknown case " + a.case)
        send(pkt)


if __name__ == "__main__":
    main()
