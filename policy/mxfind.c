/*
 * mxfind: from a recipient domain and the destination address the legacy
 * MTA connected to, find the MX host name(s) that address belongs to.
 *
 * Steps: MX of the domain (dns_query_mx, sorted); NODATA gives the
 * implicit MX (the domain, RFC 5321 §5.1); a lone null MX (RFC 7505) ends
 * with no hosts; then A+AAAA of up to MXFIND_MAXHOSTS hosts in parallel.
 * There is no deadline here: each DNS query has the resolver's
 * timeout/tries and the caller owns the overall timer.
 *
 * Owns the MX and address query handles. Re-entrancy: the dns layer may
 * call back before a query function returns, and the user callback may
 * cancel (free) this mxfind. `busy` counts our frames on the stack; the
 * object is freed only when the outermost one leaves.
 */
#include "mxfind.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct mxfind_sub {
	struct mxfind *m;
	int i;
};

struct mxfind {
	struct dns *d;
	mxfind_cb *cb;
	void *arg;
	int has_dest;
	struct sockaddr_storage dest;
	char domain[DNS_NAME_MAX + 1];
	struct dns_query *mxq;
	struct dns_query *aq[MXFIND_MAXHOSTS];
	struct mxfind_sub sub[MXFIND_MAXHOSTS];
	int pending;   /* address queries not answered yet */
	int busy;      /* our frames on the stack */
	int done;      /* the result is complete (the callback ran unless cancelled) */
	int cancelled; /* the callback must not run */
	struct mxfind_result res;
};

/* The IP of sa as 4 or 16 bytes, v4-mapped IPv6 as v4; 0 if not IP. */
static size_t
mxfind_ipbytes(const struct sockaddr *sa, const unsigned char **p)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const unsigned char *a;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		*p = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
		             ->sin_addr;
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)
		            ->sin6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			*p = a + 12;
			return 4;
		}
		*p = a;
		return 16;
	}
	return 0;
}

int
mxfind_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	const unsigned char *pa = NULL, *pb = NULL;
	size_t la = mxfind_ipbytes(a, &pa), lb = mxfind_ipbytes(b, &pb);

	return la != 0 && la == lb && memcmp(pa, pb, la) == 0;
}

/* Leave one of our frames; free m if it is finished. 1 if freed. */
static int
mxfind_leave(struct mxfind *m)
{
	if (--m->busy > 0 || (!m->done && !m->cancelled))
		return 0;
	free(m);
	return 1;
}

static void
mxfind_finish(struct mxfind *m)
{
	int i;

	m->res.match = -1;
	for (i = 0; i < m->res.nhosts; i++) {
		if (m->res.hosts[i].matches_dest) {
			m->res.match = i;
			break;
		}
	}
	m->done = 1;
	if (!m->cancelled)
		m->cb(m->arg, &m->res);
}

static void
mxfind_on_addrs(void *arg, enum dns_status st, const struct dns_addr *a, int n)
{
	struct mxfind_sub *sub = arg;
	struct mxfind *m = sub->m;
	struct mxfind_host *h = &m->res.hosts[sub->i];
	int i;

	m->busy++;
	m->aq[sub->i] = NULL;
	h->addr_status = st;
	for (i = 0; i < n; i++) {
		/* Matched against every address returned, kept only up to
		 * MXFIND_MAXADDRS. */
		if (m->has_dest && mxfind_same_ip((const struct sockaddr *)&a[i].ss,
		                                  (const struct sockaddr *)&m->dest))
			h->matches_dest = 1;
		if (h->naddrs < MXFIND_MAXADDRS)
			h->addrs[h->naddrs++] = a[i];
	}
	if (--m->pending == 0)
		mxfind_finish(m);
	mxfind_leave(m);
}

