//! What the engine hands to the daemon: datagrams, kernel actions, events,
//! and status snapshots.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::Mode;
use crate::crypto::{EspAlg, IkeSuite};
use crate::message::{Identity, TrafficSelector};
use crate::secret::SecretBytes;

/// Handle of an IKE SA: its local SPI (unique within an engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// A datagram to send. When `non_esp_marker` is set the daemon sends it on
/// its NAT-T socket (port 4500) prefixed with the four zero bytes of RFC 3948
/// (`message::NON_ESP_MARKER`); `bytes` never contains the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
    pub non_esp_marker: bool,
}

/// Who a Child SA belongs to, so the daemon can find and flush it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub ike: IkeSaId,
    pub conn: String,
    pub local_id: Identity,
    pub remote_id: Identity,
}

/// UDP encapsulation ports (RFC 3948) for a Child SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

/// Install both directions of a Child SA in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallChildSa {
    pub owner: Owner,
    /// Outer (tunnel endpoint / transport) addresses.
    pub local: IpAddr,
    pub remote: IpAddr,
    pub spi_in: u32,
    pub spi_out: u32,
    pub alg: EspAlg,
    /// Key followed by the 4-byte salt (RFC 4106 / RFC 7634).
    pub key_in: SecretBytes,
    pub key_out: SecretBytes,
    pub mode: Mode,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub encap: Option<UdpEncap>,
    pub esn: bool,
    pub lifetime_soft: Duration,
    pub lifetime_hard: Duration,
    /// Inbound SPI of the Child SA this one rekeys, if any.
    pub replaces: Option<u32>,
    /// Install only the inbound SA now; the outbound one follows with
    /// [`Action::ActivateOutbound`]. Set for the responder of a Child SA
    /// rekey: the initiator installs its inbound SA only when our response
    /// arrives, so ESP sent on the new SA before then would be dropped.
    /// Until then the old outbound SA keeps carrying the traffic.
    pub defer_outbound: bool,
}

/// Remove both directions of a Child SA from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteChildSa {
    pub owner: Owner,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub spi_in: u32,
    pub spi_out: u32,
    pub reason: Reason,
}

/// Why an SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// We deleted it (terminate, hard expiry, rekey cleanup).
    LocalDelete,
    /// The peer sent a Delete.
    PeerDeleted,
    /// Our request went unanswered through the whole retransmit schedule.
    RetransmitExhausted,
    /// A liveness check (periodic or after an INVALID_SPI hint) failed.
    LivenessFailed,
    /// An authenticated INITIAL_CONTACT from the same identity replaced it.
    InitialContact,
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// AUTH did not verify (either side).
    AuthenticationFailed,
    /// The peer answered with this error notify.
    PeerError(u16),
    /// Our own checks failed on the peer's answer.
    Protocol(&'static str),
    /// `Engine::delete_peer`.
    ManualFlush,
    /// The peer told us, protected, that it has no such SPI.
    PeerInvalidSpi,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    NatDetected { ike: IkeSaId, local_behind_nat: bool, remote_behind_nat: bool },
    /// The first or an additional Child SA could not be created.
    ChildSaFailed { ike: IkeSaId, notify: u16 },
    ChildSaRekeyed { ike: IkeSaId, old_spi_in: u32, new_spi_in: u32 },
    IkeSaRekeyed { old: IkeSaId, new: IkeSaId },
    /// `flushed` was removed because `by` arrived with INITIAL_CONTACT.
    InitialContactFlush { by: IkeSaId, flushed: IkeSaId },
    /// An unprotected INVALID_SPI arrived; liveness checks were started on
    /// `probing` (nothing is deleted for it).
    InvalidSpiHint { from: SocketAddr, spi: u32, probing: Vec<IkeSaId> },
    /// Our request got an unprotected INVALID_IKE_SPI; its retransmission
    /// now follows the hint schedule (nothing is deleted for it).
    InvalidIkeSpiHint { ike: IkeSaId, from: SocketAddr },
    LivenessOk { ike: IkeSaId },
    /// We answered an IKE_SA_INIT with a COOKIE request.
    CookieChallenge { remote: SocketAddr },
    /// We retried IKE_SA_INIT with the group the responder asked for.
    InvalidKeRetry { ike: IkeSaId, group: u16 },
    /// We sent an unprotected INVALID_SPI for an unknown ESP SPI.
    InvalidSpiSent { remote: SocketAddr, spi: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    InstallChildSa(Box<InstallChildSa>),
    /// Install the outbound SA of a Child SA installed with
    /// `defer_outbound`: the peer has it now (it deleted the SA this one
    /// replaces, or the wait for that ran out).
    ActivateOutbound { owner: Owner, spi_in: u32, spi_out: u32 },
    DeleteChildSa(DeleteChildSa),
    IkeSaUp {
        ike: IkeSaId,
        conn: String,
        local: SocketAddr,
        remote: SocketAddr,
        local_id: Identity,
        remote_id: Identity,
        initiator: bool,
    },
    /// An IKE SA is gone. `established` tells whether `IkeSaUp` had been
    /// emitted for it (setup failures have it false).
    IkeSaDown {
        ike: IkeSaId,
        conn: String,
        remote: SocketAddr,
        remote_id: Option<Identity>,
        reason: Reason,
        established: bool,
    },
    Event(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeSaState {
    Connecting,
    Authenticating,
    Established,
    Rekeyed,
    Deleting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaStatus {
    pub spi_in: u32,
    pub spi_out: u32,
    pub alg: EspAlg,
    pub esn: bool,
    pub mode: Mode,
    pub encap: bool,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaStatus {
    pub id: IkeSaId,
    pub conn: String,
    pub state: IkeSaState,
    pub initiator: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_id: Identity,
    pub remote_id: Option<Identity>,
    pub spi_i: u64,
    pub spi_r: u64,
    pub suite: Option<IkeSuite>,
    pub nat_detected: bool,
    pub udp_encap: bool,
    pub age: Duration,
    pub children: Vec<ChildSaStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub ike_sas: Vec<IkeSaStatus>,
}
