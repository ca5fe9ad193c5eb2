//! Child SAs: the first one in IKE_AUTH, new ones and rekeys in
//! CREATE_CHILD_SA (§1.3.1, §1.3.3), optional PFS, traffic selector
//! narrowing, and simultaneous Child SA rekeying (§2.8.1).

use std::time::Instant;

use rand_core::CryptoRngCore;

use crate::action::{Action, Event, IkeSaId, InstallChildSa, Reason, UdpEncap};
use crate::config::Mode;
use crate::consts::{exchange, notify, protocol};
use crate::crypto::keys::child_keymat;
use crate::crypto::DhGroup;
use crate::engine::Engine;
use crate::message::{Notify, Payload, Proposal, TrafficSelector};
use crate::proposal::{accept_esp, esp_sa_payload, select_esp, EspSuite};
use crate::sa::{ChildInit, ChildSa, ChildState, IkeSa, Pending, PeerRekey, Task};
use crate::secret::SecretBytes;
use crate::ts;

/// The pieces of a child-creating message.
#[derive(Default)]
struct ChildParts<'a> {
    sa: Option<&'a Vec<Proposal>>,
    nonce: Option<&'a Vec<u8>>,
    ke: Option<(u16, &'a Vec<u8>)>,
    tsi: Option<&'a Vec<TrafficSelector>>,
    tsr: Option<&'a Vec<TrafficSelector>>,
    transport: bool,
    rekey: Option<u32>,
}

fn parts(payloads: &[Payload]) -> ChildParts<'_> {
    let mut c = ChildParts::default();
    for p in payloads {
        match p {
            Payload::Sa(x) => c.sa = c.sa.or(Some(x)),
            Payload::Nonce(x) => c.nonce = c.nonce.or(Some(x)),
            Payload::Ke { group, data } => c.ke = c.ke.or(Some((*group, data))),
            Payload::TsI(x) => c.tsi = c.tsi.or(Some(x)),
            Payload::TsR(x) => c.tsr = c.tsr.or(Some(x)),
            Payload::Notify(n) if n.ty == notify::USE_TRANSPORT_MODE => c.transport = true,
            Payload::Notify(n) if n.ty == notify::REKEY_SA && n.protocol == protocol::ESP => {
                c.rekey = <[u8; 4]>::try_from(n.spi.as_slice()).ok().map(u32::from_be_bytes);
            }
            _ => {}
        }
    }
    c
}

fn err(ty: u16) -> Notify {
    Notify::new(ty, vec![])
}

impl<R: CryptoRngCore> Engine<R> {
    pub(crate) fn start_create_child(&mut self, sa: &mut IkeSa, rekey_of: Option<u32>, now: Instant) {
        let c = self.conn(sa.conn).clone();
        let (ts_i, ts_r, transport) = match rekey_of {
            Some(spi) => match sa.children.iter().find(|x| x.spi_in == spi && x.state == ChildState::Installed) {
                Some(old) => (old.ts_local.clone(), old.ts_remote.clone(), old.mode == Mode::Transport),
                None => return, // Gone or already being replaced.
            },
            None => (c.local_ts.clone(), c.remote_ts.clone(), c.mode == Mode::Transport),
        };
        let pfs: Option<DhGroup> = sa.pfs_hint.take().or(c.esp_proposals.first().and_then(|p| p.pfs.first()).copied());
        let child = ChildInit {
            spi_in: self.alloc_spi(),
            nonce: self.nonce(),
            dh: pfs.map(|g| g.generate(&mut self.rng)),
            ts_i,
            ts_r,
            transport,
            rekey_of,
            peer_rekey: None,
        };
        let mut p = Vec::new();
        if let Some(spi) = rekey_of {
            p.push(Payload::Notify(Notify {
                protocol: protocol::ESP,
                spi: spi.to_be_bytes().to_vec(),
                ty: notify::REKEY_SA,
                data: vec![],
            }));
        }
        if child.transport {
            p.push(Payload::Notify(err(notify::USE_TRANSPORT_MODE)));
        }
        p.push(Payload::Sa(esp_sa_payload(&c.esp_proposals, child.spi_in, true)));
        p.push(Payload::Nonce(child.nonce.clone()));
        if let Some(dh) = &child.dh {
            p.push(Payload::Ke { group: dh.group().id(), data: dh.public() });
        }
        p.push(Payload::TsI(child.ts_i.clone()));
        p.push(Payload::TsR(child.ts_r.clone()));
        self.send_request(sa, exchange::CREATE_CHILD_SA, &p, Pending::CreateChild(child), c.retransmit, now);
    }

