//! IKE_AUTH with pre-shared keys (§1.2, §2.15), the first Child SA, and
//! INITIAL_CONTACT (§2.4).

use std::time::Instant;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;

use crate::action::{Action, Event, IkeSaId, Reason};
use crate::config::Mode;
use crate::consts::{exchange, notify, AUTH_SHARED_KEY_MIC};
use crate::crypto::keys::psk_auth;
use crate::engine::Engine;
use crate::message::{find_notify, Identity, Notify, Payload};
use crate::proposal::esp_sa_payload;
use crate::sa::{ChildInit, IkeSa, IkeState, Pending};

fn auth_of(payloads: &[Payload]) -> Option<(u8, &Vec<u8>)> {
    payloads.iter().find_map(|p| match p {
        Payload::Auth { method, data } => Some((*method, data)),
        _ => None,
    })
}

fn first_error(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty < notify::FIRST_STATUS => Some(n.ty),
        _ => None,
    })
}

impl<R: CryptoRngCore> Engine<R> {
    /// AUTH value for `sa` as signer (`ours`) or as expected from the peer.
    fn auth_value(&self, sa: &IkeSa, ci: usize, ours: bool, id: &Identity) -> Option<Vec<u8>> {
        let suite = sa.suite?;
        let keys = sa.keys.as_ref()?;
        let psk = self.conn(ci).psk.expose();
        // The initiator signs its IKE_SA_INIT request and Nr with SK_pi; the
        // responder its response and Ni with SK_pr.
        let signer_is_initiator = ours == sa.initiator;
        let (msg, nonce, skp) = if signer_is_initiator {
            (&sa.init_req, &sa.nr, &keys.sk_pi)
        } else {
            (&sa.init_resp, &sa.ni, &keys.sk_pr)
        };
        Some(psk_auth(suite.prf, psk, msg, nonce, skp.expose(), &id.encode_body()))
    }

