//! SK payload opening on arbitrary datagrams: length arithmetic on IV, ICV
//! and padding must never panic, for every IKE cipher.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ripsec_ike::crypto::sk::{open, SkKeys};
use ripsec_ike::crypto::{EncrAlg, IntegAlg};
use ripsec_ike::message::Message;

const CIPHERS: [EncrAlg; 5] = [
    EncrAlg::AesCbc128,
    EncrAlg::AesCbc256,
    EncrAlg::AesGcm16_128,
    EncrAlg::AesGcm16_256,
    EncrAlg::ChaCha20Poly1305,
];

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else { return };
    if m.sk.is_none() {
        return;
    }
    let ka = [0x5au8; 32];
    for encr in CIPHERS {
        let ke = vec![0x33u8; encr.keymat_len()];
        let integ = (!encr.is_aead()).then_some(IntegAlg::HmacSha256_128);
        let _ = open(data, &m, &SkKeys { encr, integ, ke: &ke, ka: &ka });
    }
});