    pub(crate) fn handle_create_child_request(&mut self, sa: &mut IkeSa, payloads: Vec<Payload>, now: Instant) -> Vec<Payload> {
        let is_ike = payloads.iter().any(|p| match p {
            Payload::Sa(props) => props.iter().any(|x| x.protocol == protocol::IKE),
            _ => false,
        });
        if is_ike {
            return self.handle_ike_rekey_request(sa, payloads, now);
        }
        match self.respond_child(sa, &payloads, Some(()), now) {
            Ok(p) => p,
            Err(n) => {
                if n.ty != notify::TEMPORARY_FAILURE && n.ty != notify::INVALID_KE_PAYLOAD {
                    self.actions.push_back(Action::Event(Event::ChildSaFailed { ike: IkeSaId(sa.id), notify: n.ty }));
                }
                vec![Payload::Notify(n)]
            }
        }
    }

    /// Responder side of a child-creating exchange. `ccsa` is set for
    /// CREATE_CHILD_SA (own nonces, optional KE); in IKE_AUTH the IKE SA's
    /// nonces are used.
    pub(crate) fn respond_child(&mut self, sa: &mut IkeSa, payloads: &[Payload], ccsa: Option<()>, now: Instant) -> Result<Vec<Payload>, Notify> {
        let c = self.conn(sa.conn).clone();
        let cp = parts(payloads);
        let (Some(props), Some(tsi), Some(tsr)) = (cp.sa, cp.tsi, cp.tsr) else {
            return Err(err(notify::INVALID_SYNTAX));
        };
        let rekey_old = match cp.rekey {
            Some(spi) => match sa.child_by_out(spi) {
                None => return Err(err(notify::CHILD_SA_NOT_FOUND)),
                Some(old) if old.state != ChildState::Installed => return Err(err(notify::TEMPORARY_FAILURE)),
                Some(old) => Some(old.spi_in),
            },
            None => None,
        };
        let spi_in = self.alloc_spi();
        let with_pfs = ccsa.is_some();
        let Some((chosen, suite, spi_out)) = select_esp(&c.esp_proposals, props, with_pfs, cp.ke.map(|k| k.0), spi_in) else {
            return Err(err(notify::NO_PROPOSAL_CHOSEN));
        };
        // Initiator's TSi is our remote side.
        let ts_remote = ts::narrow(tsi, &c.remote_ts);
        let ts_local = ts::narrow(tsr, &c.local_ts);
        if ts_remote.is_empty() || ts_local.is_empty() {
            return Err(err(notify::TS_UNACCEPTABLE));
        }
        let (ni, nr) = if with_pfs {
            let Some(ni) = cp.nonce else { return Err(err(notify::INVALID_SYNTAX)) };
            (ni.clone(), self.nonce())
        } else {
            (sa.ni.clone(), sa.nr.clone())
        };
        let mut ke_out = None;
        let shared = match suite.dh {
            Some(g) => {
                let Some((kg, kdata)) = cp.ke.filter(|k| k.0 == g.id()) else {
                    return Err(Notify::new(notify::INVALID_KE_PAYLOAD, g.id().to_be_bytes().to_vec()));
                };
                let _ = kg;
                let dh = g.generate(&mut self.rng);
                let s = dh.shared(kdata).map_err(|_| err(notify::INVALID_SYNTAX))?;
                ke_out = Some(Payload::Ke { group: g.id(), data: dh.public() });
                Some(s)
            }
            None => None,
        };
        let (Some(ike), Some(keys)) = (sa.suite, sa.keys.as_ref()) else { return Err(err(notify::INVALID_SYNTAX)) };
        let (i2r, r2i) = child_keymat(ike.prf, keys.sk_d.expose(), shared.as_ref().map(|s| s.expose()), &ni, &nr, suite.alg);
        let transport = cp.transport && c.mode == Mode::Transport;
        let defer = rekey_old.is_some();
        self.install_child(sa, suite, spi_in, spi_out, i2r, r2i, transport, ts_local.clone(), ts_remote.clone(), rekey_old, defer, now);
        if let Some(old_in) = rekey_old {
            // A peer's rekey racing ours: remember its nonces so that the
            // §2.8.1 comparison can be done when our response arrives.
            let racing = match sa.outstanding.as_mut().map(|o| &mut o.pending) {
                Some(Pending::CreateChild(ci)) if ci.rekey_of == Some(old_in) => {
                    ci.peer_rekey = Some(PeerRekey { ni: ni.clone(), nr: nr.clone() });
                    true
                }
                _ => false,
            };
            if let Some(old) = sa.child_by_in(old_in) {
                if !racing {
                    old.state = ChildState::Rekeyed;
                }
                old.rekeyed = true;
            }
            self.actions.push_back(Action::Event(Event::ChildSaRekeyed { ike: IkeSaId(sa.id), old_spi_in: old_in, new_spi_in: spi_in }));
        }
        let mut resp = Vec::new();
        if transport {
            resp.push(Payload::Notify(err(notify::USE_TRANSPORT_MODE)));
        }
        resp.push(Payload::Sa(vec![chosen]));
        if with_pfs {
            resp.push(Payload::Nonce(nr));
        }
        resp.extend(ke_out);
        // TSi/TSr keep the initiator's perspective.
        resp.push(Payload::TsI(ts_remote));
        resp.push(Payload::TsR(ts_local));
        Ok(resp)
    }

