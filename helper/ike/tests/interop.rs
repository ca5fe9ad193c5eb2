//! Regressions found against strongSwan and libreswan in the VM, reduced to
//! two engines in one process.

mod common;

use common::*;
use ripsec_ike::*;

fn installs(n: &Node) -> Vec<InstallChildSa> {
    n.actions
        .iter()
        .filter_map(|a| match a {
            Action::InstallChildSa(c) => Some((**c).clone()),
            _ => None,
        })
        .collect()
}

/// A peer that moves IKE to port 4500 without a NAT (strongSwan's MOBIKE
/// does in IKE_AUTH) still gets plain ESP: UDP encapsulation follows NAT
/// detection (or forced encapsulation), not the port IKE arrives on. We used
/// to encapsulate as responder while strongSwan sent raw ESP.
#[test]
fn natt_port_without_nat_keeps_raw_esp() {
    for floater in [0usize, 1] {
        let mut net = pair(300 + floater as u64, |_, _| {});
        net.floats = Some(floater);
        net.nodes[0].engine.connect("c", net.now).unwrap();
        net.settle();
        net.assert_children_match(0, 1);
        let other = 1 - floater;
        let st = net.nodes[other].established(net.now);
        assert_eq!(st.len(), 1);
        assert!(st[0].udp_encap, "IKE did arrive on the NAT-T port");
        assert!(!st[0].nat_detected);
        for n in [0, 1] {
            let i = installs(&net.nodes[n]);
            assert_eq!(i.len(), 1);
            assert_eq!(i[0].encap, None, "node {n} (floater {floater}) encapsulates without a NAT");
        }
    }
    // Forced encapsulation on either side still encapsulates on both.
    for forcer in [0usize, 1] {
        let mut net = pair(310 + forcer as u64, |a, b| if forcer == 0 { a.force_encap = true } else { b.force_encap = true });
        net.floats = Some(1 - forcer);
        net.nodes[0].engine.connect("c", net.now).unwrap();
        net.settle();
        for n in [0, 1] {
            let i = installs(&net.nodes[n]);
            assert_eq!(i.len(), 1);
            assert_eq!(i[0].encap, Some(UdpEncap { local_port: 4500, remote_port: 4500 }), "node {n}, forcer {forcer}");
        }
    }
}

