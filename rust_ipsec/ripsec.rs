// SPDX-License-Identifier: GPL-2.0
//! rust_ipsec: IPsec ESP for Linux high-availability clusters.
//!
//! This crate is the module's thin kernel edge. Protocol logic lives in the
//! `no_std` crate `ripsec_esp`, shared with the host tests; registrations the
//! 6.12 `kernel` crate has no abstraction for (per-netns state, generic netlink,
//! module parameters) live in `glue.c` behind `glue.h`.

use kernel::{c_str, prelude::*};

#[path = "abi.rs"]
mod abi;
mod control;
mod datapath;
mod events;
mod ffi;
mod fpu;
mod kaead;
mod lock;
mod netns;
mod nlmsg;
mod selftest;
mod tables;

/// Module version reported over generic netlink (`ripsec stats`).
pub(crate) const VERSION: &CStr = c_str!("0.1.0");

module! {
    type: RustIpsec,
    name: "rust_ipsec",
    author: "rust_ipsec developers",
    description: "IPsec ESP datapath for high-availability clusters",
    license: "GPL",
}

struct RustIpsec;

impl kernel::Module for RustIpsec {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        if let Err(failure) = selftest::run() {
            pr_err!(
                "crypto self-test failed ({}); refusing to load\n",
                failure
            );
            return Err(EINVAL);
        }
        pr_info!("crypto self-tests passed; new SAs use {}\n", selftest::backend());
        netns::check_abi()?;
        // SAFETY: called once per successful init; `Drop` undoes it exactly once.
        let err = unsafe { ffi::ripsec_glue_register() };
        if err != 0 {
            pr_err!("registration failed: {}\n", err);
            return Err(Error::from_errno(err));
        }
        pr_info!("version {} loaded\n", VERSION);
        Ok(RustIpsec)
    }
}

impl Drop for RustIpsec {
    fn drop(&mut self) {
        // SAFETY: `init` registered successfully (a `RustIpsec` exists only then);
        // this is the single matching unregister.
        unsafe { ffi::ripsec_glue_unregister() };
        pr_info!("unloaded\n");
    }
}
