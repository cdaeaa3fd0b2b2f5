/*
 * policy: requirement lookup (see policy.h). Today the sources are the
 * static policies and the default level, both answered synchronously; the
 * MTA-STS engine plugs in behind the same asynchronous interface.
 */
#include <stdlib.h>

#include "policy.h"

struct policy_engine {
	struct ev_loop *loop;
	struct dns *dns;
};

struct policy_engine *
policy_new(struct ev_loop *loop, struct dns *dns, char *err, size_t errsz)
{
	struct policy_engine *pe = calloc(1, sizeof(*pe));

	(void)err;
	(void)errsz;
	if (pe == NULL)
		return NULL;
	pe->loop = loop;
	pe->dns = dns;
	return pe;
}

void
policy_free(struct policy_engine *pe)
{
	free(pe);
}

struct policy_query *
policy_lookup(struct policy_engine *pe, const struct cfg *cfg, const char *domain, policy_cb *cb,
	      void *arg)
{
	struct tls_req req;

	(void)pe;
	tlspolicy_from_cfg(cfg, domain, &req);
	cb(arg, &req);
	return NULL;
}

void
policy_cancel(struct policy_query *q)
{
	(void)q;
}
