#!/bin/bash
# The cluster topology: LAN reachability, heartbeat link, package address moves
# between nodes and between interfaces of one node, and the module in each namespace.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"

load_module
topo_up
pkg_place node1 eth0

check "client reaches node1 over the LAN (IPv4)" nsx client ping -c1 -W2 198.51.100.1
check "client reaches node2 over the LAN (IPv6)" nsx client ping -6 -c1 -W2 2001:db8:1::2
check "node1 reaches node2 over the heartbeat link" nsx node1 ping -c1 -W2 192.0.2.2
check "heartbeat link is not on the LAN" nsx client sh -c '! ping -c1 -W1 192.0.2.2'
check "client reaches the package address on node1" nsx client ping -c1 -W2 "$PKG4"
check "client reaches the IPv6 package address on node1" nsx client ping -6 -c1 -W2 "$PKG6"
check_eq "client's ARP entry for the package is node1 eth0" "$(mac_of node1 eth0)" "$(client_lladdr "$PKG4")"

pkg_place node2 eth0
check_eq "package moved to node2" "node2 eth0" "$(pkg_where)"
check "client reaches the package on node2 (IPv4)" nsx client ping -c1 -W2 "$PKG4"
check_eq "client now sends package traffic to node2 eth0" "$(mac_of node2 eth0)" "$(client_lladdr "$PKG4")"
for _ in $(seq 20); do [ "$(client_lladdr "$PKG6")" = "$(mac_of node2 eth0)" ] && break; sleep 0.1; done
check_eq "node2's unsolicited NA moved the client's IPv6 neighbour entry, before any IPv6 traffic" "$(mac_of node2 eth0)" "$(client_lladdr "$PKG6")"
check "client reaches the package on node2 (IPv6)" nsx client ping -6 -c1 -W2 "$PKG6"
check_eq "client's IPv6 neighbour for the package is node2 eth0" "$(mac_of node2 eth0)" "$(client_lladdr "$PKG6")"

pkg_place node2 eth1
check_eq "package moved to node2's standby interface" "node2 eth1" "$(pkg_where)"
check "client reaches the package on node2 eth1" nsx client ping -c1 -W2 "$PKG4"
check_eq "client now sends package traffic to node2 eth1" "$(mac_of node2 eth1)" "$(client_lladdr "$PKG4")"

pkg_place node1 eth0
check "package back on node1" nsx client ping -c1 -W2 "$PKG4"

for ns in client node1 node2 sw; do
  check "rust_ipsec answers in namespace $ns" nsx "$ns" "$RIPSEC" stats
done
topo_down
