//! Plain configuration structs. The daemon owns file parsing; these are what
//! it builds.

use std::net::IpAddr;
use std::time::Duration;

use crate::crypto::{DhGroup, EncrAlg, EspAlg, IntegAlg, PrfAlg};
use crate::message::{Identity, TrafficSelector};
use crate::secret::SecretBytes;

/// One IKE SA proposal. AEAD ciphers and non-AEAD ciphers cannot share a
/// proposal (RFC 7296 §3.3: AEAD proposals carry no integrity transform), so
/// `new` checks that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

impl IkeProposal {
    /// An AEAD proposal (no integrity algorithm).
    pub fn aead(encr: Vec<EncrAlg>, prf: Vec<PrfAlg>, dh: Vec<DhGroup>) -> Self {
        IkeProposal { encr, integ: vec![], prf, dh }
    }

    /// A CBC + HMAC proposal.
    pub fn cbc(encr: Vec<EncrAlg>, integ: Vec<IntegAlg>, prf: Vec<PrfAlg>, dh: Vec<DhGroup>) -> Self {
        IkeProposal { encr, integ, prf, dh }
    }

    pub fn validate(&self) -> Result<(), &'static str> {
        if self.encr.is_empty() || self.prf.is_empty() || self.dh.is_empty() {
            return Err("IKE proposal needs encr, prf and dh");
        }
        let aead = self.encr.iter().filter(|e| e.is_aead()).count();
        if aead != 0 && aead != self.encr.len() {
            return Err("IKE proposal mixes AEAD and non-AEAD ciphers");
        }
        if (aead == 0) == self.integ.is_empty() {
            return Err("IKE proposal: integrity iff non-AEAD cipher");
        }
        Ok(())
    }
}

impl Default for IkeProposal {
    fn default() -> Self {
        IkeProposal::aead(
            vec![EncrAlg::AesGcm16_256, EncrAlg::AesGcm16_128],
            vec![PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512],
            vec![DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048],
        )
    }
}

/// Extended sequence numbers in an ESP proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsnPolicy {
    No,
    Yes,
    /// Offer / accept both; prefers ESN.
    Either,
}

