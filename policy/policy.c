/*
 * policy: requirement lookup (see policy.h).
 *
 * Layers, strongest first: a static policy from the configuration, then
 * (future) DANE, then MTA-STS from the sts engine, then the default level.
 * Static and default answers are synchronous; an MTA-STS answer may need
 * DNS and HTTPS, and then comes through a struct policy_query that owns the
 * engine's handle. policy_cancel() cancels that handle, so no callback
 * runs afterwards and nothing points back at the session.
 */
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "policy.h"
#include "sts.h"

struct policy_engine {
	struct ev_loop *loop;
	struct dns *dns;
	struct sts *sts; /* NULL when MTA-STS is disabled */
};

struct policy_query {
	struct policy_engine *pe;
	struct cfg *cfg; /* the session's snapshot, referenced */
	struct sts_lookup *sl;
	policy_cb *cb;
	void *arg;
	int starting;       /* inside policy_lookup */
	int have_req;       /* answered while starting */
	struct tls_req req; /* that answer */
};

struct policy_engine *
policy_new(struct ev_loop *loop, struct dns *dns, const struct cfg *cfg, char *err, size_t errsz)
{
	struct policy_engine *pe = calloc(1, sizeof(*pe));

	if (pe == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	pe->loop = loop;
	pe->dns = dns;
	if (cfg != NULL && cfg->sts_enabled &&
	    (pe->sts = sts_new(loop, dns, cfg, err, errsz)) == NULL) {
		free(pe);
		return NULL;
	}
	return pe;
}

void
policy_free(struct policy_engine *pe)
{
	if (pe == NULL)
		return;
	sts_free(pe->sts);
	free(pe);
}

/*
 * Turn an MTA-STS answer into a requirement. base is the static/default
 * requirement for the domain (here always the default: a static policy
 * never gets this far).
 */
static void
policy_from_sts(const struct sts_result *r, const struct tls_req *base, struct tls_req *req)
{
	*req = *base;
	switch (r->status) {
	case STS_TEMPERROR:
		/* Nothing cached and DNS failing: as "no policy" (the relay's
		 * default), but said loudly. */
		log_notice("mta-sts: %s: %s; using the default level", r->domain, r->error);
		return;
	case STS_NONE:
		if (r->error != NULL && r->error[0] != '\0')
			log_debug("mta-sts: %s: no policy (%s)", r->domain, r->error);
		return;
	case STS_FOUND:
		break;
	}
	if (r->mode == STS_MODE_NONE)
		return; /* §5: mode none = as if no policy */
	if (r->mode == STS_MODE_TESTING && tlspolicy_requires_tls(base))
		return; /* testing never weakens a stricter default */
	memset(req, 0, sizeof(*req));
	/* §4: enforce = TLS, a certificate valid for an MX host matching a
	 * policy pattern; testing = the same checks, reported only (§5). */
	req->level = CFG_TLS_VERIFY;
	req->source = TLSPOLICY_SRC_MTASTS;
	req->testing = r->mode == STS_MODE_TESTING;
	snprintf(req->id, sizeof(req->id), "%s", r->id ? r->id : "");
	for (int i = 0; i < r->nmx && req->nmx < TLSPOLICY_MAXMX; i++)
		snprintf(req->mx[req->nmx++], sizeof(req->mx[0]), "%s", r->mx[i]);
	if (r->nmx > TLSPOLICY_MAXMX)
		/* Fail closed: an MX matching only a dropped pattern is
		 * refused (deferred), never accepted unchecked. */
		log_warnx("mta-sts: %s: policy has %d mx patterns, only the first %d are used",
		          r->domain, r->nmx, TLSPOLICY_MAXMX);
}

static void
policy_on_sts(void *arg, const struct sts_result *r)
{
	struct policy_query *q = arg;
	struct tls_req base, req;

	q->sl = NULL;
	tlspolicy_from_cfg(q->cfg, r->domain, &base);
	policy_from_sts(r, &base, &req);
	if (q->starting) {
		q->req = req;
		q->have_req = 1;
		return;
	}
	q->cb(q->arg, &req);
	cfg_unref(q->cfg);
	free(q);
}

struct policy_query *
policy_lookup(struct policy_engine *pe, const struct cfg *cfg, const char *domain, policy_cb *cb,
              void *arg)
{
	struct policy_query *q;
	struct sts_lookup *sl;
	struct tls_req req;

	tlspolicy_from_cfg(cfg, domain, &req);
	/* The operator's static policy wins over anything published (and
	 * DANE, when added, goes here: RFC 8461 §2). */
	if (req.source == TLSPOLICY_SRC_STATIC || pe == NULL || pe->sts == NULL ||
	    !cfg->sts_enabled || domain == NULL || domain[0] == '\0' || domain[0] == '[') {
		cb(arg, &req);
		return NULL;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		log_warnx("policy: out of memory; %s gets the default level", domain);
		cb(arg, &req);
		return NULL;
	}
	q->pe = pe;
	q->cfg = cfg_ref((struct cfg *)cfg);
	q->cb = cb;
	q->arg = arg;
	q->starting = 1;
	sl = sts_lookup(pe->sts, domain, policy_on_sts, q);
	q->starting = 0;
	if (sl == NULL) {
		/* Answered synchronously (from the cache). */
		struct tls_req r = q->req;

		if (!q->have_req)
			tlspolicy_from_cfg(cfg, domain, &r);
		cfg_unref(q->cfg);
		free(q);
		cb(arg, &r);
		return NULL;
	}
	q->sl = sl;
	return q;
}

void
policy_cancel(struct policy_query *q)
{
	if (q == NULL)
		return;
	sts_cancel(q->sl);
	cfg_unref(q->cfg);
	free(q);
}

struct sts *
policy_sts(struct policy_engine *pe)
{
	return pe != NULL ? pe->sts : NULL;
}
