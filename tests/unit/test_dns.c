/*
 * test_dns: dns.c against tests/data/dns/fakedns.py, a python3-dnslib
 * server started for this test on a loopback port (and killed in the
 * group teardown, or by PR_SET_PDEATHSIG if this process dies first);
 * the harness is tests/unit/fakedns.h.
 *
 * Covers the status mapping, MX sorting and bounds, hostile names, A+AAAA
 * combination, PTR (v4, v6, v4-mapped), TXT concatenation (RFC 8461 §3.1)
 * through a CNAME, TCP fallback for big answers, synchronous completion,
 * cancel, dns_free with queries outstanding and from inside a callback,
 * 200 concurrent queries and more c-ares sockets than any fixed watcher
 * array would hold. Every wait on the loop is bounded.
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
#include <unistd.h>

#include <ev.h>

#include "dns.h"
#include "fakedns.h"

#define NBLACKHOLES 23 /* more than ares_getsock()'s 16 sockets */
_Static_assert(NBLACKHOLES <= FAKEDNS_MAXHOLES, "fakedns.h keeps too few blackholes");

static struct fakedns srv;
static struct ev_loop *loop;

static int
group_setup(void **state)
{
	return fakedns_group_setup(state, &loop, &srv, NBLACKHOLES);
}

/* --- results ------------------------------------------------------------ */

struct res {
	int called;
	enum dns_status st;
	int n;
	struct dns_mx mx[DNS_MAXMX];
	struct dns_addr addr[DNS_MAXADDRS];
	char name[256];
	char *txt[DNS_MAXTXT];
	size_t txtlen[DNS_MAXTXT];
	int *counter;
};

static int ndone;

static void
res_clear(struct res *r)
{
	int i;

	for (i = 0; i < DNS_MAXTXT; i++)
		free(r->txt[i]);
	memset(r, 0, sizeof(*r));
}

static void
on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, int n)
{
	struct res *r = arg;

	r->called++;
	r->st = st;
	r->n = n;
	if (n > 0)
		memcpy(r->mx, mx, (size_t)n * sizeof(*mx));
	ndone++;
}

static void
on_addr(void *arg, enum dns_status st, const struct dns_addr *a, int n)
{
	struct res *r = arg;

	r->called++;
	r->st = st;
	r->n = n;
	if (n > 0)
		memcpy(r->addr, a, (size_t)n * sizeof(*a));
	ndone++;
}

static void
on_name(void *arg, enum dns_status st, const char *name)
{
	struct res *r = arg;

	r->called++;
	r->st = st;
	snprintf(r->name, sizeof(r->name), "%s", name != NULL ? name : "(null)");
	ndone++;
}

static void
on_txt(void *arg, enum dns_status st, const char *const *rec, const size_t *len, int n)
{
	struct res *r = arg;
	int i;

	r->called++;
	r->st = st;
	r->n = n;
	for (i = 0; i < n; i++) {
		/* The contract: len[i] bytes, and a NUL after them. */
		assert_int_equal(rec[i][len[i]], '\0');
		r->txt[i] = malloc(len[i] + 1);
		memcpy(r->txt[i], rec[i], len[i] + 1);
		r->txtlen[i] = len[i];
	}
	ndone++;
}

/* Start an MX query and wait for it. */
static void
wait_mx(struct dns *d, const char *name, struct res *r, double max)
{
	ndone = 0;
	dns_query_mx(d, name, on_mx, r);
	fakedns_run_until(loop, &ndone, 1, max);
	assert_int_equal(r->called, 1);
}

static void
sin4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void
sin6(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
}

static const char *
addr_text(const struct dns_addr *a, char *buf, size_t sz)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

	if (sa->sa_family == AF_INET) {
		assert_int_equal(a->len, sizeof(struct sockaddr_in));
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
		          (socklen_t)sz);
	} else {
		assert_int_equal(sa->sa_family, AF_INET6);
		assert_int_equal(a->len, sizeof(struct sockaddr_in6));
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          buf, (socklen_t)sz);
	}
	return buf;
}

/* --- tests: names and set-up -------------------------------------------- */

