/*
 * test_mxfind: mxfind.c over dns.c against tests/data/dns/fakedns.py (a
 * python3-dnslib server started for this test on a loopback port, killed
 * in the group teardown or by PR_SET_PDEATHSIG if this process dies;
 * the harness is tests/unit/fakedns.h).
 *
 * Covers mxfind_same_ip (v4-mapped aware, port ignored), matching v4, v6
 * and v4-mapped destinations, the implicit MX (RFC 5321 §5.1), the null
 * MX (RFC 7505), MX lookup failures, hosts whose addresses fail, shared
 * and duplicate hosts, the MXFIND_MAXHOSTS/MAXADDRS bounds, synchronous
 * completion, cancel before and during the address phase and from inside
 * the callback, and many mxfinds at once. Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ev.h>

#include "dns.h"
#include "fakedns.h"
#include "mxfind.h"

static struct fakedns srv;
static struct ev_loop *loop;

static int
group_setup(void **state)
{
	return fakedns_group_setup(state, &loop, &srv, 0);
}

/* --- results ------------------------------------------------------------ */

struct mres {
	int called;
	struct mxfind_result r;
};

static int ndone;

static void
on_found(void *arg, const struct mxfind_result *res)
{
	struct mres *m = arg;

	m->called++;
	m->r = *res;
	ndone++;
}

static const struct sockaddr *
sa4(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return (const struct sockaddr *)ss;
}

static const struct sockaddr *
sa6(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	return (const struct sockaddr *)ss;
}

/* Run one mxfind to completion. */
static void
find(struct dns *d, const char *domain, const struct sockaddr *dest, struct mres *m)
{
	memset(m, 0, sizeof(*m));
	ndone = 0;
	mxfind_start(d, domain, dest, on_found, m);
	fakedns_run_until(loop, &ndone, 1, 8);
	assert_int_equal(m->called, 1);
}

static void
check_host(const struct mxfind_host *h, const char *name, int pref, enum dns_status st, int naddrs,
           int matches)
{
	assert_string_equal(h->name, name);
	assert_int_equal(h->preference, pref);
	assert_int_equal(h->addr_status, st);
	assert_int_equal(h->naddrs, naddrs);
	assert_int_equal(h->matches_dest, matches);
}

/* --- tests ---------------------------------------------------------------- */

static void
test_same_ip(void **state)
{
	static const struct {
		const char *a, *b;
		int pa, pb, same;
	} t[] = {
	        {"127.0.0.1", "127.0.0.1", 25, 10025, 1}, /* port ignored */
	        {"127.0.0.1", "127.0.0.2", 25, 25, 0},
	        {"127.0.0.1", "::ffff:127.0.0.1", 25, 25, 1},
	        {"::ffff:127.0.0.1", "127.0.0.1", 25, 25, 1},
	        {"::ffff:127.0.0.1", "::ffff:127.0.0.1", 1, 2, 1},
	        {"::ffff:127.0.0.1", "::ffff:127.0.0.2", 1, 1, 0},
	        {"2001:db8::1", "2001:db8::1", 25, 587, 1},
	        {"2001:db8::1", "2001:db8::2", 25, 25, 0},
	        {"::127.0.0.1", "127.0.0.1", 25, 25, 0}, /* v4-compatible is not mapped */
	        {"::1", "127.0.0.1", 25, 25, 0},
	};
	struct sockaddr_storage a, b;
	struct sockaddr_un un;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const struct sockaddr *x =
		        strchr(t[i].a, ':') ? sa6(&a, t[i].a, t[i].pa) : sa4(&a, t[i].a, t[i].pa);
		const struct sockaddr *y =
		        strchr(t[i].b, ':') ? sa6(&b, t[i].b, t[i].pb) : sa4(&b, t[i].b, t[i].pb);

		if (mxfind_same_ip(x, y) != t[i].same)
			fail_msg("%s vs %s", t[i].a, t[i].b);
	}
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(mxfind_same_ip((struct sockaddr *)&un, (struct sockaddr *)&un), 0);
	assert_int_equal(mxfind_same_ip(NULL, sa4(&a, "127.0.0.1", 0)), 0);
	assert_int_equal(mxfind_same_ip(sa4(&a, "127.0.0.1", 0), NULL), 0);
	mxfind_cancel(NULL);
}

