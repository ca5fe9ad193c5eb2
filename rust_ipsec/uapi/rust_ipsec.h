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
	RIPSEC_CMD_SA_ADD,	/* SPI DIR SRC DST MODE ALG KEY [ENCAP_* ESN REPLAY_WINDOW REQID OWNER TFC_PAD LIFE_* (bytes, packets, secs)] */
	RIPSEC_CMD_SA_DEL,	/* SPI DST DIR */
	RIPSEC_CMD_SA_GET,	/* SPI DST DIR, or NLM_F_DUMP for all; keys are never returned */
	RIPSEC_CMD_SA_FLUSH,	/* all, or [PEER] / [OWNER] -> FLUSHED */
	RIPSEC_CMD_POLICY_ADD,	/* DIR ACTION SEL_* [PRIORITY] [TMPL_*] -> POLICY_ID */
	RIPSEC_CMD_POLICY_DEL,	/* POLICY_ID */
	RIPSEC_CMD_POLICY_GET,	/* NLM_F_DUMP */
	RIPSEC_CMD_POLICY_FLUSH,
	/* Multicast events on RIPSEC_MCGRP_EVENTS. */
	RIPSEC_CMD_EV_ACQUIRE,	/* POLICY_ID REQID SRC DST (flow) TMPL_* */
	RIPSEC_CMD_EV_SPI_MISS,	/* SPI SRC DST [ENCAP_SPORT ENCAP_DPORT] MISS_COUNT */
	RIPSEC_CMD_EV_EXPIRE,	/* SPI DST DIR REQID OWNER HARD */
	RIPSEC_CMD_SA_UPDATE,	/* as SA_ADD: replaces the SA with this SPI and DST as a whole */
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
	/* SAs */
	RIPSEC_A_SPI,		/* u32, host order, non-zero */
	RIPSEC_A_DIR,		/* u8: enum ripsec_dir */
	RIPSEC_A_SRC,		/* binary, 4 or 16 bytes: outer source */
	RIPSEC_A_DST,		/* binary, 4 or 16 bytes: outer destination */
	RIPSEC_A_MODE,		/* u8: enum ripsec_mode */
	RIPSEC_A_ALG,		/* u8: enum ripsec_alg */
	RIPSEC_A_KEY,		/* binary: key || 4-byte salt; write-only */
	RIPSEC_A_ENCAP_SPORT,	/* u16: ESP-in-UDP source port (both ports or neither) */
	RIPSEC_A_ENCAP_DPORT,	/* u16: ESP-in-UDP destination port */
	RIPSEC_A_ESN,		/* flag */
	RIPSEC_A_REPLAY_WINDOW,	/* u32, 0..4096 (default 64) */
	RIPSEC_A_REQID,		/* u32: ties outbound SAs to protect policies */
	RIPSEC_A_OWNER,		/* u64: IKE SA / identity tag for bulk flushes */
	RIPSEC_A_TFC_PAD,	/* u32: tunnel mode TFC padding target */
	RIPSEC_A_LIFE_SOFT_BYTES,	/* u64, 0 = none */
	RIPSEC_A_LIFE_HARD_BYTES,
	RIPSEC_A_LIFE_SOFT_PACKETS,
	RIPSEC_A_LIFE_HARD_PACKETS,
	RIPSEC_A_PEER,		/* binary: flush/select by peer address */
	RIPSEC_A_FLUSHED,	/* u32: SAs or policies removed */
	RIPSEC_A_STATS,		/* nested, reply only: RIPSEC_SA_STAT_* + 1 -> u64 */
	/* Policies */
	RIPSEC_A_POLICY_ID,	/* u32 */
	RIPSEC_A_PRIORITY,	/* u32, lower wins (default 1000) */
	RIPSEC_A_ACTION,	/* u8: enum ripsec_action */
	RIPSEC_A_SEL_SRC,	/* binary, 4 or 16 bytes */
	RIPSEC_A_SEL_SRC_PLEN,	/* u8 */
	RIPSEC_A_SEL_DST,
	RIPSEC_A_SEL_DST_PLEN,
	RIPSEC_A_SEL_PROTO,	/* u8, absent = any */
	RIPSEC_A_SEL_SPORT_LO,	/* u16 */
	RIPSEC_A_SEL_SPORT_HI,
	RIPSEC_A_SEL_DPORT_LO,
	RIPSEC_A_SEL_DPORT_HI,
	RIPSEC_A_TMPL_TUN_SRC,	/* binary: tunnel endpoints (tunnel mode templates) */
	RIPSEC_A_TMPL_TUN_DST,
	RIPSEC_A_MISS_COUNT,	/* u32: unknown-SPI packets aggregated into one event */
	RIPSEC_A_HARD,		/* flag: hard expiry */
	RIPSEC_A_LIFE_SOFT_SECS,	/* u64: seconds after the SA was added, 0 = none */
	RIPSEC_A_LIFE_HARD_SECS,
	__RIPSEC_A_MAX,
};
#define RIPSEC_A_MAX (__RIPSEC_A_MAX - 1)

enum ripsec_dir { RIPSEC_DIR_IN, RIPSEC_DIR_OUT, RIPSEC_DIR_FWD };
enum ripsec_mode { RIPSEC_MODE_TRANSPORT, RIPSEC_MODE_TUNNEL };
enum ripsec_alg { RIPSEC_ALG_UNSPEC, RIPSEC_ALG_AES128_GCM16, RIPSEC_ALG_AES256_GCM16,
		  RIPSEC_ALG_CHACHA20_POLY1305 };
enum ripsec_action { RIPSEC_ACTION_BYPASS, RIPSEC_ACTION_DISCARD, RIPSEC_ACTION_PROTECT };

/* Per-SA statistics inside RIPSEC_A_STATS (attribute type = stat + 1). */
enum ripsec_sa_stat {
	RIPSEC_SA_STAT_PACKETS,
	RIPSEC_SA_STAT_BYTES,
	RIPSEC_SA_STAT_AUTH_FAIL,
	RIPSEC_SA_STAT_REPLAY,
	RIPSEC_SA_STAT_TOO_OLD,
	RIPSEC_SA_STAT_SEQ,		/* outbound: last sequence number sent; inbound: window top */
	__RIPSEC_SA_STAT_MAX,
};

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
	RIPSEC_CTR_ACQUIRES,		/* ACQUIRE events sent */
	RIPSEC_CTR_SPI_MISS_EVENTS,	/* SPI_MISS events sent (after aggregation) */
	RIPSEC_CTR_EXPIRES,		/* EXPIRE events sent */
	RIPSEC_CTR_OUT_POLICY_DROP,	/* outbound packets a discard policy dropped */
	RIPSEC_CTR_IN_HELD,		/* ESP with an unknown SPI held briefly for its SA */
	RIPSEC_CTR_IN_HELD_RECEIVED,	/* held packets received again once their SA came */
	RIPSEC_CTR_IN_HELD_DROPPED,	/* held packets whose SA did not come in time, or evicted */
	__RIPSEC_CTR_MAX,
};
#define RIPSEC_CTR_MAX (__RIPSEC_CTR_MAX - 1)

#endif /* _UAPI_RUST_IPSEC_H */
