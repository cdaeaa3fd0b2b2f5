/*
 * sts: the MTA-STS engine (RFC 8461): per recipient domain, discover the
 * policy (TXT "_mta-sts.<domain>"), fetch it when its id is new, validate
 * it, cache it (pcache, in memory and in the configured file) and answer
 * the sessions waiting for it.
 *
 * Outcomes (struct sts_result):
 *  - STS_FOUND: a policy applies (mode enforce, testing or none), either
 *    fetched now or from the cache (from_cache). A cached unexpired policy
 *    is used whenever the TXT lookup or the fetch fails now (§5.1, §10.2).
 *  - STS_NONE: no policy: no TXT record / no single valid STSv1 record
 *    (§3.1), or the fetch failed or the policy was invalid (§3.3), and no
 *    unexpired cached policy.
 *  - STS_TEMPERROR: the TXT lookup failed temporarily (SERVFAIL, timeout)
 *    and nothing is cached: the caller treats it as no policy and logs.
 *
 * Rules kept here (the why is in sts.c):
 *  - one operation per domain at a time; concurrent lookups join it as
 *    waiters; a cancelled waiter leaves, the operation goes on and fills
 *    the cache;
 *  - a policy id whose fetch failed is not fetched again for
 *    cfg->sts_negative_ttl seconds;
 *  - only a successful fetch replaces a cached policy (also with mode
 *    none); failures are only recorded;
 *  - a fresh cached policy answers at once (synchronously); its TXT id is
 *    re-checked in the background at most every STS_TXT_RECHECK seconds;
 *  - a timer scans the cache every cfg->sts_refresh_interval seconds and
 *    refreshes (TXT + fetch) entries near expiry or not checked for a day.
 *
 * Handles: sts_lookup*() returns a handle, or NULL when the callback has
 * already run (answered from the cache, or an invalid domain). A handle is
 * valid until its callback returns or sts_cancel(); after sts_cancel() the
 * callback never runs; cancelling from inside the own callback is a no-op.
 * The result is valid only during the callback. sts_free() must not be
 * called from a callback and must come before dns_free().
 */
#ifndef STSPROXY_STS_H
#define STSPROXY_STS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "sts_policy.h"

#define STS_TXT_RECHECK 300 /* seconds between background TXT id checks */
#define STS_ERRMAX      256

struct ev_loop;
struct dns;
struct cfg;
struct pcache;
struct sts;
struct sts_lookup;

enum sts_status {
	STS_FOUND = 0,
	STS_NONE,
	STS_TEMPERROR,
};
#define STS_STATUS_COUNT (STS_TEMPERROR + 1)

/* Why the answer is what it is (operators' tool, tests, logs). */
enum sts_why {
	STS_WHY_OK = 0,         /* policy fetched now, or cached and id unchanged */
	STS_WHY_NO_RECORD,      /* NXDOMAIN / NODATA / no STSv1 record (§3.1) */
	STS_WHY_RECORD_INVALID, /* several STSv1 records, or an invalid one (§3.1) */
	STS_WHY_DNS_TEMP,       /* TXT lookup failed temporarily */
	STS_WHY_FETCH,          /* HTTPS fetch failed (§3.3) */
	STS_WHY_POLICY_INVALID, /* fetched, but not a valid policy (§3.2) */
	STS_WHY_NEGATIVE,       /* this id failed recently; not fetched again yet */
	STS_WHY_BAD_DOMAIN,     /* not a domain that can have a policy */
	STS_WHY_INTERNAL,       /* out of memory */
};
#define STS_WHY_COUNT (STS_WHY_INTERNAL + 1)

struct sts_result {
	enum sts_status status;
	enum sts_why why;
	const char *domain; /* lower-case, no trailing dot */
	/* STS_FOUND only: */
	enum sts_mode mode;
	int nmx;
	const char (*mx)[STS_MX_MAXLEN + 1];
	const char *id;
	uint32_t max_age;
	bool from_cache; /* fetched by an earlier operation */
	time_t fetched_at;
	time_t expires; /* fetched_at + max_age */
	/* The policy text: the applied policy's with STS_FOUND; otherwise the
	 * body this operation fetched but refused (invalid policy), or NULL. */
	const char *policy_text;
	size_t policy_len;
	/* Always: the failure that led to this answer ("" if none). With
	 * STS_FOUND from the cache, why the cache was used (the fetch of a
	 * new id failed, DNS failed, ...). */
	const char *error;
	/* The STSv1 TXT record seen by this operation, or NULL (answered
	 * from the cache without a lookup, or none found). */
	const char *txt;
};

typedef void sts_cb(void *arg, const struct sts_result *res);

/*
 * Engine on loop with resolver dns, settings from cfg (the "sts" group,
 * tls.ca_file/ca_path). Loads the cache file (damage is logged and
 * skipped). NULL with a message in err on failure.
 */
struct sts *sts_new(struct ev_loop *loop, struct dns *dns, const struct cfg *cfg, char *err,
                    size_t errsz);
/* Cancels everything (no callbacks), saves the cache if changed. NULL-safe. */
void sts_free(struct sts *e);

#define STS_LOOKUP_CHECK 0x01 /* look the TXT record up now even with a fresh cache */

struct sts_lookup *sts_lookup(struct sts *e, const char *domain, sts_cb *cb, void *arg);
struct sts_lookup *sts_lookup_flags(struct sts *e, const char *domain, int flags, sts_cb *cb,
                                    void *arg);
void sts_cancel(struct sts_lookup *l); /* NULL-safe */

/* Run one proactive refresh scan now; returns how many refreshes started. */
int sts_refresh_scan(struct sts *e);
/* The cache (for the operator tools); owned by the engine. */
struct pcache *sts_cache(struct sts *e);
/* Save the cache file now if it changed. 0 or -1 (errno). */
int sts_save(struct sts *e);
/* Operations in flight (tests). */
int sts_pending(const struct sts *e);

/* Counters since sts_new (metrics). */
struct sts_stats {
	/* Answers given to lookups, one per caller (sessions sharing one
	 * operation count once each), by status and reason. */
	unsigned long long answers[STS_STATUS_COUNT][STS_WHY_COUNT];
	unsigned long long fetches; /* HTTPS policy fetches started */
};
const struct sts_stats *sts_stats(const struct sts *e);

/*
 * The engine's own events (mta_sts_fetch_failed, mta_sts_policy_invalid,
 * mta_sts_record_invalid; see docs/events.md) are logged as event records;
 * one observer (metrics now, TLS-RPT reports later) also sees each.
 * severity: "warning" or "notice". fn NULL removes the observer.
 */
typedef void sts_event_fn(void *arg, const char *name, const char *severity, const char *domain);
void sts_set_event_hook(struct sts *e, sts_event_fn *fn, void *arg);

const char *sts_strstatus(enum sts_status st);
const char *sts_strwhy(enum sts_why why); /* "ok", "no_record", ... */

#endif
