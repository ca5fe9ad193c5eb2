#!/bin/bash
# make demo (inside the VM): the seed's cluster with rust_ipsec loaded in every
# namespace. The failover issue turns this into the full failover timeline.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"

say() { printf '[%6.2fs] %s\n' "$(awk '{print $1}' /proc/uptime)" "$*"; }
load_module
say "rust_ipsec loaded: $(dmesg | grep -o 'rust_ipsec: crypto self-tests passed.*' | tail -1)"
topo_up
pkg_place node1 eth0
say "cluster up: client, node1, node2 on the data LAN 198.51.100.0/24; heartbeat node1<->node2 on 192.0.2.0/24"
say "package pkgA ($PKG4, $PKG6) on $(pkg_where)"
for ns in client node1 node2; do
  say "namespace $ns:"
  nsx "$ns" "$RIPSEC" stats | sed 's/^/            /' | head -4
  nsx "$ns" ip -br addr show | grep -v '^lo' | sed 's/^/            /'
done
check "client reaches pkgA on node1" nsx client ping -c1 -W2 "$PKG4"
say "failing over pkgA to node2"
pkg_place node2 eth0
check "client reaches pkgA on node2" nsx client ping -c1 -W2 "$PKG4"
say "pkgA now on $(pkg_where); failing back"
pkg_place node1 eth0
check "client reaches pkgA on node1 again" nsx client ping -c1 -W2 "$PKG4"
topo_down
