/*
 * test_fetch: fetch.c (libcurl multi on libev) against a local nginx with
 * a test CA and fakedns.py (tests/unit/sts_harness.h).
 *
 * Table-driven: each policy host and the outcome the fetcher must report
 * (200 text/plain, text/plain with charset, 404, 301 not followed, wrong
 * media type, oversized body, wrong-name certificate, no address, refused
 * connection, a server that never answers). Then: the callback never runs
 * inside fetch_get, cancel in each phase (no callback afterwards),
 * cancel from the own callback, many concurrent fetches, fetch_free with
 * transfers pending, and the media-type check as a pure function.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "sts_harness.h"

#include "dns.h"
#include "fetch.h"

static struct ev_loop *loop;

struct got {
	int done;
	int calls;
	enum fetch_status status;
	long code;
	char body[512];
	size_t len;
	char error[256];
};

static void
on_fetch(void *arg, const struct fetch_result *r)
{
	struct got *g = arg;

	g->done = 1;
	g->calls++;
	g->status = r->status;
	g->code = r->http_code;
	g->len = r->len;
	snprintf(g->body, sizeof(g->body), "%s", r->body ? r->body : "");
	snprintf(g->error, sizeof(g->error), "%s", r->error ? r->error : "");
}

static struct fetch *
new_fetch(struct dns **dnsp, double timeout, size_t max)
{
	struct cfg *c = world_cfg(NULL);
	struct fetch_opts o;
	struct fetch *f;
	char err[256];

	assert_non_null(c);
	*dnsp = dns_new(loop, c, err, sizeof(err));
	assert_non_null(*dnsp);
	memset(&o, 0, sizeof(o));
	o.ca_file = c->ca_file;
	o.timeout = timeout;
	o.max_size = max;
	o.port = world.https_port;
	f = fetch_new(loop, *dnsp, &o, err, sizeof(err));
	if (f == NULL)
		fail_msg("fetch_new: %s", err);
	cfg_unref(c);
	return f;
}

static const struct {
	const char *domain;
	enum fetch_status want;
	long code;
	const char *errpart; /* a substring of the error, or NULL */
} cases[] = {
        {"good.sts.test", FETCH_OK, 200, NULL},
        {"charset.sts.test", FETCH_OK, 200, NULL}, /* text/plain; charset=utf-8 */
        {"missing.sts.test", FETCH_ERR_HTTP, 404, "HTTP status 404"},
        {"redirect.sts.test", FETCH_ERR_HTTP, 301, "not followed"},
        {"html.sts.test", FETCH_ERR_TYPE, 200, "text/html"},
        {"big.sts.test", FETCH_ERR_SIZE, 200, "larger than"},
        {"wrongcert.sts.test", FETCH_ERR_TLS, 0, "TLS"},
        {"nodns.sts.test", FETCH_ERR_DNS, 0, "address lookup"},
        {"refused.sts.test", FETCH_ERR_CONNECT, 0, "connect"},
        {"x.servfail.test", FETCH_ERR_DNSTEMP, 0, "address lookup"},
};

static void
test_table(void **state)
{
	struct dns *d;
	struct fetch *f;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 5.0, 65536);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct got g;

		memset(&g, 0, sizeof(g));
		assert_non_null(fetch_policy(f, cases[i].domain, on_fetch, &g));
		assert_int_equal(g.done, 0); /* never inside fetch_get */
		if (world_run_until(loop, &g.done, 15) == -1)
			fail_msg("%s: no callback", cases[i].domain);
		if (g.status != cases[i].want)
			fail_msg("%s: status %s, want %s (%s)", cases[i].domain,
			         fetch_strstatus(g.status), fetch_strstatus(cases[i].want),
			         g.error);
		if (cases[i].code && g.code != cases[i].code)
			fail_msg("%s: HTTP %ld, want %ld", cases[i].domain, g.code, cases[i].code);
		if (cases[i].errpart && strstr(g.error, cases[i].errpart) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", cases[i].domain, g.error,
			         cases[i].errpart);
		if (g.status == FETCH_OK) {
			assert_string_equal(g.body, POLICY_ENFORCE);
			assert_int_equal(g.len, strlen(POLICY_ENFORCE));
			assert_string_equal(g.error, "");
		}
		assert_int_equal(g.calls, 1);
	}
	fetch_free(f);
	dns_free(d);
}

static void
test_timeout(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct got g;
	ev_tstamp t0;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 1.0, 65536);
	memset(&g, 0, sizeof(g));
	ev_now_update(loop);
	t0 = ev_now(loop);
	assert_non_null(fetch_policy(f, "timeout.sts.test", on_fetch, &g));
	assert_int_equal(world_run_until(loop, &g.done, 10), 0);
	assert_int_equal(g.status, FETCH_ERR_TIMEOUT);
	/* the total timeout, not a multiple of it */
	assert_true(ev_now(loop) - t0 < 3.0);
	fetch_free(f);
	dns_free(d);
}

static void
test_size_cap_small(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct got g;

	(void)state;
	if (!world.ok)
		skip();
	/* the good policy is ~90 bytes: a 50-byte cap refuses it */
	f = new_fetch(&d, 5.0, 50);
	memset(&g, 0, sizeof(g));
	assert_non_null(fetch_policy(f, "good.sts.test", on_fetch, &g));
	assert_int_equal(world_run_until(loop, &g.done, 10), 0);
	assert_int_equal(g.status, FETCH_ERR_SIZE);
	fetch_free(f);
	dns_free(d);
}

