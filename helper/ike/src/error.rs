//! One flat error type for the crate.

use std::fmt;

/// Everything that can go wrong in the engine or its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The datagram ended before a length field said it would.
    Truncated,
    /// A length field disagrees with its container or with a fixed size.
    BadLength,
    /// Major version is not 2.
    BadVersion(u8),
    /// A payload with the critical bit set that this engine does not know.
    UnsupportedCriticalPayload(u8),
    /// Structurally invalid content (the string says which rule).
    Malformed(&'static str),
    /// Integrity check or AEAD tag failed.
    Integrity,
    /// Peer's DH public value is invalid or gives a degenerate secret.
    InvalidKe,
    /// No connection with this name.
    UnknownConnection,
    /// No IKE SA or Child SA with that id / SPI.
    UnknownSa,
    /// The configuration is inconsistent (the string says why).
    Config(&'static str),
    /// The operation is not possible in the SA's current state.
    InvalidState,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "message truncated"),
            Error::BadLength => write!(f, "bad length field"),
            Error::BadVersion(v) => write!(f, "unsupported IKE version {v:#x}"),
            Error::UnsupportedCriticalPayload(t) => {
                write!(f, "unsupported critical payload {t}")
            }
            Error::Malformed(what) => write!(f, "malformed message: {what}"),
            Error::Integrity => write!(f, "integrity check failed"),
            Error::InvalidKe => write!(f, "invalid key exchange data"),
            Error::UnknownConnection => write!(f, "unknown connection"),
            Error::UnknownSa => write!(f, "unknown SA"),
            Error::Config(what) => write!(f, "configuration error: {what}"),
            Error::InvalidState => write!(f, "operation not valid in this state"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
