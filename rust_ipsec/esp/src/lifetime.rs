//! SA lifetimes (RFC 4301 §4.4.2.1): soft and hard limits in bytes and
//! packets. Each limit crossing is reported exactly once so the kernel
//! sends exactly one expire message per kind to the IKE daemon.

/// Limits; `u64::MAX` means "no limit".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifetimeLimits {
    /// Soft byte limit: rekey.
    pub soft_bytes: u64,
    /// Hard byte limit: SA must not be used past it.
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
}

impl LifetimeLimits {
    /// No limits at all.
    pub const UNLIMITED: LifetimeLimits = LifetimeLimits {
        soft_bytes: u64::MAX,
        hard_bytes: u64::MAX,
        soft_packets: u64::MAX,
        hard_packets: u64::MAX,
    };
}

impl Default for LifetimeLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// What an accounting step crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeEvent {
    /// Nothing new.
    None,
    /// The soft limit was reached by this packet (reported once).
    Soft,
    /// The hard limit was reached by this packet (reported once).
    Hard,
    /// One packet crossed both limits at once.
    SoftAndHard,
}

/// Usage counters and the limits they are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    limits: LifetimeLimits,
    bytes: u64,
    packets: u64,
    soft_done: bool,
    hard_done: bool,
}

impl Lifetime {
    /// Fresh counters.
    pub const fn new(limits: LifetimeLimits) -> Self {
        Lifetime {
            limits,
            bytes: 0,
            packets: 0,
            soft_done: false,
            hard_done: false,
        }
    }

    /// Bytes accounted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Packets accounted so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// True once the hard limit was reached: the SA must not protect or
    /// accept further packets.
    pub fn hard_expired(&self) -> bool {
        self.hard_done
    }

    /// Accounts one packet of `bytes` bytes and reports limits crossed by it.
    pub fn account(&mut self, bytes: u64) -> LifetimeEvent {
        self.bytes = self.bytes.saturating_add(bytes);
        self.packets = self.packets.saturating_add(1);
        let l = &self.limits;
        let soft =
            !self.soft_done && (self.bytes >= l.soft_bytes || self.packets >= l.soft_packets);
        let hard =
            !self.hard_done && (self.bytes >= l.hard_bytes || self.packets >= l.hard_packets);
        // Reaching hard first implies soft has been passed too: mark it
        // done so a soft event never follows a hard one.
        self.soft_done |= soft || hard;
        self.hard_done |= hard;
        match (soft, hard) {
            (false, false) => LifetimeEvent::None,
            (true, false) => LifetimeEvent::Soft,
            (false, true) => LifetimeEvent::Hard,
            (true, true) => LifetimeEvent::SoftAndHard,
        }
    }
}
