//! ESP throughput and SAD lookup figures, one `name=value` line each.
//!
//! Run with `cargo bench -p ripsec-esp --bench esp_bench`; `bench.sh`
//! also runs it against the portable backend and OpenSSL. Set
//! `RIPSEC_BENCH_SUFFIX` to tag every name (bench.sh uses `_soft`).
//!
//! Method: tunnel mode, IPv4 outer, raw ESP. "size" is the inner packet
//! length. Each encapsulation copies the inner packet into a buffer first
//! and each decapsulation copies the ESP packet in and parses the outer
//! header, as the kernel path would see them; the copies are included in
//! the time. Throughput counts inner packet bytes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ripsec_esp::*;

const HEAD: usize = 128;

fn suffix() -> String {
    std::env::var("RIPSEC_BENCH_SUFFIX").unwrap_or_default()
}

fn out(name: &str, v: impl std::fmt::Display) {
    println!("{name}{}={v}", suffix());
}

fn inner_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// Runs `f` in growing batches until `budget` is used; returns seconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    let mut batch = 16u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            f();
        }
        n += batch;
        batch = (batch * 2).min(1 << 16);
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn bench_aead(tag: &str, alg: AeadAlg, budget: Duration) {
    let km: Vec<u8> = (0..alg.keymat_len() as u8).collect();
    let cfg = SaConfig {
        spi: 0x1000_0001,
        alg,
        keymat: &km,
        mode: Mode::Tunnel {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        },
        encap: Encap::None,
        esn: true,
        replay_window: 0,
        tfc_pad: 0,
        ttl: 64,
        lifetime: LifetimeLimits::UNLIMITED,
    };
    let x = EspTransform::new(&cfg).unwrap();
    for size in [64usize, 512, 1400, 9000] {
        let inner = inner_packet(size);
        let mut buf = vec![0u8; HEAD + size + 64];
        let mut seq = 0u64;
        let t_enc = time_per_call(budget, || {
            buf[HEAD..HEAD + size].copy_from_slice(&inner);
            let mut pb = PacketBuf::new(&mut buf, HEAD, size).unwrap();
            seq += 1;
            x.encapsulate(black_box(&mut pb), seq).unwrap();
            black_box(pb.len());
        });
        // One encrypted packet, decapsulated over and over (no replay
        // window: the transform alone).
        buf[HEAD..HEAD + size].copy_from_slice(&inner);
        let mut pb = PacketBuf::new(&mut buf, HEAD, size).unwrap();
        x.encapsulate(&mut pb, 1).unwrap();
        let esp = pb.data().to_vec();
        let mut dbuf = vec![0u8; HEAD + esp.len() + 64];
        let t_dec = time_per_call(budget, || {
            dbuf[HEAD..HEAD + esp.len()].copy_from_slice(&esp);
            let mut pb = PacketBuf::new(&mut dbuf, HEAD, esp.len()).unwrap();
            let info = parse_inbound(&pb).unwrap();
            x.decapsulate(black_box(&mut pb), &info, 1).unwrap();
            black_box(pb.len());
        });
        let mbps = |t: f64| format!("{:.1}", size as f64 / t / 1e6);
        out(&format!("encap_{tag}_{size}_mbps"), mbps(t_enc));
        out(&format!("decap_{tag}_{size}_mbps"), mbps(t_dec));
        if size == 1400 {
            // Each packet encrypted once and decrypted once.
            out(&format!("encap_decap_{tag}_1400_mbps"), mbps(t_enc + t_dec));
        }
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn bench_lookup(n: usize, budget: Duration) -> f64 {
    let nb = n.next_power_of_two();
    let buckets = vec![SadBucket::EMPTY; nb];
    let entries = vec![SadEntry::vacant(0u32); n];
    // Owned storage, as the kernel would pass its KVecs.
    let mut sad = Sad::new(buckets, entries, 0x9e37_79b9_7f4a_7c15).unwrap();
    let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut spis = Vec::with_capacity(n);
    while spis.len() < n {
        let spi = (xorshift(&mut rng) as u32) | 0x100;
        if sad
            .insert(
                spi,
                dst,
                OwnerId(spis.len() as u64 / 4),
                peer,
                spis.len() as u32,
            )
            .is_ok()
        {
            spis.push(spi);
        }
    }
    // Random probe order so large tables are not walked cache-friendly.
    let probes: Vec<u32> = (0..(1 << 20))
        .map(|_| spis[(xorshift(&mut rng) % n as u64) as usize])
        .collect();
    let mut i = 0usize;
    time_per_call(budget, || {
        let spi = probes[i & ((1 << 20) - 1)];
        i = i.wrapping_add(1);
        black_box(sad.lookup(black_box(spi), &dst).map(|(_, v)| *v));
    }) * 1e9
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("RIPSEC_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250),
    );
    out("backend", backend());
    bench_aead("gcm128", AeadAlg::Aes128Gcm, budget);
    bench_aead("gcm256", AeadAlg::Aes256Gcm, budget);
    bench_aead("chacha20poly1305", AeadAlg::ChaCha20Poly1305, budget);
    let mut first = 0.0;
    for (n, name) in [
        (1usize, "1"),
        (1000, "1k"),
        (100_000, "100k"),
        (1_000_000, "1m"),
    ] {
        let ns = bench_lookup(n, budget);
        out(&format!("spi_lookup_{name}_ns"), format!("{ns:.1}"));
        if n == 1 {
            first = ns;
        } else if n == 1_000_000 {
            out("spi_lookup_1m_vs_1", format!("{:.2}", ns / first));
        }
    }
}
