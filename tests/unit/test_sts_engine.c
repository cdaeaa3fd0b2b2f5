/*
 * test_sts_engine: the MTA-STS engine (sts.c) and its wiring into the
 * policy layer (policy.c), against a local nginx with a test CA and
 * fakedns.py (tests/unit/sts_harness.h).
 *
 * Covers, table-driven where it fits: discovery outcomes (enforce,
 * testing, none, no TXT, non-STS TXT, two TXT records, 404, 301, wrong
 * media type, oversized, wrong-name certificate, invalid policy, SERVFAIL),
 * answers from the cache (synchronous), the negative memory (no refetch of
 * a failed id), the cache used when DNS or the fetch fail, an id change
 * picked up, mode none replacing enforce only when fetched, one shared
 * operation for concurrent lookups with cancel, the cache file across an
 * engine restart with no network, the refresh scan, the entry bound, and
 * policy_lookup's precedence (static > MTA-STS > default) and mapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "sts_harness.h"

#include "dns.h"
#include "log.h"
#include "pcache.h"
#include "policy.h"
#include "sts.h"

static struct ev_loop *loop;

#define POLICY_WEEK "version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 604800\n"

struct ans {
	int done;
	int calls;
	enum sts_status status;
	enum sts_why why;
	enum sts_mode mode;
	char id[40];
	int nmx;
	char mx0[256];
	int from_cache;
	char error[STS_ERRMAX];
	char txt[256];
};

static void
on_sts(void *arg, const struct sts_result *r)
{
	struct ans *a = arg;

	a->done = 1;
	a->calls++;
	a->status = r->status;
	a->why = r->why;
	a->mode = r->mode;
	snprintf(a->id, sizeof(a->id), "%s", r->id ? r->id : "");
	a->nmx = r->nmx;
	snprintf(a->mx0, sizeof(a->mx0), "%s", r->nmx > 0 ? r->mx[0] : "");
	a->from_cache = r->from_cache;
	snprintf(a->error, sizeof(a->error), "%s", r->error ? r->error : "");
	snprintf(a->txt, sizeof(a->txt), "%s", r->txt ? r->txt : "");
}

struct eng {
	struct cfg *cfg;
	struct dns *dns;
	struct sts *e;
};

static void
eng_open(struct eng *g, const char *extra)
{
	char err[256];

	memset(g, 0, sizeof(*g));
	g->cfg = world_cfg(extra);
	assert_non_null(g->cfg);
	g->dns = dns_new(loop, g->cfg, err, sizeof(err));
	assert_non_null(g->dns);
	g->e = sts_new(loop, g->dns, g->cfg, err, sizeof(err));
	if (g->e == NULL)
		fail_msg("sts_new: %s", err);
}

static void
eng_close(struct eng *g)
{
	sts_free(g->e);
	dns_free(g->dns);
	cfg_unref(g->cfg);
}

/* Look up and wait; returns whether it was answered synchronously. */
static int
lookup(struct eng *g, const char *domain, int flags, struct ans *a)
{
	struct sts_lookup *l;

	memset(a, 0, sizeof(*a));
	l = sts_lookup_flags(g->e, domain, flags, on_sts, a);
	if (l == NULL) {
		assert_int_equal(a->calls, 1);
		return 1;
	}
	assert_int_equal(a->calls, 0);
	if (world_run_until(loop, &a->done, 20) == -1)
		fail_msg("%s: no answer", domain);
	assert_int_equal(a->calls, 1);
	return 0;
}

