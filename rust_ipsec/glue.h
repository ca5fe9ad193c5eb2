/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between rust_ipsec's C glue (registrations and sk_buff helpers the
 * 6.12 Rust `kernel` crate has no abstraction for) and its Rust code.
 * ripsec_glue_* / ripsec_skb_* are C called from Rust; ripsec_rs_* are Rust
 * called from C. Rust mirrors these prototypes in ffi.rs.
 */
#ifndef RIPSEC_GLUE_H
#define RIPSEC_GLUE_H

#include <linux/types.h>
#include <linux/spinlock_types.h>

struct sk_buff;
struct sock;
struct net;
struct nlattr;
struct genl_info;
struct netlink_callback;


/* What Rust needs to see of an skb. Offsets are from skb->head. */
struct ripsec_skb_view {
	u8 *head;
	u32 end;	/* buffer size: head..head+end is usable */
	u32 data;	/* offset of skb->data */
	u32 len;	/* skb->len */
	u32 network;	/* offset of the network header */
};

/* Module, namespaces, locks, time. */
int ripsec_glue_register(void);
void ripsec_glue_unregister(void);
int ripsec_glue_selftest_fail(void);
u32 ripsec_glue_counter_max(void);
int ripsec_glue_hooks_enable(struct net *net);
void ripsec_glue_lock(spinlock_t *lock);
void ripsec_glue_unlock(spinlock_t *lock);
spinlock_t *ripsec_glue_lock_new(void);
void ripsec_glue_lock_free(spinlock_t *lock);
void ripsec_glue_rcu_read_lock(void);
void ripsec_glue_rcu_read_unlock(void);
void ripsec_glue_synchronize_rcu(void);
void ripsec_glue_reap_later(struct net *net);
void ripsec_glue_sweep_start(struct net *net);
void ripsec_glue_call_on_worker(void (*fn)(void *arg), void *arg);
u64 ripsec_glue_now_ms(void);
u64 ripsec_glue_random_u64(void);

/* Generic netlink replies, dumps and events. */
void ripsec_glue_set_err(struct genl_info *info, const char *msg);
struct sk_buff *ripsec_glue_reply_new(struct genl_info *info, u8 cmd, void **hdr);
int ripsec_glue_reply_send(struct genl_info *info, struct sk_buff *msg, void *hdr);
void *ripsec_glue_dump_begin(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd);
struct sk_buff *ripsec_glue_event_new(u8 cmd, void **hdr);
int ripsec_glue_event_send(struct net *net, struct sk_buff *msg, void *hdr);
void ripsec_glue_msg_end(struct sk_buff *msg, void *hdr);
void ripsec_glue_msg_cancel(struct sk_buff *msg, void *hdr);
void ripsec_glue_msg_free(struct sk_buff *msg);
int ripsec_glue_put(struct sk_buff *msg, u16 type, u32 len, const void *data);
int ripsec_glue_put_u64(struct sk_buff *msg, u16 type, u64 value);
struct nlattr *ripsec_glue_nest_start(struct sk_buff *msg, u16 type);
void ripsec_glue_nest_end(struct sk_buff *msg, struct nlattr *nest);

/* sk_buff helpers for the datapath. */
void ripsec_skb_view(struct sk_buff *skb, struct ripsec_skb_view *v);
int ripsec_skb_copy(struct sk_buff *skb, u32 offset_from_network, void *buf, u32 len);
int ripsec_skb_is_gso(struct sk_buff *skb);
struct sk_buff *ripsec_skb_segment(struct sk_buff *skb);
struct sk_buff *ripsec_skb_unlink_next(struct sk_buff *skb);
int ripsec_skb_prepare(struct sk_buff *skb, u32 headroom, u32 tailroom);
int ripsec_skb_transformed(struct sk_buff *skb, u8 family);
void ripsec_skb_lower_pmtu(struct sk_buff *skb, u32 overhead);
void ripsec_skb_output_prepare(struct sk_buff *skb, u32 start, u32 len);
int ripsec_skb_output(struct net *net, struct sock *sk, struct sk_buff *skb, int reroute);
void ripsec_skb_set_next(struct sk_buff *skb, struct sk_buff *next);
void ripsec_skb_input_transport(struct sk_buff *skb, u32 start, u32 len);
int ripsec_skb_input_tunnel(struct sk_buff *skb, u32 start, u32 len);
int ripsec_skb_decapsulated(struct sk_buff *skb);
void ripsec_skb_free(struct sk_buff *skb);
int ripsec_skb_hold(struct net *net, struct sk_buff *skb, u32 spi);
u32 ripsec_skb_hold_release(struct net *net, u32 spi);

/* FPU sections: runs ripsec_rs_fpu_run(arg) in one; 0 (not run) where the FPU is unusable. */
int ripsec_glue_fpu_call(void *arg);
void ripsec_rs_fpu_run(void *arg);

/* The kernel crypto API as an ESP AEAD (module parameter aead=). */
enum { RIPSEC_AEAD_AUTO = 0, RIPSEC_AEAD_KERNEL = 1, RIPSEC_AEAD_RUSTCRYPTO = 2 };
enum { RIPSEC_KAEAD_AES_GCM = 1, RIPSEC_KAEAD_CHACHA20_POLY1305 = 2 };
struct crypto_aead;
int ripsec_glue_aead_mode(void);
struct crypto_aead *ripsec_kaead_new(u8 alg, const u8 *keymat, u32 keylen, int *needs_simd,
				     int *errp);
void ripsec_kaead_free(struct crypto_aead *tfm);
const char *ripsec_kaead_driver(struct crypto_aead *tfm);
int ripsec_kaead_simd_usable(void);
int ripsec_kaead_crypt(struct crypto_aead *tfm, u8 *start, u32 assoclen, u32 textlen, int enc);

/* Rust, called from C. */
void *ripsec_rs_net_init(struct net *net, u64 netns_cookie, spinlock_t *lock);
void ripsec_rs_net_exit(void *state);
void ripsec_rs_reap(void *state);
int ripsec_rs_sweep(void *state);
void ripsec_rs_hold_expired(void *state, u32 n);
u32 ripsec_rs_read_counters(void *state, u64 *counters, u32 n);
const char *ripsec_rs_version(void);
const char *ripsec_rs_backend(void);
int ripsec_rs_nl(void *state, u8 cmd, struct nlattr **attrs, struct genl_info *info);
int ripsec_rs_nl_dump(void *state, u8 cmd, struct sk_buff *skb, struct netlink_callback *cb,
		      u64 *cursor);
unsigned int ripsec_rs_hook(void *state, struct sk_buff *skb, u8 pf, u8 hooknum,
			    struct sock *sk, struct net *net);

#endif /* RIPSEC_GLUE_H */