static void
test_bad_input_async(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct got g;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 5.0, 65536);
	memset(&g, 0, sizeof(g));
	assert_non_null(fetch_get(f, "not a host", "/x", on_fetch, &g));
	assert_int_equal(g.done, 0);
	assert_int_equal(world_run_until(loop, &g.done, 5), 0);
	assert_int_equal(g.status, FETCH_ERR_INTERNAL);
	memset(&g, 0, sizeof(g));
	assert_non_null(fetch_get(f, "good.sts.test", "no-slash", on_fetch, &g));
	assert_int_equal(world_run_until(loop, &g.done, 5), 0);
	assert_int_equal(g.status, FETCH_ERR_INTERNAL);
	/* cancelled before its deferred failure is delivered */
	memset(&g, 0, sizeof(g));
	fetch_cancel(fetch_get(f, "not a host", "/x", on_fetch, &g));
	{
		int never = 0;
		world_run_until(loop, &never, 0.3);
	}
	assert_int_equal(g.calls, 0);
	fetch_free(f);
	dns_free(d);
}

static void
test_cancel(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct fetch_req *r;
	struct got g, g2;
	int never = 0;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 5.0, 65536);
	/* in the DNS phase */
	memset(&g, 0, sizeof(g));
	r = fetch_policy(f, "good.sts.test", on_fetch, &g);
	fetch_cancel(r);
	/* in the HTTP phase: against the silent server, after its address */
	memset(&g2, 0, sizeof(g2));
	r = fetch_policy(f, "timeout.sts.test", on_fetch, &g2);
	world_run_until(loop, &never, 0.5);
	fetch_cancel(r);
	world_run_until(loop, &never, 1.0);
	assert_int_equal(g.calls, 0);
	assert_int_equal(g2.calls, 0);
	fetch_cancel(NULL);
	fetch_free(f);
	dns_free(d);
}

static struct fetch_req *self_req;

static void
on_fetch_cancel_self(void *arg, const struct fetch_result *r)
{
	on_fetch(arg, r);
	fetch_cancel(self_req); /* a no-op */
}

static void
test_cancel_in_callback(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct got g;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 5.0, 65536);
	memset(&g, 0, sizeof(g));
	self_req = fetch_policy(f, "good.sts.test", on_fetch_cancel_self, &g);
	assert_int_equal(world_run_until(loop, &g.done, 10), 0);
	assert_int_equal(g.status, FETCH_OK);
	assert_int_equal(g.calls, 1);
	fetch_free(f);
	dns_free(d);
}

#define NCONC 24

static void
test_concurrent(void **state)
{
	static const char *const doms[] = {"good.sts.test", "missing.sts.test", "charset.sts.test",
	                                   "html.sts.test"};
	struct dns *d;
	struct fetch *f;
	struct got g[NCONC];
	int ndone = 0, all = 0;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 8.0, 65536);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < NCONC; i++)
		assert_non_null(fetch_policy(f, doms[i % 4], on_fetch, &g[i]));
	for (int round = 0; round < 200 && !all; round++) {
		world_run_until(loop, &all, 0.1);
		ndone = 0;
		for (int i = 0; i < NCONC; i++)
			ndone += g[i].done;
		all = ndone == NCONC;
	}
	assert_int_equal(ndone, NCONC);
	for (int i = 0; i < NCONC; i++) {
		static const enum fetch_status want[] = {FETCH_OK, FETCH_ERR_HTTP, FETCH_OK,
		                                         FETCH_ERR_TYPE};
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].status, want[i % 4]);
	}
	fetch_free(f);
	dns_free(d);
}

static void
test_free_pending(void **state)
{
	struct dns *d;
	struct fetch *f;
	struct got g[3];
	int never = 0;

	(void)state;
	if (!world.ok)
		skip();
	f = new_fetch(&d, 5.0, 65536);
	memset(g, 0, sizeof(g));
	fetch_policy(f, "good.sts.test", on_fetch, &g[0]);
	fetch_policy(f, "timeout.sts.test", on_fetch, &g[1]);
	world_run_until(loop, &never, 0.3);
	fetch_policy(f, "missing.sts.test", on_fetch, &g[2]);
	fetch_free(f); /* cancels everything: no callback, no leak (ASan) */
	dns_free(d);
	world_run_until(loop, &never, 0.3);
	for (int i = 0; i < 3; i++)
		assert_true(g[i].calls <= 1);
	assert_int_equal(g[1].calls, 0);
	assert_int_equal(g[2].calls, 0);
}

static void
test_text_plain(void **state)
{
	static const struct {
		const char *ct;
		int ok;
	} t[] = {
	        {"text/plain", 1},
	        {"TEXT/Plain", 1},
	        {"text/plain; charset=utf-8", 1},
	        {"text/plain;charset=us-ascii", 1},
	        {" text/plain ", 1},
	        {"text/plain ; format=flowed", 1},
	        {"text/html", 0},
	        {"text/plainx", 0},
	        {"text/plain-ish", 0},
	        {"text", 0},
	        {"", 0},
	        {"application/octet-stream", 0},
	        {"text/ plain", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (fetch_is_text_plain(t[i].ct) != t[i].ok)
			fail_msg("\"%s\": want %d", t[i].ct, t[i].ok);
	assert_int_equal(fetch_is_text_plain(NULL), 0);
	assert_string_equal(fetch_strstatus(FETCH_ERR_SIZE), "too_large");
}

static int
group_setup(void **state)
{
	return world_group_setup(state, &loop, "test_fetch");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_text_plain),
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_timeout),
	        cmocka_unit_test(test_size_cap_small),
	        cmocka_unit_test(test_bad_input_async),
	        cmocka_unit_test(test_cancel),
	        cmocka_unit_test(test_cancel_in_callback),
	        cmocka_unit_test(test_concurrent),
	        cmocka_unit_test(test_free_pending),
	};

	return cmocka_run_group_tests(tests, group_setup, world_group_teardown);
}
