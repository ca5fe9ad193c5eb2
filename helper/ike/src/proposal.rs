//! SA payload construction and proposal selection (RFC 7296 §2.7, §3.3).
//!
//! The responder honours the initiator's order: the first received proposal
//! it can satisfy wins, and inside it the first acceptable transform of each
//! type. The initiator checks that the answer is one of its own offers.

use crate::config::{EspProposal, IkeProposal};
use crate::consts::{protocol, transform as t};
use crate::crypto::{DhGroup, EncrAlg, EspAlg, IkeSuite, IntegAlg, PrfAlg};
use crate::message::{Proposal, Transform};

pub fn ike_sa_payload(props: &[IkeProposal], spi: Option<u64>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut tr = Vec::new();
            for e in &p.encr {
                let (id, kl) = e.transform();
                tr.push(Transform::new(t::ENCR, id, kl));
            }
            tr.extend(p.prf.iter().map(|x| Transform::new(t::PRF, x.id(), None)));
            tr.extend(p.integ.iter().map(|x| Transform::new(t::INTEG, x.id(), None)));
            tr.extend(p.dh.iter().map(|x| Transform::new(t::DH, x.id(), None)));
            Proposal {
                num: (i + 1) as u8,
                protocol: protocol::IKE,
                spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
                transforms: tr,
            }
        })
        .collect()
}

fn of_type(p: &Proposal, ty: u8) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |x| x.ty == ty && !x.unknown_attrs)
}

fn has_type(p: &Proposal, ty: u8) -> bool {
    p.transforms.iter().any(|x| x.ty == ty)
}

/// Pick an IKE suite. `ke_group` is the group of the received KE payload:
/// it is chosen when acceptable so that no INVALID_KE round trip is needed.
pub fn select_ike(ours: &[IkeProposal], theirs: &[Proposal], ke_group: Option<u16>) -> Option<(Proposal, IkeSuite)> {
    for tp in theirs.iter().filter(|p| p.protocol == protocol::IKE) {
        for op in ours {
            let encr = of_type(tp, t::ENCR)
                .filter_map(|x| EncrAlg::from_transform(x.id, x.key_len))
                .find(|e| op.encr.contains(e));
            let prf = of_type(tp, t::PRF).filter_map(|x| PrfAlg::from_id(x.id)).find(|e| op.prf.contains(e));
            let dhs: Vec<DhGroup> =
                of_type(tp, t::DH).filter_map(|x| DhGroup::from_id(x.id)).filter(|g| op.dh.contains(g)).collect();
            let dh = dhs.iter().copied().find(|g| Some(g.id()) == ke_group).or(dhs.first().copied());
            let (Some(encr), Some(prf), Some(dh)) = (encr, prf, dh) else { continue };
            let integ = if encr.is_aead() {
                // An AEAD proposal may list no integrity or only NONE.
                if of_type(tp, t::INTEG).any(|x| x.id != 0) {
                    continue;
                }
                None
            } else {
                match of_type(tp, t::INTEG).filter_map(|x| IntegAlg::from_id(x.id)).find(|i| op.integ.contains(i)) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let suite = IkeSuite { encr, integ, prf, dh };
            return Some((chosen_ike(tp.num, &suite, None), suite));
        }
    }
    None
}

/// The single-transform proposal that goes back in the response (or, with
/// `spi`, in an IKE rekey).
pub fn chosen_ike(num: u8, s: &IkeSuite, spi: Option<u64>) -> Proposal {
    let (eid, kl) = s.encr.transform();
    let mut tr = vec![Transform::new(t::ENCR, eid, kl), Transform::new(t::PRF, s.prf.id(), None)];
    if let Some(i) = s.integ {
        tr.push(Transform::new(t::INTEG, i.id(), None));
    }
    tr.push(Transform::new(t::DH, s.dh.id(), None));
    Proposal {
        num,
        protocol: protocol::IKE,
        spi: spi.map(|s| s.to_be_bytes().to_vec()).unwrap_or_default(),
        transforms: tr,
    }
}

/// Initiator side: the answer must be exactly one proposal with one
/// transform of each type, all from one of our offers.
pub fn accept_ike(ours: &[IkeProposal], answer: &[Proposal]) -> Option<IkeSuite> {
    let [p] = answer else { return None };
    let one = |ty| {
        let mut it = p.transforms.iter().filter(move |x: &&Transform| x.ty == ty);
        match (it.next(), it.next()) {
            (Some(x), None) => Some(Some(x)),
            (None, _) => Some(None),
            _ => None,
        }
    };
    let encr = one(t::ENCR)??;
    let encr = EncrAlg::from_transform(encr.id, encr.key_len)?;
    let prf = PrfAlg::from_id(one(t::PRF)??.id)?;
    let dh = DhGroup::from_id(one(t::DH)??.id)?;
    let integ = match one(t::INTEG)? {
        Some(x) if x.id != 0 => Some(IntegAlg::from_id(x.id)?),
        _ => None,
    };
    if encr.is_aead() == integ.is_some() {
        return None;
    }
    let ok = ours.iter().any(|o| {
        o.encr.contains(&encr)
            && o.prf.contains(&prf)
            && o.dh.contains(&dh)
            && integ.is_none_or(|i| o.integ.contains(&i))
    });
    ok.then_some(IkeSuite { encr, integ, prf, dh })
}

/// The negotiated algorithms of a Child SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    pub alg: EspAlg,
    pub esn: bool,
    pub dh: Option<DhGroup>,
}

