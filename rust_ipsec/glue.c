// SPDX-License-Identifier: GPL-2.0
/*
 * rust_ipsec C glue: the registration points and sk_buff operations the 6.12 Rust
 * `kernel` crate lacks (per-netns state, generic netlink, netfilter hooks, module
 * parameters, skb geometry and output). Attribute validation is nla_policy's job
 * here; every decision and all state live in Rust.
 */
#include <crypto/aead.h>
#include <asm/fpu/api.h>
#include <asm/simd.h>
#include <crypto/internal/simd.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/scatterlist.h>
#include <linux/sched/task_stack.h>
#include <linux/skbuff.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <net/dst.h>
#include <net/genetlink.h>
#include <net/gso.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/route.h>
#include <net/xfrm.h>

#include "glue.h"
#include "uapi/rust_ipsec.h"

static bool selftest_fail;
module_param(selftest_fail, bool, 0444);
MODULE_PARM_DESC(selftest_fail, "testing only: make the load-time crypto self-test fail");

static char *aead = "auto";
module_param(aead, charp, 0444);
MODULE_PARM_DESC(aead, "AEAD implementation for new SAs: auto (default: kernel where it has the algorithm), "
		 "kernel (the kernel crypto API: rfc4106(gcm(aes)), rfc7539esp(chacha20,poly1305)), "
		 "rustcrypto (the portable RustCrypto code built into the module)");

/* ---- per network namespace ---- */

static unsigned int ripsec_net_id __read_mostly;

struct ripsec_pernet {
	void *state;		/* owned by Rust: ripsec_rs_net_init / ripsec_rs_net_exit */
	spinlock_t lock;	/* serialises Rust's tables; taken with BHs off */
	struct mutex hooks_mutex;
	bool hooks;		/* netfilter hooks registered in this namespace */
	struct work_struct reap; /* frees removed SAs after an RCU grace period */
	struct delayed_work sweep; /* time lifetimes, once a second */
	struct sk_buff_head held; /* ESP whose SPI is not installed yet: see ripsec_skb_hold */
	bool held_closed;	/* under held.lock: the namespace is going away */
};

static struct ripsec_pernet *ripsec_pernet(const struct net *net)
{
	return net_generic(net, ripsec_net_id);
}

static unsigned int ripsec_nf_hook(void *priv, struct sk_buff *skb,
				   const struct nf_hook_state *st)
{
	void *state = ripsec_pernet(st->net)->state;

	if (unlikely(!state))
		return NF_ACCEPT;
	return ripsec_rs_hook(state, skb, st->pf, st->hook, st->sk, st->net);
}

/*
 * Outbound after routing, last, so the packet is final; inbound before the
 * filter table, so it sees the decrypted packet.
 */
static const struct nf_hook_ops ripsec_nf_ops[] = {
	{ .hook = ripsec_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_POST_ROUTING,
	  .priority = NF_IP_PRI_LAST - 1 },
	{ .hook = ripsec_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP_PRI_FILTER - 10 },
	{ .hook = ripsec_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_POST_ROUTING,
	  .priority = NF_IP6_PRI_LAST - 1 },
	{ .hook = ripsec_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP6_PRI_FILTER - 10 },
};

/*
 * Hooks go in only when a namespace gets its first SA or policy: a namespace
 * without rust_ipsec configuration (say, one running Linux XFRM) is untouched.
 */
int ripsec_glue_hooks_enable(struct net *net)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);
	int err = 0;

	mutex_lock(&pn->hooks_mutex);
	if (!pn->hooks) {
		err = nf_register_net_hooks(net, ripsec_nf_ops, ARRAY_SIZE(ripsec_nf_ops));
		pn->hooks = !err;
	}
	mutex_unlock(&pn->hooks_mutex);
	return err;
}

static void ripsec_reap_fn(struct work_struct *work)
{
	struct ripsec_pernet *pn = container_of(work, struct ripsec_pernet, reap);

	ripsec_rs_reap(pn->state);
}

/*
 * Removed SAs may still be in use by packets on other CPUs (the datapath
 * holds them under rcu_read_lock, not the table lock, while it encrypts):
 * they are freed from a worker after synchronize_rcu().
 */
void ripsec_glue_reap_later(struct net *net)
{
	schedule_work(&ripsec_pernet(net)->reap);
}

/*
 * ESP for an SPI that is not installed yet is held briefly instead of being
 * dropped. When we initiate a Child SA (or its rekey), the peer installs the
 * new SAs as it answers and may send on them before its answer has reached
 * our daemon and the inbound SA is in: without a hold, those first packets
 * are lost. Held packets are received anew, as they arrived, once an inbound
 * SA with their SPI is added; the rest are dropped after RIPSEC_HOLD_TIME.
 * The queue is short and FIFO, so a flood of unknown SPIs costs a bounded
 * amount of memory and only evicts older held packets.
 */
#define RIPSEC_HOLD_MAX 32
#define RIPSEC_HOLD_TIME HZ

struct ripsec_hold_cb {
	u32 spi;
	unsigned long expires;
};

