#!/bin/bash
# Child SA and IKE SA rekeys under traffic between ripsec and strongswan, driven
# by ripsec (its lifetimes), after a baseline without rekeys; each side initiates the IKE SA
# once, with and without PFS: see tests/vm/ike-rekey.sh.
PEER=strongswan REKEYER=ripsec
. "$RIPSEC_ROOT/tests/vm/ike-rekey.sh"
