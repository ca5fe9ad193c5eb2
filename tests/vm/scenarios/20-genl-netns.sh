#!/bin/bash
# The generic netlink family is visible in every namespace, answers with that
# namespace's own state, and refuses callers without CAP_NET_ADMIN.
. "$RIPSEC_ROOT/tests/vm/lib.sh"

load_module
for ns in a b c; do ip netns add "$ns"; done
declare -A cookie
for ns in a b c; do
  if json=$(nsx "$ns" "$RIPSEC" stats --json); then
    cookie[$ns]=$(json_get "$json" .module.netns_cookie)
    ok "family answers in namespace $ns"
  else
    not_ok "family answers in namespace $ns"
  fi
done
init_cookie=$(json_get "$("$RIPSEC" stats --json)" .module.netns_cookie)
distinct=$(printf '%s\n' "${cookie[a]}" "${cookie[b]}" "${cookie[c]}" "$init_cookie" | sort -u | wc -l)
check_eq "four namespaces, four distinct states" 4 "$distinct"

# The request counter is per namespace: a's third read sees 1+3, b's second sees 2.
nsx a "$RIPSEC" stats >/dev/null; nsx a "$RIPSEC" stats >/dev/null
a3=$(json_get "$(nsx a "$RIPSEC" stats --json)" .counters.nl_requests)
b2=$(json_get "$(nsx b "$RIPSEC" stats --json)" .counters.nl_requests)
check_eq "namespace a counts its own requests" 4 "$a3"
check_eq "namespace b counts its own requests" 2 "$b2"

out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$RIPSEC" stats 2>&1); rc=$?
check_eq "unprivileged caller gets exit code 4" 4 "$rc"
case "$out" in *"permission denied"*) ok "unprivileged caller is told why";;
  *) not_ok "unprivileged caller is told why" "$out";; esac
out=$(nsx a setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$RIPSEC" stats 2>&1); rc=$?
check_eq "unprivileged caller refused inside a namespace too" 4 "$rc"

# Namespaces die with the module loaded, then the module goes: nothing may leak.
ip netns del b
check "namespace a still answers after b is gone" nsx a "$RIPSEC" stats
ip netns del a; ip netns del c
check "rmmod after namespace deletion" rmmod rust_ipsec
kmemleak_check "no leaks after namespace deletion"
