//! INFORMATIONAL exchanges: Delete of Child and IKE SAs in both directions
//! (§1.4.1), protected notifies, and empty requests (liveness, §1.4).

use std::time::Instant;

use rand_core::CryptoRngCore;

use crate::action::Reason;
use crate::consts::{exchange, notify, protocol};
use crate::engine::Engine;
use crate::message::{Delete, Payload};
use crate::sa::{ChildState, IkeSa, IkeState, Pending};

fn spi32(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

fn esp_delete(spis: &[u32]) -> Payload {
    Payload::Delete(Delete { protocol: protocol::ESP, spi_size: 4, spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect() })
}

impl<R: CryptoRngCore> Engine<R> {
    pub(crate) fn start_delete_child(&mut self, sa: &mut IkeSa, spis: Vec<u32>, now: Instant) {
        let mut live = Vec::new();
        for s in spis {
            if let Some(c) = sa.child_by_in(s) {
                if c.state != ChildState::Deleting {
                    c.state = ChildState::Deleting;
                    live.push(s);
                }
            }
        }
        if live.is_empty() {
            return;
        }
        let sched = self.conn(sa.conn).retransmit;
        self.send_request(sa, exchange::INFORMATIONAL, &[esp_delete(&live)], Pending::DeleteChild(live), sched, now);
    }

    pub(crate) fn handle_delete_child_response(&mut self, sa: &mut IkeSa, spis: Vec<u32>) {
        for s in spis {
            if let Some(pos) = sa.children.iter().position(|c| c.spi_in == s) {
                let c = sa.children.remove(pos);
                let reason = if c.rekeyed { Reason::Rekeyed } else { Reason::LocalDelete };
                // Successor first: the kernel must never be without an
                // outbound SA for the policies in between.
                self.activate_successor(sa, c.spi_in);
                self.emit_child_delete(sa, c.spi_in, c.spi_out, reason);
            }
        }
    }

    pub(crate) fn start_delete_ike(&mut self, sa: &mut IkeSa, now: Instant) {
        let d = Payload::Delete(Delete { protocol: protocol::IKE, spi_size: 0, spis: vec![] });
        let sched = self.conn(sa.conn).retransmit;
        self.send_request(sa, exchange::INFORMATIONAL, &[d], Pending::DeleteIke, sched, now);
    }

    pub(crate) fn start_liveness(&mut self, sa: &mut IkeSa, hint: bool, now: Instant) {
        let c = self.conn(sa.conn);
        let sched = if hint { c.hint_retransmit } else { c.retransmit };
        self.send_request(sa, exchange::INFORMATIONAL, &[], Pending::Liveness, sched, now);
    }

    pub(crate) fn handle_informational_request(&mut self, sa: &mut IkeSa, payloads: Vec<Payload>, now: Instant) -> Vec<Payload> {
        let mut answer = Vec::new();
        for p in &payloads {
            match p {
                Payload::Delete(d) if d.protocol == protocol::IKE => {
                    // Answer with an empty INFORMATIONAL, then the SA is gone.
                    self.rescue_children_on_delete(sa, now);
                    let reason = if sa.state == IkeState::Rekeyed { Reason::Rekeyed } else { Reason::PeerDeleted };
                    self.kill(sa, reason);
                    return Vec::new();
                }
                Payload::Delete(d) if d.protocol == protocol::ESP => {
                    for spi in d.spis.iter().filter_map(|s| spi32(s)) {
                        let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi) else { continue };
                        let c = sa.children.remove(pos);
                        // §1.4.1: answer with our inbound SPIs, except for
                        // SAs we are deleting ourselves at the same time.
                        if c.state != ChildState::Deleting {
                            answer.push(c.spi_in);
                        }
                        let reason = if c.rekeyed { Reason::Rekeyed } else { Reason::PeerDeleted };
                        // The rekey initiator deletes the old SA once it has
                        // installed the new one: now ours may send on it.
                        // Activated before the old one goes, or packets in
                        // between would find no outbound SA (and ACQUIRE).
                        self.activate_successor(sa, c.spi_in);
                        self.emit_child_delete(sa, c.spi_in, c.spi_out, reason);
                    }
                }
                Payload::Notify(n) if n.ty == notify::INVALID_SPI => {
                    // Protected, so trustworthy: the peer has no SA for this
                    // outbound SPI of ours.
                    let spi = spi32(&n.data).or_else(|| spi32(&n.spi));
                    if let Some(pos) = spi.and_then(|s| sa.children.iter().position(|c| c.spi_out == s)) {
                        let c = sa.children.remove(pos);
                        self.activate_successor(sa, c.spi_in);
                        self.emit_child_delete(sa, c.spi_in, c.spi_out, Reason::PeerInvalidSpi);
                    }
                }
                _ => {}
            }
        }
        if answer.is_empty() {
            Vec::new()
        } else {
            vec![esp_delete(&answer)]
        }
    }
}