static void
test_normalize_name(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: rejected */
	} t[] = {
	        {"Example.TEST.", "example.test"},
	        {"_mta-sts.Example.com", "_mta-sts.example.com"},
	        {"a", "a"},
	        {"", NULL},
	        {".", NULL},
	        {"a..b", NULL},
	        {".a", NULL},
	        {"a.b..", NULL},
	        {"we ird.test", NULL},
	        {"back\\.slash", NULL},
	        {"caf\xc3\xa9.test", NULL},
	        {"x*.test", NULL},
	};
	char out[DNS_NAME_MAX + 1], big[400];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = dns_normalize_name(t[i].in, out, sizeof(out));

		if (t[i].out == NULL) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(out, t[i].out);
		}
	}
	/* 63-byte label fine, 64 not. */
	memset(big, 'a', 63);
	strcpy(big + 63, ".test");
	assert_int_equal(dns_normalize_name(big, out, sizeof(out)), 0);
	memset(big, 'a', 64);
	strcpy(big + 64, ".test");
	assert_int_equal(dns_normalize_name(big, out, sizeof(out)), -1);
	/* 253 bytes fine (with or without the trailing dot), 254 not. */
	for (i = 0; i < 253; i++)
		big[i] = (i % 2) ? '.' : 'a';
	big[253] = '\0';
	assert_int_equal(dns_normalize_name(big, out, sizeof(out)), 0);
	big[253] = '.';
	big[254] = '\0';
	assert_int_equal(dns_normalize_name(big, out, sizeof(out)), 0);
	memset(big, 'a', 300);
	big[300] = '\0';
	assert_int_equal(dns_normalize_name(big, out, sizeof(out)), -1);
	assert_int_equal(dns_normalize_name("abc", out, 3), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(dns_normalize_name(NULL, out, sizeof(out)), -1);
}

static void
test_servers(void **state)
{
	static const struct {
		const char *servers[4];
		const char *text; /* NULL: dns_new fails */
	} t[] = {
	        {{"1.2.3.4", NULL}, "1.2.3.4:53"},
	        {{"1.2.3.4:5353", "[::1]:53", NULL}, "1.2.3.4:5353,[::1]:53"},
	        {{"::1", "[2001:db8::1]", NULL}, "[::1]:53,[2001:db8::1]:53"},
	        {{"[::1]:65535", NULL}, "[::1]:65535"},
	        {{"localhost", NULL}, NULL},
	        {{"1.2.3.4:0", NULL}, NULL},
	        {{"1.2.3.4:65536", NULL}, NULL},
	        {{"1.2.3.4:", NULL}, NULL},
	        {{"1.2.3.4:53x", NULL}, NULL},
	        {{"[::1", NULL}, NULL},
	        {{"[::1]x", NULL}, NULL},
	        {{"[1.2.3.4]:53", NULL}, NULL},
	        {{"fe80::1%eth0", NULL}, NULL},
	        {{"1.2.3.4.5", NULL}, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dns *d = fakedns_mkdns_list(loop, t[i].servers, 1, 1);

		if (t[i].text == NULL) {
			assert_null(d);
			continue;
		}
		assert_non_null(d);
		assert_string_equal(dns_servers_text(d), t[i].text);
		dns_free(d);
	}
	/* The error names the entry. */
	{
		char s[] = "bogus", *list[] = {s}, err[256] = "";
		struct cfg c;

		memset(&c, 0, sizeof(c));
		c.dns_servers = list;
		c.ndns_servers = 1;
		assert_null(dns_new(loop, &c, err, sizeof(err)));
		assert_non_null(strstr(err, "bogus"));
	}
	/* No servers: the system resolver (nothing is sent in this test). */
	{
		struct dns *d = fakedns_mkdns_list(loop, NULL, 0, 0);

		assert_non_null(d);
		assert_string_equal(dns_servers_text(d), "");
		dns_free(d);
	}
	assert_string_equal(dns_servers_text(NULL), "");
	dns_free(NULL);
	dns_cancel(NULL);
}

static void
test_strstatus(void **state)
{
	(void)state;
	assert_string_equal(dns_strstatus(DNS_OK), "ok");
	assert_string_equal(dns_strstatus(DNS_NXDOMAIN), "nxdomain");
	assert_string_equal(dns_strstatus(DNS_NODATA), "nodata");
	assert_string_equal(dns_strstatus(DNS_TEMPFAIL), "tempfail");
	assert_string_equal(dns_strstatus(DNS_BADANSWER), "badanswer");
}

/* --- tests: MX ------------------------------------------------------------ */

static void
test_mx_sorted(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	/* Upper case and a trailing dot are the same name. */
	wait_mx(d, "Example.TEST.", &r, 5);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.mx[0].preference, 10);
	assert_string_equal(r.mx[0].host, "mx1.example.test");
	assert_int_equal(r.mx[1].preference, 20);
	assert_string_equal(r.mx[1].host, "mx2.example.test");
	dns_free(d);
}