/* The cb is ours while held: ip_rcv/ipv6_rcv clear it when the packet is received anew. */
static struct ripsec_hold_cb *ripsec_hold_cb(struct sk_buff *skb)
{
	BUILD_BUG_ON(sizeof(struct ripsec_hold_cb) > sizeof_field(struct sk_buff, cb));
	return (struct ripsec_hold_cb *)skb->cb;
}

static void ripsec_hold_drop(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;

	kfree_skb(skb);
	dev_put(dev);
}

/* Moves the held packets that @match accepts onto @list (initialised here). */
static void ripsec_hold_take(struct ripsec_pernet *pn, struct sk_buff_head *list,
			     bool (*match)(struct sk_buff *skb, unsigned long arg), unsigned long arg)
{
	struct sk_buff *skb, *tmp;

	__skb_queue_head_init(list);
	spin_lock_bh(&pn->held.lock);
	skb_queue_walk_safe(&pn->held, skb, tmp) {
		if (match(skb, arg)) {
			__skb_unlink(skb, &pn->held);
			__skb_queue_tail(list, skb);
		}
	}
	spin_unlock_bh(&pn->held.lock);
}

static bool ripsec_hold_is_expired(struct sk_buff *skb, unsigned long all)
{
	return all || time_after_eq(jiffies, ripsec_hold_cb(skb)->expires);
}

static bool ripsec_hold_is_for(struct sk_buff *skb, unsigned long spi)
{
	return ripsec_hold_cb(skb)->spi == spi;
}

/* Drops expired held packets (all of them if @all); returns how many. */
static u32 ripsec_hold_expire(struct ripsec_pernet *pn, bool all)
{
	struct sk_buff_head list;
	struct sk_buff *skb;
	u32 n = 0;

	ripsec_hold_take(pn, &list, ripsec_hold_is_expired, all);
	while ((skb = __skb_dequeue(&list))) {
		ripsec_hold_drop(skb);
		n++;
	}
	return n;
}

/*
 * Takes @skb (an ESP packet at LOCAL_IN, not yet modified) into the hold
 * queue. Returns how many older packets it evicted (0 or 1), or a negative
 * errno if it did not take it (the caller drops it).
 */
int ripsec_skb_hold(struct net *net, struct sk_buff *skb, u32 spi)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);
	struct sk_buff *old = NULL;
	bool closed;

	if (!skb->dev)
		return -ENODEV;
	skb_dst_drop(skb);
	nf_reset_ct(skb);
	ripsec_hold_cb(skb)->spi = spi;
	ripsec_hold_cb(skb)->expires = jiffies + RIPSEC_HOLD_TIME;
	/* The device must outlive the packet: it is received on it again. */
	dev_hold(skb->dev);
	spin_lock_bh(&pn->held.lock);
	closed = pn->held_closed;
	if (!closed) {
		if (skb_queue_len(&pn->held) >= RIPSEC_HOLD_MAX)
			old = __skb_dequeue(&pn->held);
		__skb_queue_tail(&pn->held, skb);
	}
	spin_unlock_bh(&pn->held.lock);
	if (closed) {
		dev_put(skb->dev);
		return -ENODEV;
	}
	if (old)
		ripsec_hold_drop(old);
	/* Expiry runs from the sweep, which stops when the tables are idle. */
	schedule_delayed_work(&pn->sweep, HZ);
	return old ? 1 : 0;
}

/*
 * Receives again every held packet for @spi (an inbound SA with that SPI
 * was just added); returns how many. Process context, no locks held: the
 * packets may run through the whole receive path, our hooks included,
 * before this returns.
 */
u32 ripsec_skb_hold_release(struct net *net, u32 spi)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);
	struct sk_buff_head list;
	struct sk_buff *skb;
	u32 n = 0;

	if (skb_queue_empty_lockless(&pn->held))
		return 0;
	ripsec_hold_take(pn, &list, ripsec_hold_is_for, spi);
	while ((skb = __skb_dequeue(&list))) {
		struct net_device *dev = skb->dev;

		/*
		 * Under RCU: an unregistration that has not yet begun waits in
		 * synchronize_net() for this section, and then flushes the
		 * backlog the packet went to, before the device is freed.
		 */
		rcu_read_lock();
		if (READ_ONCE(dev->reg_state) == NETREG_REGISTERED && netif_running(dev)) {
			if (skb_network_offset(skb) < 0)
				__skb_push(skb, -skb_network_offset(skb));
			skb->ip_summed = CHECKSUM_NONE;
			skb->pkt_type = PACKET_HOST;
			netif_rx(skb);
			n++;
		} else {
			kfree_skb(skb);
		}
		rcu_read_unlock();
		dev_put(dev);
	}
	return n;
}

static void ripsec_sweep_fn(struct work_struct *work)
{
	struct ripsec_pernet *pn = container_of(to_delayed_work(work), struct ripsec_pernet, sweep);

	ripsec_rs_hold_expired(pn->state, ripsec_hold_expire(pn, false));
	if (ripsec_rs_sweep(pn->state) || !skb_queue_empty_lockless(&pn->held))
		schedule_delayed_work(&pn->sweep, HZ);
}

/* Starts the time-lifetime sweep once the namespace has tables. */
void ripsec_glue_sweep_start(struct net *net)
{
	schedule_delayed_work(&ripsec_pernet(net)->sweep, HZ);
}