static const struct {
	const char *domain;
	enum sts_status status;
	enum sts_why why;
	enum sts_mode mode;
	const char *id;
	const char *errpart;
} table[] = {
        {"good.sts.test", STS_FOUND, STS_WHY_OK, STS_MODE_ENFORCE, "good1", NULL},
        {"GOOD.sts.test.", STS_FOUND, STS_WHY_OK, STS_MODE_ENFORCE, "good1", NULL},
        {"testing.sts.test", STS_FOUND, STS_WHY_OK, STS_MODE_TESTING, "testing1", NULL},
        {"none.sts.test", STS_FOUND, STS_WHY_OK, STS_MODE_NONE, "none1", NULL},
        {"charset.sts.test", STS_FOUND, STS_WHY_OK, STS_MODE_ENFORCE, "charset1", NULL},
        {"example.test", STS_NONE, STS_WHY_NO_RECORD, 0, "", "nxdomain"},
        {"spf.sts.test", STS_NONE, STS_WHY_NO_RECORD, 0, "", "TXT record: none"},
        {"two.sts.test", STS_NONE, STS_WHY_RECORD_INVALID, 0, "", "multiple"},
        {"missing.sts.test", STS_NONE, STS_WHY_FETCH, 0, "", "404"},
        {"redirect.sts.test", STS_NONE, STS_WHY_FETCH, 0, "", "301"},
        {"html.sts.test", STS_NONE, STS_WHY_FETCH, 0, "", "text/html"},
        {"big.sts.test", STS_NONE, STS_WHY_FETCH, 0, "", "larger than"},
        {"wrongcert.sts.test", STS_NONE, STS_WHY_FETCH, 0, "", "TLS"},
        {"bad.sts.test", STS_NONE, STS_WHY_POLICY_INVALID, 0, "", "enforcing"},
        {"x.servfail.test", STS_TEMPERROR, STS_WHY_DNS_TEMP, 0, "", "tempfail"},
        {"[192.0.2.1]", STS_NONE, STS_WHY_BAD_DOMAIN, 0, "", NULL},
        {"under_score.test", STS_NONE, STS_WHY_BAD_DOMAIN, 0, "", NULL},
};

/* What the engine's event hook saw. */
struct seen_events {
	int fetch_failed, policy_invalid, record_invalid, other;
};

static void
on_event(void *arg, const char *name, const char *severity, const char *domain)
{
	struct seen_events *ev = arg;

	assert_non_null(domain);
	if (strcmp(name, "mta_sts_fetch_failed") == 0 && strcmp(severity, "warning") == 0)
		ev->fetch_failed++;
	else if (strcmp(name, "mta_sts_policy_invalid") == 0 && strcmp(severity, "warning") == 0)
		ev->policy_invalid++;
	else if (strcmp(name, "mta_sts_record_invalid") == 0 && strcmp(severity, "notice") == 0)
		ev->record_invalid++;
	else
		ev->other++;
}

static void
test_outcomes(void **state)
{
	struct seen_events ev = {0};
	const struct sts_stats *st;
	unsigned long long total = 0;
	struct eng g;
	struct ans a;

	(void)state;
	if (!world.ok)
		skip();
	eng_open(&g, NULL);
	sts_set_event_hook(g.e, on_event, &ev);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		lookup(&g, table[i].domain, 0, &a);
		if (a.status != table[i].status || a.why != table[i].why)
			fail_msg("%s: %s/%s, want %s/%s (%s)", table[i].domain,
			         sts_strstatus(a.status), sts_strwhy(a.why),
			         sts_strstatus(table[i].status), sts_strwhy(table[i].why), a.error);
		if (a.status == STS_FOUND) {
			assert_int_equal(a.mode, table[i].mode);
			assert_string_equal(a.id, table[i].id);
			/* the upper-case variant reuses the first answer */
			assert_int_equal(a.from_cache,
			                 strcmp(table[i].domain, "GOOD.sts.test.") == 0);
		}
		if (table[i].errpart != NULL && strstr(a.error, table[i].errpart) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", table[i].domain, a.error,
			         table[i].errpart);
	}
	/* split TXT strings are one record (RFC 8461 §3.1) */
	lookup(&g, "testing.sts.test", STS_LOOKUP_CHECK, &a);
	assert_string_equal(a.txt, "v=STSv1; id=testing1");
	/* the enforce policy's patterns */
	lookup(&g, "good.sts.test", 0, &a);
	assert_int_equal(a.nmx, 2);
	assert_string_equal(a.mx0, "mx1.good.sts.test");
	assert_int_equal(sts_pending(g.e), 0);

	/* counters for metrics: one answer per lookup, by status and reason */
	st = sts_stats(g.e);
	for (int i = 0; i < STS_STATUS_COUNT; i++)
		for (int k = 0; k < STS_WHY_COUNT; k++)
			total += st->answers[i][k];
	assert_int_equal(total, sizeof(table) / sizeof(table[0]) + 2);
	assert_int_equal(st->answers[STS_FOUND][STS_WHY_OK], 5 + 2);
	assert_int_equal(st->answers[STS_NONE][STS_WHY_FETCH], 5);
	assert_int_equal(st->answers[STS_NONE][STS_WHY_BAD_DOMAIN], 2);
	assert_int_equal(st->answers[STS_TEMPERROR][STS_WHY_DNS_TEMP], 1);
	/* fetched: the four policies, the five failed fetches, the invalid one */
	assert_int_equal(st->fetches, 4 + 5 + 1);
	/* and the engine's events reached the hook */
	assert_int_equal(ev.fetch_failed, 5);
	assert_int_equal(ev.policy_invalid, 1);
	assert_int_equal(ev.record_invalid, 1);
	assert_int_equal(ev.other, 0);
	eng_close(&g);
}