static void
test_match_v4(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "Example.Test.", sa4(&ss, "127.0.0.12", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.null_mx, 0);
	assert_int_equal(m.r.nhosts, 2);
	check_host(&m.r.hosts[0], "mx1.example.test", 10, DNS_OK, 2, 0);
	check_host(&m.r.hosts[1], "mx2.example.test", 20, DNS_OK, 1, 1);
	assert_int_equal(m.r.hosts[0].implicit, 0);
	assert_int_equal(m.r.match, 1);
	dns_free(d);
}

static void
test_match_v6(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "example.test", sa6(&ss, "2001:db8::11", 25), &m);
	assert_int_equal(m.r.nhosts, 2);
	check_host(&m.r.hosts[0], "mx1.example.test", 10, DNS_OK, 2, 1);
	check_host(&m.r.hosts[1], "mx2.example.test", 20, DNS_OK, 1, 0);
	assert_int_equal(m.r.match, 0);

	/* A v4 destination seen through a dual-stack socket. */
	find(d, "example.test", sa6(&ss, "::ffff:127.0.0.12", 25), &m);
	assert_int_equal(m.r.match, 1);
	find(d, "example.test", sa6(&ss, "::ffff:127.0.0.11", 25), &m);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

static void
test_no_match(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "example.test", sa4(&ss, "127.0.0.99", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.nhosts, 2);
	assert_int_equal(m.r.match, -1);
	/* No destination: the MX set only. */
	find(d, "example.test", NULL, &m);
	assert_int_equal(m.r.nhosts, 2);
	check_host(&m.r.hosts[0], "mx1.example.test", 10, DNS_OK, 2, 0);
	check_host(&m.r.hosts[1], "mx2.example.test", 20, DNS_OK, 1, 0);
	assert_int_equal(m.r.match, -1);
	dns_free(d);
}