/// ESP SA payload. `with_pfs` adds the configured DH groups (not in IKE_AUTH).
pub fn esp_sa_payload(props: &[EspProposal], spi: u32, with_pfs: bool) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut tr: Vec<Transform> = p
                .encr
                .iter()
                .map(|e| {
                    let (id, kl) = e.transform();
                    Transform::new(t::ENCR, id, kl)
                })
                .collect();
            if with_pfs {
                tr.extend(p.pfs.iter().map(|g| Transform::new(t::DH, g.id(), None)));
            }
            tr.extend(p.esn.allowed().iter().map(|&e| {
                Transform::new(t::ESN, if e { t::ESN_YES } else { t::ESN_NO }, None)
            }));
            Proposal { num: (i + 1) as u8, protocol: protocol::ESP, spi: spi.to_be_bytes().to_vec(), transforms: tr }
        })
        .collect()
}

fn esp_spi(p: &Proposal) -> Option<u32> {
    let b: [u8; 4] = p.spi.as_slice().try_into().ok()?;
    let s = u32::from_be_bytes(b);
    (s >= 256).then_some(s)
}

/// Responder: pick an ESP suite. `with_pfs` is false in IKE_AUTH, where DH
/// transforms are ignored. Returns the answer proposal (carrying `our_spi`),
/// the suite and the peer's SPI.
pub fn select_esp(
    ours: &[EspProposal],
    theirs: &[Proposal],
    with_pfs: bool,
    ke_group: Option<u16>,
    our_spi: u32,
) -> Option<(Proposal, EspSuite, u32)> {
    for tp in theirs.iter().filter(|p| p.protocol == protocol::ESP) {
        let Some(peer_spi) = esp_spi(tp) else { continue };
        if of_type(tp, t::INTEG).any(|x| x.id != 0) {
            continue; // AEAD only.
        }
        for op in ours {
            let Some(alg) = of_type(tp, t::ENCR)
                .filter_map(|x| EspAlg::from_transform(x.id, x.key_len))
                .find(|e| op.encr.contains(e))
            else {
                continue;
            };
            let esn_offer: Vec<bool> = if has_type(tp, t::ESN) {
                of_type(tp, t::ESN)
                    .filter_map(|x| match x.id {
                        t::ESN_NO => Some(false),
                        t::ESN_YES => Some(true),
                        _ => None,
                    })
                    .collect()
            } else {
                vec![false]
            };
            let Some(esn) = esn_offer.iter().copied().find(|e| op.esn.allowed().contains(e)) else { continue };
            let dh = if with_pfs {
                let offered: Vec<DhGroup> = of_type(tp, t::DH)
                    .filter(|x| x.id != 0)
                    .filter_map(|x| DhGroup::from_id(x.id))
                    .filter(|g| op.pfs.contains(g))
                    .collect();
                let theirs_has_dh = of_type(tp, t::DH).any(|x| x.id != 0);
                match (theirs_has_dh, op.pfs.is_empty()) {
                    (false, true) => None,
                    (true, false) => {
                        match offered.iter().copied().find(|g| Some(g.id()) == ke_group).or(offered.first().copied()) {
                            Some(g) => Some(g),
                            None => continue,
                        }
                    }
                    // PFS wanted by one side only.
                    _ => continue,
                }
            } else {
                None
            };
            let suite = EspSuite { alg, esn, dh };
            return Some((chosen_esp(tp.num, &suite, our_spi), suite, peer_spi));
        }
    }
    None
}

pub fn chosen_esp(num: u8, s: &EspSuite, spi: u32) -> Proposal {
    let (id, kl) = s.alg.transform();
    let mut tr = vec![Transform::new(t::ENCR, id, kl)];
    if let Some(g) = s.dh {
        tr.push(Transform::new(t::DH, g.id(), None));
    }
    tr.push(Transform::new(t::ESN, if s.esn { t::ESN_YES } else { t::ESN_NO }, None));
    Proposal { num, protocol: protocol::ESP, spi: spi.to_be_bytes().to_vec(), transforms: tr }
}

