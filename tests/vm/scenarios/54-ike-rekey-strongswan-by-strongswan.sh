#!/bin/bash
# Child SA and IKE SA rekeys under traffic between ripsec and strongswan, driven
# by strongswan (its control command); each side initiates the IKE SA
# once, with and without PFS: see tests/vm/ike-rekey.sh.
PEER=strongswan REKEYER=peer
. "$RIPSEC_ROOT/tests/vm/ike-rekey.sh"
