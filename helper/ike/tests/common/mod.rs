//! Simulated network for in-process engines: a fake clock, a datagram
//! queue with loss / duplication / reordering knobs, an optional NAT in
//! front of one node, and a mock kernel per node that applies the
//! InstallChildSa / DeleteChildSa actions.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ripsec_ike::*;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn fqdn(s: &str) -> Identity {
    Identity::Fqdn(s.to_string())
}

/// A connection with a fast retransmit schedule for tests.
pub fn conn(name: &str, local: &str, remotes: &[&str], lid: Identity, rid: Identity, psk: &str) -> Connection {
    let mut c = Connection::new(name, ip(local), remotes.iter().map(|r| ip(r)).collect(), lid, rid, SecretBytes::from(psk));
    c.retransmit = Retransmit { timeout: Duration::from_secs(1), base: 2.0, tries: 3 };
    c.hint_retransmit = Retransmit { timeout: Duration::from_millis(500), base: 1.0, tries: 2 };
    c
}

/// A connection to one peer address for one pair of host selectors, FQDN
/// identities and a shared test PSK: several of them share one peer.
pub fn host_conn(name: &str, local: &str, remote: &str, lid: &str, rid: &str, lts: &str, rts: &str) -> Connection {
    let mut c = conn(name, local, &[remote], fqdn(lid), fqdn(rid), "psk-123");
    c.local_ts = vec![TrafficSelector::host(ip(lts))];
    c.remote_ts = vec![TrafficSelector::host(ip(rts))];
    c
}

pub struct Node {
    pub name: String,
    pub ip: IpAddr,
    pub engine: Engine<ChaCha20Rng>,
    pub up: bool,
    /// Mock kernel: inbound SPI → the install action.
    pub kernel: BTreeMap<u32, InstallChildSa>,
    /// Outbound SPIs whose SA is installed (deferred ones only once activated).
    pub outbound: BTreeSet<u32>,
    pub actions: Vec<Action>,
    pub sent: Vec<Transmit>,
}

impl Node {
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.actions.iter().filter_map(|a| match a {
            Action::Event(e) => Some(e),
            _ => None,
        })
    }

    pub fn downs(&self) -> Vec<(IkeSaId, Reason)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::IkeSaDown { ike, reason, .. } => Some((*ike, *reason)),
                _ => None,
            })
            .collect()
    }

    pub fn child_deletes(&self) -> Vec<(u32, Reason)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::DeleteChildSa(d) => Some((d.spi_in, d.reason)),
                _ => None,
            })
            .collect()
    }

    pub fn established(&self, now: Instant) -> Vec<IkeSaStatus> {
        self.engine.status(now).ike_sas.into_iter().filter(|s| s.state == IkeSaState::Established).collect()
    }
}

pub struct Net {
    pub now: Instant,
    pub start: Instant,
    pub nodes: Vec<Node>,
    queue: VecDeque<Transmit>,
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    rng: ChaCha20Rng,
    /// NAT: packets from `inside` leave as `outside` with ports mapped.
    pub nat: Option<(IpAddr, IpAddr)>,
    pub delivered: usize,
    /// (node, outbound SPI) of rekeyed Child SAs a node started sending on
    /// before the peer had installed the matching inbound SA: ESP that the
    /// peer's kernel would drop.
    pub early_outbound: Vec<(usize, u32)>,
    /// (node, outbound SPI) of rekeyed Child SAs whose outbound SA was
    /// removed while no other outbound SA for the same selectors was active.
    pub outbound_gaps: Vec<(usize, u32)>,
    /// This node sends IKE after IKE_SA_INIT from port 4500 with the non-ESP
    /// marker although no NAT is in the way, as strongSwan does with MOBIKE;
    /// its engine itself keeps using port 500 (translated both ways).
    pub floats: Option<usize>,
}

const PORT_MAP: [(u16, u16); 2] = [(500, 31500), (4500, 34500)];

impl Net {
    pub fn new(seed: u64) -> Self {
        let now = Instant::now();
        Net {
            now,
            start: now,
            nodes: Vec::new(),
            queue: VecDeque::new(),
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            rng: ChaCha20Rng::seed_from_u64(seed),
            nat: None,
            delivered: 0,
            early_outbound: Vec::new(),
            outbound_gaps: Vec::new(),
            floats: None,
        }
    }

