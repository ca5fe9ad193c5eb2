//! IKE SA rekeying with CREATE_CHILD_SA (§1.3.2, §2.18): a new IKE SA with
//! fresh SPIs and keys derived from the old SK_d; the Child SAs move to it
//! and the rekey initiator deletes the old IKE SA.
//!
//! Simultaneous rekeys (§2.8.1): a peer's IKE rekey that arrives while ours
//! is in flight is answered and its new IKE SA created, but the Child SAs
//! stay put until our response arrives. Then the exchange with the lowest of
//! the four nonces has made the redundant SA: its initiator deletes it, the
//! other side deletes the old one, and the Child SAs move to the survivor.
//! If our rekey fails instead (the peer had already finished its own), the
//! peer's new SA is the survivor. Other requests in flight make the
//! responder answer TEMPORARY_FAILURE; the initiator retries after a random
//! delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use crate::action::{Action, Event, IkeSaId};
use crate::consts::{exchange, notify};
use crate::crypto::keys::{derive_ike_keys, skeyseed_rekey};
use crate::crypto::IkeSuite;
use crate::engine::Engine;
use crate::message::{Notify, Payload};
use crate::proposal::{accept_ike, chosen_ike, ike_sa_payload, select_ike};
use crate::tasks::ike_init::parts;
use crate::sa::{IkeRekeyInit, IkeSa, IkeState, Pending, PeerIkeRekey, Task};
use crate::secret::SecretBytes;

fn ike_spi(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes).filter(|s| *s != 0)
}

impl<R: CryptoRngCore> Engine<R> {
    pub(crate) fn start_ike_rekey(&mut self, sa: &mut IkeSa, now: Instant) {
        let Some(suite) = sa.suite else { return };
        let c = self.conn(sa.conn).clone();
        let spi = self.random_u64();
        let r = IkeRekeyInit { spi, nonce: self.nonce(), dh: suite.dh.generate(&mut self.rng), peer: None };
        let p = vec![
            Payload::Sa(ike_sa_payload(&c.ike_proposals, Some(spi))),
            Payload::Nonce(r.nonce.clone()),
            Payload::Ke { group: r.dh.group().id(), data: r.dh.public() },
        ];
        self.send_request(sa, exchange::CREATE_CHILD_SA, &p, Pending::RekeyIke(r), c.retransmit, now);
    }

    /// Build the new IKE SA from the old one (without its Child SAs, see
    /// `move_to`) and put it in the table. Returns its id.
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(&mut self, old: &IkeSa, suite: IkeSuite, initiator: bool, spi_i: u64, spi_r: u64, ni: Vec<u8>, nr: Vec<u8>, shared: &SecretBytes, now: Instant) -> Option<u64> {
        let (Some(old_suite), Some(old_keys)) = (old.suite, old.keys.as_ref()) else { return None };
        let seed = skeyseed_rekey(old_suite.prf, old_keys.sk_d.expose(), shared.expose(), &ni, &nr);
        let keys = derive_ike_keys(&suite, seed.expose(), &ni, &nr, spi_i, spi_r);
        let id = if initiator { spi_i } else { spi_r };
        let new = IkeSa {
            id,
            conn: old.conn,
            initiator,
            spi_i,
            spi_r,
            local: old.local,
            remote: old.remote,
            natt: old.natt,
            nat_local: old.nat_local,
            nat_remote: old.nat_remote,
            state: IkeState::Established,
            announced: true,
            suite: Some(suite),
            keys: Some(keys),
            ni,
            nr,
            init_req: Vec::new(),
            init_resp: Vec::new(),
            dh: None,
            cookie: None,
            init_retries: 0,
            local_id: old.local_id.clone(),
            remote_id: old.remote_id.clone(),
            next_req_id: 0,
            next_peer_req_id: 0,
            outstanding: None,
            cached: None,
            tasks: VecDeque::new(),
            children: Vec::new(),
            created: now,
            established_at: Some(now),
            last_inbound: now,
            last_outbound: old.last_outbound,
            iv_counter: 0,
            rekey_at: self.conn(old.conn).lifetimes.ike_rekey.map(|d| now + d),
            pfs_hint: None,
        };
        let c = self.conn(old.conn);
        self.actions.push_back(Action::IkeSaUp {
            ike: IkeSaId(id),
            conn: c.name.clone(),
            local: new.local,
            remote: new.remote,
            local_id: new.local_id.clone(),
            remote_id: new.remote_id.clone().unwrap_or_else(|| c.remote_id.clone()),
            initiator,
        });
        self.actions.push_back(Action::Event(Event::IkeSaRekeyed { old: IkeSaId(old.id), new: IkeSaId(id) }));
        self.sas.insert(id, new);
        Some(id)
    }