static void
test_cache_sync_and_negative(void **state)
{
	struct eng g;
	struct ans a;

	(void)state;
	if (!world.ok)
		skip();
	eng_open(&g, "negative_ttl = 1.0;");
	assert_int_equal(lookup(&g, "good.sts.test", 0, &a), 0);
	assert_false(a.from_cache);
	/* fresh policy: answered at once, from the cache */
	assert_int_equal(lookup(&g, "good.sts.test", 0, &a), 1);
	assert_int_equal(a.status, STS_FOUND);
	assert_true(a.from_cache);
	assert_string_equal(a.id, "good1");
	/* with CHECK: TXT looked up, same id, no fetch */
	assert_int_equal(lookup(&g, "good.sts.test", STS_LOOKUP_CHECK, &a), 0);
	assert_int_equal(a.status, STS_FOUND);
	assert_true(a.from_cache);
	assert_int_equal(a.why, STS_WHY_OK);

	/* a failed id is not fetched again within negative_ttl... */
	lookup(&g, "missing.sts.test", 0, &a);
	assert_int_equal(a.why, STS_WHY_FETCH);
	lookup(&g, "missing.sts.test", 0, &a);
	assert_int_equal(a.status, STS_NONE);
	assert_int_equal(a.why, STS_WHY_NEGATIVE);
	assert_non_null(strstr(a.error, "404"));
	/* ...but after it */
	{
		int never = 0;
		world_run_until(loop, &never, 1.2);
	}
	lookup(&g, "missing.sts.test", 0, &a);
	assert_int_equal(a.why, STS_WHY_FETCH);
	eng_close(&g);
}

static void
test_concurrent_shared(void **state)
{
	struct eng g;
	struct ans a[4];
	struct sts_lookup *l[4];
	int all = 0;

	(void)state;
	if (!world.ok)
		skip();
	eng_open(&g, NULL);
	memset(a, 0, sizeof(a));
	for (int i = 0; i < 4; i++) {
		l[i] = sts_lookup(g.e, i % 2 ? "GOOD.sts.test" : "good.sts.test", on_sts, &a[i]);
		assert_non_null(l[i]);
	}
	/* one operation for the domain */
	assert_int_equal(sts_pending(g.e), 1);
	sts_cancel(l[2]);
	for (int round = 0; round < 100 && !all; round++) {
		world_run_until(loop, &all, 0.1);
		all = a[0].done && a[1].done && a[3].done;
	}
	assert_true(all);
	assert_int_equal(a[2].calls, 0);
	for (int i = 0; i < 4; i++)
		if (i != 2) {
			assert_int_equal(a[i].calls, 1);
			assert_int_equal(a[i].status, STS_FOUND);
			assert_string_equal(a[i].id, "good1");
		}
	/* a waiter cancelled alone: the operation still fills the cache */
	memset(a, 0, sizeof(a));
	l[0] = sts_lookup(g.e, "testing.sts.test", on_sts, &a[0]);
	sts_cancel(l[0]);
	sts_cancel(NULL);
	{
		int never = 0;
		for (int i = 0; i < 100 && sts_pending(g.e) > 0; i++)
			world_run_until(loop, &never, 0.1);
	}
	assert_int_equal(a[0].calls, 0);
	assert_int_equal(lookup(&g, "testing.sts.test", 0, &a[1]), 1);
	assert_int_equal(a[1].mode, STS_MODE_TESTING);
	/* freeing with waiters pending: no callback, no leak */
	memset(a, 0, sizeof(a));
	l[0] = sts_lookup(g.e, "none.sts.test", on_sts, &a[0]);
	assert_non_null(l[0]);
	eng_close(&g);
	assert_int_equal(a[0].calls, 0);
}

