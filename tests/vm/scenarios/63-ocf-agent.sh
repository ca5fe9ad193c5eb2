#!/bin/bash
# contrib/ocf/ripsec, the Pacemaker resource agent, driven by hand in node1:
# meta-data, validate-all, start, monitor (ripsec check), a crashed daemon
# seen as not running, stop.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
trap 'cl_down' EXIT
load_module
topo_up
pkg_place node1 eth0
cl_conf node1
AGENT=$RIPSEC_ROOT/contrib/ocf/ripsec
export OCF_RESKEY_binary=$RIPSEC OCF_RESKEY_config=$CL_DIR/node1.toml OCF_RESKEY_socket=$CL_DIR/ocf.sock \
  OCF_RESKEY_pidfile=$CL_DIR/ocf.pid OCF_RESKEY_logfile=$CL_DIR/ocf.log
ocf() { nsx node1 sh "$AGENT" "$@" >/dev/null 2>&1; echo $?; }
check "meta-data is resource-agent XML" sh -c "sh '$AGENT' meta-data | python3 -c 'import sys, xml.dom.minidom as m; d = m.parseString(sys.stdin.read()); assert d.documentElement.tagName == \"resource-agent\"'"
check_eq "validate-all: 0" 0 "$(ocf validate-all)"
check_eq "validate-all with a missing configuration: 6 (OCF_ERR_CONFIGURED)" 6 "$(OCF_RESKEY_config=/nonexistent ocf validate-all)"
check_eq "monitor before start: 7 (OCF_NOT_RUNNING)" 7 "$(ocf monitor)"
check_eq "start: 0" 0 "$(ocf start)"
check_eq "monitor: 0" 0 "$(ocf monitor)"
check_eq "start again (already running): 0" 0 "$(ocf start)"
check "ripsec check through the agent's socket" nsx node1 "$RIPSEC" check --socket "$CL_DIR/ocf.sock"
kill -9 "$(cat "$CL_DIR/ocf.pid")"; sleep 0.5
check_eq "monitor after the daemon was SIGKILLed: 7 (OCF_NOT_RUNNING)" 7 "$(ocf monitor)"
nsx node1 "$RIPSEC" policy flush >/dev/null
check_eq "start after the crash: 0" 0 "$(ocf start)"
check_eq "stop: 0" 0 "$(ocf stop)"
check_eq "monitor after stop: 7" 7 "$(ocf monitor)"
check_eq "stop when stopped: 0" 0 "$(ocf stop)"
check "the daemon removed its socket" test ! -e "$CL_DIR/ocf.sock"
cp "$CL_DIR/ocf.log" "$OUT/63-ocf-agent-daemon.log" 2>/dev/null
