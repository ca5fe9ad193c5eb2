//! One flat error type for every rejection, so the kernel side can map each
//! variant to a drop reason / MIB counter without unpacking nested causes.

use core::fmt;

/// Every reason a packet, key or table operation can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Packet (or a header inside it) is shorter than its format requires.
    Truncated,
    /// A length field disagrees with the buffer or violates alignment.
    BadLength,
    /// Not enough headroom in the buffer to prepend headers.
    NoHeadroom,
    /// Not enough tailroom in the buffer to append trailer and ICV.
    NoTailroom,
    /// ESP padding bytes are not 1, 2, 3, ... or the pad length is too big.
    BadPadding,
    /// ICV verification failed.
    AuthFailed,
    /// Sequence number already seen inside the replay window.
    Replay,
    /// Sequence number is to the left of the replay window.
    TooOld,
    /// No SA for this SPI (and destination).
    UnknownSpi,
    /// SPI 0 (or a reserved SPI 1..=255) where a real SPI is required.
    BadSpi,
    /// Sending one more packet would make the sequence number wrap.
    SeqWouldWrap,
    /// Next-header value not acceptable here (e.g. not IP in tunnel mode).
    BadNextHeader,
    /// Dummy packet (next header 59, RFC 4303 §2.6): drop silently.
    DummyPacket,
    /// Malformed IPv4/IPv6 header (version, IHL, checksum...).
    BadIpHeader,
    /// IP fragment: reassemble before ESP processing.
    Fragmented,
    /// Packet is not ESP (e.g. other IP protocol) where ESP was expected.
    NotEsp,
    /// UDP payload carries an IKE message (non-ESP marker, RFC 3948 §2.2).
    IkeMarker,
    /// UDP payload is a NAT-keepalive (RFC 3948 §2.3).
    NatKeepalive,
    /// Malformed UDP header or UDP-encapsulated payload.
    BadUdp,
    /// Raw ESP received on a UDP-encapsulated SA or vice versa.
    EncapMismatch,
    /// Address families of configuration items do not match.
    FamilyMismatch,
    /// Key material has the wrong length for the algorithm.
    BadKeyLength,
    /// Invalid configuration value (window too big, bad prefix length...).
    BadConfig,
    /// The SA reached its hard lifetime and must not be used any more.
    HardExpired,
    /// Feature not supported (IPv6 jumbograms, ...).
    Unsupported,
    /// Table has no free slot.
    TableFull,
    /// Entry with the same key already present.
    Duplicate,
    /// Handle / id does not name a live entry.
    NotFound,
    /// An external AEAD implementation (the kernel crypto API) failed for
    /// a reason other than authentication.
    CipherFailed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for Error {}

impl From<ripsec_aead::Error> for Error {
    fn from(e: ripsec_aead::Error) -> Self {
        match e {
            ripsec_aead::Error::BadKeyLength => Error::BadKeyLength,
            ripsec_aead::Error::BadLength => Error::BadLength,
            ripsec_aead::Error::AuthFailed => Error::AuthFailed,
        }
    }
}
