// SPDX-License-Identifier: GPL-2.0
//! Declarations of the C glue (`glue.h`) that Rust calls.

extern "C" {
    /// Registers the per-netns subsystem and the generic netlink family.
    pub(crate) fn ripsec_glue_register() -> i32;
    /// Undoes `ripsec_glue_register`.
    pub(crate) fn ripsec_glue_unregister();
    /// Non-zero when the `selftest_fail` module parameter is set.
    pub(crate) fn ripsec_glue_selftest_fail() -> i32;
    /// Number of counters in the uapi header (`__RIPSEC_CTR_MAX`).
    pub(crate) fn ripsec_glue_counter_max() -> u32;
}
