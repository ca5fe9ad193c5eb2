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
        // The activation came with the old SA's removal, not before it.
        let pos = |n: &Node, f: &dyn Fn(&Action) -> bool| n.actions.iter().position(f).unwrap();
        let act = pos(&net.nodes[resp], &|a| matches!(a, Action::ActivateOutbound { .. }));
        let del = pos(&net.nodes[resp], &|a| matches!(a, Action::DeleteChildSa(d) if d.spi_out == old.spi_in));
        assert!(act > del);
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
