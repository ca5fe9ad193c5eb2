//! Traffic selector narrowing (RFC 7296 §2.9).

use std::net::IpAddr;

use crate::message::TrafficSelector;

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The intersection of two selectors, if any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if !same_family(&a.start_addr, &b.start_addr) {
        return None;
    }
    let ip_proto = match (a.ip_proto, b.ip_proto) {
        (0, p) | (p, 0) => p,
        (x, y) if x == y => x,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    let start_addr = a.start_addr.max(b.start_addr);
    let end_addr = a.end_addr.min(b.end_addr);
    if start_port > end_port || start_addr > end_addr {
        return None;
    }
    Some(TrafficSelector { ip_proto, start_port, end_port, start_addr, end_addr })
}

/// What a responder answers for a proposed selector list: every non-empty
/// intersection with its own configuration. Empty means TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], configured: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for c in configured {
            if let Some(i) = intersect(p, c) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

pub fn is_subset(a: &TrafficSelector, of: &TrafficSelector) -> bool {
    intersect(a, of).as_ref() == Some(a)
}

/// The initiator accepts a narrowed answer only inside what it offered.
pub fn all_within(answer: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    !answer.is_empty() && answer.iter().all(|a| offered.iter().any(|o| is_subset(a, o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> TrafficSelector {
        TrafficSelector::range(a.parse().unwrap(), b.parse().unwrap())
    }

    #[test]
    fn narrowing() {
        let proposed = [r("192.0.2.0", "192.0.2.255")];
        let conf = [r("192.0.2.10", "192.0.2.20"), r("198.51.100.0", "198.51.100.255")];
        assert_eq!(narrow(&proposed, &conf), vec![r("192.0.2.10", "192.0.2.20")]);
        assert!(narrow(&[r("203.0.113.1", "203.0.113.1")], &conf).is_empty());
        assert!(narrow(&[r("2001:db8::", "2001:db8::1")], &conf).is_empty());
        let mut tcp = r("192.0.2.0", "192.0.2.255");
        tcp.ip_proto = 6;
        tcp.start_port = 80;
        tcp.end_port = 80;
        let n = narrow(&proposed, &[tcp]);
        assert_eq!(n, vec![tcp]);
        let mut udp = tcp;
        udp.ip_proto = 17;
        assert!(intersect(&tcp, &udp).is_none());
    }

    #[test]
    fn subsets() {
        assert!(all_within(&[r("192.0.2.10", "192.0.2.20")], &[r("192.0.2.0", "192.0.2.255")]));
        assert!(!all_within(&[r("192.0.2.10", "192.0.3.20")], &[r("192.0.2.0", "192.0.2.255")]));
        assert!(!all_within(&[], &[r("192.0.2.0", "192.0.2.255")]));
    }
}