    pub(crate) fn send_auth_request(&mut self, sa: &mut IkeSa, now: Instant) {
        let c = self.conn(sa.conn).clone();
        let spi_in = self.alloc_spi();
        let child = ChildInit {
            spi_in,
            nonce: Vec::new(),
            dh: None,
            ts_i: c.local_ts.clone(),
            ts_r: c.remote_ts.clone(),
            transport: c.mode == Mode::Transport,
            rekey_of: None,
            peer_rekey: None,
        };
        let Some(auth) = self.auth_value(sa, sa.conn, true, &c.local_id) else { return };
        let mut p = vec![Payload::IdI(c.local_id.clone())];
        if !self.has_other_sa_with(sa) {
            p.push(Payload::Notify(Notify::new(notify::INITIAL_CONTACT, vec![])));
        }
        p.push(Payload::Auth { method: AUTH_SHARED_KEY_MIC, data: auth });
        if child.transport {
            p.push(Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, vec![])));
        }
        p.push(Payload::Sa(esp_sa_payload(&c.esp_proposals, spi_in, false)));
        p.push(Payload::TsI(child.ts_i.clone()));
        p.push(Payload::TsR(child.ts_r.clone()));
        self.send_request(sa, exchange::IKE_AUTH, &p, Pending::IkeAuth(child), c.retransmit, now);
    }

    fn establish(&mut self, sa: &mut IkeSa, now: Instant) {
        sa.state = IkeState::Established;
        sa.established_at = Some(now);
        sa.announced = true;
        sa.rekey_at = self.conn(sa.conn).lifetimes.ike_rekey.map(|d| now + d);
        // AUTH inputs are no longer needed.
        sa.init_req = Vec::new();
        sa.init_resp = Vec::new();
        let c = self.conn(sa.conn);
        let up = Action::IkeSaUp {
            ike: IkeSaId(sa.id),
            conn: c.name.clone(),
            local: sa.local,
            remote: sa.remote,
            local_id: sa.local_id.clone(),
            remote_id: sa.remote_id.clone().unwrap_or_else(|| c.remote_id.clone()),
            initiator: sa.initiator,
        };
        self.actions.push_back(up);
    }

    pub(crate) fn handle_auth_request(&mut self, sa: &mut IkeSa, payloads: Vec<Payload>, now: Instant) -> Vec<Payload> {
        let fail = |e: &mut Self, sa: &mut IkeSa| {
            e.kill(sa, Reason::AuthenticationFailed);
            vec![Payload::Notify(Notify::new(notify::AUTHENTICATION_FAILED, vec![]))]
        };
        let idi = payloads.iter().find_map(|p| match p {
            Payload::IdI(i) => Some(i.clone()),
            _ => None,
        });
        let (Some(idi), Some((method, auth))) = (idi, auth_of(&payloads)) else {
            return vec![Payload::Notify(Notify::new(notify::INVALID_SYNTAX, vec![]))];
        };
        // The connection is chosen by the peer's identity among those that
        // accept its address: cluster nodes share identities, not addresses.
        let (lip, rip) = (sa.local.ip(), sa.remote.ip());
        let Some(ci) = self.cfg.connections.iter().position(|c| {
            c.remote_id == idi && c.local_addr == lip && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&rip))
        }) else {
            return fail(self, sa);
        };
        if method != AUTH_SHARED_KEY_MIC {
            return fail(self, sa);
        }
        let Some(expected) = self.auth_value(sa, ci, false, &idi) else { return fail(self, sa) };
        if !bool::from(expected.ct_eq(auth)) {
            return fail(self, sa);
        }
        sa.conn = ci;
        sa.local_id = self.conn(ci).local_id.clone();
        sa.remote_id = Some(idi);
        let Some(my_auth) = self.auth_value(sa, ci, true, &sa.local_id.clone()) else { return fail(self, sa) };
        self.half_open.retain(|_, v| *v != sa.id);
        self.establish(sa, now);
        if find_notify(&payloads, notify::INITIAL_CONTACT).is_some() {
            self.initial_contact_flush(sa);
        }
        let mut resp = vec![
            Payload::IdR(sa.local_id.clone()),
            Payload::Auth { method: AUTH_SHARED_KEY_MIC, data: my_auth },
        ];
        // Childless IKE_AUTH (no SA payload) is allowed.
        if payloads.iter().any(|p| matches!(p, Payload::Sa(_))) {
            match self.respond_child(sa, &payloads, None, now) {
                Ok(mut p) => resp.append(&mut p),
                Err(n) => {
                    self.actions.push_back(Action::Event(Event::ChildSaFailed { ike: IkeSaId(sa.id), notify: n.ty }));
                    resp.push(Payload::Notify(n));
                }
            }
        }
        resp
    }

    pub(crate) fn handle_auth_response(&mut self, sa: &mut IkeSa, child: ChildInit, payloads: Vec<Payload>, now: Instant) {
        let c = self.conn(sa.conn).clone();
        let idr = payloads.iter().find_map(|p| match p {
            Payload::IdR(i) => Some(i.clone()),
            _ => None,
        });
        let (Some(idr), Some((method, auth))) = (idr, auth_of(&payloads)) else {
            let reason = match first_error(&payloads) {
                Some(notify::AUTHENTICATION_FAILED) => Reason::AuthenticationFailed,
                Some(n) => Reason::PeerError(n),
                None => Reason::Protocol("IKE_AUTH response without IDr/AUTH"),
            };
            self.kill(sa, reason);
            return;
        };
        if idr != c.remote_id || method != AUTH_SHARED_KEY_MIC {
            self.kill(sa, Reason::AuthenticationFailed);
            return;
        }
        let Some(expected) = self.auth_value(sa, sa.conn, false, &idr) else { return };
        if !bool::from(expected.ct_eq(auth)) {
            self.kill(sa, Reason::AuthenticationFailed);
            return;
        }
        sa.remote_id = Some(idr);
        self.establish(sa, now);
        if find_notify(&payloads, notify::INITIAL_CONTACT).is_some() {
            self.initial_contact_flush(sa);
        }
        match first_error(&payloads) {
            Some(n) => self.actions.push_back(Action::Event(Event::ChildSaFailed { ike: IkeSaId(sa.id), notify: n })),
            None => {
                if let Err(n) = self.complete_child(sa, &child, &payloads, false, now) {
                    self.actions.push_back(Action::Event(Event::ChildSaFailed { ike: IkeSaId(sa.id), notify: n }));
                }
            }
        }
    }
}