static void
test_mx_null(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	wait_mx(d, "nullmx.test", &r, 5);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.mx[0].preference, 0);
	assert_string_equal(r.mx[0].host, "");
	dns_free(d);
}

/* 200 records (over TCP): the 32 lowest preferences, ties in answer order. */
static void
test_mx_huge(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};
	char want[64];
	int k;

	(void)state;
	assert_non_null(d);
	wait_mx(d, "huge.test", &r, 5);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, DNS_MAXMX);
	for (k = 0; k < DNS_MAXMX; k++) {
		/* record i has preference (199 - i) / 4 */
		int i = 196 - 4 * (k / 4) + k % 4;

		snprintf(want, sizeof(want), "mx%03d.huge.test", i);
		assert_int_equal(r.mx[k].preference, k / 4);
		assert_string_equal(r.mx[k].host, want);
	}
	dns_free(d);
}

/* Exchanges that are not host names are skipped, the good one is kept. */
static void
test_mx_bad_names(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	wait_mx(d, "badmx.test", &r, 5);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.mx[0].preference, 50);
	assert_string_equal(r.mx[0].host, "ok.badmx.test");
	dns_free(d);
}

/* Every status the resolver can see, all in flight at once. */
static void
test_mx_status_table(void **state)
{
	static const struct {
		const char *name;
		enum dns_status st;
	} t[] = {
	        {"example.test", DNS_OK},
	        {"nomx.test", DNS_NODATA},          /* ARES_ENODATA */
	        {"nosuch.test", DNS_NXDOMAIN},      /* ARES_ENOTFOUND */
	        {"servfail.test", DNS_TEMPFAIL},    /* ARES_ESERVFAIL */
	        {"refused.test", DNS_TEMPFAIL},     /* ARES_EREFUSED */
	        {"notimp.test", DNS_TEMPFAIL},      /* ARES_ENOTIMP */
	        {"timeout.test", DNS_TEMPFAIL},     /* ARES_ETIMEOUT */
	        {"formerr.test", DNS_BADANSWER},    /* ARES_EFORMERR */
	        {"garbage.test", DNS_BADANSWER},    /* ARES_EBADRESP from the parser */
	        {"allbad.test", DNS_BADANSWER},     /* no usable record */
	        {"longmx.test", DNS_BADANSWER},     /* name over 255 octets */
	        {"junk.test", DNS_TEMPFAIL},        /* ignored by c-ares, then timeout */
	        {"short.test", DNS_TEMPFAIL},       /* ditto */
	        {"_mta-sts.loop.test", DNS_NODATA}, /* CNAMEs only */
	        {"_mta-sts.cname.test", DNS_NODATA},
	};
	enum { N = sizeof(t) / sizeof(t[0]) };
	struct res *r = calloc(N, sizeof(*r));
	struct dns *d = fakedns_mkdns(loop, &srv, 0.3, 2);
	size_t i;

	(void)state;
	assert_non_null(r);
	assert_non_null(d);
	ndone = 0;
	for (i = 0; i < N; i++)
		assert_non_null(dns_query_mx(d, t[i].name, on_mx, &r[i]));
	fakedns_run_until(loop, &ndone, N, 8);
	for (i = 0; i < N; i++) {
		if (r[i].called != 1 || r[i].st != t[i].st)
			fail_msg("%s: called %d, %s (want %s)", t[i].name, r[i].called,
			         dns_strstatus(r[i].st), dns_strstatus(t[i].st));
		if (r[i].st != DNS_OK)
			assert_int_equal(r[i].n, 0);
	}
	dns_free(d);
	free(r);
}