    /// Hand the Child SAs and queued work of `old` to the IKE SA `new_id`;
    /// `old` then only waits for its Delete exchange.
    pub(crate) fn move_to(&mut self, old: &mut IkeSa, new_id: u64, now: Instant) {
        let children = std::mem::take(&mut old.children);
        let tasks: Vec<Task> = std::mem::take(&mut old.tasks).into_iter().filter(|t| *t != Task::RekeyIke).collect();
        self.mark_superseded(old, now);
        self.with_sa(new_id, now, |e, sa, now| {
            sa.children.extend(children);
            sa.tasks.extend(tasks);
            e.kick(sa, now);
        });
    }

    /// A superseded IKE SA waits for its Delete exchange, but not forever:
    /// in a reordered simultaneous rekey the peer may never create (and so
    /// never delete) our copy of its redundant SA. It holds no Child SA, so
    /// dropping it silently later is harmless.
    pub(crate) fn mark_superseded(&mut self, sa: &mut IkeSa, now: Instant) {
        sa.state = IkeState::Rekeyed;
        sa.rekey_at = Some(now + self.cfg.half_open_timeout);
    }

    /// Deleting an IKE SA whose Child SAs belong to the peer's racing rekey:
    /// move them there first. Returns true if that happened.
    pub(crate) fn rescue_children_on_delete(&mut self, sa: &mut IkeSa, now: Instant) -> bool {
        let peer = match sa.outstanding.as_ref().map(|o| &o.pending) {
            Some(Pending::RekeyIke(r)) => r.peer.clone(),
            _ => None,
        };
        match peer {
            Some(p) if self.sas.contains_key(&p.new_id) => {
                self.move_to(sa, p.new_id, now);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn handle_ike_rekey_request(&mut self, sa: &mut IkeSa, payloads: Vec<Payload>, now: Instant) -> Vec<Payload> {
        let temp = || vec![Payload::Notify(Notify::new(notify::TEMPORARY_FAILURE, vec![]))];
        let racing = matches!(&sa.outstanding, Some(o) if matches!(&o.pending, Pending::RekeyIke(r) if r.peer.is_none()));
        // Rekeying moves the Child SAs; refuse while another request of
        // ours is in flight, the peer retries.
        if sa.outstanding.is_some() && !racing {
            return temp();
        }
        let c = self.conn(sa.conn).clone();
        let (props, ke, nonce) = parts(&payloads);
        let (Some(props), Some(ni), Some((group, kdata))) = (props, nonce, ke) else {
            return vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))];
        };
        let Some((chosen, suite)) = select_ike(&c.ike_proposals, props, Some(group)) else {
            return vec![Payload::Notify(Notify::new(notify::NO_PROPOSAL_CHOSEN, vec![]))];
        };
        let Some(peer_spi) = props.iter().find(|p| p.num == chosen.num).and_then(|p| ike_spi(&p.spi)) else {
            return vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))];
        };
        if suite.dh.id() != group {
            return vec![Payload::Notify(Notify::new(notify::INVALID_KE_PAYLOAD, suite.dh.id().to_be_bytes().to_vec()))];
        }
        let dh = suite.dh.generate(&mut self.rng);
        let Ok(shared) = dh.shared(kdata) else {
            return vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))];
        };
        let my_spi = self.random_u64();
        let nr = self.nonce();
        let resp = vec![
            Payload::Sa(vec![chosen_ike(chosen.num, &suite, Some(my_spi))]),
            Payload::Nonce(nr.clone()),
            Payload::Ke { group: suite.dh.id(), data: dh.public() },
        ];
        let Some(new_id) = self.rekeyed_sa(sa, suite, false, peer_spi, my_spi, ni.clone(), nr.clone(), &shared, now) else {
            return temp();
        };
        if racing {
            if let Some(Pending::RekeyIke(r)) = sa.outstanding.as_mut().map(|o| &mut o.pending) {
                r.peer = Some(PeerIkeRekey { new_id, ni: ni.clone(), nr });
            }
        } else {
            self.move_to(sa, new_id, now);
        }
        resp
    }

    pub(crate) fn handle_ike_rekey_response(&mut self, sa: &mut IkeSa, r: IkeRekeyInit, payloads: Vec<Payload>, now: Instant) {
        let c = self.conn(sa.conn).clone();
        let retry_later = |e: &mut Self, sa: &mut IkeSa| {
            match &r.peer {
                // The peer's rekey stands; it deletes this SA.
                Some(p) if e.sas.contains_key(&p.new_id) => e.move_to(sa, p.new_id, now),
                _ => {
                    let j = e.jitter(Duration::from_secs(5));
                    sa.rekey_at = Some(now + Duration::from_secs(1) + j);
                }
            }
        };
        if payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.ty < notify::FIRST_STATUS)) {
            retry_later(self, sa);
            return;
        }
        let (props, ke, nonce) = parts(&payloads);
        let (Some(props), Some(nr), Some((group, kdata))) = (props, nonce, ke) else {
            retry_later(self, sa);
            return;
        };
        let suite = accept_ike(&c.ike_proposals, props);
        let peer_spi = props.first().and_then(|p| ike_spi(&p.spi));
        let (Some(suite), Some(peer_spi)) = (suite, peer_spi) else {
            retry_later(self, sa);
            return;
        };
        if suite.dh != r.dh.group() || group != suite.dh.id() {
            retry_later(self, sa);
            return;
        }
        let Ok(shared) = r.dh.shared(kdata) else {
            retry_later(self, sa);
            return;
        };
        let Some(mine) = self.rekeyed_sa(sa, suite, true, r.spi, peer_spi, r.nonce.clone(), nr.clone(), &shared, now) else {
            return;
        };
        let redundant = match &r.peer {
            Some(p) if self.sas.contains_key(&p.new_id) => {
                let my_low = r.nonce.as_slice().min(nr.as_slice());
                let their_low = p.ni.as_slice().min(p.nr.as_slice());
                if my_low < their_low {
                    Some(mine)
                } else {
                    Some(p.new_id)
                }
            }
            _ => None,
        };
        match redundant {
            Some(id) if id == mine => {
                // Ours lost: its initiator (us) deletes it; the peer deletes
                // the old SA.
                let survivor = r.peer.as_ref().map_or(mine, |p| p.new_id);
                self.move_to(sa, survivor, now);
                self.with_sa(mine, now, |e, n, now| {
                    e.mark_superseded(n, now);
                    n.tasks.push_back(Task::DeleteIke);
                    e.kick(n, now);
                });
            }
            other => {
                // Ours survives; the rekey initiator deletes the old SA
                // (§1.3.2), the peer deletes its redundant one.
                if let Some(id) = other {
                    self.with_sa(id, now, |e, n, now| e.mark_superseded(n, now));
                }
                self.move_to(sa, mine, now);
                sa.tasks.push_front(Task::DeleteIke);
            }
        }
    }
}