    /// Initiator side: check the answer and install. Errors are notify types
    /// for the ChildSaFailed event.
    /// `defer_outbound`: install the inbound SA only (a redundant SA of a
    /// simultaneous rekey).
    pub(crate) fn complete_child(&mut self, sa: &mut IkeSa, child: &ChildInit, payloads: &[Payload], defer_outbound: bool, now: Instant) -> Result<u32, u16> {
        let c = self.conn(sa.conn).clone();
        let cp = parts(payloads);
        let with_pfs = !child.nonce.is_empty();
        let (Some(props), Some(tsi), Some(tsr)) = (cp.sa, cp.tsi, cp.tsr) else {
            return Err(notify::INVALID_SYNTAX);
        };
        let Some((suite, spi_out)) = accept_esp(&c.esp_proposals, props, with_pfs) else {
            return Err(notify::NO_PROPOSAL_CHOSEN);
        };
        if !ts::all_within(tsi, &child.ts_i) || !ts::all_within(tsr, &child.ts_r) {
            return Err(notify::TS_UNACCEPTABLE);
        }
        let (ni, nr) = if with_pfs {
            let Some(nr) = cp.nonce else { return Err(notify::INVALID_SYNTAX) };
            (child.nonce.clone(), nr.clone())
        } else {
            (sa.ni.clone(), sa.nr.clone())
        };
        let shared = match (suite.dh, &child.dh) {
            (None, None) => None,
            (Some(g), Some(dh)) if dh.group() == g => {
                let Some((_, data)) = cp.ke.filter(|k| k.0 == g.id()) else { return Err(notify::INVALID_SYNTAX) };
                Some(dh.shared(data).map_err(|_| notify::INVALID_SYNTAX)?)
            }
            _ => return Err(notify::NO_PROPOSAL_CHOSEN),
        };
        let (Some(ike), Some(keys)) = (sa.suite, sa.keys.as_ref()) else { return Err(notify::INVALID_SYNTAX) };
        let (i2r, r2i) = child_keymat(ike.prf, keys.sk_d.expose(), shared.as_ref().map(|s| s.expose()), &ni, &nr, suite.alg);
        let transport = child.transport && cp.transport;
        self.install_child(sa, suite, child.spi_in, spi_out, r2i, i2r, transport, tsi.clone(), tsr.clone(), child.rekey_of, defer_outbound, now);
        Ok(child.spi_in)
    }

    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        sa: &mut IkeSa,
        suite: EspSuite,
        spi_in: u32,
        spi_out: u32,
        key_in: SecretBytes,
        key_out: SecretBytes,
        transport: bool,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
        replaces: Option<u32>,
        defer_outbound: bool,
        now: Instant,
    ) {
        let c = self.conn(sa.conn);
        let mode = if transport { Mode::Transport } else { Mode::Tunnel };
        // ESP is encapsulated only when a NAT was detected or we fake one
        // (§2.23): IKE on the NAT-T port alone does not imply it, as peers
        // may float there without a NAT (strongSwan does with MOBIKE).
        let encap = sa.nat_local || sa.nat_remote || c.force_encap;
        let install = InstallChildSa {
            owner: self.owner(sa),
            local: sa.local.ip(),
            remote: sa.remote.ip(),
            spi_in,
            spi_out,
            alg: suite.alg,
            key_in,
            key_out,
            mode,
            ts_local: ts_local.clone(),
            ts_remote: ts_remote.clone(),
            encap: encap.then_some(UdpEncap { local_port: c.natt_port, remote_port: if sa.natt { sa.remote.port() } else { c.natt_port } }),
            esn: suite.esn,
            lifetime_soft: c.lifetimes.child_soft,
            lifetime_hard: c.lifetimes.child_hard,
            replaces,
            defer_outbound,
        };
        sa.children.push(ChildSa {
            spi_in,
            spi_out,
            suite,
            mode,
            encap,
            ts_local,
            ts_remote,
            created: now,
            state: ChildState::Installed,
            rekeyed: false,
            replaces,
            out_deferred: defer_outbound.then(|| now + self.cfg.outbound_switch_timeout),
        });
        self.actions.push_back(Action::InstallChildSa(Box::new(install)));
    }

    /// The Child SA `old_in` is gone (or is going): the SA that replaced it
    /// in a rekey we answered may carry our outbound traffic now.
    pub(crate) fn activate_successor(&mut self, sa: &mut IkeSa, old_in: u32) {
        let due: Vec<(u32, u32)> = sa
            .children
            .iter_mut()
            .filter(|c| c.replaces == Some(old_in) && c.out_deferred.is_some())
            .map(|c| {
                c.out_deferred = None;
                (c.spi_in, c.spi_out)
            })
            .collect();
        for (spi_in, spi_out) in due {
            let owner = self.owner(sa);
            self.actions.push_back(Action::ActivateOutbound { owner, spi_in, spi_out });
        }
    }

    /// Deferred outbound SAs whose wait for the peer's Delete ran out.
    pub(crate) fn activate_overdue(&mut self, sa: &mut IkeSa, now: Instant) {
        let due: Vec<u32> = sa.children.iter().filter(|c| c.out_deferred.is_some_and(|t| t <= now)).filter_map(|c| c.replaces).collect();
        for old in due {
            self.activate_successor(sa, old);
        }
    }

    pub(crate) fn handle_create_child_response(&mut self, sa: &mut IkeSa, child: ChildInit, payloads: Vec<Payload>, now: Instant) {
        let ike = IkeSaId(sa.id);
        let rekey_of = child.rekey_of;
        if let Some((n, data)) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.ty < notify::FIRST_STATUS => Some((n.ty, &n.data)),
            _ => None,
        }) {
            if n == notify::INVALID_KE_PAYLOAD {
                // Retry once with the group the responder wants, if we allow it.
                let want = data.first_chunk::<2>().map(|b| u16::from_be_bytes(*b)).and_then(DhGroup::from_id);
                let ours = child.dh.as_ref().map(|d| d.group());
                let allowed = self.conn(sa.conn).esp_proposals.iter().any(|p| want.is_some_and(|g| p.pfs.contains(&g)));
                if allowed && want != ours {
                    sa.pfs_hint = want;
                    sa.tasks.push_front(match rekey_of {
                        Some(spi) => Task::RekeyChild(spi),
                        None => Task::CreateChild,
                    });
                    return;
                }
            }
            if let Some(old_in) = rekey_of {
                let peer_won = child.peer_rekey.is_some();
                if n == notify::CHILD_SA_NOT_FOUND {
                    // The peer no longer has it: drop ours too.
                    if let Some(pos) = sa.children.iter().position(|x| x.spi_in == old_in) {
                        let old = sa.children.remove(pos);
                        self.activate_successor(sa, old_in);
                        self.emit_child_delete(sa, old.spi_in, old.spi_out, Reason::PeerInvalidSpi);
                    }
                    return;
                }
                if peer_won {
                    // Our rekey lost a race the peer already resolved; its
                    // new Child SA stands and it deletes the old one.
                    return;
                }
            }
            self.actions.push_back(Action::Event(Event::ChildSaFailed { ike, notify: n }));
            return;
        }
        // §2.8.1: in a simultaneous rekey the exchange that used the lowest
        // of the four nonces created the redundant SA; its initiator deletes
        // that SA, the other side deletes the old one.
        let nr = parts(&payloads).nonce.cloned().unwrap_or_default();
        let redundant = rekey_of.is_some()
            && child.peer_rekey.as_ref().is_some_and(|pr| {
                child.nonce.as_slice().min(nr.as_slice()) < pr.ni.as_slice().min(pr.nr.as_slice())
            });
        // A redundant SA never carries traffic: the old one does until the
        // peer deletes it and its own new SA takes over. Installing ours as
        // the current outbound SA and deleting it would leave the kernel
        // without one in between.
        let new_in = match self.complete_child(sa, &child, &payloads, redundant, now) {
            Ok(s) => s,
            Err(n) => {
                self.actions.push_back(Action::Event(Event::ChildSaFailed { ike, notify: n }));
                return;
            }
        };
        let Some(old_in) = rekey_of else { return };
        let delete = if redundant { new_in } else { old_in };
        if let Some(old) = sa.child_by_in(old_in) {
            old.state = ChildState::Rekeyed;
            old.rekeyed = true;
        }
        if let Some(n) = sa.child_by_in(new_in) {
            if redundant {
                n.rekeyed = true;
                n.replaces = None;
                n.out_deferred = None;
            }
        }
        if child.peer_rekey.is_some() && !redundant {
            // The peer's new SA is the redundant one and the peer deletes it:
            // it must never take over the outbound traffic.
            for c in sa.children.iter_mut().filter(|c| c.replaces == Some(old_in) && c.spi_in != new_in) {
                c.replaces = None;
                c.out_deferred = None;
            }
        }
        self.actions.push_back(Action::Event(Event::ChildSaRekeyed { ike, old_spi_in: old_in, new_spi_in: new_in }));
        sa.tasks.push_front(Task::DeleteChild(vec![delete]));
    }
}
