// SPDX-License-Identifier: GPL-2.0
//! The `rust_ipsec` generic netlink ABI (`uapi/rust_ipsec.h`) as Rust constants,
//! shared by the module and `ripsec` (which includes this file by path). A host
//! test in `ripsec` parses the header and checks every value here.
#![allow(dead_code)]

pub(crate) const GENL_NAME: &str = "rust_ipsec";
pub(crate) const GENL_VERSION: u8 = 1;
pub(crate) const MCGRP_EVENTS: &str = "events";

pub(crate) const CMD_GET_STATUS: u8 = 1;
pub(crate) const CMD_SA_ADD: u8 = 2;
pub(crate) const CMD_SA_DEL: u8 = 3;
pub(crate) const CMD_SA_GET: u8 = 4;
pub(crate) const CMD_SA_FLUSH: u8 = 5;
pub(crate) const CMD_POLICY_ADD: u8 = 6;
pub(crate) const CMD_POLICY_DEL: u8 = 7;
pub(crate) const CMD_POLICY_GET: u8 = 8;
pub(crate) const CMD_POLICY_FLUSH: u8 = 9;
pub(crate) const CMD_EV_ACQUIRE: u8 = 10;
pub(crate) const CMD_EV_SPI_MISS: u8 = 11;
pub(crate) const CMD_EV_EXPIRE: u8 = 12;
pub(crate) const CMD_SA_UPDATE: u8 = 13;
/// Every constant above with its C name, for the header check.
pub(crate) const C_CMDS: &[(&str, u8)] = &[
    ("RIPSEC_CMD_GET_STATUS", CMD_GET_STATUS),
    ("RIPSEC_CMD_SA_ADD", CMD_SA_ADD),
    ("RIPSEC_CMD_SA_DEL", CMD_SA_DEL),
    ("RIPSEC_CMD_SA_GET", CMD_SA_GET),
    ("RIPSEC_CMD_SA_FLUSH", CMD_SA_FLUSH),
    ("RIPSEC_CMD_POLICY_ADD", CMD_POLICY_ADD),
    ("RIPSEC_CMD_POLICY_DEL", CMD_POLICY_DEL),
    ("RIPSEC_CMD_POLICY_GET", CMD_POLICY_GET),
    ("RIPSEC_CMD_POLICY_FLUSH", CMD_POLICY_FLUSH),
    ("RIPSEC_CMD_EV_ACQUIRE", CMD_EV_ACQUIRE),
    ("RIPSEC_CMD_EV_SPI_MISS", CMD_EV_SPI_MISS),
    ("RIPSEC_CMD_EV_EXPIRE", CMD_EV_EXPIRE),
    ("RIPSEC_CMD_SA_UPDATE", CMD_SA_UPDATE),
];

