//! ESP throughput and SAD lookup figures, one `name=value` line each.
//!
//! Run with `cargo bench -p ripsec-esp --bench esp_bench`; `bench.sh`
//! also runs it against the portable backend and OpenSSL. Set
//! `RIPSEC_BENCH_SUFFIX` to tag every name (bench.sh uses `_soft`),
//! `RIPSEC_BENCH_ONLY=aead` or `=lookup` to run one half.
//!
//! Method: tunnel mode, IPv4 outer, raw ESP. "size" is the inner packet
//! length; throughput counts inner packet bytes. `encap_*` copies the inner
//! packet into the buffer before each encapsulation and `decap_*` the ESP
//! packet before each decapsulation (one fixed packet decrypted again and
//! again); those copies are in the time. `encap_decap_*` encapsulates and
//! decapsulates in turn on one buffer, no copy, as the kernel works in
//! place on the packet at both ends: the figure `bench.sh` compares with
//! OpenSSL. Earlier versions of this file reported it as the sum of the
//! two timings with copies.

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
        // Encapsulate and decapsulate in turn on one buffer, with no copy
        // in between, as a packet meets the two ends of an SA: tunnel-mode
        // decapsulation leaves the inner packet where encapsulation found
        // it, so every round starts from a valid inner header (its payload
        // bytes are whatever the last round left, which costs the same).
        buf[HEAD..HEAD + size].copy_from_slice(&inner);
        let mut rseq = 0u64;
        let t_round = time_per_call(budget, || {
            rseq += 1;
            let mut pb = PacketBuf::new(&mut buf, HEAD, size).unwrap();
            x.encapsulate(black_box(&mut pb), rseq).unwrap();
            let info = parse_inbound(&pb).unwrap();
            x.decapsulate(black_box(&mut pb), &info, rseq).unwrap();
            debug_assert_eq!((pb.start(), pb.len()), (HEAD, size));
        });
        let mbps = |t: f64| format!("{:.1}", size as f64 / t / 1e6);
        out(&format!("encap_{tag}_{size}_mbps"), mbps(t_enc));
        out(&format!("decap_{tag}_{size}_mbps"), mbps(t_dec));
        // Each packet encrypted once and decrypted once.
        out(&format!("encap_decap_{tag}_{size}_mbps"), mbps(t_round));
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// A table of capacity `cap` (index sized as rust_ipsec/tables.rs sizes
/// it) holding `n` SAs with random SPIs, and its SPIs in insertion order.
type BenchSad = Sad<u32, Vec<SadBucket>, Vec<SadEntry<u32>>>;

fn filled_table(n: usize, cap: usize, rng: &mut u64) -> (BenchSad, Vec<u32>) {
    let buckets = vec![SadBucket::EMPTY; cap.next_power_of_two()];
    let entries = vec![SadEntry::vacant(0u32); cap];
    // Owned storage, as the kernel would pass its KVVecs.
    let mut sad = Sad::new(buckets, entries, 0x9e37_79b9_7f4a_7c15).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mut spis = Vec::with_capacity(n);
    while spis.len() < n {
        let spi = (xorshift(rng) as u32) | 0x100;
        let owner = OwnerId(spis.len() as u64 / 4);
        if sad.insert(spi, LOOKUP_DST, owner, peer, spis.len() as u32).is_ok() {
            spis.push(spi);
        }
    }
    (sad, spis)
}

const LOOKUP_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PROBES: usize = 1 << 20;

/// Lookup figures at `n` SAs in a table of capacity `cap`, in ns per lookup:
/// * `random`: SPIs drawn at random among the inserted ones, each lookup
///   independent of the one before (the CPU may overlap a few of them):
///   the headline figure, `spi_lookup_<n>_ns`.
/// * `chained`: the same, but the next SPI depends on the value just found,
///   so no two lookups overlap: what one packet waits.
/// * `same`: one SPI over and over: the work of a lookup with its cache
///   lines at hand, whatever the table size.
struct LookupNs {
    random: f64,
    chained: f64,
    same: f64,
}