/* Nothing listens: ICMP port unreachable, ARES_ECONNREFUSED. */
static void
test_mx_refused_port(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char s[32];
	const char *servers[] = {s, NULL};
	struct res r = {0};
	struct dns *d;
	int fd;

	(void)state;
	/* A port that was just free, then closed again. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(s, sizeof(s), "127.0.0.1:%d", ntohs(sin.sin_port));
	d = fakedns_mkdns_list(loop, servers, 0.5, 2);
	assert_non_null(d);
	wait_mx(d, "example.test", &r, 5);
	assert_int_equal(r.st, DNS_TEMPFAIL);
	dns_free(d);
}

/* Bad input is answered synchronously; the function returns NULL. */
static void
test_bad_input_sync(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 1, 1);
	struct res r = {0};
	struct sockaddr_storage ss;
	char big[300];

	(void)state;
	assert_non_null(d);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_null(dns_query_mx(d, big, on_mx, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_NXDOMAIN);
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_addrs(d, "a b.test", on_addr, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_NXDOMAIN);
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_txt(d, "", on_txt, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_NXDOMAIN);
	memset(&r, 0, sizeof(r));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_null(dns_query_ptr(d, (struct sockaddr *)&ss, on_name, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_NXDOMAIN);
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_mx(NULL, "example.test", on_mx, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_TEMPFAIL);
	dns_free(d);
}

/*
 * c-ares itself completes inside ares_query when it cannot even open a
 * socket (a link-local server without a scope: connect() fails at once):
 * the callback runs before the function returns, which returns NULL.
 */
static void
test_sync_completion(void **state)
{
	const char *servers[] = {"[fe80::1]:53", NULL};
	struct dns *d = fakedns_mkdns_list(loop, servers, 1, 1);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	ndone = 0;
	assert_null(dns_query_mx(d, "example.test", on_mx, &r));
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_TEMPFAIL);
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_addrs(d, "example.test", on_addr, &r));
	assert_int_equal(r.called, 1); /* once, for both halves */
	assert_int_equal(r.st, DNS_TEMPFAIL);
	fakedns_run_for(loop, 0.1);
	assert_int_equal(r.called, 1);
	dns_free(d);
}

/* --- tests: addresses ------------------------------------------------------ */

static void
test_addrs(void **state)
{
	static const struct {
		const char *name;
		enum dns_status st;
		const char *addrs; /* space-separated, in order */
	} t[] = {
	        {"mx1.example.test", DNS_OK, "127.0.0.11 2001:db8::11"},
	        {"mx2.example.test", DNS_OK, "127.0.0.12"},
	        {"halfok.test", DNS_OK, "2001:db8::5"}, /* A SERVFAIL, AAAA data */
	        {"halftemp.test", DNS_TEMPFAIL, ""},    /* A SERVFAIL, AAAA nothing */
	        {"halfbad.test", DNS_BADANSWER, ""},    /* A garbage, AAAA nothing */
	        {"nosuch.test", DNS_NXDOMAIN, ""},      /* both NXDOMAIN */
	        {"example.test", DNS_NODATA, ""},       /* only MX */
	        {"servfail.test", DNS_TEMPFAIL, ""},
	        {"timeout.test", DNS_TEMPFAIL, ""},
	        {"garbage.test", DNS_BADANSWER, ""},
	};
	enum { N = sizeof(t) / sizeof(t[0]) };
	struct res *r = calloc(N, sizeof(*r));
	struct dns *d = fakedns_mkdns(loop, &srv, 0.3, 2);
	char got[512], one[INET6_ADDRSTRLEN];
	size_t i;
	int k;

	(void)state;
	assert_non_null(r);
	assert_non_null(d);
	ndone = 0;
	for (i = 0; i < N; i++)
		assert_non_null(dns_query_addrs(d, t[i].name, on_addr, &r[i]));
	fakedns_run_until(loop, &ndone, N, 8);
	for (i = 0; i < N; i++) {
		got[0] = '\0';
		for (k = 0; k < r[i].n; k++) {
			if (k > 0)
				strcat(got, " ");
			strcat(got, addr_text(&r[i].addr[k], one, sizeof(one)));
		}
		if (r[i].called != 1 || r[i].st != t[i].st || strcmp(got, t[i].addrs) != 0)
			fail_msg("%s: called %d, %s [%s] (want %s [%s])", t[i].name, r[i].called,
			         dns_strstatus(r[i].st), got, dns_strstatus(t[i].st), t[i].addrs);
	}
	dns_free(d);
	free(r);
}

