/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between rust_ipsec's C glue (registrations the 6.12 Rust `kernel`
 * crate has no abstraction for) and its Rust code. Functions named ripsec_glue_*
 * are C called from Rust; ripsec_rs_* are Rust called from C.
 */
#ifndef RIPSEC_GLUE_H
#define RIPSEC_GLUE_H

#include <linux/types.h>

/* C, called from Rust. */
int ripsec_glue_register(void);
void ripsec_glue_unregister(void);
int ripsec_glue_selftest_fail(void);
u32 ripsec_glue_counter_max(void);

/* Rust, called from C. */
void *ripsec_rs_net_init(u64 netns_cookie);
void ripsec_rs_net_exit(void *state);
/* Fills counters[0..n) and returns the number of counters the module knows. */
u32 ripsec_rs_read_counters(void *state, u64 *counters, u32 n);
const char *ripsec_rs_version(void);
const char *ripsec_rs_backend(void);

#endif /* RIPSEC_GLUE_H */
