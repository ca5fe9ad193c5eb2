//! IKE SA and Child SA state kept by the engine.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::action::IkeSaState;
use crate::config::{Mode, Retransmit};
use crate::crypto::keys::IkeKeys;
use crate::crypto::{DhGroup, DhPrivate, IkeSuite};
use crate::message::{Identity, TrafficSelector};
use crate::proposal::EspSuite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open).
    InitDone,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    Established,
    /// Children moved to a rekeyed IKE SA; waiting for the Delete exchange.
    Rekeyed,
    /// Remove after the current message is handled; actions already emitted.
    Dead,
}

/// Work queued on an IKE SA, run one at a time (window size 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    CreateChild,
    RekeyChild(u32),
    RekeyIke,
    DeleteChild(Vec<u32>),
    DeleteIke,
    Liveness { hint: bool },
    InvalidSpi(u32),
}

/// Initiator state of a Child SA being negotiated.
#[derive(Debug)]
pub(crate) struct ChildInit {
    pub spi_in: u32,
    pub nonce: Vec<u8>,
    pub dh: Option<DhPrivate>,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    pub transport: bool,
    pub rekey_of: Option<u32>,
    /// Set when the peer rekeyed the same Child SA while this request was
    /// in flight (§2.8.1); kept here rather than on the old Child SA, which
    /// the peer may delete before our response arrives.
    pub peer_rekey: Option<PeerRekey>,
}

#[derive(Debug)]
pub(crate) struct IkeRekeyInit {
    pub spi: u64,
    pub nonce: Vec<u8>,
    pub dh: DhPrivate,
    /// The peer's IKE rekey that we answered while this one was in flight:
    /// the IKE SA it created and its nonces (§2.8.1).
    pub peer: Option<PeerIkeRekey>,
}

#[derive(Debug, Clone)]
pub(crate) struct PeerIkeRekey {
    pub new_id: u64,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

/// The exchange we are waiting on, with what its response needs.
#[derive(Debug)]
pub(crate) enum Pending {
    IkeInit,
    IkeAuth(ChildInit),
    CreateChild(ChildInit),
    RekeyIke(IkeRekeyInit),
    DeleteChild(Vec<u32>),
    DeleteIke,
    Liveness,
    Notify,
}

#[derive(Debug)]
pub(crate) struct Outstanding {
    pub msg_id: u32,
    pub bytes: Vec<u8>,
    /// Times sent so far.
    pub sent: u32,
    pub deadline: Instant,
    pub schedule: Retransmit,
    pub pending: Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Installed,
    /// Superseded by a rekey; waiting for its Delete.
    Rekeyed,
    /// Delete request sent.
    Deleting,
}

/// Nonces of a peer's rekey of a Child SA that we answered while our own
/// rekey of it was in flight (§2.8.1).
#[derive(Debug, Clone)]
pub(crate) struct PeerRekey {
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct ChildSa {
    pub spi_in: u32,
    pub spi_out: u32,
    pub suite: EspSuite,
    pub mode: Mode,
    pub encap: bool,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub created: Instant,
    pub state: ChildState,
    /// Superseded by a rekey (its deletion is reported as `Reason::Rekeyed`).
    pub rekeyed: bool,
    /// Inbound SPI of the Child SA this one rekeyed.
    pub replaces: Option<u32>,
    /// Outbound SA not installed yet (we answered its rekey): installed when
    /// the SA it replaces goes away, or at this instant at the latest.
    pub out_deferred: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct IkeSa {
    pub id: u64,
    pub conn: usize,
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Using the NAT-T port with the non-ESP marker.
    pub natt: bool,
    pub nat_local: bool,
    pub nat_remote: bool,
    pub state: IkeState,
    /// IkeSaUp was emitted.
    pub announced: bool,
    pub suite: Option<IkeSuite>,
    pub keys: Option<IkeKeys>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub init_req: Vec<u8>,
    pub init_resp: Vec<u8>,
    pub dh: Option<DhPrivate>,
    pub cookie: Option<Vec<u8>>,
    pub init_retries: u32,
    pub local_id: Identity,
    pub remote_id: Option<Identity>,
    pub next_req_id: u32,
    pub next_peer_req_id: u32,
    pub outstanding: Option<Outstanding>,
    /// Last response we sent, for duplicate requests: (message id, bytes).
    pub cached: Option<(u32, Vec<u8>)>,
    pub tasks: VecDeque<Task>,
    pub children: Vec<ChildSa>,
    pub created: Instant,
    pub established_at: Option<Instant>,
    /// Last authenticated inbound IKE message or reported inbound ESP.
    pub last_inbound: Instant,
    pub last_outbound: Option<Instant>,
    pub iv_counter: u64,
    pub rekey_at: Option<Instant>,
    /// PFS group the peer asked for with INVALID_KE_PAYLOAD in
    /// CREATE_CHILD_SA; used by the next child-creating request.
    pub pfs_hint: Option<DhGroup>,
}

impl IkeSa {
    pub fn public_state(&self) -> IkeSaState {
        match self.state {
            IkeState::InitSent | IkeState::InitDone => IkeSaState::Connecting,
            IkeState::AuthSent => IkeSaState::Authenticating,
            IkeState::Established => IkeSaState::Established,
            IkeState::Rekeyed => IkeSaState::Rekeyed,
            IkeState::Dead => IkeSaState::Deleting,
        }
    }

    pub fn child_by_in(&mut self, spi_in: u32) -> Option<&mut ChildSa> {
        self.children.iter_mut().find(|c| c.spi_in == spi_in)
    }

    pub fn child_by_out(&mut self, spi_out: u32) -> Option<&mut ChildSa> {
        self.children.iter_mut().find(|c| c.spi_out == spi_out)
    }

    pub fn is_established(&self) -> bool {
        self.state == IkeState::Established
    }
}