/* Address literals are their own answer, synchronously. */
static void
test_addrs_literal(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
	        {"127.0.0.1", "127.0.0.1"},
	        {"2001:db8::1", "2001:db8::1"},
	        {"[2001:db8::2]", "2001:db8::2"},
	        {"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
	};
	struct dns *d = fakedns_mkdns(loop, &srv, 1, 1);
	char one[INET6_ADDRSTRLEN];
	struct res r;
	size_t i;

	(void)state;
	assert_non_null(d);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&r, 0, sizeof(r));
		assert_null(dns_query_addrs(d, t[i].in, on_addr, &r));
		assert_int_equal(r.called, 1);
		assert_int_equal(r.st, DNS_OK);
		assert_int_equal(r.n, 1);
		assert_string_equal(addr_text(&r.addr[0], one, sizeof(one)), t[i].out);
	}
	/* Not literals, not names either. */
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_addrs(d, "[127.0.0.1]", on_addr, &r));
	assert_int_equal(r.st, DNS_NXDOMAIN);
	memset(&r, 0, sizeof(r));
	assert_null(dns_query_addrs(d, "[::1", on_addr, &r));
	assert_int_equal(r.st, DNS_NXDOMAIN);
	dns_free(d);
}

/* 40 A + 40 AAAA: 8 of each. */
static void
test_addrs_bounded(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};
	char one[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
	int k;

	(void)state;
	assert_non_null(d);
	ndone = 0;
	assert_non_null(dns_query_addrs(d, "lots.test", on_addr, &r));
	fakedns_run_until(loop, &ndone, 1, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, DNS_MAXADDRS);
	for (k = 0; k < DNS_MAXADDRS; k++) {
		if (k < DNS_MAXADDRS / 2)
			snprintf(want, sizeof(want), "127.3.0.%d", k + 1);
		else
			snprintf(want, sizeof(want), "2001:db8:3::%x", k - DNS_MAXADDRS / 2 + 1);
		assert_string_equal(addr_text(&r.addr[k], one, sizeof(one)), want);
	}
	dns_free(d);
}

/* --- tests: PTR ------------------------------------------------------------ */

static void
test_ptr(void **state)
{
	static const struct {
		int v6;
		const char *ip;
		enum dns_status st;
		const char *name;
	} t[] = {
	        {0, "127.0.0.11", DNS_OK, "mx1.example.test"},
	        {1, "2001:db8::11", DNS_OK, "mx1.example.test"}, /* upper case in the zone */
	        {1, "::ffff:127.0.0.11", DNS_OK, "mx1.example.test"},
	        {0, "127.0.0.99", DNS_NXDOMAIN, "(null)"},
	        {1, "2001:db8::99", DNS_NXDOMAIN, "(null)"},
	};
	enum { N = sizeof(t) / sizeof(t[0]) };
	struct res r[N];
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct sockaddr_storage ss;
	size_t i;

	(void)state;
	assert_non_null(d);
	memset(r, 0, sizeof(r));
	ndone = 0;
	for (i = 0; i < N; i++) {
		if (t[i].v6)
			sin6(&ss, t[i].ip);
		else
			sin4(&ss, t[i].ip);
		assert_non_null(dns_query_ptr(d, (struct sockaddr *)&ss, on_name, &r[i]));
	}
	fakedns_run_until(loop, &ndone, N, 5);
	for (i = 0; i < N; i++) {
		if (r[i].called != 1 || r[i].st != t[i].st || strcmp(r[i].name, t[i].name) != 0)
			fail_msg("%s: called %d, %s %s", t[i].ip, r[i].called,
			         dns_strstatus(r[i].st), r[i].name);
	}
	dns_free(d);
}

