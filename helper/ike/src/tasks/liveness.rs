//! Dead peer handling for cluster failover.
//!
//! - Liveness checks (empty INFORMATIONAL, §1.4/§2.4) after inbound silence
//!   are scheduled by the engine's timers; see `Engine::liveness_due`.
//! - `Engine::spi_miss`: the adoptive node received ESP for an SPI it does
//!   not know. It sends INVALID_SPI (inside an IKE SA with that peer if there
//!   is one, else unprotected, §2.21.4) and may initiate a fresh IKE SA whose
//!   INITIAL_CONTACT makes the client flush the dead node's SAs.
//! - A protected request for an IKE SPI we do not know gets an unprotected
//!   INVALID_IKE_SPI answer (§1.5, rate limited). When our own request gets
//!   that answer, the exchange's retransmission switches to the short hint
//!   schedule: the peer that holds the address no longer knows the SA (the
//!   failover case), but only missing protected answers delete anything.
//! - A received unprotected INVALID_SPI (or INVALID_IKE_SPI) is only a hint:
//!   nothing is deleted for it (§2.4); it starts a liveness check with the
//!   connection's short `hint_retransmit` schedule on the IKE SA(s)
//!   concerned. Only that check's failure deletes state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;

use crate::action::{Action, Event, IkeSaId, Transmit};
use crate::consts::{exchange, notify, protocol, FLAG_INITIATOR, FLAG_RESPONSE};
use crate::engine::{Engine, SpiMiss};
use crate::message::{encode_plain, Header, Message, Notify, Payload};
use crate::sa::{IkeState, Pending, Task};

/// How long after its install an SPI miss for a Child SA is taken for an
/// event the kernel queued before the install (see `spi_is_ours`): far
/// longer than the daemon takes to read its events even under load.
const FRESH_CHILD: Duration = Duration::from_secs(2);

/// Keep the rate-limit tables bounded under a flood from many addresses:
/// entries older than the interval no longer limit anything.
fn prune(map: &mut HashMap<IpAddr, Instant>, now: Instant, rate: Duration) {
    if map.len() >= 1024 {
        map.retain(|_, t| now.saturating_duration_since(*t) < rate);
    }
}

/// Build the unprotected INFORMATIONAL carrying INVALID_SPI for `spi`
/// (§2.21.4): random SPIi, zero SPIr, I flag, message ID 0, the SPI as
/// notification data.
pub fn invalid_spi_message(spi_i: u64, spi: u32) -> Vec<u8> {
    let h = Header::new(spi_i, 0, exchange::INFORMATIONAL, FLAG_INITIATOR, 0);
    let n = Notify { protocol: protocol::ESP, spi: vec![], ty: notify::INVALID_SPI, data: spi.to_be_bytes().to_vec() };
    encode_plain(&h, &[Payload::Notify(n)])
}