impl EsnPolicy {
    pub(crate) fn allowed(self) -> &'static [bool] {
        match self {
            EsnPolicy::No => &[false],
            EsnPolicy::Yes => &[true],
            EsnPolicy::Either => &[true, false],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<EspAlg>,
    pub esn: EsnPolicy,
    /// DH groups for PFS in CREATE_CHILD_SA; empty means no PFS. Never used
    /// for the first Child SA (it shares IKE_SA_INIT's exchange, §1.2).
    pub pfs: Vec<DhGroup>,
}

impl Default for EspProposal {
    fn default() -> Self {
        EspProposal {
            encr: vec![EspAlg::AesGcm16_256, EspAlg::AesGcm16_128, EspAlg::ChaCha20Poly1305],
            esn: EsnPolicy::Either,
            pfs: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// Retransmission schedule of requests this side initiates (§2.1): the
/// n-th retransmission (n = 1..=tries) goes out `timeout * base^(n-1)` after
/// the previous send, and the exchange is given up `timeout * base^tries`
/// after the last one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retransmit {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Retransmit {
    /// Capped at a day so that no configuration can overflow `Instant`.
    pub(crate) fn delay(&self, sent_count: u32) -> Duration {
        const CAP: Duration = Duration::from_secs(86_400);
        let exp = i32::try_from(sent_count.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.timeout.as_secs_f64() * self.base.max(1.0).powi(exp);
        Duration::try_from_secs_f64(secs).map_or(CAP, |d| d.min(CAP))
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        // strongSwan's defaults: 4 s, 1.8, 5 tries (~165 s in total).
        Retransmit { timeout: Duration::from_secs(4), base: 1.8, tries: 5 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule() {
        let r = Retransmit { timeout: Duration::from_secs(2), base: 1.5, tries: 3 };
        assert_eq!(r.delay(1), Duration::from_secs(2));
        assert_eq!(r.delay(2), Duration::from_secs(3));
        assert_eq!(r.delay(3), Duration::from_millis(4500));
        let huge = Retransmit { timeout: Duration::MAX, base: 1e300, tries: 3 };
        assert_eq!(huge.delay(9), Duration::from_secs(86_400));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Rekey the IKE SA after this long (None: never by time).
    pub ike_rekey: Option<Duration>,
    /// Child SA soft/hard lifetimes handed to the kernel with the SA; the
    /// kernel's expire events come back through `Engine::child_expired`.
    pub child_soft: Duration,
    pub child_hard: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ike_rekey: Some(Duration::from_secs(4 * 3600)),
            child_soft: Duration::from_secs(3600 - 300),
            child_hard: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    /// Local address IKE is sent from.
    pub local_addr: IpAddr,
    /// Peers: the first is the one `connect` initiates to; as responder, an
    /// empty list accepts any address. Peers are matched by identity, not
    /// by address (cluster nodes share one identity).
    pub remote_addrs: Vec<IpAddr>,
    pub ike_port: u16,
    pub natt_port: u16,
    pub local_id: Identity,
    pub remote_id: Identity,
    pub psk: SecretBytes,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub mode: Mode,
    /// Always use UDP encapsulation, as if behind a NAT (§2.23 allows faking
    /// the NAT_DETECTION_SOURCE_IP hash for this).
    pub force_encap: bool,
    pub retransmit: Retransmit,
    /// Schedule for the liveness check started by an unprotected INVALID_SPI
    /// hint: short, as a dead peer is likely.
    pub hint_retransmit: Retransmit,
    /// Start a liveness check after this much inbound silence (IKE or ESP)
    /// while outbound ESP flows. None disables it.
    pub liveness_interval: Option<Duration>,
    /// On an ESP packet with an unknown SPI from a peer of this connection,
    /// initiate a new IKE SA (with INITIAL_CONTACT) besides sending the
    /// INVALID_SPI hint. This is the adoptive cluster node's path.
    pub initiate_on_spi_miss: bool,
    pub lifetimes: Lifetimes,
}

impl Connection {
    /// A connection with defaults for everything but addresses, identities,
    /// key and selectors.
    pub fn new(
        name: &str,
        local_addr: IpAddr,
        remote_addrs: Vec<IpAddr>,
        local_id: Identity,
        remote_id: Identity,
        psk: SecretBytes,
    ) -> Self {
        Connection {
            name: name.to_owned(),
            local_ts: vec![TrafficSelector::host(local_addr)],
            remote_ts: remote_addrs.iter().map(|a| TrafficSelector::host(*a)).collect(),
            local_addr,
            remote_addrs,
            ike_port: 500,
            natt_port: 4500,
            local_id,
            remote_id,
            psk,
            ike_proposals: vec![IkeProposal::default()],
            esp_proposals: vec![EspProposal::default()],
            mode: Mode::Tunnel,
            force_encap: false,
            retransmit: Retransmit::default(),
            // Probes at 0, 0.5 and 1.25 s; the peer is given up 2.375 s after
            // the hint. A live peer answers the first probe within a round
            // trip, and giving up on a live one costs a renegotiation, while
            // every second waited on a dead one is traffic black-holed.
            hint_retransmit: Retransmit { timeout: Duration::from_millis(500), base: 1.5, tries: 2 },
            liveness_interval: None,
            initiate_on_spi_miss: false,
            lifetimes: Lifetimes::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub connections: Vec<Connection>,
    /// Half-open (responder) IKE SAs above which IKE_SA_INIT requests must
    /// carry a valid COOKIE (§2.6).
    pub cookie_threshold: usize,
    /// How often the cookie secret is replaced; the previous one stays valid
    /// for one more period.
    pub cookie_secret_lifetime: Duration,
    /// A responder drops a half-open IKE SA after this long.
    pub half_open_timeout: Duration,
    /// At most one unprotected INVALID_SPI per peer address per interval,
    /// both sent (spi_miss) and acted on (received hints).
    pub invalid_spi_rate: Duration,
    pub nonce_len: usize,
    /// The responder of a Child SA rekey switches its outbound traffic to
    /// the new SA when the initiator deletes the old one, or after this long
    /// if that Delete does not come.
    pub outbound_switch_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connections: Vec::new(),
            cookie_threshold: 16,
            cookie_secret_lifetime: Duration::from_secs(300),
            half_open_timeout: Duration::from_secs(30),
            invalid_spi_rate: Duration::from_secs(1),
            nonce_len: 32,
            outbound_switch_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), &'static str> {
        for c in &self.connections {
            if c.ike_proposals.is_empty() || c.esp_proposals.is_empty() {
                return Err("connection without proposals");
            }
            for p in &c.ike_proposals {
                p.validate()?;
            }
            if c.esp_proposals.iter().any(|p| p.encr.is_empty()) {
                return Err("ESP proposal without cipher");
            }
            if c.local_ts.is_empty() || c.remote_ts.is_empty() {
                return Err("connection without traffic selectors");
            }
            if c.psk.is_empty() {
                return Err("empty PSK");
            }
        }
        if !(16..=256).contains(&self.nonce_len) {
            return Err("nonce length must be 16..=256");
        }
        Ok(())
    }
}