/* --- tests: TXT ------------------------------------------------------------ */

static void
wait_txt(struct dns *d, const char *name, struct res *r)
{
	ndone = 0;
	dns_query_txt(d, name, on_txt, r);
	fakedns_run_until(loop, &ndone, 1, 5);
	assert_int_equal(r->called, 1);
}

/* RFC 8461 §3.1: one record's strings are joined without separator. */
static void
test_txt_cname_concat(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	wait_txt(d, "_mta-sts.cname.test", &r);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.txtlen[0], strlen("v=STSv1; id=abc;"));
	assert_string_equal(r.txt[0], "v=STSv1; id=abc;");
	res_clear(&r);
	dns_free(d);
}

static void
test_txt_records(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	wait_txt(d, "twotxt.test", &r);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.txt[0], "ab");
	assert_string_equal(r.txt[1], "c");
	res_clear(&r);

	wait_txt(d, "emptytxt.test", &r);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.txtlen[0], 0);
	res_clear(&r);

	/* 40 records: the first DNS_MAXTXT. */
	wait_txt(d, "manytxt.test", &r);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, DNS_MAXTXT);
	assert_string_equal(r.txt[0], "rec00");
	assert_string_equal(r.txt[DNS_MAXTXT - 1], "rec15");
	res_clear(&r);

	wait_txt(d, "nosuch.test", &r);
	assert_int_equal(r.st, DNS_NXDOMAIN);
	res_clear(&r);
	wait_txt(d, "nomx.test", &r);
	assert_int_equal(r.st, DNS_NODATA);
	res_clear(&r);
	dns_free(d);
}

/* One record of 200 strings, 40000 bytes: needs TCP after a TC answer. */
static void
test_txt_many_strings(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};
	size_t k;

	(void)state;
	assert_non_null(d);
	wait_txt(d, "bigtxt.test", &r);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.txtlen[0], 200 * 200);
	for (k = 0; k < r.txtlen[0]; k++)
		if (r.txt[0][k] != (char)('a' + (k / 200) % 26))
			fail_msg("byte %zu is %c", k, r.txt[0][k]);
	res_clear(&r);
	dns_free(d);
}

/* --- tests: handles -------------------------------------------------------- */

static void
test_cancel(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res a = {0}, b = {0}, c = {0}, e = {0};
	struct dns_query *qa, *qb, *qc, *qe;

	(void)state;
	assert_non_null(d);
	ndone = 0;
	/* slow.test is answered after 0.4 s. */
	qa = dns_query_mx(d, "slow.test", on_mx, &a);
	qb = dns_query_addrs(d, "slow.test", on_addr, &b);
	qc = dns_query_txt(d, "slow.test", on_txt, &c);
	qe = dns_query_mx(d, "slow.test", on_mx, &e);
	assert_non_null(qa);
	assert_non_null(qb);
	assert_non_null(qc);
	assert_non_null(qe);
	dns_cancel(qa);
	dns_cancel(qb);
	dns_cancel(qc);
	/* The uncancelled query on the same socket still completes. */
	fakedns_run_until(loop, &ndone, 1, 3);
	assert_int_equal(e.called, 1);
	assert_int_equal(e.st, DNS_OK);
	/* Let the cancelled answers arrive too: still nothing. */
	fakedns_run_for(loop, 0.3);
	assert_int_equal(a.called, 0);
	assert_int_equal(b.called, 0);
	assert_int_equal(c.called, 0);
	dns_free(d);
}