fn bench_lookup(n: usize, cap: usize, budget: Duration) -> LookupNs {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let (sad, spis) = filled_table(n, cap, &mut rng);
    // Random probe order so large tables are not walked cache-friendly.
    let probes: Vec<u32> = (0..PROBES)
        .map(|_| spis[(xorshift(&mut rng) % n as u64) as usize])
        .collect();
    let mut i = 0usize;
    let random = time_per_call(budget, || {
        let spi = probes[i & (PROBES - 1)];
        i = i.wrapping_add(1);
        black_box(sad.lookup(black_box(spi), &LOOKUP_DST).map(|(_, v)| *v));
    }) * 1e9;
    // The next probe's index depends on the value just found (always 0
    // after the shift, which the compiler cannot know through black_box),
    // so the CPU must finish one lookup before starting the next, while the
    // probes are still read in order (a random read there would add a miss
    // of its own).
    let mut v = 0u64;
    let chained = time_per_call(budget, || {
        let dep = (black_box(v) >> 40) as usize;
        let spi = probes[i.wrapping_add(dep) & (PROBES - 1)];
        i = i.wrapping_add(1);
        v = sad.lookup(spi, &LOOKUP_DST).map_or(0, |(_, x)| u64::from(*x));
    }) * 1e9;
    let one = spis[n / 2];
    let same = time_per_call(budget, || {
        black_box(sad.lookup(black_box(one), &LOOKUP_DST).map(|(_, v)| *v));
    }) * 1e9;
    LookupNs { random, chained, same }
}

/// Dependent loads, one per 64-byte line, over `bytes` of memory in one
/// random cycle (Sattolo): the latency of a cache miss at that working-set
/// size. A lookup in a table of that size that must read two lines, one
/// found through the other, cannot take less than about twice this.
fn dependent_load_ns(bytes: usize, budget: Duration) -> f64 {
    let lines = bytes / 64;
    let mut rng = 0x0bad_cafe_f00d_1234u64;
    let mut order: Vec<u32> = (0..lines as u32).collect();
    for k in (1..lines).rev() {
        let j = (xorshift(&mut rng) % k as u64) as usize;
        order.swap(k, j);
    }
    let mut mem = vec![[0u32; 16]; lines];
    for k in 0..lines {
        mem[order[k] as usize][0] = order[(k + 1) % lines];
    }
    let mut p = 0u32;
    let t = time_per_call(budget, || {
        p = mem[p as usize][0];
    });
    black_box(p);
    t * 1e9
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("RIPSEC_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250),
    );
    // RIPSEC_BENCH_ONLY=aead or =lookup runs one half.
    let only = std::env::var("RIPSEC_BENCH_ONLY").unwrap_or_default();
    out("backend", backend());
    if only != "lookup" {
        bench_aead("gcm128", AeadAlg::Aes128Gcm, budget);
        bench_aead("gcm256", AeadAlg::Aes256Gcm, budget);
        bench_aead("chacha20poly1305", AeadAlg::ChaCha20Poly1305, budget);
    }
    if only == "aead" {
        return;
    }
    // Each table full to its capacity, as the ratio was first defined. A
    // capacity-1 index is too small for one 64-byte group, so the 1-SA
    // lookup takes the table's spill chain (one entry read, no group);
    // `1_in_256` is one SA in a table of the module's initial size
    // (INITIAL_SAS in rust_ipsec/tables.rs), which reads its group first.
    let mut first = 0.0;
    for (n, cap, name) in [
        (1usize, 1usize, "1"),
        (1, 256, "1_in_256"),
        (1000, 1000, "1k"),
        (100_000, 100_000, "100k"),
        (1_000_000, 1_000_000, "1m"),
    ] {
        let ns = bench_lookup(n, cap, budget);
        out(&format!("spi_lookup_{name}_ns"), format!("{:.1}", ns.random));
        out(&format!("spi_lookup_{name}_chained_ns"), format!("{:.1}", ns.chained));
        out(&format!("spi_lookup_{name}_same_spi_ns"), format!("{:.1}", ns.same));
        if n == 1 {
            first = ns.random;
        } else if n == 1_000_000 {
            out("spi_lookup_1m_vs_1", format!("{:.2}", ns.random / first));
        }
    }
    // The memory a 1M-SA table spans: index (16 B per SA, rounded up to a
    // power of two) plus entries (96 B per SA).
    let table_1m = (1usize << 20) * std::mem::size_of::<SadBucket>()
        + 1_000_000 * std::mem::size_of::<SadEntry<u32>>();
    out(
        "mem_dependent_load_1m_table_ns",
        format!("{:.1}", dependent_load_ns(table_1m, budget)),
    );
    out(
        "mem_dependent_load_1mib_ns",
        format!("{:.1}", dependent_load_ns(1 << 20, budget)),
    );
}
