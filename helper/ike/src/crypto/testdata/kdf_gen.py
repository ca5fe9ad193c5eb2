# Generates the kdf_*.hex known answers with Python's hmac/hashlib, following
# RFC 7296 §2.13 (prf+), §2.14 (SKEYSEED, SK_*), §2.17 (KEYMAT), §2.15 (AUTH).
import hmac, hashlib
H = lambda k, d: hmac.new(k, d, hashlib.sha256).digest()
def prfplus(k, s, n):
    out = b''; t = b''; i = 1
    while len(out) < n:
        t = H(k, t + s + bytes([i])); out += t; i += 1
    return out[:n]
ni = b'\x11' * 32; nr = b'\x22' * 32; sh = b'\x33' * 32
seed = H(ni + nr, sh)
open('kdf_skeyseed.hex', 'w').write(seed.hex() + '\n')
spii = bytes.fromhex('0102030405060708'); spir = bytes.fromhex('1112131415161718')
# AES-CBC-128 + HMAC-SHA2-256-128 + PRF-HMAC-SHA2-256:
# SK_d 32, SK_ai 32, SK_ar 32, SK_ei 16, SK_er 16, SK_pi 32, SK_pr 32
km = prfplus(seed, ni + nr + spii + spir, 32 * 3 + 32 * 2 + 16 * 2)
open('kdf_keys.hex', 'w').write(km.hex() + '\n')
skd = km[:32]; skpi = km[32 + 64 + 32:32 + 64 + 32 + 32]
# ESP AES-GCM-16-256: 2 × (32-byte key + 4-byte salt)
open('kdf_child.hex', 'w').write(prfplus(skd, ni + nr, 72).hex() + '\n')
pad = H(b'secret', b'Key Pad for IKEv2')
auth = H(pad, b'message1' + nr + H(skpi, bytes([2, 0, 0, 0]) + b'a'))
open('kdf_auth.hex', 'w').write(auth.hex() + '\n')