/* A+AAAA: cancel after the A half has answered, before the AAAA half. */
static void
test_cancel_half(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 1);
	struct res r = {0}, full = {0};
	struct dns_query *q;

	(void)state;
	assert_non_null(d);
	/* halfslow.test: A at once, AAAA after 0.4 s. */
	ndone = 0;
	q = dns_query_addrs(d, "halfslow.test", on_addr, &r);
	assert_non_null(q);
	assert_non_null(dns_query_addrs(d, "halfslow.test", on_addr, &full));
	fakedns_run_for(loop, 0.2);
	assert_int_equal(ndone, 0);
	dns_cancel(q);
	fakedns_run_until(loop, &ndone, 1, 3);
	assert_int_equal(full.called, 1);
	assert_int_equal(full.st, DNS_OK);
	assert_int_equal(full.n, 2);
	fakedns_run_for(loop, 0.1);
	assert_int_equal(r.called, 0);
	dns_free(d);
}

static struct dns_query *self_q;

static void
on_mx_cancel_self(void *arg, enum dns_status st, const struct dns_mx *mx, int n)
{
	/* Like conn_free() cancelling the session's pending handle. */
	dns_cancel(self_q);
	on_mx(arg, st, mx, n);
}

static void
test_cancel_in_own_callback(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 2, 2);
	struct res r = {0};

	(void)state;
	assert_non_null(d);
	ndone = 0;
	self_q = dns_query_mx(d, "example.test", on_mx_cancel_self, &r);
	assert_non_null(self_q);
	fakedns_run_until(loop, &ndone, 1, 5);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.st, DNS_OK);
	dns_free(d);
}

static void
test_free_outstanding(void **state)
{
	struct dns *d = fakedns_mkdns(loop, &srv, 1, 2);
	struct sockaddr_storage ss;
	struct res r[6];
	int i;

	(void)state;
	assert_non_null(d);
	memset(r, 0, sizeof(r));
	sin4(&ss, "127.0.0.30"); /* answered after 0.4 s */
	assert_non_null(dns_query_mx(d, "timeout.test", on_mx, &r[0]));
	assert_non_null(dns_query_addrs(d, "timeout.test", on_addr, &r[1]));
	assert_non_null(dns_query_txt(d, "slow.test", on_txt, &r[2]));
	assert_non_null(dns_query_mx(d, "slow.test", on_mx, &r[3]));
	assert_non_null(dns_query_addrs(d, "halfslow.test", on_addr, &r[4]));
	assert_non_null(dns_query_ptr(d, (struct sockaddr *)&ss, on_name, &r[5]));
	fakedns_run_for(loop, 0.1); /* all on the wire, one half of r[4] answered */
	dns_free(d);                /* ASan: every handle freed, no callback */
	fakedns_run_for(loop, 0.6); /* late answers hit closed sockets, no watcher left */
	for (i = 0; i < 6; i++)
		assert_int_equal(r[i].called, 0);
}

static struct dns *free_me;

static void
on_mx_free(void *arg, enum dns_status st, const struct dns_mx *mx, int n)
{
	on_mx(arg, st, mx, n);
	dns_free(free_me);
	free_me = NULL;
}

/* dns_free() from inside a callback, with other queries outstanding. */
static void
test_free_in_callback(void **state)
{
	struct res a = {0}, b = {0}, c = {0};

	(void)state;
	free_me = fakedns_mkdns(loop, &srv, 1, 2);
	assert_non_null(free_me);
	ndone = 0;
	assert_non_null(dns_query_mx(free_me, "example.test", on_mx_free, &a));
	assert_non_null(dns_query_mx(free_me, "timeout.test", on_mx, &b));
	assert_non_null(dns_query_txt(free_me, "slow.test", on_txt, &c));
	fakedns_run_until(loop, &ndone, 1, 5);
	assert_int_equal(a.called, 1);
	assert_null(free_me);
	fakedns_run_for(loop, 0.6);
	assert_int_equal(b.called, 0);
	assert_int_equal(c.called, 0);
}