static int __net_init ripsec_net_init(struct net *net)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);

	spin_lock_init(&pn->lock);
	mutex_init(&pn->hooks_mutex);
	INIT_WORK(&pn->reap, ripsec_reap_fn);
	INIT_DELAYED_WORK(&pn->sweep, ripsec_sweep_fn);
	skb_queue_head_init(&pn->held);
	pn->held_closed = false;
	pn->hooks = false;
	pn->state = ripsec_rs_net_init(net, net->net_cookie, &pn->lock);
	return pn->state ? 0 : -ENOMEM;
}

/*
 * Unregistering hooks does not wait for those in flight (the entries are
 * freed by call_rcu), so it happens here: the namespace core runs
 * synchronize_rcu() between .pre_exit and .exit, after which no hook still
 * uses the state .exit frees. (As iptable_filter does.)
 */
static void __net_exit ripsec_net_pre_exit(struct net *net)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);

	mutex_lock(&pn->hooks_mutex);
	if (pn->hooks)
		nf_unregister_net_hooks(net, ripsec_nf_ops, ARRAY_SIZE(ripsec_nf_ops));
	pn->hooks = false;
	mutex_unlock(&pn->hooks_mutex);
	/* Hooks still in flight may try to hold a packet: they are refused from here. */
	spin_lock_bh(&pn->held.lock);
	pn->held_closed = true;
	spin_unlock_bh(&pn->held.lock);
	ripsec_hold_expire(pn, true);
}

static void __net_exit ripsec_net_exit(struct net *net)
{
	struct ripsec_pernet *pn = ripsec_pernet(net);

	/* No hook or request is left to retire SAs; what is pending is freed below. */
	cancel_delayed_work_sync(&pn->sweep);
	cancel_work_sync(&pn->reap);
	ripsec_rs_net_exit(pn->state);
	pn->state = NULL;
}

static struct pernet_operations ripsec_net_ops = {
	.init = ripsec_net_init,
	.pre_exit = ripsec_net_pre_exit,
	.exit = ripsec_net_exit,
	.id = &ripsec_net_id,
	.size = sizeof(struct ripsec_pernet),
};

void ripsec_glue_lock(spinlock_t *lock)
{
	spin_lock_bh(lock);
}

void ripsec_glue_unlock(spinlock_t *lock)
{
	spin_unlock_bh(lock);
}

/* One lock per SA (sequence number, replay window, lifetime, counters). */
spinlock_t *ripsec_glue_lock_new(void)
{
	spinlock_t *lock = kmalloc(sizeof(*lock), GFP_KERNEL);

	if (lock)
		spin_lock_init(lock);
	return lock;
}

void ripsec_glue_lock_free(spinlock_t *lock)
{
	kfree(lock);
}

void ripsec_glue_rcu_read_lock(void)
{
	rcu_read_lock();
}

void ripsec_glue_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void ripsec_glue_synchronize_rcu(void)
{
	synchronize_rcu();
}

struct ripsec_stack_call {
	struct work_struct work;
	void (*fn)(void *arg);
	void *arg;
};

static void ripsec_stack_call_fn(struct work_struct *work)
{
	struct ripsec_stack_call *c = container_of(work, struct ripsec_stack_call, work);

	c->fn(c->arg);
}

/*
 * Runs fn(arg) on a workqueue worker and waits for it. SA key setup builds the
 * RustCrypto key schedules on the stack (about 10 KiB deep), more than is left
 * below a netlink request; a worker starts with a nearly empty stack.
 */
void ripsec_glue_call_on_worker(void (*fn)(void *arg), void *arg)
{
	struct ripsec_stack_call c = { .fn = fn, .arg = arg };

	INIT_WORK_ONSTACK(&c.work, ripsec_stack_call_fn);
	queue_work(system_unbound_wq, &c.work);
	flush_work(&c.work);
	destroy_work_on_stack(&c.work);
}

u64 ripsec_glue_now_ms(void)
{
	return ktime_get_coarse_ns() / NSEC_PER_MSEC;
}

u64 ripsec_glue_random_u64(void)
{
	return get_random_u64();
}

/* ---- generic netlink ---- */

#define ADDR_POLICY { .type = NLA_BINARY, .len = 16 }
/* NLA_POLICY_MAX holds an s16: wider limits need a range. */
static const struct netlink_range_validation ripsec_tfc_pad_range = { .max = 65535 };

