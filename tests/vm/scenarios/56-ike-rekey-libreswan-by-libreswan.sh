#!/bin/bash
# Child SA and IKE SA rekeys under traffic between ripsec and libreswan, driven
# by libreswan (its control command); each side initiates the IKE SA
# once, with and without PFS: see tests/vm/ike-rekey.sh.
PEER=libreswan REKEYER=peer
. "$RIPSEC_ROOT/tests/vm/ike-rekey.sh"
