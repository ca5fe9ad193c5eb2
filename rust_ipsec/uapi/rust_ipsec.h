/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * rust_ipsec generic netlink ABI.
 *
 * Family "rust_ipsec", version 1. Every command needs CAP_NET_ADMIN in the user
 * namespace that owns the caller's network namespace; all state is per network
 * namespace. Userspace (helper/ripsec/src/abi.rs) mirrors these numbers and a
 * host test checks that the two agree.
 */
#ifndef _UAPI_RUST_IPSEC_H
#define _UAPI_RUST_IPSEC_H

#define RIPSEC_GENL_NAME	"rust_ipsec"
#define RIPSEC_GENL_VERSION	1
#define RIPSEC_MCGRP_EVENTS	"events"

enum ripsec_cmd {
	RIPSEC_CMD_UNSPEC,
	RIPSEC_CMD_GET_STATUS,	/* -> VERSION, BACKEND, NETNS_COOKIE, COUNTERS */
	__RIPSEC_CMD_MAX,
};
#define RIPSEC_CMD_MAX (__RIPSEC_CMD_MAX - 1)

enum ripsec_attr {
	RIPSEC_A_UNSPEC,
	RIPSEC_A_PAD,
	RIPSEC_A_VERSION,	/* string: module version */
	RIPSEC_A_BACKEND,	/* string: active AEAD backend */
	RIPSEC_A_NETNS_COOKIE,	/* u64: identifies the namespace whose state answered */
	RIPSEC_A_COUNTERS,	/* nested: RIPSEC_CTR_* + 1 -> u64 */
	__RIPSEC_A_MAX,
};
#define RIPSEC_A_MAX (__RIPSEC_A_MAX - 1)

/* Per-namespace counters. Inside RIPSEC_A_COUNTERS the attribute type is the counter + 1. */
enum ripsec_counter {
	RIPSEC_CTR_NL_REQUESTS,		/* generic netlink requests served in this namespace */
	RIPSEC_CTR_IN_PACKETS,
	RIPSEC_CTR_IN_BYTES,
	RIPSEC_CTR_OUT_PACKETS,
	RIPSEC_CTR_OUT_BYTES,
	RIPSEC_CTR_IN_NO_SA,		/* ESP with an unknown SPI */
	RIPSEC_CTR_IN_AUTH_FAIL,
	RIPSEC_CTR_IN_REPLAY,
	RIPSEC_CTR_IN_TOO_OLD,
	RIPSEC_CTR_IN_MALFORMED,
	RIPSEC_CTR_IN_POLICY_DROP,	/* cleartext that an inbound protect policy forbids */
	RIPSEC_CTR_OUT_NO_SA,
	RIPSEC_CTR_OUT_SEQ_EXHAUSTED,
	RIPSEC_CTR_OUT_ERRORS,
	RIPSEC_CTR_EVENTS_DROPPED,
	__RIPSEC_CTR_MAX,
};
#define RIPSEC_CTR_MAX (__RIPSEC_CTR_MAX - 1)

#endif /* _UAPI_RUST_IPSEC_H */