static const struct nla_policy ripsec_policy[RIPSEC_A_MAX + 1] = {
	[RIPSEC_A_VERSION] = { .type = NLA_REJECT },
	[RIPSEC_A_BACKEND] = { .type = NLA_REJECT },
	[RIPSEC_A_NETNS_COOKIE] = { .type = NLA_REJECT },
	[RIPSEC_A_COUNTERS] = { .type = NLA_REJECT },
	[RIPSEC_A_SPI] = NLA_POLICY_MIN(NLA_U32, 1),
	[RIPSEC_A_DIR] = NLA_POLICY_MAX(NLA_U8, RIPSEC_DIR_FWD),
	[RIPSEC_A_SRC] = ADDR_POLICY,
	[RIPSEC_A_DST] = ADDR_POLICY,
	[RIPSEC_A_MODE] = NLA_POLICY_MAX(NLA_U8, RIPSEC_MODE_TUNNEL),
	[RIPSEC_A_ALG] = NLA_POLICY_RANGE(NLA_U8, RIPSEC_ALG_AES128_GCM16,
					  RIPSEC_ALG_CHACHA20_POLY1305),
	[RIPSEC_A_KEY] = { .type = NLA_BINARY, .len = 64 },
	[RIPSEC_A_ENCAP_SPORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[RIPSEC_A_ENCAP_DPORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[RIPSEC_A_ESN] = { .type = NLA_FLAG },
	[RIPSEC_A_REPLAY_WINDOW] = NLA_POLICY_MAX(NLA_U32, 4096),
	[RIPSEC_A_REQID] = { .type = NLA_U32 },
	[RIPSEC_A_OWNER] = { .type = NLA_U64 },
	[RIPSEC_A_TFC_PAD] = NLA_POLICY_FULL_RANGE(NLA_U32, &ripsec_tfc_pad_range),
	[RIPSEC_A_LIFE_SOFT_BYTES] = { .type = NLA_U64 },
	[RIPSEC_A_LIFE_HARD_BYTES] = { .type = NLA_U64 },
	[RIPSEC_A_LIFE_SOFT_PACKETS] = { .type = NLA_U64 },
	[RIPSEC_A_LIFE_HARD_PACKETS] = { .type = NLA_U64 },
	[RIPSEC_A_LIFE_SOFT_SECS] = { .type = NLA_U64 },
	[RIPSEC_A_LIFE_HARD_SECS] = { .type = NLA_U64 },
	[RIPSEC_A_PEER] = ADDR_POLICY,
	[RIPSEC_A_FLUSHED] = { .type = NLA_REJECT },
	[RIPSEC_A_STATS] = { .type = NLA_REJECT },
	[RIPSEC_A_POLICY_ID] = { .type = NLA_U32 },
	[RIPSEC_A_PRIORITY] = { .type = NLA_U32 },
	[RIPSEC_A_ACTION] = NLA_POLICY_MAX(NLA_U8, RIPSEC_ACTION_PROTECT),
	[RIPSEC_A_SEL_SRC] = ADDR_POLICY,
	[RIPSEC_A_SEL_SRC_PLEN] = NLA_POLICY_MAX(NLA_U8, 128),
	[RIPSEC_A_SEL_DST] = ADDR_POLICY,
	[RIPSEC_A_SEL_DST_PLEN] = NLA_POLICY_MAX(NLA_U8, 128),
	[RIPSEC_A_SEL_PROTO] = { .type = NLA_U8 },
	[RIPSEC_A_SEL_SPORT_LO] = { .type = NLA_U16 },
	[RIPSEC_A_SEL_SPORT_HI] = { .type = NLA_U16 },
	[RIPSEC_A_SEL_DPORT_LO] = { .type = NLA_U16 },
	[RIPSEC_A_SEL_DPORT_HI] = { .type = NLA_U16 },
	[RIPSEC_A_TMPL_TUN_SRC] = ADDR_POLICY,
	[RIPSEC_A_TMPL_TUN_DST] = ADDR_POLICY,
	[RIPSEC_A_MISS_COUNT] = { .type = NLA_REJECT },
	[RIPSEC_A_HARD] = { .type = NLA_REJECT },
};

static struct genl_family ripsec_genl_family;

static int ripsec_put_counters(struct sk_buff *msg, void *state)
{
	u64 counters[__RIPSEC_CTR_MAX];
	struct nlattr *nest;
	u32 n, i;

	n = min_t(u32, ripsec_rs_read_counters(state, counters, __RIPSEC_CTR_MAX),
		  __RIPSEC_CTR_MAX);
	nest = nla_nest_start(msg, RIPSEC_A_COUNTERS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		if (nla_put_u64_64bit(msg, i + 1, counters[i], RIPSEC_A_PAD)) {
			nla_nest_cancel(msg, nest);
			return -EMSGSIZE;
		}
	}
	nla_nest_end(msg, nest);
	return 0;
}

static int ripsec_nl_get_status(struct sk_buff *skb, struct genl_info *info)
{
	struct net *net = genl_info_net(info);
	void *state = ripsec_pernet(net)->state;
	struct sk_buff *msg;
	void *hdr;
	int err;

	if (!state)
		return -ENODEV;
	msg = ripsec_glue_reply_new(info, RIPSEC_CMD_GET_STATUS, &hdr);
	if (!msg)
		return -ENOMEM;
	err = -EMSGSIZE;
	if (nla_put_string(msg, RIPSEC_A_VERSION, ripsec_rs_version()) ||
	    nla_put_string(msg, RIPSEC_A_BACKEND, ripsec_rs_backend()) ||
	    nla_put_u64_64bit(msg, RIPSEC_A_NETNS_COOKIE, net->net_cookie, RIPSEC_A_PAD))
		goto fail;
	err = ripsec_put_counters(msg, state);
	if (err)
		goto fail;
	return ripsec_glue_reply_send(info, msg, hdr);
fail:
	nlmsg_free(msg);
	return err;
}

/* Every other command: Rust reads the validated attribute table. */
static int ripsec_nl_doit(struct sk_buff *skb, struct genl_info *info)
{
	void *state = ripsec_pernet(genl_info_net(info))->state;

	if (!state)
		return -ENODEV;
	return ripsec_rs_nl(state, info->genlhdr->cmd, info->attrs, info);
}

static int ripsec_nl_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	void *state = ripsec_pernet(sock_net(skb->sk))->state;
	const struct genlmsghdr *gh = nlmsg_data(cb->nlh);

	if (!state)
		return -ENODEV;
	return ripsec_rs_nl_dump(state, gh->cmd, skb, cb, (u64 *)&cb->args[0]);
}

#define RIPSEC_OP(c) { .cmd = (c), .doit = ripsec_nl_doit, .flags = GENL_UNS_ADMIN_PERM }
static const struct genl_small_ops ripsec_genl_ops[] = {
	{ .cmd = RIPSEC_CMD_GET_STATUS, .doit = ripsec_nl_get_status,
	  .flags = GENL_UNS_ADMIN_PERM },
	RIPSEC_OP(RIPSEC_CMD_SA_ADD),
	RIPSEC_OP(RIPSEC_CMD_SA_UPDATE),
	RIPSEC_OP(RIPSEC_CMD_SA_DEL),
	{ .cmd = RIPSEC_CMD_SA_GET, .doit = ripsec_nl_doit, .dumpit = ripsec_nl_dumpit,
	  .flags = GENL_UNS_ADMIN_PERM },
	RIPSEC_OP(RIPSEC_CMD_SA_FLUSH),
	RIPSEC_OP(RIPSEC_CMD_POLICY_ADD),
	RIPSEC_OP(RIPSEC_CMD_POLICY_DEL),
	{ .cmd = RIPSEC_CMD_POLICY_GET, .dumpit = ripsec_nl_dumpit,
	  .flags = GENL_UNS_ADMIN_PERM },
	RIPSEC_OP(RIPSEC_CMD_POLICY_FLUSH),
};

static const struct genl_multicast_group ripsec_mcgrps[] = {
	{ .name = RIPSEC_MCGRP_EVENTS, .flags = GENL_MCAST_CAP_NET_ADMIN },
};

static struct genl_family ripsec_genl_family __ro_after_init = {
	.name = RIPSEC_GENL_NAME,
	.version = RIPSEC_GENL_VERSION,
	.maxattr = RIPSEC_A_MAX,
	.policy = ripsec_policy,
	.netnsok = true,
	.parallel_ops = true,
	/* Strict attribute validation for every command. */
	.resv_start_op = RIPSEC_CMD_GET_STATUS,
	.small_ops = ripsec_genl_ops,
	.n_small_ops = ARRAY_SIZE(ripsec_genl_ops),
	.mcgrps = ripsec_mcgrps,
	.n_mcgrps = ARRAY_SIZE(ripsec_mcgrps),
	.module = THIS_MODULE,
};

void ripsec_glue_set_err(struct genl_info *info, const char *msg)
{
	/* msg must be static: extack keeps the pointer. NL_SET_ERR_MSG wants a literal. */
	if (info->extack)
		info->extack->_msg = msg;
}

struct sk_buff *ripsec_glue_reply_new(struct genl_info *info, u8 cmd, void **hdr)
{
	struct sk_buff *msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);

	if (!msg)
		return NULL;
	*hdr = genlmsg_put_reply(msg, info, &ripsec_genl_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

int ripsec_glue_reply_send(struct genl_info *info, struct sk_buff *msg, void *hdr)
{
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

void *ripsec_glue_dump_begin(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd)
{
	return genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			   &ripsec_genl_family, NLM_F_MULTI, cmd);
}

struct sk_buff *ripsec_glue_event_new(u8 cmd, void **hdr)
{
	struct sk_buff *msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_ATOMIC);

	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, 0, 0, &ripsec_genl_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Returns 0 when delivered or when nobody listens; consumes msg. */
int ripsec_glue_event_send(struct net *net, struct sk_buff *msg, void *hdr)
{
	int err;

	genlmsg_end(msg, hdr);
	err = genlmsg_multicast_netns(&ripsec_genl_family, net, msg, 0, 0, GFP_ATOMIC);
	return err == -ESRCH ? 0 : err;
}

void ripsec_glue_msg_end(struct sk_buff *msg, void *hdr)
{
	genlmsg_end(msg, hdr);
}

void ripsec_glue_msg_cancel(struct sk_buff *msg, void *hdr)
{
	genlmsg_cancel(msg, hdr);
}

void ripsec_glue_msg_free(struct sk_buff *msg)
{
	nlmsg_free(msg);
}

int ripsec_glue_put(struct sk_buff *msg, u16 type, u32 len, const void *data)
{
	return nla_put(msg, type, len, data);
}

int ripsec_glue_put_u64(struct sk_buff *msg, u16 type, u64 value)
{
	return nla_put_u64_64bit(msg, type, value, RIPSEC_A_PAD);
}

struct nlattr *ripsec_glue_nest_start(struct sk_buff *msg, u16 type)
{
	return nla_nest_start(msg, type);
}

void ripsec_glue_nest_end(struct sk_buff *msg, struct nlattr *nest)
{
	nla_nest_end(msg, nest);
}

/* ---- sk_buff helpers ---- */

void ripsec_skb_view(struct sk_buff *skb, struct ripsec_skb_view *v)
{
	v->head = skb->head;
	v->end = skb_end_offset(skb);
	v->data = skb->data - skb->head;
	v->len = skb->len;
	v->network = skb->network_header;
}

int ripsec_skb_copy(struct sk_buff *skb, u32 offset_from_network, void *buf, u32 len)
{
	int off = skb_network_offset(skb) + offset_from_network;

	if (len > skb->len || off < 0 || off > skb->len - len)
		return -EINVAL;
	return skb_copy_bits(skb, off, buf, len);
}

int ripsec_skb_is_gso(struct sk_buff *skb)
{
	return skb_is_gso(skb);
}

/* Software-segments a GSO skb (checksums completed) and consumes it. */
struct sk_buff *ripsec_skb_segment(struct sk_buff *skb)
{
	struct sk_buff *segs = skb_gso_segment(skb, 0);

	if (IS_ERR_OR_NULL(segs)) {
		kfree_skb(skb);
		return NULL;
	}
	consume_skb(skb);
	return segs;
}

struct sk_buff *ripsec_skb_unlink_next(struct sk_buff *skb)
{
	struct sk_buff *next = skb->next;

	skb_mark_not_on_list(skb);
	return next;
}

/*
 * Makes the packet linear, private and roomy enough to be rewritten in place,
 * with any pending checksum resolved (it would be wrong once encrypted).
 */
int ripsec_skb_prepare(struct sk_buff *skb, u32 headroom, u32 tailroom)
{
	int err;

	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		err = skb_checksum_help(skb);
		if (err)
			return err;
	}
	err = skb_linearize_cow(skb);
	if (err)
		return err;
	if (skb_headroom(skb) < headroom || skb_tailroom(skb) < tailroom) {
		err = pskb_expand_head(skb, max_t(int, headroom - skb_headroom(skb), 0) + 16,
				       max_t(int, tailroom - skb_tailroom(skb), 0) + 16, GFP_ATOMIC);
		if (err)
			return err;
	}
	skb->ip_summed = CHECKSUM_NONE;
	return 0;
}

/* True for packets this module already encapsulated (they pass the hook again). */
int ripsec_skb_transformed(struct sk_buff *skb, u8 family)
{
	if (family == NFPROTO_IPV4)
		return !!(IPCB(skb)->flags & IPSKB_XFRM_TRANSFORMED);
	return !!(IP6CB(skb)->flags & IP6SKB_XFRM_TRANSFORMED);
}

/*
 * ESP makes the packet `overhead` bytes longer. Lowering the route's path MTU
 * by that much makes TCP (and PMTU-aware UDP) send packets that still fit; the
 * packet at hand is fragmented after encapsulation rather than dropped.
 */
void ripsec_skb_lower_pmtu(struct sk_buff *skb, u32 overhead)
{
	struct dst_entry *dst = skb_dst(skb);
	u32 mtu;

	if (!dst)
		return;
	mtu = dst_mtu(dst);
	if (skb->len + overhead > mtu && mtu > overhead + 576)
		skb_dst_update_pmtu_no_confirm(skb, mtu - overhead);
}

static void ripsec_skb_set_window(struct sk_buff *skb, u32 start, u32 len)
{
	skb->data = skb->head + start;
	skb->len = len;
	skb_set_tail_pointer(skb, len);
	skb_reset_network_header(skb);
}

static int ripsec_reroute(struct net *net, struct sk_buff *skb)
{
	struct dst_entry *dst;

	if (skb->protocol == htons(ETH_P_IP)) {
		const struct iphdr *iph = ip_hdr(skb);
		struct flowi4 fl4 = { .daddr = iph->daddr, .saddr = iph->saddr,
				      .flowi4_proto = iph->protocol };
		struct rtable *rt = ip_route_output_key(net, &fl4);

		if (IS_ERR(rt))
			return PTR_ERR(rt);
		dst = &rt->dst;
	} else {
		const struct ipv6hdr *ip6h = ipv6_hdr(skb);
		struct flowi6 fl6 = { .daddr = ip6h->daddr, .saddr = ip6h->saddr,
				      .flowi6_proto = ip6h->nexthdr };

		dst = ip6_route_output(net, NULL, &fl6);
		if (dst->error) {
			int err = dst->error;

			dst_release(dst);
			return err;
		}
	}
	skb_dst_drop(skb);
	skb_dst_set(skb, dst);
	return 0;
}

/*
 * Points an encapsulated packet at its new bytes (head+start, len, outer IP
 * header first) and marks it as ours: it passes the output hooks again.
 */
void ripsec_skb_output_prepare(struct sk_buff *skb, u32 start, u32 len)
{
	ripsec_skb_set_window(skb, start, len);
	skb->ignore_df = 1;
	if ((skb->data[0] >> 4) == 4) {
		skb->protocol = htons(ETH_P_IP);
		memset(IPCB(skb), 0, sizeof(*IPCB(skb)));
		IPCB(skb)->flags |= IPSKB_XFRM_TRANSFORMED;
		skb_set_transport_header(skb, ip_hdrlen(skb));
	} else {
		skb->protocol = htons(ETH_P_IPV6);
		memset(IP6CB(skb), 0, sizeof(*IP6CB(skb)));
		IP6CB(skb)->flags |= IP6SKB_XFRM_TRANSFORMED;
		skb_set_transport_header(skb, sizeof(struct ipv6hdr));
	}
}

/* Sends a prepared packet; tunnel mode re-routes by the outer destination. Consumes skb. */
int ripsec_skb_output(struct net *net, struct sock *sk, struct sk_buff *skb, int reroute)
{
	int err;

	if (reroute) {
		err = ripsec_reroute(net, skb);
		if (err) {
			kfree_skb(skb);
			return err;
		}
	}
	if (skb->protocol == htons(ETH_P_IP))
		return ip_local_out(net, sk, skb);
	return ip6_local_out(net, sk, skb);
}

void ripsec_skb_set_next(struct sk_buff *skb, struct sk_buff *next)
{
	skb->next = next;
}

/* Transport mode: the original packet is back in place; let it continue. */
void ripsec_skb_input_transport(struct sk_buff *skb, u32 start, u32 len)
{
	u32 hlen = (skb->head[start] >> 4) == 4 ? (skb->head[start] & 0xf) * 4 :
						    skb_transport_offset(skb);

	ripsec_skb_set_window(skb, start, len);
	skb_set_transport_header(skb, hlen);
	skb->ip_summed = CHECKSUM_NONE;
}

/*
 * Tunnel mode: the inner packet is received anew, synchronously, with this
 * CPU's decapsulation depth raised so the inbound policy check recognises it
 * as having come through an SA (BHs are off in the receive path, so the
 * per-CPU count cannot be seen by another packet on this CPU meanwhile).
 */
static DEFINE_PER_CPU(unsigned int, ripsec_decap_depth);

int ripsec_skb_input_tunnel(struct sk_buff *skb, u32 start, u32 len)
{
	int ret;

	ripsec_skb_set_window(skb, start, len);
	skb->protocol = (skb->data[0] >> 4) == 4 ? htons(ETH_P_IP) : htons(ETH_P_IPV6);
	skb_reset_transport_header(skb);
	skb_reset_mac_header(skb);
	skb->mac_len = 0;
	skb_dst_drop(skb);
	nf_reset_ct(skb);
	skb->ip_summed = CHECKSUM_NONE;
	skb->pkt_type = PACKET_HOST;
	this_cpu_inc(ripsec_decap_depth);
	ret = netif_receive_skb(skb);
	this_cpu_dec(ripsec_decap_depth);
	return ret == NET_RX_SUCCESS ? 0 : -ENOBUFS;
}

/* True while a packet decapsulated by this module is being received on this CPU. */
int ripsec_skb_decapsulated(struct sk_buff *skb)
{
	return this_cpu_read(ripsec_decap_depth) > 0;
}

void ripsec_skb_free(struct sk_buff *skb)
{
	kfree_skb(skb);
}

/* ---- FPU sections for the built-in RustCrypto AEAD ---- */

/*
 * Runs ripsec_rs_fpu_run(arg) inside a kernel FPU section, or returns 0
 * without running it where this context may not use the FPU.
 *
 * Bottom halves stay off for the section (as kernel_fpu_begin() itself does
 * from 6.15 on): otherwise a softirq interrupting it would find the FPU taken
 * and have to drop its packet.
 *
 * The call is made on a 16-byte-aligned stack pointer. The code it reaches
 * (ripsec-aead, the RustCrypto crates) is SIMD code that, like any x86-64
 * code, assumes the SysV stack alignment and keeps 16-byte vectors in
 * aligned stack slots; the kernel is built for 8-byte stack alignment and
 * rustc cannot be told otherwise (rust-lang/rust#128833). The switch is the
 * kernel's call_on_stack() pattern (asm/irq_stack.h), which objtool knows,
 * onto an aligned address below the current frame of the same stack.
 */
int ripsec_glue_fpu_call(void *arg)
{
	register void *tos asm("r11");

	local_bh_disable();
	if (!irq_fpu_usable()) {
		local_bh_enable();
		return 0;
	}
	kernel_fpu_begin();
	/* No red zone in the kernel: nothing lives below the stack pointer. */
	tos = (void *)(ALIGN_DOWN(current_stack_pointer, 16) - 16);
	asm_inline volatile(
		"movq	%%rsp, (%[tos])\n"
		"movq	%[tos], %%rsp\n"
		"movq	%[arg1], %%rdi\n"
		"call	%c[__func]\n"
		"popq	%%rsp\n"
		: "+r" (tos), ASM_CALL_CONSTRAINT
		: [__func] "i" (ripsec_rs_fpu_run), [tos] "r" (tos), [arg1] "r" (arg)
		: "cc", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "memory");
	kernel_fpu_end();
	local_bh_enable();
	return 1;
}

/* ---- the kernel crypto API as an ESP AEAD ---- */

/*
 * Requests live in a per-CPU scratch area, used with BHs off, so one request
 * per CPU is enough and the hot path allocates nothing. Transforms whose request does not fit are refused
 * at SA setup and the SA uses the built-in code.
 */
#define RIPSEC_AEAD_REQ_MAX 1024
struct ripsec_aead_scratch {
	u8 b[RIPSEC_AEAD_REQ_MAX];
} __aligned(CRYPTO_MINALIGN);
static DEFINE_PER_CPU(struct ripsec_aead_scratch, ripsec_aead_scratch);

int ripsec_glue_aead_mode(void)
{
	if (!aead || sysfs_streq(aead, "auto"))
		return RIPSEC_AEAD_AUTO;
	if (sysfs_streq(aead, "kernel"))
		return RIPSEC_AEAD_KERNEL;
	if (sysfs_streq(aead, "rustcrypto"))
		return RIPSEC_AEAD_RUSTCRYPTO;
	return -EINVAL;
}

struct crypto_aead *ripsec_kaead_new(u8 alg, const u8 *keymat, u32 keylen, int *needs_simd,
				     int *errp)
{
	struct crypto_aead *tfm;
	int err;

	*needs_simd = 0;
	if (alg == RIPSEC_KAEAD_AES_GCM) {
		/*
		 * The SIMD implementations register an internal synchronous
		 * algorithm behind an async cryptd wrapper. Softirq context
		 * cannot wait for async completions, so take the internal one
		 * directly, as the wrapper itself does when SIMD is usable, and
		 * let the caller check ripsec_kaead_simd_usable() per packet.
		 * Without AES-NI there is no internal one: use the generic
		 * synchronous template.
		 */
		tfm = crypto_alloc_aead("__rfc4106(gcm(aes))", CRYPTO_ALG_INTERNAL,
					CRYPTO_ALG_INTERNAL | CRYPTO_ALG_ASYNC);
		if (!IS_ERR(tfm))
			*needs_simd = 1;
		else
			tfm = crypto_alloc_aead("rfc4106(gcm(aes))", 0, CRYPTO_ALG_ASYNC);
	} else if (alg == RIPSEC_KAEAD_CHACHA20_POLY1305) {
		/* chacha20-simd and poly1305-simd fall back to generic code themselves. */
		tfm = crypto_alloc_aead("rfc7539esp(chacha20,poly1305)", 0, CRYPTO_ALG_ASYNC);
	} else {
		tfm = ERR_PTR(-EOPNOTSUPP);
	}
	if (IS_ERR(tfm)) {
		*errp = PTR_ERR(tfm);
		return NULL;
	}
	err = -EOVERFLOW;
	if (sizeof(struct aead_request) + crypto_aead_reqsize(tfm) > RIPSEC_AEAD_REQ_MAX)
		goto fail;
	err = crypto_aead_setkey(tfm, keymat, keylen);
	if (!err)
		err = crypto_aead_setauthsize(tfm, 16);
	if (err)
		goto fail;
	return tfm;
fail:
	crypto_free_aead(tfm);
	*errp = err;
	return NULL;
}

void ripsec_kaead_free(struct crypto_aead *tfm)
{
	/* crypto_destroy_tfm() frees the context (key schedule) with kfree_sensitive(). */
	crypto_free_aead(tfm);
}

const char *ripsec_kaead_driver(struct crypto_aead *tfm)
{
	return crypto_tfm_alg_driver_name(crypto_aead_tfm(tfm));
}

int ripsec_kaead_simd_usable(void)
{
	return crypto_simd_usable();
}

int ripsec_kaead_crypt(struct crypto_aead *tfm, u8 *start, u32 assoclen, u32 textlen, int enc)
{
	struct aead_request *req;
	struct scatterlist sg;
	u32 reqlen = sizeof(*req) + crypto_aead_reqsize(tfm);
	int err;

	/* A scatterlist needs directly mapped memory: skb data or kmalloc. */
	if (WARN_ON_ONCE(object_is_on_stack(start) || is_vmalloc_addr(start) || assoclen < 8))
		return -EFAULT;
	sg_init_one(&sg, start, assoclen + textlen + 16);
	local_bh_disable();
	req = (struct aead_request *)this_cpu_ptr(&ripsec_aead_scratch)->b;
	aead_request_set_tfm(req, tfm);
	aead_request_set_callback(req, 0, NULL, NULL);
	/* RFC 4106 / 7539esp layout: the IV is the last 8 bytes of the AD. */
	aead_request_set_crypt(req, &sg, &sg, enc ? textlen : textlen + 16,
			       start + assoclen - 8);
	aead_request_set_ad(req, assoclen);
	err = enc ? crypto_aead_encrypt(req) : crypto_aead_decrypt(req);
	/* ChaCha20-Poly1305 requests hold the one-time Poly1305 key. */
	memzero_explicit(req, reqlen);
	local_bh_enable();
	return err;
}

/* ---- module ---- */

int ripsec_glue_register(void)
{
	int err;

	err = register_pernet_subsys(&ripsec_net_ops);
	if (err)
		return err;
	err = genl_register_family(&ripsec_genl_family);
	if (err) {
		unregister_pernet_subsys(&ripsec_net_ops);
		return err;
	}
	return 0;
}

void ripsec_glue_unregister(void)
{
	genl_unregister_family(&ripsec_genl_family);
	unregister_pernet_subsys(&ripsec_net_ops);
}

int ripsec_glue_selftest_fail(void)
{
	return selftest_fail;
}

u32 ripsec_glue_counter_max(void)
{
	return __RIPSEC_CTR_MAX;
}