pub(crate) const A_PAD: u16 = 1;
pub(crate) const A_VERSION: u16 = 2;
pub(crate) const A_BACKEND: u16 = 3;
pub(crate) const A_NETNS_COOKIE: u16 = 4;
pub(crate) const A_COUNTERS: u16 = 5;
pub(crate) const A_SPI: u16 = 6;
pub(crate) const A_DIR: u16 = 7;
pub(crate) const A_SRC: u16 = 8;
pub(crate) const A_DST: u16 = 9;
pub(crate) const A_MODE: u16 = 10;
pub(crate) const A_ALG: u16 = 11;
pub(crate) const A_KEY: u16 = 12;
pub(crate) const A_ENCAP_SPORT: u16 = 13;
pub(crate) const A_ENCAP_DPORT: u16 = 14;
pub(crate) const A_ESN: u16 = 15;
pub(crate) const A_REPLAY_WINDOW: u16 = 16;
pub(crate) const A_REQID: u16 = 17;
pub(crate) const A_OWNER: u16 = 18;
pub(crate) const A_TFC_PAD: u16 = 19;
pub(crate) const A_LIFE_SOFT_BYTES: u16 = 20;
pub(crate) const A_LIFE_HARD_BYTES: u16 = 21;
pub(crate) const A_LIFE_SOFT_PACKETS: u16 = 22;
pub(crate) const A_LIFE_HARD_PACKETS: u16 = 23;
pub(crate) const A_PEER: u16 = 24;
pub(crate) const A_FLUSHED: u16 = 25;
pub(crate) const A_STATS: u16 = 26;
pub(crate) const A_POLICY_ID: u16 = 27;
pub(crate) const A_PRIORITY: u16 = 28;
pub(crate) const A_ACTION: u16 = 29;
pub(crate) const A_SEL_SRC: u16 = 30;
pub(crate) const A_SEL_SRC_PLEN: u16 = 31;
pub(crate) const A_SEL_DST: u16 = 32;
pub(crate) const A_SEL_DST_PLEN: u16 = 33;
pub(crate) const A_SEL_PROTO: u16 = 34;
pub(crate) const A_SEL_SPORT_LO: u16 = 35;
pub(crate) const A_SEL_SPORT_HI: u16 = 36;
pub(crate) const A_SEL_DPORT_LO: u16 = 37;
pub(crate) const A_SEL_DPORT_HI: u16 = 38;
pub(crate) const A_TMPL_TUN_SRC: u16 = 39;
pub(crate) const A_TMPL_TUN_DST: u16 = 40;
pub(crate) const A_MISS_COUNT: u16 = 41;
pub(crate) const A_HARD: u16 = 42;
pub(crate) const A_LIFE_SOFT_SECS: u16 = 43;
pub(crate) const A_LIFE_HARD_SECS: u16 = 44;
/// Every constant above with its C name, for the header check.
pub(crate) const C_ATTRS: &[(&str, u16)] = &[
    ("RIPSEC_A_PAD", A_PAD),
    ("RIPSEC_A_VERSION", A_VERSION),
    ("RIPSEC_A_BACKEND", A_BACKEND),
    ("RIPSEC_A_NETNS_COOKIE", A_NETNS_COOKIE),
    ("RIPSEC_A_COUNTERS", A_COUNTERS),
    ("RIPSEC_A_SPI", A_SPI),
    ("RIPSEC_A_DIR", A_DIR),
    ("RIPSEC_A_SRC", A_SRC),
    ("RIPSEC_A_DST", A_DST),
    ("RIPSEC_A_MODE", A_MODE),
    ("RIPSEC_A_ALG", A_ALG),
    ("RIPSEC_A_KEY", A_KEY),
    ("RIPSEC_A_ENCAP_SPORT", A_ENCAP_SPORT),
    ("RIPSEC_A_ENCAP_DPORT", A_ENCAP_DPORT),
    ("RIPSEC_A_ESN", A_ESN),
    ("RIPSEC_A_REPLAY_WINDOW", A_REPLAY_WINDOW),
    ("RIPSEC_A_REQID", A_REQID),
    ("RIPSEC_A_OWNER", A_OWNER),
    ("RIPSEC_A_TFC_PAD", A_TFC_PAD),
    ("RIPSEC_A_LIFE_SOFT_BYTES", A_LIFE_SOFT_BYTES),
    ("RIPSEC_A_LIFE_HARD_BYTES", A_LIFE_HARD_BYTES),
    ("RIPSEC_A_LIFE_SOFT_PACKETS", A_LIFE_SOFT_PACKETS),
    ("RIPSEC_A_LIFE_HARD_PACKETS", A_LIFE_HARD_PACKETS),
    ("RIPSEC_A_PEER", A_PEER),
    ("RIPSEC_A_FLUSHED", A_FLUSHED),
    ("RIPSEC_A_STATS", A_STATS),
    ("RIPSEC_A_POLICY_ID", A_POLICY_ID),
    ("RIPSEC_A_PRIORITY", A_PRIORITY),
    ("RIPSEC_A_ACTION", A_ACTION),
    ("RIPSEC_A_SEL_SRC", A_SEL_SRC),
    ("RIPSEC_A_SEL_SRC_PLEN", A_SEL_SRC_PLEN),
    ("RIPSEC_A_SEL_DST", A_SEL_DST),
    ("RIPSEC_A_SEL_DST_PLEN", A_SEL_DST_PLEN),
    ("RIPSEC_A_SEL_PROTO", A_SEL_PROTO),
    ("RIPSEC_A_SEL_SPORT_LO", A_SEL_SPORT_LO),
    ("RIPSEC_A_SEL_SPORT_HI", A_SEL_SPORT_HI),
    ("RIPSEC_A_SEL_DPORT_LO", A_SEL_DPORT_LO),
    ("RIPSEC_A_SEL_DPORT_HI", A_SEL_DPORT_HI),
    ("RIPSEC_A_TMPL_TUN_SRC", A_TMPL_TUN_SRC),
    ("RIPSEC_A_TMPL_TUN_DST", A_TMPL_TUN_DST),
    ("RIPSEC_A_MISS_COUNT", A_MISS_COUNT),
    ("RIPSEC_A_HARD", A_HARD),
    ("RIPSEC_A_LIFE_SOFT_SECS", A_LIFE_SOFT_SECS),
    ("RIPSEC_A_LIFE_HARD_SECS", A_LIFE_HARD_SECS),
];


pub(crate) const A_MAX: u16 = 44;

pub(crate) const DIR_IN: u8 = 0;
pub(crate) const DIR_OUT: u8 = 1;
pub(crate) const DIR_FWD: u8 = 2;

pub(crate) const MODE_TRANSPORT: u8 = 0;
pub(crate) const MODE_TUNNEL: u8 = 1;

pub(crate) const ALG_UNSPEC: u8 = 0;
pub(crate) const ALG_AES128_GCM16: u8 = 1;
pub(crate) const ALG_AES256_GCM16: u8 = 2;
pub(crate) const ALG_CHACHA20_POLY1305: u8 = 3;

pub(crate) const ACTION_BYPASS: u8 = 0;
pub(crate) const ACTION_DISCARD: u8 = 1;
pub(crate) const ACTION_PROTECT: u8 = 2;

pub(crate) const SA_STAT_PACKETS: u8 = 0;
pub(crate) const SA_STAT_BYTES: u8 = 1;
pub(crate) const SA_STAT_AUTH_FAIL: u8 = 2;
pub(crate) const SA_STAT_REPLAY: u8 = 3;
pub(crate) const SA_STAT_TOO_OLD: u8 = 4;
pub(crate) const SA_STAT_SEQ: u8 = 5;
pub(crate) const SA_STAT_COUNT: usize = 6;

/// `enum ripsec_counter` names, lower case, in order (attribute type = index + 1).
pub(crate) const COUNTERS: &[&str] = &[
    "nl_requests",
    "in_packets",
    "in_bytes",
    "out_packets",
    "out_bytes",
    "in_no_sa",
    "in_auth_fail",
    "in_replay",
    "in_too_old",
    "in_malformed",
    "in_policy_drop",
    "out_no_sa",
    "out_seq_exhausted",
    "out_errors",
    "events_dropped",
    "acquires",
    "spi_miss_events",
    "expires",
    "out_policy_drop",
    "in_held",
    "in_held_received",
    "in_held_dropped",
];