/* 200 A+AAAA queries at once: 400 c-ares queries. */
static void
test_many_concurrent(void **state)
{
	enum { N = 200 };
	struct res *r = calloc(N, sizeof(*r));
	struct dns *d = fakedns_mkdns(loop, &srv, 3, 2);
	char name[64], one[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
	int i;

	(void)state;
	assert_non_null(r);
	assert_non_null(d);
	ndone = 0;
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d.many.test", i + 1);
		assert_non_null(dns_query_addrs(d, name, on_addr, &r[i]));
	}
	fakedns_run_until(loop, &ndone, N, 9);
	assert_int_equal(ndone, N);
	for (i = 0; i < N; i++) {
		assert_int_equal(r[i].called, 1);
		assert_int_equal(r[i].st, DNS_OK);
		assert_int_equal(r[i].n, 2);
		snprintf(want, sizeof(want), "127.1.%d.%d", (i + 1) >> 8, (i + 1) & 255);
		assert_string_equal(addr_text(&r[i].addr[0], one, sizeof(one)), want);
		snprintf(want, sizeof(want), "2001:db8:1::%x", i + 1);
		assert_string_equal(addr_text(&r[i].addr[1], one, sizeof(one)), want);
	}
	dns_free(d);
	free(r);
}

/*
 * 23 silent servers before the real one, one try each: c-ares holds 24
 * UDP sockets open at once and the answer comes on the last one. A fixed
 * array of 16 watchers (ARES_GETSOCK_MAXNUM) would never see it.
 */
static void
test_many_sockets(void **state)
{
	char buf[NBLACKHOLES + 1][32];
	const char *servers[NBLACKHOLES + 2];
	struct res r = {0};
	struct dns *d;
	int i;

	(void)state;
	assert_int_equal(srv.nholes, NBLACKHOLES);
	for (i = 0; i < NBLACKHOLES; i++) {
		snprintf(buf[i], sizeof(buf[i]), "127.0.0.1:%d", srv.holes[i]);
		servers[i] = buf[i];
	}
	snprintf(buf[i], sizeof(buf[i]), "127.0.0.1:%d", srv.port);
	servers[i] = buf[i];
	servers[i + 1] = NULL;
	d = fakedns_mkdns_list(loop, servers, 0.1, 1);
	assert_non_null(d);
	wait_mx(d, "example.test", &r, 9);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 2);
	dns_free(d);
}

static void
test_ipv6_server(void **state)
{
	char s[32];
	const char *servers[] = {s, NULL};
	struct res r = {0};
	struct dns *d;

	(void)state;
	if (srv.port6 == 0)
		skip();
	snprintf(s, sizeof(s), "[::1]:%d", srv.port6);
	d = fakedns_mkdns_list(loop, servers, 2, 2);
	assert_non_null(d);
	wait_mx(d, "example.test", &r, 5);
	assert_int_equal(r.st, DNS_OK);
	assert_int_equal(r.n, 2);
	dns_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_normalize_name),
	        cmocka_unit_test(test_servers),
	        cmocka_unit_test(test_strstatus),
	        cmocka_unit_test(test_mx_sorted),
	        cmocka_unit_test(test_mx_null),
	        cmocka_unit_test(test_mx_huge),
	        cmocka_unit_test(test_mx_bad_names),
	        cmocka_unit_test(test_mx_status_table),
	        cmocka_unit_test(test_mx_refused_port),
	        cmocka_unit_test(test_bad_input_sync),
	        cmocka_unit_test(test_sync_completion),
	        cmocka_unit_test(test_addrs),
	        cmocka_unit_test(test_addrs_literal),
	        cmocka_unit_test(test_addrs_bounded),
	        cmocka_unit_test(test_ptr),
	        cmocka_unit_test(test_txt_cname_concat),
	        cmocka_unit_test(test_txt_records),
	        cmocka_unit_test(test_txt_many_strings),
	        cmocka_unit_test(test_cancel),
	        cmocka_unit_test(test_cancel_half),
	        cmocka_unit_test(test_cancel_in_own_callback),
	        cmocka_unit_test(test_free_outstanding),
	        cmocka_unit_test(test_free_in_callback),
	        cmocka_unit_test(test_many_concurrent),
	        cmocka_unit_test(test_many_sockets),
	        cmocka_unit_test(test_ipv6_server),
	};

	/* TEST_FILTER=test_cancel* runs a subset. */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, fakedns_group_teardown);
}
