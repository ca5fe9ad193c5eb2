//! Local addresses over rtnetlink: a dump at start, then RTM_NEWADDR /
//! RTM_DELADDR. A node acts for a connection only while it holds the
//! connection's local address (the cluster package address).

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// An address change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added(IpAddr),
    Removed(IpAddr),
}

pub struct AddrWatch {
    sock: Socket,
    pub current: BTreeSet<IpAddr>,
}

fn addr_of(m: &AddressMessage) -> Option<IpAddr> {
    // IPv4: IFA_LOCAL is the address (IFA_ADDRESS is the peer on p2p links).
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

/// Address changes in a buffer of rtnetlink messages.
pub fn parse_changes(buf: &[u8]) -> (Vec<Change>, bool) {
    let mut out = Vec::new();
    let mut off = 0;
    let mut done = false;
    while off < buf.len() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..]) else { break };
        let len = msg.header.length as usize;
        if len == 0 {
            break;
        }
        off += (len + 3) & !3;
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => out.extend(addr_of(&m).map(Change::Added)),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
                out.extend(addr_of(&m).map(Change::Removed))
            }
            NetlinkPayload::Done(_) | NetlinkPayload::Error(_) => done = true,
            _ => {}
        }
    }
    (out, done)
}

impl AddrWatch {
    /// Subscribes to address changes, then dumps the current addresses.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))?;
        let mut current = BTreeSet::new();
        // The dump on its own socket, so that events queue up meanwhile.
        let mut dump = Socket::new(NETLINK_ROUTE)?;
        dump.bind_auto()?;
        dump.connect(&SocketAddr::new(0, 0))?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = 1;
        let mut msg =
            NetlinkMessage::new(header, NetlinkPayload::from(RouteNetlinkMessage::GetAddress(AddressMessage::default())));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        dump.send(&buf, 0)?;
        let mut rx = vec![0u8; 65536];
        loop {
            let n = dump.recv(&mut &mut rx[..], 0)?;
            let (changes, done) = parse_changes(&rx[..n]);
            for c in changes {
                if let Change::Added(a) = c {
                    current.insert(a);
                }
            }
            if done || n == 0 {
                break;
            }
        }
        sock.set_non_blocking(true)?;
        Ok(AddrWatch { sock, current })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Reads queued events and applies them; returns the effective changes.
    pub fn read(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        let mut rx = vec![0u8; 65536];
        loop {
            let n = match self.sock.recv(&mut &mut rx[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ENOBUFS: events were lost; resynchronise by dumping again.
                    tracing::warn!("address events: {e}; re-reading addresses");
                    if let Ok(fresh) = AddrWatch::new() {
                        for a in fresh.current.difference(&self.current) {
                            out.push(Change::Added(*a));
                        }
                        for a in self.current.difference(&fresh.current) {
                            out.push(Change::Removed(*a));
                        }
                        *self = fresh;
                    }
                    return out;
                }
            };
            if n == 0 {
                break;
            }
            for c in parse_changes(&rx[..n]).0 {
                let effective = match c {
                    Change::Added(a) => self.current.insert(a),
                    Change::Removed(a) => self.current.remove(&a),
                };
                if effective {
                    out.push(c);
                }
            }
        }
        out
    }

    pub fn has(&self, a: &IpAddr) -> bool {
        self.current.contains(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_sees_loopback() {
        // Every namespace that runs tests has lo; its 127.0.0.1 shows when lo is up.
        let w = AddrWatch::new().unwrap();
        if w.current.iter().all(|a| !a.is_loopback()) {
            eprintln!("no loopback address in this namespace: {:?}", w.current);
        }
    }
}
