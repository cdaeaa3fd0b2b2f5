/*
 * policy: the one interface through which the relay learns what a
 * recipient domain requires (struct tls_req).
 *
 * Precedence, strongest first: a static policy from the configuration
 * (the operator's word), then DANE (RFC 7672; future, RFC 8461 §2 lets it
 * win over MTA-STS), then MTA-STS (RFC 8461), then the configured default
 * level. Lookups are asynchronous because MTA-STS and DANE need DNS and
 * HTTPS; the callback may run before policy_lookup() returns (then it
 * returns NULL). policy_cancel() guarantees no callback afterwards.
 */
#ifndef STSPROXY_POLICY_H
#define STSPROXY_POLICY_H

#include "tlspolicy.h"

struct ev_loop;
struct dns;
struct policy_engine;
struct policy_query;

typedef void policy_cb(void *arg, const struct tls_req *req);

/*
 * cfg: the start-up snapshot; its "sts" group configures the MTA-STS engine
 * (not created when sts.enabled is false). Loads the MTA-STS policy cache.
 * policy_free() cancels every pending lookup without callbacks; call it
 * before dns_free().
 */
struct policy_engine *policy_new(struct ev_loop *loop, struct dns *dns, const struct cfg *cfg,
                                 char *err, size_t errsz);
void policy_free(struct policy_engine *pe);

/* cfg is the caller's snapshot (sessions keep the one they started with). */
struct policy_query *policy_lookup(struct policy_engine *pe, const struct cfg *cfg,
                                   const char *domain, policy_cb *cb, void *arg);
void policy_cancel(struct policy_query *q);

struct sts;
/* The MTA-STS engine (its statistics and event hook), NULL when disabled. */
struct sts *policy_sts(struct policy_engine *pe);

#endif
