# The cluster of the seed's figure, in network namespaces (sourced by scenarios).
#
#             heartbeat 192.0.2.0/24, 2001:db8:2::/64 (hb0, direct link)
#        node1 ------------------------------------------ node2
#     eth0 | | eth1 (standby)                      eth0 | | eth1 (standby)
#          +-+---------------- sw: br0 ------------------+-+
#                                  |  data LAN 198.51.100.0/24, 2001:db8:1::/64
#                               client eth0
#
# Package pkgA: 198.51.100.98 and 2001:db8:1::98, relocatable between nodes and
# between the two interfaces of a node.
TOPO_NODES="node1 node2"
PKG4=198.51.100.98
PKG6=2001:db8:1::98
CLIENT4=198.51.100.10
CLIENT6=2001:db8:1::10
declare -A LAN4=([client]=198.51.100.10 [node1]=198.51.100.1 [node2]=198.51.100.2)
declare -A LAN6=([client]=2001:db8:1::10 [node1]=2001:db8:1::1 [node2]=2001:db8:1::2)
declare -A HB4=([node1]=192.0.2.1 [node2]=192.0.2.2)
declare -A HB6=([node1]=2001:db8:2::1 [node2]=2001:db8:2::2)

_ns_init() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
}

# _port NS IFACE SWPORT: a veth from NS to the LAN bridge.
_port() {
  ip link add "$2" netns "$1" type veth peer name "$3" netns sw
  ip -n sw link set "$3" master br0 up
  ip -n "$1" link set "$2" up
}

topo_up() {
  _ns_init sw
  ip -n sw link add br0 type bridge forward_delay 0
  ip -n sw link set br0 up
  _ns_init client
  _port client eth0 c0
  ip -n client addr add "${LAN4[client]}/24" dev eth0
  ip -n client addr add "${LAN6[client]}/64" dev eth0 nodad
  local n
  for n in $TOPO_NODES; do
    _ns_init "$n"
    # Two interfaces on one LAN: answer ARP only on the interface holding the address.
    # An IPv6 address added here is announced by an unsolicited neighbour
    # advertisement (override set), as cluster managers do (IPaddr2's send_ua).
    ip netns exec "$n" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv6.conf.all.ndisc_notify=1
    _port "$n" eth0 "${n}a"
    _port "$n" eth1 "${n}b"
    ip -n "$n" addr add "${LAN4[$n]}/24" dev eth0
    ip -n "$n" addr add "${LAN6[$n]}/64" dev eth0 nodad
  done
  ip link add hb0 netns node1 type veth peer name hb0 netns node2
  for n in $TOPO_NODES; do
    ip -n "$n" link set hb0 up
    ip -n "$n" addr add "${HB4[$n]}/24" dev hb0
    ip -n "$n" addr add "${HB6[$n]}/64" dev hb0 nodad
  done
}

topo_down() {
  local n
  for n in client $TOPO_NODES sw; do ip netns del "$n" 2>/dev/null; done
  return 0
}

# pkg_where: "NODE IFACE" holding the package's IPv4 address, or nothing.
pkg_where() {
  local n i
  for n in $TOPO_NODES; do
    i=$(ip -n "$n" -o -4 addr show to "$PKG4/32" | awk '{print $2}')
    [ -n "$i" ] && { echo "$n $i"; return; }
  done
}

# pkg_place NODE [IFACE]: give the package addresses to NODE (default eth0), taking
# them from wherever they are, and announce the move the way cluster managers do.
pkg_place() {
  local to=$1 dev=${2:-eth0} from
  read -r from fdev <<< "$(pkg_where)"
  if [ -n "$from" ]; then
    ip -n "$from" addr del "$PKG4/24" dev "$fdev"
    ip -n "$from" addr del "$PKG6/64" dev "$fdev" 2>/dev/null
  fi
  ip -n "$to" addr add "$PKG4/24" dev "$dev"
  # Not nodad: DAD is off in these namespaces, and the kernel sends its
  # unsolicited NA only for an address that starts out tentative.
  ip -n "$to" addr add "$PKG6/64" dev "$dev"
  # Gratuitous ARP for IPv4; for IPv6 the kernel sent an unsolicited
  # neighbour advertisement as the address came up (ndisc_notify).
  ip netns exec "$to" arping -q -U -c 1 -I "$dev" -s "$PKG4" "$PKG4" || true
}

# mac_of NS IFACE
mac_of() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

# client_lladdr ADDR: the link-layer address the client uses for ADDR.
client_lladdr() { ip -n client neigh show to "$1" | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p'; }
