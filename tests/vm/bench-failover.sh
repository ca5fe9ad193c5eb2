#!/bin/bash
# Failover recovery benchmark (tests/vm/run.sh bench-failover): repeated
# crash failovers node1 <-> node2 (daemon SIGKILLed, module state flushed,
# package address moved), recovery = address added on the adoptive node ->
# first ping reply (100 ms ping) through a new SA; also from the adoptive
# node's first SPI miss to that reply (the IPsec part alone). Two paths:
#   initial_contact: the adoptive node initiates with INITIAL_CONTACT;
#   hint: it only sends the INVALID_SPI hint (initiate_on_spi_miss = false);
#         the client's liveness check (0.3 s x1.5, 3 tries) finds the old
#         peer dead and the next packet negotiates.
# Prints name=value lines. BENCH_FAILOVERS (default 6) per path.
. "$RIPSEC_ROOT/tests/vm/lib.sh"
. "$RIPSEC_ROOT/tests/vm/topology.sh"
. "$RIPSEC_ROOT/tests/vm/cluster.sh"
SCEN=bench-failover
N=${BENCH_FAILOVERS:-6}
CL_MEASURE_MISS=1
CL_BYPASS_ON_FAIL=0   # keep each cycle short: no protect policy covers the heartbeat here
trap 'cl_traffic_stop; cl_down' EXIT

# run_path NAME: N failovers with the current CL_INITIATE; prints the figures.
run_path() {
  local name=$1 from=node1 to=node2 times=() miss=() fails=0 i tmp med p95
  cl_up || { not_ok "$name: cluster up"; return; }
  check "$name: first ping triggers IKE" cl_ping_until 30
  cl_traffic_start
  for i in $(seq "$N"); do
    wait_for 10 cl_one_pair client
    sleep 0.5
    cl_crash_failover $from $to
    if [ -n "$CL_REC_MS" ]; then times+=("$CL_REC_MS"); else fails=$((fails + 1)); fi
    [ -n "$CL_MISS_MS" ] && miss+=("$CL_MISS_MS")
    echo "# $name failover $i $from -> $to: ${CL_REC_MS:-none} ms (from the first ESP at $to: ${CL_MISS_MS:-?} ms)"
    tmp=$from; from=$to; to=$tmp
  done
  cl_traffic_stop
  read -r med p95 <<< "$(printf '%s\n' "${times[@]}" | stats_ms)"
  echo "failover_${name}_median_ms=$med"
  echo "failover_${name}_p95_ms=$p95"
  echo "failover_${name}_runs=${#times[@]}"
  # Without the address announcement (gratuitous ARP, slow to leave a loaded
  # TCG guest): from the adoptive node's first SPI miss to the first reply.
  read -r med p95 <<< "$(printf '%s\n' "${miss[@]}" | stats_ms)"
  echo "failover_${name}_from_spi_miss_median_ms=$med"
  check_eq "$name: every failover recovered" 0 "$fails"
  cl_down
}

CL_INITIATE=true run_path initial_contact
CL_INITIATE=false run_path hint
