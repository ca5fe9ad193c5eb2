//! Sans-IO IKEv2 engine (RFC 7296) for ripsec.
//!
//! Datagrams and timer ticks go in ([`Engine::handle_datagram`],
//! [`Engine::handle_timeout`]); datagrams to send, kernel Child SA actions
//! and events come out ([`Engine::poll_transmit`], [`Engine::poll_action`]).
//! The engine owns no socket, clock or thread; time is passed in and
//! randomness comes from an injected `rand_core::CryptoRngCore`, so two
//! engines in one process with a fake clock are fully deterministic.
//!
//! Layout follows strongSwan's libcharon: [`message`] is the wire codec,
//! [`crypto`] the algorithms and key derivation, [`proposal`] and [`ts`] the
//! negotiation helpers, and `tasks/` one module per exchange (IKE_SA_INIT,
//! IKE_AUTH, Child SA create/rekey, IKE rekey, delete, liveness, NAT
//! detection, cookies). The engine itself is the SA manager.
//!
//! The daemon's side of NAT traversal: a `Transmit` with `non_esp_marker`
//! goes out of the NAT-T socket (port 4500) with four zero bytes in front;
//! datagrams received on that port are passed to `handle_datagram` as they
//! are (marker included) and the engine strips the marker. For ESP on that
//! port see [`message::classify_natt`].
//!
//! ```
//! use std::time::Instant;
//! use rand_core::OsRng;
//! use ripsec_ike::{Action, Config, Connection, Engine, Identity, SecretBytes};
//!
//! let (a, b) = ("192.0.2.1".parse().unwrap(), "198.51.100.1".parse().unwrap());
//! let id = |s: &str| Identity::Fqdn(s.into());
//! let cfg = |c| Config { connections: vec![c], ..Config::default() };
//! let mut client = Engine::new(
//!     cfg(Connection::new("c", a, vec![b], id("client"), id("server"), SecretBytes::from("k"))),
//!     OsRng,
//! )?;
//! let mut server = Engine::new(
//!     cfg(Connection::new("c", b, vec![a], id("server"), id("client"), SecretBytes::from("k"))),
//!     OsRng,
//! )?;
//! let now = Instant::now();
//! client.connect("c", now)?;
//! // The daemon's loop, with the network short-circuited.
//! for _ in 0..4 {
//!     while let Some(t) = client.poll_transmit() {
//!         server.handle_datagram(now, t.remote, t.local, &t.bytes);
//!     }
//!     while let Some(t) = server.poll_transmit() {
//!         client.handle_datagram(now, t.remote, t.local, &t.bytes);
//!     }
//! }
//! let installs = std::iter::from_fn(|| client.poll_action())
//!     .filter(|a| matches!(a, Action::InstallChildSa(_)))
//!     .count();
//! assert_eq!(installs, 1);
//! # Ok::<(), ripsec_ike::Error>(())
//! ```

pub mod action;
pub mod config;
pub mod consts;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod message;
pub mod proposal;
mod sa;
pub mod secret;
mod tasks;
pub mod ts;

pub use action::{
    Action, ChildSaStatus, DeleteChildSa, Event, IkeSaId, IkeSaState, IkeSaStatus, InstallChildSa, Owner, Reason,
    Status, Transmit, UdpEncap,
};
pub use config::{Config, Connection, EsnPolicy, EspProposal, IkeProposal, Lifetimes, Mode, Retransmit};
pub use crypto::{DhGroup, EncrAlg, EspAlg, IkeSuite, IntegAlg, PrfAlg};
pub use engine::{Direction, Engine, SpiMiss};
pub use error::{Error, Result};
pub use message::{Identity, TrafficSelector};
pub use secret::SecretBytes;
pub use tasks::liveness::invalid_spi_message;