    pub fn add(&mut self, name: &str, addr: &str, conns: Vec<Connection>) -> usize {
        self.add_cfg(name, addr, Config { connections: conns, ..Config::default() })
    }

    pub fn add_cfg(&mut self, name: &str, addr: &str, cfg: Config) -> usize {
        let seed = self.rng.next_u64();
        let engine = Engine::new(cfg, ChaCha20Rng::seed_from_u64(seed)).unwrap();
        self.nodes.push(Node {
            name: name.into(),
            ip: ip(addr),
            engine,
            up: true,
            kernel: BTreeMap::new(),
            outbound: BTreeSet::new(),
            actions: Vec::new(),
            sent: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u32() as f64 / u32::MAX as f64) < p
    }

    /// Collect transmits and actions from all nodes.
    pub fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].engine.poll_transmit() {
                if !self.nodes[i].up {
                    continue;
                }
                self.nodes[i].sent.push(t.clone());
                if self.chance(self.loss) {
                    continue;
                }
                if self.chance(self.dup) {
                    self.queue.push_back(t.clone());
                }
                self.queue.push_back(t);
            }
            while let Some(a) = self.nodes[i].engine.poll_action() {
                let activated = match &a {
                    Action::InstallChildSa(c) if !c.defer_outbound => Some((c.spi_out, c.replaces.is_some())),
                    Action::ActivateOutbound { spi_out, .. } => Some((*spi_out, true)),
                    _ => None,
                };
                if let Some((spi_out, rekey)) = activated {
                    let peer_has_it = self.nodes.iter().enumerate().any(|(j, p)| j != i && p.kernel.contains_key(&spi_out));
                    if rekey && !peer_has_it {
                        self.early_outbound.push((i, spi_out));
                    }
                    self.nodes[i].outbound.insert(spi_out);
                }
                let n = &mut self.nodes[i];
                match &a {
                    Action::InstallChildSa(c) => {
                        n.kernel.insert(c.spi_in, (**c).clone());
                    }
                    Action::DeleteChildSa(d) => {
                        let old = n.kernel.remove(&d.spi_in);
                        let was_active = n.outbound.remove(&d.spi_out);
                        // Removing the outbound SA that carries a rekeyed
                        // Child SA's traffic before its successor's is in
                        // place leaves the policy without one: a kernel
                        // drops (and ACQUIREs) the packets in between.
                        if let (Some(old), true, Reason::Rekeyed) = (old, was_active, d.reason) {
                            let covered = n.kernel.values().any(|k| {
                                k.ts_local == old.ts_local && k.ts_remote == old.ts_remote && n.outbound.contains(&k.spi_out)
                            });
                            if !covered {
                                self.outbound_gaps.push((i, d.spi_out));
                            }
                        }
                    }
                    _ => {}
                }
                n.actions.push(a);
            }
        }
    }

    fn deliver(&mut self, mut t: Transmit) {
        if let Some(f) = self.floats {
            let me = self.nodes[f].ip;
            let init = t.bytes.get(18) == Some(&34);
            if t.local.ip() == me && t.local.port() == 500 && !init {
                t.local.set_port(4500);
                t.remote.set_port(4500);
                t.non_esp_marker = true;
            } else if t.remote.ip() == me && t.remote.port() == 4500 {
                t.local.set_port(500);
                t.remote.set_port(500);
                t.non_esp_marker = false;
            }
        }
        let (mut src, mut dst) = (t.local, t.remote);
        if let Some((inside, outside)) = self.nat {
            if src.ip() == inside {
                let p = PORT_MAP.iter().find(|m| m.0 == src.port()).map_or(src.port(), |m| m.1);
                src = SocketAddr::new(outside, p);
            }
            if dst.ip() == outside {
                let p = PORT_MAP.iter().find(|m| m.1 == dst.port()).map_or(dst.port(), |m| m.0);
                dst = SocketAddr::new(inside, p);
            }
        }
        let mut wire = Vec::new();
        if t.non_esp_marker {
            wire.extend_from_slice(&[0, 0, 0, 0]);
        }
        wire.extend_from_slice(&t.bytes);
        let now = self.now;
        if let Some(n) = self.nodes.iter_mut().find(|n| n.ip == dst.ip() && n.up) {
            n.engine.handle_datagram(now, dst, src, &wire);
            self.delivered += 1;
        }
    }

    /// One step: deliver a queued datagram, else advance the clock to the
    /// next timer. Returns false when nothing is left before `deadline`.
    pub fn step(&mut self, deadline: Instant) -> bool {
        self.pump();
        if !self.queue.is_empty() {
            let idx = if self.queue.len() > 1 && self.chance(self.reorder) {
                (self.rng.next_u32() as usize) % self.queue.len()
            } else {
                0
            };
            if let Some(t) = self.queue.remove(idx) {
                self.deliver(t);
            }
            return true;
        }
        let next = self.nodes.iter().filter(|n| n.up).filter_map(|n| n.engine.poll_timeout()).min();
        match next {
            Some(t) if t <= deadline => {
                self.now = self.now.max(t);
                let now = self.now;
                for n in self.nodes.iter_mut().filter(|n| n.up) {
                    if n.engine.poll_timeout().is_some_and(|x| x <= now) {
                        n.engine.handle_timeout(now);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Run until quiet or `d` of simulated time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        let mut steps = 0;
        while self.step(deadline) {
            steps += 1;
            assert!(steps < 100_000, "simulation does not settle");
        }
        self.pump();
        if self.now < deadline && self.queue.is_empty() {
            self.now = deadline;
        }
    }

    /// Run until no datagram is in flight (timers within 60 s still fire).
    pub fn settle(&mut self) {
        self.run_for(Duration::from_secs(60));
    }

    pub fn advance(&mut self, d: Duration) {
        self.run_for(d);
    }

    /// Every Child SA of `a` has its twin in `b` with swapped SPIs and keys.
    pub fn assert_children_match(&self, a: usize, b: usize) {
        let (ka, kb) = (&self.nodes[a].kernel, &self.nodes[b].kernel);
        assert_eq!(ka.len(), kb.len(), "child SA count differs: {:?} vs {:?}", ka.keys(), kb.keys());
        for (spi_in, x) in ka {
            let y = kb.get(&x.spi_out).unwrap_or_else(|| panic!("no twin for outbound SPI {:#x}", x.spi_out));
            assert_eq!(y.spi_out, *spi_in);
            assert_eq!(x.key_out, y.key_in, "initiator out key == responder in key");
            assert_eq!(x.key_in, y.key_out);
            assert_ne!(x.key_in, x.key_out);
            assert_eq!(x.alg, y.alg);
            assert_eq!(x.esn, y.esn);
            assert_eq!(x.mode, y.mode);
            assert_eq!(x.key_in.len(), x.alg.keymat_len());
            assert_eq!(x.ts_local, y.ts_remote);
            assert_eq!(x.ts_remote, y.ts_local);
            assert!(self.nodes[a].outbound.contains(&x.spi_out), "outbound SA {:#x} never activated", x.spi_out);
            assert!(self.nodes[b].outbound.contains(&y.spi_out), "outbound SA {:#x} never activated", y.spi_out);
        }
        assert!(self.early_outbound.is_empty(), "sent on rekeyed SAs the peer lacked: {:?}", self.early_outbound);
        assert!(self.outbound_gaps.is_empty(), "no outbound SA between a rekeyed SA's removal and its successor's: {:?}", self.outbound_gaps);
    }
}

/// Client "client" at 192.0.2.1 and server "server" at 198.51.100.1 with a
/// shared connection pair named "c".
pub fn pair(seed: u64, tweak: impl Fn(&mut Connection, &mut Connection)) -> Net {
    let mut a = conn("c", "192.0.2.1", &["198.51.100.1"], fqdn("client"), fqdn("server"), "psk-123");
    let mut b = conn("c", "198.51.100.1", &["192.0.2.1"], fqdn("server"), fqdn("client"), "psk-123");
    tweak(&mut a, &mut b);
    let mut net = Net::new(seed);
    net.add("client", "192.0.2.1", vec![a]);
    net.add("server", "198.51.100.1", vec![b]);
    net
}