/* RFC 5321 §5.1: no MX record, the domain is its own MX. */
static void
test_implicit_mx(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "NoMX.Test.", sa4(&ss, "127.0.0.13", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_NODATA);
	assert_int_equal(m.r.null_mx, 0);
	assert_int_equal(m.r.nhosts, 1);
	check_host(&m.r.hosts[0], "nomx.test", 0, DNS_OK, 1, 1);
	assert_int_equal(m.r.hosts[0].implicit, 1);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

/* RFC 7505: no hosts even though the domain has an A record. */
static void
test_null_mx(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "nullmx.test", sa4(&ss, "127.0.0.14", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.null_mx, 1);
	assert_int_equal(m.r.nhosts, 0);
	assert_int_equal(m.r.match, -1);

	/* "." next to a real MX: the real one is used. */
	find(d, "mixednull.test", sa4(&ss, "127.0.0.11", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.null_mx, 0);
	assert_int_equal(m.r.nhosts, 1);
	check_host(&m.r.hosts[0], "mx1.example.test", 10, DNS_OK, 2, 1);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

static void
test_mx_failures(void **state)
{
	static const struct {
		const char *domain;
		enum dns_status st;
	} t[] = {
	        {"nosuch.test", DNS_NXDOMAIN},  {"servfail.test", DNS_TEMPFAIL},
	        {"timeout.test", DNS_TEMPFAIL}, {"garbage.test", DNS_BADANSWER},
	        {"allbad.test", DNS_BADANSWER},
	};
	enum { N = sizeof(t) / sizeof(t[0]) };
	struct mres *m = calloc(N, sizeof(*m));
	struct dns *d = fakedns_mkdns(loop, &srv, 0.3, 2);
	struct sockaddr_storage ss;
	size_t i;

	(void)state;
	assert_non_null(m);
	assert_non_null(d);
	ndone = 0;
	for (i = 0; i < N; i++)
		assert_non_null(
		        mxfind_start(d, t[i].domain, sa4(&ss, "127.0.0.11", 25), on_found, &m[i]));
	fakedns_run_until(loop, &ndone, N, 8);
	for (i = 0; i < N; i++) {
		if (m[i].called != 1 || m[i].r.mx_status != t[i].st)
			fail_msg("%s: called %d, %s", t[i].domain, m[i].called,
			         dns_strstatus(m[i].r.mx_status));
		assert_int_equal(m[i].r.nhosts, 0);
		assert_int_equal(m[i].r.null_mx, 0);
		assert_int_equal(m[i].r.match, -1);
	}
	dns_free(d);
	free(m);
}

/* One host's addresses fail; the other still matches. */
static void
test_partial(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 0.3, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	find(d, "partial.test", sa4(&ss, "127.0.0.12", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.nhosts, 2);
	check_host(&m.r.hosts[0], "dead.partial.test", 10, DNS_TEMPFAIL, 0, 0);
	check_host(&m.r.hosts[1], "mx2.example.test", 20, DNS_OK, 1, 1);
	assert_int_equal(m.r.match, 1);
	dns_free(d);
}

static void
test_shared_and_dup(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	/* Both hosts have the address: the lowest preference is the match. */
	find(d, "shared.test", sa4(&ss, "127.0.0.20", 25), &m);
	assert_int_equal(m.r.nhosts, 2);
	check_host(&m.r.hosts[0], "a.shared.test", 10, DNS_OK, 1, 1);
	check_host(&m.r.hosts[1], "b.shared.test", 20, DNS_OK, 1, 1);
	assert_int_equal(m.r.match, 0);

	/* The same host twice (different case): resolved once. */
	find(d, "dup.test", sa4(&ss, "127.0.0.11", 25), &m);
	assert_int_equal(m.r.nhosts, 1);
	check_host(&m.r.hosts[0], "mx1.example.test", 10, DNS_OK, 2, 1);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

static void
test_bounds(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;
	char want[64];
	int k;

	(void)state;
	assert_non_null(d);
	/* 200 MX records: the 16 with the lowest preference. mxNNN has
	 * preference (199 - NNN) / 4 and address 127.2.0.NNN. */
	find(d, "huge.test", sa4(&ss, "127.2.0.185", 25), &m);
	assert_int_equal(m.r.mx_status, DNS_OK);
	assert_int_equal(m.r.nhosts, MXFIND_MAXHOSTS);
	for (k = 0; k < MXFIND_MAXHOSTS; k++) {
		int i = 196 - 4 * (k / 4) + k % 4;

		snprintf(want, sizeof(want), "mx%03d.huge.test", i);
		check_host(&m.r.hosts[k], want, k / 4, DNS_OK, 1, i == 185);
	}
	assert_int_equal(m.r.match, 13);
	/* A host beyond the first 16 is not considered. */
	find(d, "huge.test", sa4(&ss, "127.2.0.180", 25), &m);
	assert_int_equal(m.r.match, -1);

	/* 40 A + 40 AAAA: dns keeps 8 + 8, mxfind keeps the first 8 but
	 * matches against all 16. */
	find(d, "lots.test", sa6(&ss, "2001:db8:3::8", 25), &m);
	assert_int_equal(m.r.nhosts, 1);
	check_host(&m.r.hosts[0], "lots.test", 10, DNS_OK, MXFIND_MAXADDRS, 1);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

/* Completion before mxfind_start returns: NULL, the callback ran. */
static void
test_sync(void **state)
{
	const char *servers[] = {"[fe80::1]:53", NULL};
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2),
	           *dead = fakedns_mkdns_list(loop, servers, 1, 1);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	assert_non_null(dead);
	memset(&m, 0, sizeof(m));
	assert_null(mxfind_start(d, "not a domain", sa4(&ss, "127.0.0.1", 25), on_found, &m));
	assert_int_equal(m.called, 1);
	assert_int_equal(m.r.mx_status, DNS_NXDOMAIN);
	assert_int_equal(m.r.match, -1);

	memset(&m, 0, sizeof(m));
	assert_null(mxfind_start(dead, "example.test", sa4(&ss, "127.0.0.1", 25), on_found, &m));
	assert_int_equal(m.called, 1);
	assert_int_equal(m.r.mx_status, DNS_TEMPFAIL);

	memset(&m, 0, sizeof(m));
	assert_null(mxfind_start(NULL, "example.test", NULL, on_found, &m));
	assert_int_equal(m.called, 1);
	assert_int_equal(m.r.mx_status, DNS_TEMPFAIL);

	fakedns_run_for(loop, 0.1);
	dns_free(dead);
	dns_free(d);
}

static void
test_cancel(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres a, b, c;
	struct mxfind *ma, *mb, *mc;

	(void)state;
	assert_non_null(d);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	ndone = 0;
	/* slow.test: the MX answer takes 0.4 s. */
	ma = mxfind_start(d, "slow.test", sa4(&ss, "127.0.0.11", 25), on_found, &a);
	/* slowaddr.test: MX at once, the host's addresses take 0.4 s. */
	mb = mxfind_start(d, "slowaddr.test", sa4(&ss, "127.0.0.31", 25), on_found, &b);
	mc = mxfind_start(d, "slowaddr.test", sa4(&ss, "127.0.0.31", 25), on_found, &c);
	assert_non_null(ma);
	assert_non_null(mb);
	assert_non_null(mc);
	mxfind_cancel(ma);
	fakedns_run_for(loop, 0.2); /* mb is now waiting for addresses */
	assert_int_equal(ndone, 0);
	mxfind_cancel(mb);
	fakedns_run_until(loop, &ndone, 1, 3);
	assert_int_equal(c.called, 1);
	assert_int_equal(c.r.nhosts, 1);
	check_host(&c.r.hosts[0], "a.slow.test", 10, DNS_OK, 1, 1);
	fakedns_run_for(loop, 0.2);
	assert_int_equal(a.called, 0);
	assert_int_equal(b.called, 0);
	dns_free(d);
}

static struct mxfind *self_m;

static void
on_found_cancel_self(void *arg, const struct mxfind_result *res)
{
	/* Like conn_free() cancelling the session's pending mxfind. */
	mxfind_cancel(self_m);
	on_found(arg, res);
}

static void
test_cancel_in_callback(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m;

	(void)state;
	assert_non_null(d);
	memset(&m, 0, sizeof(m));
	ndone = 0;
	self_m = mxfind_start(d, "example.test", sa4(&ss, "127.0.0.11", 25), on_found_cancel_self,
	                      &m);
	assert_non_null(self_m);
	fakedns_run_until(loop, &ndone, 1, 5);
	assert_int_equal(m.called, 1);
	assert_int_equal(m.r.match, 0);
	dns_free(d);
}

/* Cancel everything, then free the resolver at once. */
static void
test_cancel_then_free(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	struct mres m[4];
	struct mxfind *h[4];
	int i;

	(void)state;
	assert_non_null(d);
	memset(m, 0, sizeof(m));
	h[0] = mxfind_start(d, "slow.test", sa4(&ss, "127.0.0.11", 25), on_found, &m[0]);
	h[1] = mxfind_start(d, "slowaddr.test", sa4(&ss, "127.0.0.11", 25), on_found, &m[1]);
	h[2] = mxfind_start(d, "timeout.test", NULL, on_found, &m[2]);
	h[3] = mxfind_start(d, "slowaddr.test", NULL, on_found, &m[3]);
	fakedns_run_for(loop, 0.1); /* the slowaddr ones are in their address phase */
	for (i = 0; i < 4; i++) {
		assert_non_null(h[i]);
		mxfind_cancel(h[i]);
	}
	dns_free(d);
	fakedns_run_for(loop, 0.5);
	for (i = 0; i < 4; i++)
		assert_int_equal(m[i].called, 0);
}

static void
test_many(void **state)
{
	enum { N = 60 };
	struct mres *m = calloc(N, sizeof(*m));
	struct dns *d = fakedns_mkdns(loop, &srv, 3, 2);
	struct sockaddr_storage ss;
	int i;

	(void)state;
	assert_non_null(m);
	assert_non_null(d);
	ndone = 0;
	for (i = 0; i < N; i++)
		assert_non_null(mxfind_start(d, i % 2 ? "example.test" : "nomx.test",
		                             sa4(&ss, i % 2 ? "127.0.0.12" : "127.0.0.13", 25),
		                             on_found, &m[i]));
	fakedns_run_until(loop, &ndone, N, 9);
	for (i = 0; i < N; i++) {
		assert_int_equal(m[i].called, 1);
		assert_int_equal(m[i].r.match, i % 2 ? 1 : 0);
	}
	dns_free(d);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_same_ip),
	        cmocka_unit_test(test_match_v4),
	        cmocka_unit_test(test_match_v6),
	        cmocka_unit_test(test_no_match),
	        cmocka_unit_test(test_implicit_mx),
	        cmocka_unit_test(test_null_mx),
	        cmocka_unit_test(test_mx_failures),
	        cmocka_unit_test(test_partial),
	        cmocka_unit_test(test_shared_and_dup),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_sync),
	        cmocka_unit_test(test_cancel),
	        cmocka_unit_test(test_cancel_in_callback),
	        cmocka_unit_test(test_cancel_then_free),
	        cmocka_unit_test(test_many),
	};

	/* TEST_FILTER=test_cancel* runs a subset. */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, fakedns_group_teardown);
}