/* Fill res.hosts from the MX answer. */
static void
mxfind_hosts(struct mxfind *m, enum dns_status st, const struct dns_mx *mx, int n)
{
	struct mxfind_result *r = &m->res;
	int i, j, roots = 0;

	if (st == DNS_NODATA) {
		/* RFC 5321 §5.1: no MX at all, the domain is its own MX. */
		r->hosts[0].preference = 0;
		r->hosts[0].implicit = 1;
		memcpy(r->hosts[0].name, m->domain, sizeof(m->domain));
		r->nhosts = 1;
		return;
	}
	if (st != DNS_OK)
		return;
	for (i = 0; i < n; i++)
		roots += mx[i].host[0] == '\0';
	if (roots == n) {
		/* RFC 7505: "." as the only exchange means no mail at all.
		 * Any preference counts: "." is never a deliverable host. */
		r->null_mx = 1;
		return;
	}
	/*
	 * Sorted by preference already. A null MX next to real ones breaks
	 * RFC 7505 §3; the real ones are used. A host listed twice is
	 * resolved once, at its lowest preference.
	 */
	for (i = 0; i < n && r->nhosts < MXFIND_MAXHOSTS; i++) {
		if (mx[i].host[0] == '\0')
			continue;
		for (j = 0; j < r->nhosts; j++)
			if (strcmp(r->hosts[j].name, mx[i].host) == 0)
				break;
		if (j < r->nhosts)
			continue;
		r->hosts[r->nhosts].preference = mx[i].preference;
		memcpy(r->hosts[r->nhosts].name, mx[i].host, sizeof(mx[i].host));
		r->nhosts++;
	}
}

static void
mxfind_on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, int n)
{
	struct mxfind *m = arg;
	struct dns_query *q;
	int i;

	m->busy++;
	m->mxq = NULL;
	m->res.mx_status = st;
	mxfind_hosts(m, st, mx, n);
	if (m->res.nhosts == 0) {
		mxfind_finish(m);
		mxfind_leave(m);
		return;
	}
	/* Counted in full first: an answer arriving synchronously must not
	 * see pending reach zero before the last host is asked. */
	m->pending = m->res.nhosts;
	for (i = 0; i < m->res.nhosts; i++) {
		m->res.hosts[i].addr_status = DNS_TEMPFAIL;
		m->sub[i].m = m;
		m->sub[i].i = i;
	}
	for (i = 0; i < m->res.nhosts && !m->cancelled; i++) {
		q = dns_query_addrs(m->d, m->res.hosts[i].name, mxfind_on_addrs, &m->sub[i]);
		/* A callback of another query, run inside dns_query_addrs, may
		 * have cancelled us before q was recorded. */
		if (m->cancelled)
			dns_cancel(q);
		else
			m->aq[i] = q;
	}
	mxfind_leave(m);
}

struct mxfind *
mxfind_start(struct dns *d, const char *domain, const struct sockaddr *dest, mxfind_cb *cb,
             void *arg)
{
	static const struct mxfind_result oom = {.mx_status = DNS_TEMPFAIL, .match = -1};
	struct mxfind *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		cb(arg, &oom);
		return NULL;
	}
	m->d = d;
	m->cb = cb;
	m->arg = arg;
	m->res.match = -1;
	if (dest != NULL && (dest->sa_family == AF_INET || dest->sa_family == AF_INET6)) {
		memcpy(&m->dest, dest,
		       dest->sa_family == AF_INET ? sizeof(struct sockaddr_in)
		                                  : sizeof(struct sockaddr_in6));
		m->has_dest = 1;
	}
	m->busy = 1;
	if (dns_normalize_name(domain, m->domain, sizeof(m->domain)) == -1) {
		/* Not a domain name: it cannot exist (as dns_query_mx says). */
		m->res.mx_status = DNS_NXDOMAIN;
		mxfind_finish(m);
	} else {
		/* NULL when mxfind_on_mx already ran. */
		m->mxq = dns_query_mx(d, m->domain, mxfind_on_mx, m);
	}
	return mxfind_leave(m) ? NULL : m;
}

void
mxfind_cancel(struct mxfind *m)
{
	int i;

	if (m == NULL)
		return;
	m->cancelled = 1;
	dns_cancel(m->mxq);
	m->mxq = NULL;
	for (i = 0; i < MXFIND_MAXHOSTS; i++) {
		dns_cancel(m->aq[i]);
		m->aq[i] = NULL;
	}
	/* Inside our own frames (the user callback cancelled us) the
	 * outermost frame frees m. */
	if (m->busy == 0)
		free(m);
}