static void
test_cache_fallbacks(void **state)
{
	struct eng g;
	struct ans a;
	char err[256];
	time_t now = time(NULL);

	(void)state;
	if (!world.ok)
		skip();
	eng_open(&g, NULL);
	/* DNS SERVFAIL with a cached policy: the cached policy (§5.1) */
	assert_int_equal(pcache_put(sts_cache(g.e), "x.servfail.test", "old1", POLICY_ENFORCE,
	                            strlen(POLICY_ENFORCE), now, err, sizeof(err)),
	                 0);
	lookup(&g, "x.servfail.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(a.why, STS_WHY_DNS_TEMP);
	assert_true(a.from_cache);
	assert_string_equal(a.id, "old1");
	/* no TXT record any more, cached policy unexpired: still applies */
	assert_int_equal(pcache_put(sts_cache(g.e), "example.test", "gone1", POLICY_TESTING,
	                            strlen(POLICY_TESTING), now, err, sizeof(err)),
	                 0);
	lookup(&g, "example.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(a.why, STS_WHY_NO_RECORD);
	assert_int_equal(a.mode, STS_MODE_TESTING);
	/* an expired cached policy does not apply */
	assert_int_equal(pcache_put(sts_cache(g.e), "example.test", "gone1", POLICY_TESTING,
	                            strlen(POLICY_TESTING), now - 7200, err, sizeof(err)),
	                 0);
	lookup(&g, "example.test", 0, &a);
	assert_int_equal(a.status, STS_NONE);
	/* new id whose fetch fails: the old policy stays, the failure is
	 * recorded, the id is not moved */
	assert_int_equal(pcache_put(sts_cache(g.e), "missing.sts.test", "missing0", POLICY_ENFORCE,
	                            strlen(POLICY_ENFORCE), now, err, sizeof(err)),
	                 0);
	lookup(&g, "missing.sts.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(a.why, STS_WHY_FETCH);
	assert_string_equal(a.id, "missing0");
	assert_int_equal(a.mode, STS_MODE_ENFORCE);
	{
		const struct pcache_entry *ent;
		assert_int_equal(pcache_lookup(sts_cache(g.e), "missing.sts.test", now, &ent),
		                 PCACHE_FRESH);
		assert_string_equal(ent->id, "missing0");
		assert_non_null(strstr(ent->last_error, "404"));
	}
	/* an invalid new policy does not replace the cached one either */
	assert_int_equal(pcache_put(sts_cache(g.e), "bad.sts.test", "bad0", POLICY_ENFORCE,
	                            strlen(POLICY_ENFORCE), now, err, sizeof(err)),
	                 0);
	lookup(&g, "bad.sts.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(a.why, STS_WHY_POLICY_INVALID);
	assert_string_equal(a.id, "bad0");
	/* mode none replaces enforce when it was fetched successfully */
	assert_int_equal(pcache_put(sts_cache(g.e), "none2.sts.test", "none2old", POLICY_ENFORCE,
	                            strlen(POLICY_ENFORCE), now, err, sizeof(err)),
	                 0);
	lookup(&g, "none2.sts.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(a.mode, STS_MODE_NONE);
	assert_string_equal(a.id, "none2new");
	assert_false(a.from_cache);
	eng_close(&g);
}

static void
test_id_change(void **state)
{
	struct eng g;
	struct ans a;

	(void)state;
	if (!world.ok)
		skip();
	assert_int_equal(world_policy("change", POLICY_ENFORCE), 0);
	eng_open(&g, NULL);
	lookup(&g, "change.sts.test", 0, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_string_equal(a.id, "change1");
	assert_int_equal(a.mode, STS_MODE_ENFORCE);
	/* the domain publishes a new policy with a new id */
	assert_int_equal(world_policy("change", POLICY_TESTING), 0);
	assert_int_equal(world_dns_restart("change2"), 0);
	lookup(&g, "change.sts.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_string_equal(a.id, "change2");
	assert_int_equal(a.mode, STS_MODE_TESTING);
	assert_false(a.from_cache);
	/* and the policy server goes away: with the same id, nothing to do */
	assert_int_equal(world_sh("rm -f %s/www/change/.well-known/mta-sts.txt", world.dir), 0);
	lookup(&g, "change.sts.test", STS_LOOKUP_CHECK, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_string_equal(a.id, "change2");
	assert_int_equal(world_dns_restart("change1"), 0);
	assert_int_equal(world_policy("change", POLICY_ENFORCE), 0);
	eng_close(&g);
}

static void
test_persistence(void **state)
{
	struct eng g;
	struct ans a;
	char extra[256], err[256], path[160];
	struct cfg *dead;
	struct dns *dd;
	struct sts *e;
	int blackhole;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	FILE *fp;

	(void)state;
	if (!world.ok)
		skip();
	snprintf(path, sizeof(path), "%s/persist.cache", world.dir);
	unlink(path);
	snprintf(extra, sizeof(extra), "cache_file = \"%s\";", path);
	eng_open(&g, extra);
	lookup(&g, "cache.sts.test", 0, &a);
	assert_int_equal(a.status, STS_FOUND);
	/* written right after the fetch */
	assert_int_equal(access(path, R_OK), 0);
	eng_close(&g);

	/* A new engine whose resolver is a black hole: the policy is
	 * there before any network access, answered synchronously. */
	blackhole = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(blackhole, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(blackhole, (struct sockaddr *)&sin, &len), 0);
	snprintf(extra, sizeof(extra),
	         "dns = { servers = [ \"127.0.0.1:%d\" ]; timeout = 0.2; tries = 1; };\n"
	         "sts = { cache_file = \"%s\"; };\n",
	         ntohs(sin.sin_port), path);
	assert_int_equal(world_writes("dead.conf", extra), 0);
	snprintf(extra, sizeof(extra), "%s/dead.conf", world.dir);
	dead = cfg_load(extra, err, sizeof(err));
	if (dead == NULL)
		fail_msg("%s", err);
	dd = dns_new(loop, dead, err, sizeof(err));
	e = sts_new(loop, dd, dead, err, sizeof(err));
	assert_non_null(e);
	memset(&a, 0, sizeof(a));
	assert_null(sts_lookup(e, "cache.sts.test", on_sts, &a));
	assert_int_equal(a.status, STS_FOUND);
	assert_string_equal(a.id, "cache1");
	assert_int_equal(a.mode, STS_MODE_ENFORCE);
	assert_true(a.from_cache);
	/* the background TXT check times out: the policy stays */
	{
		int never = 0;
		for (int i = 0; i < 30 && sts_pending(e) > 0; i++)
			world_run_until(loop, &never, 0.1);
	}
	assert_int_equal(sts_pending(e), 0);
	memset(&a, 0, sizeof(a));
	assert_null(sts_lookup(e, "cache.sts.test", on_sts, &a));
	assert_int_equal(a.status, STS_FOUND);
	sts_free(e);
	dns_free(dd);
	cfg_unref(dead);
	close(blackhole);

	/* a damaged line costs only that line */
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs("garbage line here\n", fp);
	fclose(fp);
	snprintf(extra, sizeof(extra), "cache_file = \"%s\";", path);
	eng_open(&g, extra);
	assert_int_equal(pcache_count(sts_cache(g.e)), 1);
	eng_close(&g);
	unlink(path);
}

static void
test_refresh_and_bound(void **state)
{
	struct eng g;
	struct ans a;
	char err[256];
	time_t now = time(NULL);
	const struct pcache_entry *ent;
	int never = 0;

	(void)state;
	if (!world.ok)
		skip();
	eng_open(&g, "max_cache_entries = 2;");
	/* checked two days ago, still valid: refreshed (§10.2) */
	assert_int_equal(pcache_put(sts_cache(g.e), "c1.sts.test", "c1", POLICY_WEEK,
	                            strlen(POLICY_WEEK), now - 2 * 86400, err, sizeof(err)),
	                 0);
	assert_int_equal(pcache_lookup(sts_cache(g.e), "c1.sts.test", now, &ent), PCACHE_FRESH);
	assert_int_equal(sts_refresh_scan(g.e), 1);
	for (int i = 0; i < 100 && sts_pending(g.e) > 0; i++)
		world_run_until(loop, &never, 0.1);
	assert_int_equal(pcache_lookup(sts_cache(g.e), "c1.sts.test", time(NULL), &ent),
	                 PCACHE_FRESH);
	assert_true(ent->fetched_at >= now);
	/* nothing due now */
	assert_int_equal(sts_refresh_scan(g.e), 0);

	/* bound: two entries at most; the one expiring first goes */
	lookup(&g, "c2.sts.test", 0, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(pcache_count(sts_cache(g.e)), 2);
	lookup(&g, "c3.sts.test", 0, &a);
	assert_int_equal(a.status, STS_FOUND);
	assert_int_equal(pcache_count(sts_cache(g.e)), 2);
	assert_int_equal(pcache_lookup(sts_cache(g.e), "c3.sts.test", time(NULL), NULL),
	                 PCACHE_FRESH);
	eng_close(&g);
}

/* --- policy.c ----------------------------------------------------------- */

struct preq {
	int done;
	int calls;
	struct tls_req req;
};

static void
on_policy(void *arg, const struct tls_req *req)
{
	struct preq *p = arg;

	p->done = 1;
	p->calls++;
	p->req = *req;
}

static void
policy_wait(struct policy_engine *pe, const struct cfg *cfg, const char *domain, struct preq *p)
{
	struct policy_query *q;

	memset(p, 0, sizeof(*p));
	q = policy_lookup(pe, cfg, domain, on_policy, p);
	if (q == NULL) {
		assert_int_equal(p->calls, 1);
		return;
	}
	assert_int_equal(world_run_until(loop, &p->done, 20), 0);
	assert_int_equal(p->calls, 1);
}

static void
test_policy_layer(void **state)
{
	struct cfg *cfg;
	struct dns *d;
	struct policy_engine *pe;
	struct policy_query *q;
	struct preq p;
	char err[256], text[1024], path[160];

	(void)state;
	if (!world.ok)
		skip();
	snprintf(text, sizeof(text),
	         "dns = { servers = [ \"127.0.0.1:%d\" ]; timeout = 1.0; tries = 2; };\n"
	         "tls = { ca_file = \"%s/ca.pem\"; };\n"
	         "sts = { https_port = %d; fetch_timeout = 3.0; };\n"
	         "policy = { default_level = \"may\"; static = ( { domain = \"testing.sts.test\"; "
	         "level = \"encrypt\"; } ); };\n",
	         world.dns.port, world.dir, world.https_port);
	assert_int_equal(world_writes("policy.conf", text), 0);
	snprintf(path, sizeof(path), "%s/policy.conf", world.dir);
	cfg = cfg_load(path, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	d = dns_new(loop, cfg, err, sizeof(err));
	pe = policy_new(loop, d, cfg, err, sizeof(err));
	assert_non_null(pe);

	/* enforce -> verify, MTA-STS, the patterns, the id */
	policy_wait(pe, cfg, "good.sts.test", &p);
	assert_int_equal(p.req.level, CFG_TLS_VERIFY);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_MTASTS);
	assert_int_equal(p.req.testing, 0);
	assert_int_equal(p.req.nmx, 2);
	assert_string_equal(p.req.mx[1], "*.mx.good.sts.test");
	assert_string_equal(p.req.id, "good1");
	assert_true(tlspolicy_requires_tls(&p.req));
	/* now from the cache, synchronously */
	memset(&p, 0, sizeof(p));
	assert_null(policy_lookup(pe, cfg, "good.sts.test", on_policy, &p));
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_MTASTS);
	/* the static policy wins, without any lookup */
	memset(&p, 0, sizeof(p));
	assert_null(policy_lookup(pe, cfg, "testing.sts.test", on_policy, &p));
	assert_int_equal(p.req.source, TLSPOLICY_SRC_STATIC);
	assert_int_equal(p.req.level, CFG_TLS_ENCRYPT);
	/* none -> the default */
	policy_wait(pe, cfg, "none.sts.test", &p);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
	assert_int_equal(p.req.level, CFG_TLS_MAY);
	/* no policy, failures, temporary errors -> the default */
	policy_wait(pe, cfg, "example.test", &p);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
	policy_wait(pe, cfg, "missing.sts.test", &p);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
	policy_wait(pe, cfg, "x.servfail.test", &p);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
	policy_wait(pe, cfg, "", &p);
	assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
	/* cancel: no callback afterwards */
	memset(&p, 0, sizeof(p));
	q = policy_lookup(pe, cfg, "charset.sts.test", on_policy, &p);
	assert_non_null(q);
	policy_cancel(q);
	policy_cancel(NULL);
	{
		int never = 0;
		world_run_until(loop, &never, 1.0);
	}
	assert_int_equal(p.calls, 0);
	/* a pending lookup when the engine goes away: no callback */
	q = policy_lookup(pe, cfg, "html.sts.test", on_policy, &p);
	assert_non_null(q);
	policy_cancel(q);
	policy_free(pe);
	dns_free(d);
	cfg_unref(cfg);
}

static void
test_policy_testing_and_disabled(void **state)
{
	struct cfg *cfg;
	struct dns *d;
	struct policy_engine *pe;
	struct preq p;
	char err[256], text[1024], path[160];

	(void)state;
	if (!world.ok)
		skip();
	for (int round = 0; round < 3; round++) {
		snprintf(text, sizeof(text),
		         "dns = { servers = [ \"127.0.0.1:%d\" ]; timeout = 1.0; tries = 2; };\n"
		         "tls = { ca_file = \"%s/ca.pem\"; };\n"
		         "sts = { enabled = %s; https_port = %d; };\n"
		         "policy = { default_level = \"%s\"; };\n",
		         world.dns.port, world.dir, round == 2 ? "false" : "true", world.https_port,
		         round == 1 ? "encrypt" : "may");
		assert_int_equal(world_writes("policy.conf", text), 0);
		snprintf(path, sizeof(path), "%s/policy.conf", world.dir);
		cfg = cfg_load(path, err, sizeof(err));
		assert_non_null(cfg);
		d = dns_new(loop, cfg, err, sizeof(err));
		pe = policy_new(loop, d, cfg, err, sizeof(err));
		assert_non_null(pe);
		policy_wait(pe, cfg, "testing.sts.test", &p);
		if (round == 0) {
			/* testing -> verify, reported only */
			assert_int_equal(p.req.source, TLSPOLICY_SRC_MTASTS);
			assert_int_equal(p.req.level, CFG_TLS_VERIFY);
			assert_int_equal(p.req.testing, 1);
			assert_false(tlspolicy_requires_tls(&p.req));
		} else if (round == 1) {
			/* testing never weakens a stricter default */
			assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
			assert_int_equal(p.req.level, CFG_TLS_ENCRYPT);
		} else {
			/* disabled: no lookup at all */
			assert_int_equal(p.req.source, TLSPOLICY_SRC_DEFAULT);
		}
		policy_free(pe);
		dns_free(d);
		cfg_unref(cfg);
	}
}

static int
group_setup(void **state)
{
	log_open("-", LOG_FMT_TEXT, getenv("STS_TEST_DEBUG") ? LOG_DEBUG : LOG_ERR, 0);
	return world_group_setup(state, &loop, "test_sts_engine");
}

static int
group_teardown(void **state)
{
	world_group_teardown(state);
	log_close();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_outcomes),
	        cmocka_unit_test(test_cache_sync_and_negative),
	        cmocka_unit_test(test_concurrent_shared),
	        cmocka_unit_test(test_cache_fallbacks),
	        cmocka_unit_test(test_id_change),
	        cmocka_unit_test(test_persistence),
	        cmocka_unit_test(test_refresh_and_bound),
	        cmocka_unit_test(test_policy_layer),
	        cmocka_unit_test(test_policy_testing_and_disabled),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