/// Initiator: check the responder's ESP answer against what we offered.
/// Returns the suite and the responder's SPI.
pub fn accept_esp(ours: &[EspProposal], answer: &[Proposal], with_pfs: bool) -> Option<(EspSuite, u32)> {
    let [p] = answer else { return None };
    if p.protocol != protocol::ESP {
        return None;
    }
    let spi = esp_spi(p)?;
    let mut encr = p.transforms.iter().filter(|x| x.ty == t::ENCR);
    let e = encr.next()?;
    if encr.next().is_some() {
        return None;
    }
    let alg = EspAlg::from_transform(e.id, e.key_len)?;
    let esn = match p.transforms.iter().find(|x| x.ty == t::ESN).map(|x| x.id) {
        None | Some(t::ESN_NO) => false,
        Some(t::ESN_YES) => true,
        _ => return None,
    };
    let dh = match p.transforms.iter().find(|x| x.ty == t::DH && x.id != 0) {
        Some(x) if with_pfs => Some(DhGroup::from_id(x.id)?),
        Some(_) => return None,
        None => None,
    };
    let ok = ours.iter().any(|o| {
        o.encr.contains(&alg)
            && o.esn.allowed().contains(&esn)
            && match dh {
                Some(g) => o.pfs.contains(&g),
                None => !with_pfs || o.pfs.is_empty(),
            }
    });
    ok.then_some((EspSuite { alg, esn, dh }, spi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EsnPolicy;

    #[test]
    fn ike_selection_prefers_ke_group() {
        let ours = vec![IkeProposal::default()];
        let offer = ike_sa_payload(&ours, None);
        let (_, s) = select_ike(&ours, &offer, Some(t::DH_ECP_256)).unwrap();
        assert_eq!(s.dh, DhGroup::Ecp256);
        let (ans, s2) = select_ike(&ours, &offer, None).unwrap();
        assert_eq!(s2.dh, DhGroup::Curve25519);
        assert_eq!(accept_ike(&ours, &[ans]), Some(s2));
    }

    #[test]
    fn ike_no_overlap() {
        let a = vec![IkeProposal::aead(vec![EncrAlg::AesGcm16_128], vec![PrfAlg::HmacSha256], vec![DhGroup::Modp2048])];
        let b = vec![IkeProposal::cbc(
            vec![EncrAlg::AesCbc128],
            vec![IntegAlg::HmacSha256_128],
            vec![PrfAlg::HmacSha256],
            vec![DhGroup::Modp2048],
        )];
        assert!(select_ike(&b, &ike_sa_payload(&a, None), None).is_none());
        let (ans, s) = select_ike(&b, &ike_sa_payload(&b, None), None).unwrap();
        assert_eq!(s.integ, Some(IntegAlg::HmacSha256_128));
        assert_eq!(accept_ike(&b, std::slice::from_ref(&ans)), Some(s));
        assert_eq!(accept_ike(&a, &[ans]), None);
    }

    #[test]
    fn esp_selection_and_esn() {
        let init = vec![EspProposal { encr: vec![EspAlg::ChaCha20Poly1305], esn: EsnPolicy::Either, pfs: vec![] }];
        let resp = vec![EspProposal { encr: vec![EspAlg::ChaCha20Poly1305], esn: EsnPolicy::No, pfs: vec![] }];
        let offer = esp_sa_payload(&init, 0x1234, false);
        let (ans, s, peer) = select_esp(&resp, &offer, false, None, 0x5678).unwrap();
        assert_eq!(peer, 0x1234);
        assert!(!s.esn);
        assert_eq!(accept_esp(&init, &[ans], false), Some((s, 0x5678)));
        let yes = vec![EspProposal { encr: vec![EspAlg::ChaCha20Poly1305], esn: EsnPolicy::Yes, pfs: vec![] }];
        assert!(select_esp(&yes, &esp_sa_payload(&resp, 0x1234, false), false, None, 1).is_none());
    }

    #[test]
    fn esp_pfs() {
        let p = vec![EspProposal { pfs: vec![DhGroup::Curve25519], ..EspProposal::default() }];
        let offer = esp_sa_payload(&p, 0x1000, true);
        let (ans, s, _) = select_esp(&p, &offer, true, Some(31), 0x2000).unwrap();
        assert_eq!(s.dh, Some(DhGroup::Curve25519));
        assert!(accept_esp(&p, &[ans], true).is_some());
        // Responder without PFS refuses a PFS offer.
        assert!(select_esp(&[EspProposal::default()], &offer, true, Some(31), 1).is_none());
    }
}