fn activations(n: &Node) -> Vec<u32> {
    n.actions
        .iter()
        .filter_map(|a| match a {
            Action::ActivateOutbound { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// The responder of a Child SA rekey installs the new inbound SA at once but
/// sends on the new outbound SA only once the initiator deleted the old SA
/// (the initiator installs the new SA when our response arrives, so ESP on
/// it before then is dropped by the initiator's kernel: packet loss during
/// every rekey that strongSwan initiated). Either side may be the initiator.
#[test]
fn rekey_responder_switches_outbound_after_old_sa_deleted() {
    for who in [0usize, 1] {
        let mut net = pair(320 + who as u64, |_, _| {});
        net.nodes[0].engine.connect("c", net.now).unwrap();
        net.settle();
        let old = net.nodes[who].kernel.values().next().unwrap().clone();
        net.nodes[who].engine.rekey_child(old.spi_in, net.now).unwrap();
        net.settle();
        net.assert_children_match(0, 1);
        let resp = 1 - who;
        let new = installs(&net.nodes[resp]).pop().unwrap();
        assert_eq!(new.replaces, Some(old.spi_out));
        assert!(new.defer_outbound, "responder must not send on the new SA at once");
        assert_eq!(activations(&net.nodes[resp]), vec![new.spi_in]);
        let ini = installs(&net.nodes[who]).pop().unwrap();
        assert!(!ini.defer_outbound, "the initiator may send at once: the responder has the inbound SA");
        // The activation came with the old SA's removal (the peer's Delete
        // for it), just before it: in between, the kernel would have no
        // outbound SA for the policies (scenario 54 saw an ACQUIRE there).
        let pos = |n: &Node, f: &dyn Fn(&Action) -> bool| n.actions.iter().position(f).unwrap();
        let act = pos(&net.nodes[resp], &|a| matches!(a, Action::ActivateOutbound { .. }));
        let del = pos(&net.nodes[resp], &|a| matches!(a, Action::DeleteChildSa(d) if d.spi_out == old.spi_in));
        assert_eq!(act + 1, del, "{:?}", &net.nodes[resp].actions[act..=del]);
    }
}

/// If the initiator's Delete of the old SA never arrives, the responder
/// switches after `outbound_switch_timeout` anyway.
#[test]
fn rekey_responder_switches_outbound_after_timeout() {
    let mut net = pair(330, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let old = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.rekey_child(old, net.now).unwrap();
    let far = net.now + std::time::Duration::from_secs(60);
    // Until the responder has installed the new SA and queued its answer;
    // everything sent after that (the initiator's Delete) is lost.
    while net.nodes[1].kernel.len() < 2 {
        assert!(net.step(far));
    }
    net.loss = 1.0;
    let t0 = net.now;
    net.run_for(std::time::Duration::from_secs(9));
    assert_eq!(net.nodes[0].kernel.len(), 2, "the initiator installed the new SA");
    assert!(activations(&net.nodes[1]).is_empty(), "switched before the timeout");
    net.run_for(std::time::Duration::from_secs(2));
    let new = installs(&net.nodes[1]).pop().unwrap();
    assert_eq!(activations(&net.nodes[1]), vec![new.spi_in], "not switched {:?} after the response", net.now - t0);
}

/// ESP for a Child SA we are creating (strongSwan and libreswan answer our
/// rekey and their XFRM sends on the new SA at once, before the answer
/// reaches us) or have just installed (the module's event was queued before
/// the install) is no sign of a failover: no INVALID_SPI. We used to send
/// one, protected, for the brand-new SA, and a peer that acts on it (as we
/// do) deletes that SA. ESP for an SPI we never chose still gets it.
#[test]
fn spi_miss_for_our_new_child_sa_sends_no_invalid_spi() {
    let mut net = pair(340, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    net.settle();
    let miss = |spi| SpiMiss { local: ip("192.0.2.1"), remote: ip("198.51.100.1"), spi, udp: None };

    // In flight: the responder installed the new SA, its answer is queued
    // (step() delivers one datagram after pumping, so check between).
    let old = *net.nodes[0].kernel.keys().next().unwrap();
    net.nodes[0].engine.rekey_child(old, net.now).unwrap();
    let far = net.now + std::time::Duration::from_secs(60);
    loop {
        net.pump();
        if net.nodes[1].kernel.len() == 2 {
            break;
        }
        assert!(net.step(far));
    }
    let new_in = installs(&net.nodes[1]).pop().unwrap().spi_out;
    assert!(!net.nodes[0].kernel.contains_key(&new_in), "the answer must not have arrived yet");
    net.nodes[0].engine.spi_miss(miss(new_in), net.now);
    net.settle();
    net.assert_children_match(0, 1);
    assert_eq!(net.nodes[0].kernel.keys().copied().collect::<Vec<_>>(), vec![new_in], "the new SA survives");
    assert!(net.nodes[1].child_deletes().iter().all(|(_, r)| *r == Reason::Rekeyed), "{:?}", net.nodes[1].child_deletes());

    // Installed an instant ago (the event was queued before the install):
    // nothing is sent at all.
    let mut net = pair(341, |_, _| {});
    net.nodes[0].engine.connect("c", net.now).unwrap();
    let far = net.now + std::time::Duration::from_secs(60);
    loop {
        net.pump();
        if !net.nodes[0].kernel.is_empty() {
            break;
        }
        assert!(net.step(far));
    }
    let fresh = *net.nodes[0].kernel.keys().next().unwrap();
    let sent = net.nodes[0].sent.len();
    net.nodes[0].engine.spi_miss(miss(fresh), net.now);
    net.settle();
    assert_eq!(net.nodes[0].sent.len(), sent, "INVALID_SPI sent for our own SA installed just now");
    net.assert_children_match(0, 1);

    // Control: an SPI we never chose gets the (protected) INVALID_SPI.
    net.nodes[0].engine.spi_miss(miss(0x0bad_5e1f), net.now);
    net.settle();
    assert_eq!(net.nodes[0].sent.len(), sent + 1);
    net.assert_children_match(0, 1);
}
