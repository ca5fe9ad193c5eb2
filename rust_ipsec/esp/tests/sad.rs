//! SAD behaviour at scale and at the edges of its layout: kernel-sized
//! tables with hundreds of thousands of SAs, full groups spilling into
//! overflow chains, many SAs sharing one SPI. The model-based property tests
//! are in prop.rs.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ripsec_esp::*;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Storage sized as rust_ipsec/tables.rs does: index length = capacity
/// rounded up to a power of two.
fn storage(cap: usize) -> (Vec<SadBucket>, Vec<SadEntry<u32>>) {
    (
        vec![SadBucket::EMPTY; cap.next_power_of_two()],
        vec![SadEntry::vacant(0u32); cap],
    )
}

fn local(i: u32) -> IpAddr {
    if i.is_multiple_of(3) {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, (i % 7) as u16 + 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 5) as u8 + 1))
    }
}

#[test]
fn kernel_sized_table_of_200k() {
    const N: usize = 200_000;
    let (b, e) = storage(N);
    let mut sad = Sad::new(b, e, 0x5eed_1234_abcd_0001).unwrap();
    let mut rng = 0x0123_4567_89ab_cdefu64;
    let mut sas: Vec<(u32, IpAddr, SaHandle)> = Vec::with_capacity(N);
    let mut used = HashSet::new();
    while sas.len() < N {
        let spi = xorshift(&mut rng) as u32;
        if spi == 0 || !used.insert(spi) {
            continue;
        }
        let dst = local(spi);
        let v = sas.len() as u32;
        let h = sad
            .insert(spi, dst, OwnerId(u64::from(v) / 8), dst, v)
            .unwrap();
        sas.push((spi, dst, h));
    }
    assert_eq!(sad.len(), N);
    assert_eq!(
        sad.insert(1, local(1), OwnerId(0), local(1), 0),
        Err(Error::TableFull)
    );
    // About two group slots per SA: almost every SA sits in its group, so
    // a lookup reads one index line and one entry line.
    let spilled = sad.overflowed();
    println!("overflowed: {spilled} of {N}");
    assert!(spilled < N / 100, "{spilled} SAs on overflow chains");
    for (v, (spi, dst, h)) in sas.iter().enumerate() {
        assert_eq!(sad.lookup(*spi, dst).map(|(h, v)| (h, *v)), Some((*h, v as u32)));
        // Same SPI, another destination: a different SA (there is none).
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(sad.lookup(*spi, &other), None);
    }
    let mut misses = 0;
    for _ in 0..100_000 {
        let spi = xorshift(&mut rng) as u32;
        if spi != 0 && !used.contains(&spi) {
            assert_eq!(sad.lookup(spi, &local(spi)), None);
            assert_eq!(sad.lookup_spi(spi), None);
            misses += 1;
        }
    }
    assert!(misses > 90_000);

    // Remove every other SA, then fill up again with new SPIs.
    for (v, (_, _, h)) in sas.iter().enumerate().filter(|(v, _)| v % 2 == 0) {
        assert_eq!(sad.remove(*h), Ok(v as u32));
    }
    assert_eq!(sad.len(), N / 2);
    for (v, (spi, dst, h)) in sas.iter().enumerate() {
        let want = (v % 2 == 1).then_some((*h, v as u32));
        assert_eq!(sad.lookup(*spi, dst).map(|(h, v)| (h, *v)), want);
    }
    let mut fresh = Vec::new();
    while sad.len() < N {
        let spi = xorshift(&mut rng) as u32;
        if spi == 0 || !used.insert(spi) {
            continue;
        }
        let v = 1_000_000 + fresh.len() as u32;
        // An owner none of the first SAs has (theirs are v / 8 < N / 8).
        let h = sad.insert(spi, local(spi), OwnerId(u64::MAX), local(spi), v).unwrap();
        fresh.push((spi, h, v));
    }
    for (spi, h, v) in &fresh {
        assert_eq!(sad.lookup(*spi, &local(*spi)), Some((*h, v)));
    }
    assert!(sad.overflowed() < N / 100);
    assert_eq!(sad.flush_owner(OwnerId(u64::MAX), |_, _| {}), fresh.len());
    assert_eq!(sad.len(), N / 2);
    assert_eq!(sad.iter().count(), N / 2);
}

