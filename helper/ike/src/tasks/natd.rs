//! NAT detection (RFC 7296 §2.23).
//!
//! NAT_DETECTION_SOURCE_IP / _DESTINATION_IP carry
//! SHA-1(SPIi | SPIr | IP address | port). A mismatch of the destination
//! hash means we are behind a NAT; no matching source hash means the peer
//! is. Either way the initiator floats to the NAT-T port (4500) for IKE_AUTH
//! onwards, prefixing the non-ESP marker, and Child SAs use UDP
//! encapsulation. The marker itself is added by the daemon's socket code
//! (`Transmit::non_esp_marker`) and stripped by `Engine::handle_datagram`.

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};

use crate::consts::notify;
use crate::message::{Notify, Payload};

pub fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

/// Our two NAT detection notifies. With `fake_source` the source hash is
/// computed over the unspecified address so that the peer always sees a NAT
/// and both sides encapsulate (forced UDP encapsulation).
pub fn payloads(spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr, fake_source: bool) -> [Payload; 2] {
    let src = if fake_source {
        let any: SocketAddr = (IpAddr::from([0u8; 4]), 0).into();
        hash(spi_i, spi_r, any)
    } else {
        hash(spi_i, spi_r, local)
    };
    [
        Payload::Notify(Notify::new(notify::NAT_DETECTION_SOURCE_IP, src)),
        Payload::Notify(Notify::new(notify::NAT_DETECTION_DESTINATION_IP, hash(spi_i, spi_r, remote))),
    ]
}

/// Result of checking the peer's notifies: (we are behind NAT, peer is
/// behind NAT). `None` when the peer sent no NAT detection payloads.
pub fn check(payloads: &[Payload], spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> Option<(bool, bool)> {
    let mut srcs = Vec::new();
    let mut dst = None;
    for p in payloads {
        if let Payload::Notify(n) = p {
            match n.ty {
                notify::NAT_DETECTION_SOURCE_IP => srcs.push(&n.data),
                notify::NAT_DETECTION_DESTINATION_IP => dst = Some(&n.data),
                _ => {}
            }
        }
    }
    let dst = dst?;
    if srcs.is_empty() {
        return None;
    }
    let local_nat = *dst != hash(spi_i, spi_r, local);
    let want = hash(spi_i, spi_r, remote);
    let remote_nat = !srcs.iter().any(|s| **s == want);
    Some((local_nat, remote_nat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_side() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let nated: SocketAddr = "203.0.113.9:31000".parse().unwrap();
        // Peer at `a` sends to `b`, no NAT.
        let p = payloads(1, 0, a, b, false);
        assert_eq!(check(&p, 1, 0, b, a), Some((false, false)));
        // Peer's packets arrive from a translated address.
        assert_eq!(check(&p, 1, 0, b, nated), Some((false, true)));
        // Peer sent to an address that is not ours (we are behind NAT).
        assert_eq!(check(&p, 1, 0, nated, a), Some((true, false)));
        // Forced encapsulation looks like a NATed peer.
        let f = payloads(1, 0, a, b, true);
        assert_eq!(check(&f, 1, 0, b, a), Some((false, true)));
        assert_eq!(check(&[], 1, 0, b, a), None);
        assert_eq!(hash(1, 2, a).len(), 20);
    }
}
