// SPDX-License-Identifier: GPL-2.0
/*
 * rust_ipsec C glue: the registration points the 6.12 Rust `kernel` crate lacks
 * (per-netns state, generic netlink, module parameters). Attribute parsing and
 * message construction stay here, where nla_policy gives strict validation for
 * free; every decision and all state live in Rust.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "glue.h"
#include "uapi/rust_ipsec.h"

static bool selftest_fail;
module_param(selftest_fail, bool, 0444);
MODULE_PARM_DESC(selftest_fail, "testing only: make the load-time crypto self-test fail");

static unsigned int ripsec_net_id __read_mostly;

struct ripsec_pernet {
	void *state; /* owned by Rust: ripsec_rs_net_init / ripsec_rs_net_exit */
};

static void *ripsec_state(struct net *net)
{
	struct ripsec_pernet *pn = net_generic(net, ripsec_net_id);

	return pn->state;
}

static int __net_init ripsec_net_init(struct net *net)
{
	struct ripsec_pernet *pn = net_generic(net, ripsec_net_id);

	pn->state = ripsec_rs_net_init(net->net_cookie);
	return pn->state ? 0 : -ENOMEM;
}

static void __net_exit ripsec_net_exit(struct net *net)
{
	struct ripsec_pernet *pn = net_generic(net, ripsec_net_id);

	ripsec_rs_net_exit(pn->state);
	pn->state = NULL;
}

static struct pernet_operations ripsec_net_ops = {
	.init = ripsec_net_init,
	.exit = ripsec_net_exit,
	.id = &ripsec_net_id,
	.size = sizeof(struct ripsec_pernet),
};

static const struct nla_policy ripsec_policy[RIPSEC_A_MAX + 1] = {
	[RIPSEC_A_VERSION] = { .type = NLA_REJECT },
	[RIPSEC_A_BACKEND] = { .type = NLA_REJECT },
	[RIPSEC_A_NETNS_COOKIE] = { .type = NLA_REJECT },
	[RIPSEC_A_COUNTERS] = { .type = NLA_REJECT },
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
	void *state = ripsec_state(net);
	struct sk_buff *msg;
	void *hdr;
	int err;

	if (!state)
		return -ENODEV;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &ripsec_genl_family, 0, RIPSEC_CMD_GET_STATUS);
	if (!hdr) {
		err = -EMSGSIZE;
		goto fail;
	}
	err = -EMSGSIZE;
	if (nla_put_string(msg, RIPSEC_A_VERSION, ripsec_rs_version()) ||
	    nla_put_string(msg, RIPSEC_A_BACKEND, ripsec_rs_backend()) ||
	    nla_put_u64_64bit(msg, RIPSEC_A_NETNS_COOKIE, net->net_cookie, RIPSEC_A_PAD))
		goto fail;
	err = ripsec_put_counters(msg, state);
	if (err)
		goto fail;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
fail:
	nlmsg_free(msg);
	return err;
}

static const struct genl_small_ops ripsec_genl_ops[] = {
	{
		.cmd = RIPSEC_CMD_GET_STATUS,
		.doit = ripsec_nl_get_status,
		.flags = GENL_UNS_ADMIN_PERM,
	},
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
	/* Strict attribute validation for every command, present and future. */
	.resv_start_op = RIPSEC_CMD_GET_STATUS,
	.small_ops = ripsec_genl_ops,
	.n_small_ops = ARRAY_SIZE(ripsec_genl_ops),
	.mcgrps = ripsec_mcgrps,
	.n_mcgrps = ARRAY_SIZE(ripsec_mcgrps),
	.module = THIS_MODULE,
};

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