#[test]
fn a_full_group_spills_and_is_refilled() {
    // Eight index elements: one 10-slot group (plus chain heads). Fifteen
    // SAs: ten in the group, five on its overflow chain.
    let mut b = vec![SadBucket::EMPTY; 8];
    let mut e = vec![SadEntry::vacant(0u32); 16];
    let mut sad = Sad::new(b.as_mut_slice(), e.as_mut_slice(), 42).unwrap();
    let dst = v4(10, 0, 0, 1);
    let hs: Vec<SaHandle> = (1..=15u32)
        .map(|spi| sad.insert(spi, dst, OwnerId(0), dst, spi * 10).unwrap())
        .collect();
    assert_eq!(sad.overflowed(), 5);
    for spi in 1..=15u32 {
        assert_eq!(sad.lookup(spi, &dst).map(|(_, v)| *v), Some(spi * 10));
    }
    // Removing an SA that sits in the group moves one from the chain in
    // (the chain's head: the newest, SPI 15).
    assert_eq!(sad.remove(hs[0]), Ok(10));
    assert_eq!(sad.overflowed(), 4);
    // Removing one on the chain (now headed by SPI 14) just unlinks it.
    assert_eq!(sad.remove(hs[13]), Ok(140));
    assert_eq!(sad.overflowed(), 3);
    for spi in (2..=13u32).chain([15]) {
        assert_eq!(sad.lookup(spi, &dst).map(|(_, v)| *v), Some(spi * 10));
    }
    assert_eq!(sad.lookup(1, &dst), None);
    assert_eq!(sad.lookup(14, &dst), None);

    // For RCU readers nothing moves: the freed group slot stays free until
    // an insert takes it.
    sad.set_deferred_reclaim(true);
    assert_eq!(sad.remove(hs[1]), Ok(20));
    assert_eq!(sad.overflowed(), 3);
    sad.reclaim();
    assert_eq!(sad.overflowed(), 3);
    sad.insert(99, dst, OwnerId(0), dst, 990).unwrap();
    assert_eq!(sad.overflowed(), 3);
    for spi in (3..=13u32).chain([15, 99]) {
        assert_eq!(sad.lookup(spi, &dst).map(|(_, v)| *v), Some(spi * 10));
    }
}

#[test]
fn one_spi_many_destinations() {
    // The module's outbound index keys SAs by (reqid + 1, peer): one key,
    // many addresses. They share a group and its chain; each must still be
    // found, and flushed by peer.
    let (b, e) = storage(4096);
    let mut sad = Sad::new(b, e, 7).unwrap();
    let peer = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    for i in 0..3000u32 {
        sad.insert(5, peer(i), OwnerId(u64::from(i % 3)), peer(i), i)
            .unwrap();
    }
    assert_eq!(
        sad.insert(5, peer(17), OwnerId(0), peer(17), 0),
        Err(Error::Duplicate)
    );
    for i in 0..3000u32 {
        assert_eq!(sad.lookup(5, &peer(i)).map(|(_, v)| *v), Some(i));
    }
    assert_eq!(sad.lookup(5, &peer(3000)), None);
    assert_eq!(sad.lookup(6, &peer(1)), None);
    assert!(sad.lookup_spi(5).is_some());
    assert_eq!(sad.flush_peer(&peer(1234), |_, v| assert_eq!(v, 1234)), 1);
    assert_eq!(sad.lookup(5, &peer(1234)), None);
    assert_eq!(sad.flush_owner(OwnerId(1), |_, v| assert_eq!(v % 3, 1)), 999);
    assert_eq!(sad.len(), 2000);
    for i in 0..3000u32 {
        let want = (i % 3 != 1).then_some(i);
        assert_eq!(sad.lookup(5, &peer(i)).map(|(_, v)| *v), want);
    }
}

#[test]
fn addresses_round_trip_and_families_differ() {
    let (b, e) = storage(8);
    let mut sad = Sad::new(b, e, 1).unwrap();
    let d4 = v4(192, 0, 2, 1);
    // The IPv6 address whose first four bytes equal the IPv4 one.
    let d6 = IpAddr::V6(Ipv6Addr::new(0xc000, 0x0201, 0, 0, 0, 0, 0, 0));
    let p6 = v6(9);
    let h4 = sad.insert(0x100, d4, OwnerId(u64::MAX), p6, 4).unwrap();
    let h6 = sad.insert(0x100, d6, OwnerId(3), d4, 6).unwrap();
    assert_eq!(sad.lookup(0x100, &d4), Some((h4, &4)));
    assert_eq!(sad.lookup(0x100, &d6), Some((h6, &6)));
    let e4 = sad.get(h4).unwrap();
    assert_eq!((e4.spi(), e4.dst(), e4.peer(), e4.owner()), (0x100, d4, p6, OwnerId(u64::MAX)));
    let e6 = sad.get(h6).unwrap();
    assert_eq!((e6.dst(), e6.peer(), e6.owner()), (d6, d4, OwnerId(3)));
    assert_eq!(sad.flush_peer(&p6, |_, _| {}), 1);
    assert_eq!(sad.lookup(0x100, &d4), None);
    assert_eq!(sad.lookup(0x100, &d6), Some((h6, &6)));
}

#[test]
fn storage_is_checked() {
    let mut b = vec![SadBucket::EMPTY; 12];
    let mut e = vec![SadEntry::vacant(0u32); 4];
    assert_eq!(
        Sad::new(b.as_mut_slice(), e.as_mut_slice(), 0).map(|_| ()),
        Err(Error::BadConfig)
    );
    let mut b: Vec<SadBucket> = Vec::new();
    assert_eq!(
        Sad::new(b.as_mut_slice(), e.as_mut_slice(), 0).map(|_| ()),
        Err(Error::BadConfig)
    );
    // No entries: a table that is always full.
    let mut b = vec![SadBucket::EMPTY; 4];
    let mut none: Vec<SadEntry<u32>> = Vec::new();
    let mut sad = Sad::new(b.as_mut_slice(), none.as_mut_slice(), 0).unwrap();
    let d = v4(1, 2, 3, 4);
    assert_eq!(sad.insert(1, d, OwnerId(0), d, 0), Err(Error::TableFull));
    assert_eq!(sad.lookup(1, &d), None);
    assert_eq!(sad.insert(0, d, OwnerId(0), d, 0), Err(Error::BadSpi));
}