impl<R: CryptoRngCore> Engine<R> {
    /// Report ESP received for an unknown SPI (the kernel dropped it).
    pub fn spi_miss(&mut self, miss: SpiMiss, now: Instant) {
        if self.spi_is_ours(&miss, now) {
            return;
        }
        // Only a peer that a connection on this address allows, or one we
        // have an IKE SA with, hears from us: ESP from anyone else (a scan,
        // a flood from spoofed sources) gets no unprotected answer.
        let allowed = self.cfg.connections.iter().any(|c| {
            c.local_addr == miss.local && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&miss.remote))
        });
        if !allowed && self.sa_ids_with_remote_ip(miss.remote).is_empty() {
            return;
        }
        let rate = self.cfg.invalid_spi_rate;
        if self.miss_sent.get(&miss.remote).is_some_and(|t| now.saturating_duration_since(*t) < rate) {
            return;
        }
        prune(&mut self.miss_sent, now, rate);
        self.miss_sent.insert(miss.remote, now);
        let established = self.sa_ids_with_remote_ip(miss.remote);
        if let Some(&id) = established.first() {
            self.with_sa(id, now, |e, sa, now| {
                sa.tasks.push_back(Task::InvalidSpi(miss.spi));
                e.kick(sa, now);
            });
        } else {
            let (lport, rport, marker) = match miss.udp {
                Some((sport, dport)) => (dport, sport, true),
                None => (500, 500, false),
            };
            let spi_i = self.random_u64();
            let remote = SocketAddr::new(miss.remote, rport);
            self.transmits.push_back(Transmit {
                local: SocketAddr::new(miss.local, lport),
                remote,
                bytes: invalid_spi_message(spi_i, miss.spi),
                non_esp_marker: marker,
            });
            self.actions.push_back(Action::Event(Event::InvalidSpiSent { remote, spi: miss.spi }));
        }
        // The adoptive node's own path to recovery: a new IKE SA with
        // INITIAL_CONTACT, unless one with this peer already exists.
        let conn = self.cfg.connections.iter().position(|c| {
            c.initiate_on_spi_miss && c.local_addr == miss.local && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&miss.remote))
        });
        if let Some(ci) = conn {
            let busy = self.sas.values().any(|s| s.conn == ci && s.remote.ip() == miss.remote);
            if !busy {
                self.initiate(ci, miss.remote, now);
            }
        }
    }

    /// The missed SPI is one we chose for a Child SA with this peer that
    /// our outstanding request is creating, or that was installed only just
    /// now (the kernel queued the event before the install): stock peers
    /// (Linux XFRM under strongSwan or libreswan) send on a Child SA as soon
    /// as they answer its rekey, before their answer reaches us. Not a
    /// failover: no INVALID_SPI (a peer acting on it would delete the
    /// brand-new SA) and no new IKE SA. A miss for an SA installed longer
    /// ago means the kernel lost it (flushed by hand, say): that is
    /// reported, so the peer drops its half too.
    fn spi_is_ours(&self, miss: &SpiMiss, now: Instant) -> bool {
        self.sas.values().filter(|s| s.remote.ip() == miss.remote).any(|s| {
            s.children.iter().any(|c| c.spi_in == miss.spi && now.saturating_duration_since(c.created) < FRESH_CHILD)
                || s.outstanding.as_ref().is_some_and(|o| match &o.pending {
                    Pending::CreateChild(ci) | Pending::IkeAuth(ci) => ci.spi_in == miss.spi,
                    _ => false,
                })
        })
    }

    /// §1.5: answer a protected request for an unknown IKE SA with an
    /// unprotected INVALID_IKE_SPI, SPIs, exchange and message ID copied,
    /// Response flag set.
    pub(crate) fn send_invalid_ike_spi(&mut self, now: Instant, req: &Header, local: SocketAddr, remote: SocketAddr) {
        let rate = self.cfg.invalid_spi_rate;
        if self.ike_spi_sent.get(&remote.ip()).is_some_and(|t| now.saturating_duration_since(*t) < rate) {
            return;
        }
        prune(&mut self.ike_spi_sent, now, rate);
        self.ike_spi_sent.insert(remote.ip(), now);
        let flags = FLAG_RESPONSE | if req.from_initiator() { 0 } else { FLAG_INITIATOR };
        let h = Header::new(req.spi_i, req.spi_r, req.exchange, flags, req.message_id);
        let bytes = encode_plain(&h, &[Payload::Notify(Notify::new(notify::INVALID_IKE_SPI, vec![]))]);
        let marker = self.cfg.connections.iter().any(|c| c.natt_port == local.port());
        self.transmits.push_back(Transmit { local, remote, bytes, non_esp_marker: marker });
    }

    /// An unprotected response outside IKE_SA_INIT: only INVALID_IKE_SPI
    /// means anything, and only as a hint that shortens the wait.
    pub(crate) fn handle_unprotected_response(&mut self, now: Instant, remote: SocketAddr, msg: &Message) {
        let h = msg.header;
        if msg.notify(notify::INVALID_IKE_SPI).is_none() {
            return;
        }
        let local_spi = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let Some(sa) = self.sas.get_mut(&local_spi) else { return };
        if sa.spi_i != h.spi_i || sa.spi_r != h.spi_r || sa.remote != remote {
            return;
        }
        let hint = self.cfg.connections[sa.conn].hint_retransmit;
        let Some(out) = sa.outstanding.as_mut() else { return };
        if out.msg_id != h.message_id || out.schedule == hint {
            return;
        }
        // Switch to the hint schedule, counting the sends already made.
        out.schedule = hint;
        out.sent = out.sent.min(hint.tries + 1);
        out.deadline = out.deadline.min(now + hint.delay(out.sent));
        let ike = IkeSaId(sa.id);
        self.actions.push_back(Action::Event(Event::InvalidIkeSpiHint { ike, from: remote }));
    }

    pub(crate) fn handle_unprotected_informational(&mut self, now: Instant, remote: SocketAddr, msg: &Message) {
        let mut spi = None;
        let mut hint = false;
        for p in &msg.payloads {
            if let Payload::Notify(n) = p {
                match n.ty {
                    notify::INVALID_SPI => {
                        hint = true;
                        spi = <[u8; 4]>::try_from(n.data.as_slice())
                            .or_else(|_| <[u8; 4]>::try_from(n.spi.as_slice()))
                            .ok()
                            .map(u32::from_be_bytes);
                    }
                    notify::INVALID_IKE_SPI => hint = true,
                    _ => {}
                }
            }
        }
        if !hint {
            return;
        }
        // Rate limit per sender: unprotected input must not make us send
        // more than a trickle.
        let rate = self.cfg.invalid_spi_rate;
        if self.hint_seen.get(&remote.ip()).is_some_and(|t| now.saturating_duration_since(*t) < rate) {
            return;
        }
        prune(&mut self.hint_seen, now, rate);
        self.hint_seen.insert(remote.ip(), now);
        // The IKE SA owning the SPI (the sender may be a different cluster
        // node than the one we keyed with), else those with the sender.
        let mut targets: Vec<u64> = match spi {
            Some(s) => self
                .sas
                .values()
                .filter(|sa| sa.is_established() && sa.children.iter().any(|c| c.spi_out == s))
                .map(|sa| sa.id)
                .collect(),
            None => Vec::new(),
        };
        if targets.is_empty() {
            targets = self.sa_ids_with_remote_ip(remote.ip());
        }
        for &id in &targets {
            self.with_sa(id, now, |e, sa, now| {
                let probing = sa.state == IkeState::Established
                    && (matches!(&sa.outstanding, Some(o) if matches!(o.pending, Pending::Liveness))
                        || sa.tasks.iter().any(|t| matches!(t, Task::Liveness { .. })));
                // Any outstanding request already probes the peer.
                if !probing && sa.outstanding.is_none() {
                    sa.tasks.push_front(Task::Liveness { hint: true });
                    e.kick(sa, now);
                }
            });
        }
        self.actions.push_back(Action::Event(Event::InvalidSpiHint {
            from: remote,
            spi: spi.unwrap_or(0),
            probing: targets.into_iter().map(IkeSaId).collect(),
        }));
    }
}
