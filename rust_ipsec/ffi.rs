// SPDX-License-Identifier: GPL-2.0
//! Declarations of the C glue (`glue.h`) that Rust calls, and the opaque C
//! types crossing the boundary.

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        pub(crate) struct $name {
            _p: [u8; 0],
        }
    )*};
}

opaque! {
    /// `struct sk_buff`.
    SkBuff;
    /// `struct net`.
    Net;
    /// `struct sock`.
    Sock;
    /// `struct nlattr`.
    NlAttr;
    /// `struct genl_info`.
    GenlInfo;
    /// `struct netlink_callback`.
    NetlinkCallback;
    /// `spinlock_t`.
    SpinLockT;
    /// `struct crypto_aead`.
    CryptoAead;
}

pub(crate) const AEAD_AUTO: i32 = 0;
pub(crate) const AEAD_KERNEL: i32 = 1;
pub(crate) const AEAD_RUSTCRYPTO: i32 = 2;
pub(crate) const KAEAD_AES_GCM: u8 = 1;
pub(crate) const KAEAD_CHACHA20_POLY1305: u8 = 2;

/// `struct ripsec_skb_view`: offsets are from `head`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct SkbView {
    pub(crate) head: usize,
    pub(crate) end: u32,
    pub(crate) data: u32,
    pub(crate) len: u32,
    pub(crate) network: u32,
}

pub(crate) const NF_DROP: u32 = 0;
pub(crate) const NF_ACCEPT: u32 = 1;
pub(crate) const NF_STOLEN: u32 = 2;
pub(crate) const NF_INET_LOCAL_IN: u8 = 1;
pub(crate) const NF_INET_POST_ROUTING: u8 = 4;

extern "C" {
    pub(crate) fn ripsec_glue_register() -> i32;
    pub(crate) fn ripsec_glue_unregister();
    pub(crate) fn ripsec_glue_selftest_fail() -> i32;
    pub(crate) fn ripsec_glue_counter_max() -> u32;
    pub(crate) fn ripsec_glue_hooks_enable(net: *mut Net) -> i32;
    pub(crate) fn ripsec_glue_lock(lock: *mut SpinLockT);
    pub(crate) fn ripsec_glue_unlock(lock: *mut SpinLockT);
    pub(crate) fn ripsec_glue_lock_new() -> *mut SpinLockT;
    pub(crate) fn ripsec_glue_lock_free(lock: *mut SpinLockT);
    pub(crate) fn ripsec_glue_rcu_read_lock();
    pub(crate) fn ripsec_glue_rcu_read_unlock();
    pub(crate) fn ripsec_glue_synchronize_rcu();
    pub(crate) fn ripsec_glue_reap_later(net: *mut Net);
    pub(crate) fn ripsec_glue_sweep_start(net: *mut Net);
    pub(crate) fn ripsec_glue_call_on_worker(f: extern "C" fn(*mut core::ffi::c_void), arg: *mut core::ffi::c_void);
    pub(crate) fn ripsec_glue_now_ms() -> u64;
    pub(crate) fn ripsec_glue_random_u64() -> u64;

    pub(crate) fn ripsec_glue_set_err(info: *mut GenlInfo, msg: *const u8);
    pub(crate) fn ripsec_glue_reply_new(info: *mut GenlInfo, cmd: u8, hdr: *mut *mut u8) -> *mut SkBuff;
    pub(crate) fn ripsec_glue_reply_send(info: *mut GenlInfo, msg: *mut SkBuff, hdr: *mut u8) -> i32;
    pub(crate) fn ripsec_glue_dump_begin(skb: *mut SkBuff, cb: *mut NetlinkCallback, cmd: u8) -> *mut u8;
    pub(crate) fn ripsec_glue_event_new(cmd: u8, hdr: *mut *mut u8) -> *mut SkBuff;
    pub(crate) fn ripsec_glue_event_send(net: *mut Net, msg: *mut SkBuff, hdr: *mut u8) -> i32;
    pub(crate) fn ripsec_glue_msg_end(msg: *mut SkBuff, hdr: *mut u8);
    pub(crate) fn ripsec_glue_msg_cancel(msg: *mut SkBuff, hdr: *mut u8);
    pub(crate) fn ripsec_glue_msg_free(msg: *mut SkBuff);
    pub(crate) fn ripsec_glue_put(msg: *mut SkBuff, ty: u16, len: u32, data: *const u8) -> i32;
    pub(crate) fn ripsec_glue_put_u64(msg: *mut SkBuff, ty: u16, value: u64) -> i32;
    pub(crate) fn ripsec_glue_nest_start(msg: *mut SkBuff, ty: u16) -> *mut NlAttr;
    pub(crate) fn ripsec_glue_nest_end(msg: *mut SkBuff, nest: *mut NlAttr);

    pub(crate) fn ripsec_glue_fpu_call(arg: *mut core::ffi::c_void) -> i32;
    pub(crate) fn ripsec_glue_aead_mode() -> i32;
    pub(crate) fn ripsec_kaead_new(alg: u8, keymat: *const u8, keylen: u32, needs_simd: *mut i32, err: *mut i32) -> *mut CryptoAead;
    pub(crate) fn ripsec_kaead_free(tfm: *mut CryptoAead);
    pub(crate) fn ripsec_kaead_driver(tfm: *mut CryptoAead) -> *const u8;
    pub(crate) fn ripsec_kaead_simd_usable() -> i32;
    pub(crate) fn ripsec_kaead_crypt(tfm: *mut CryptoAead, start: *mut u8, assoclen: u32, textlen: u32, enc: i32) -> i32;

    pub(crate) fn ripsec_skb_view(skb: *mut SkBuff, v: *mut SkbView);
    pub(crate) fn ripsec_skb_copy(skb: *mut SkBuff, off: u32, buf: *mut u8, len: u32) -> i32;
    pub(crate) fn ripsec_skb_is_gso(skb: *mut SkBuff) -> i32;
    pub(crate) fn ripsec_skb_segment(skb: *mut SkBuff) -> *mut SkBuff;
    pub(crate) fn ripsec_skb_unlink_next(skb: *mut SkBuff) -> *mut SkBuff;
    pub(crate) fn ripsec_skb_prepare(skb: *mut SkBuff, headroom: u32, tailroom: u32) -> i32;
    pub(crate) fn ripsec_skb_transformed(skb: *mut SkBuff, family: u8) -> i32;
    pub(crate) fn ripsec_skb_lower_pmtu(skb: *mut SkBuff, overhead: u32);
    pub(crate) fn ripsec_skb_output_prepare(skb: *mut SkBuff, start: u32, len: u32);
    pub(crate) fn ripsec_skb_output(net: *mut Net, sk: *mut Sock, skb: *mut SkBuff, reroute: i32) -> i32;
    pub(crate) fn ripsec_skb_set_next(skb: *mut SkBuff, next: *mut SkBuff);
    pub(crate) fn ripsec_skb_input_transport(skb: *mut SkBuff, start: u32, len: u32);
    pub(crate) fn ripsec_skb_input_tunnel(skb: *mut SkBuff, start: u32, len: u32) -> i32;
    pub(crate) fn ripsec_skb_decapsulated(skb: *mut SkBuff) -> i32;
    pub(crate) fn ripsec_skb_hold(net: *mut Net, skb: *mut SkBuff, spi: u32) -> i32;
    pub(crate) fn ripsec_skb_hold_release(net: *mut Net, spi: u32) -> u32;
    pub(crate) fn ripsec_skb_free(skb: *mut SkBuff);
}
