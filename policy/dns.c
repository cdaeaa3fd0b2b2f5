/*
 * dns: asynchronous MX, A+AAAA, PTR and TXT lookups over c-ares, driven by
 * the one libev loop.
 *
 * Owns the c-ares channel, one ev_io per c-ares socket (a list keyed by fd,
 * created, updated and stopped from ARES_OPT_SOCK_STATE_CB; c-ares keeps a
 * handful of sockets, one per server and transport, so a list is enough
 * and nothing is fixed-size) and one ev_timer re-armed from ares_timeout()
 * after every call into c-ares. Nothing polls.
 *
 * Contracts (see dns.h):
 * - A handle is freed only when c-ares has called back for every c-ares
 *   query behind it. dns_cancel() only marks it: ares_cancel() would end
 *   every query on the channel, not just this one.
 * - ARES_ECANCELLED and ARES_EDESTRUCTION never reach a user callback.
 * - A query function returns NULL once the callback has run (bad input,
 *   address literals and allocation failure included) or dns_free() was
 *   called meanwhile; it never returns a freed handle.
 * - dns_free() inside a callback is deferred until c-ares has returned:
 *   destroying a channel from inside its own callback is not allowed.
 * - Answers are bounded (DNS_MAX*), names checked and normalised; anything
 *   c-ares cannot parse, or that has no usable record, is DNS_BADANSWER.
 */
#include "dns.h"

#include "cfg.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <ev.h>

enum dns_kind {
	DNS_K_MX,
	DNS_K_ADDRS,
	DNS_K_PTR,
	DNS_K_TXT,
};

struct dns_sock {
	struct dns_sock *next;
	struct dns *d;
	ev_io io;
};

struct dns {
	struct ev_loop *loop;
	ares_channel ch;
	int have_ch;
	ev_timer timer;
	struct dns_sock *socks;
	int depth; /* > 0 while inside a c-ares call: callbacks may run */
	int dying; /* dns_free() came from a callback; destroy when depth is 0 */
	char *servers_text;
};

/* The argument c-ares gets: which query, and for addresses which half. */
struct dns_sub {
	struct dns_query *q;
	int half; /* 0: A (or the only query), 1: AAAA */
};

/* Address answers kept until both halves are in. */
struct dns_addrpart {
	enum dns_status st[2];
	int n[2];
	struct dns_addr a[2][DNS_MAXADDRS];
};

union dns_cb {
	dns_mx_cb *mx;
	dns_addr_cb *addr;
	dns_name_cb *name;
	dns_txt_cb *txt;
};

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	int pending;   /* c-ares queries that have not called back yet */
	int starting;  /* the query function is still on the stack */
	int cancelled; /* the user callback must not run */
	union dns_cb cb;
	void *arg;
	struct dns_sub sub[2];
	struct dns_addrpart *ap; /* DNS_K_ADDRS only */
	int ptr_family;          /* DNS_K_PTR: the address asked about */
	unsigned char ptr_addr[16];
};

static void dns_rearm(struct dns *d);
static void dns_destroy(struct dns *d);

/* --- names ------------------------------------------------------------ */

int
dns_normalize_name(const char *in, char *out, size_t outsz)
{
	size_t len, i, label = 0;

	if (in == NULL || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	len = strlen(in);
	if (len > 1 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (outsz < len + 1) {
		errno = ENOSPC;
		return -1;
	}
	/*
	 * Only letters, digits, '-' and '_': these names come from SMTP
	 * envelopes and DNS answers, and end up in DNS queries, SNI,
	 * certificate checks and logs. c-ares presents other octets as
	 * "\DDD" or "\." escapes, which are not host names (and a backslash
	 * in a query name would be read as an escape by c-ares).
	 */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		           c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (unsigned char)(c - 'A' + 'a');
			label++;
		} else {
			goto bad;
		}
		if (label > 63)
			goto bad;
		out[i] = (char)c;
	}
	if (label == 0)
		goto bad;
	out[len] = '\0';
	return 0;
bad:
	out[0] = '\0';
	errno = EINVAL;
	return -1;
}

/* A name from an answer; the root ("" or ".") only where allow_root. */
static int
dns_answer_name(const char *in, char *out, size_t outsz, int allow_root)
{
	if (in != NULL && (in[0] == '\0' || strcmp(in, ".") == 0)) {
		if (!allow_root)
			return -1;
		out[0] = '\0';
		return 0;
	}
	return dns_normalize_name(in, out, outsz);
}

/* --- status ----------------------------------------------------------- */

const char *
dns_strstatus(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_BADANSWER:
		return "badanswer";
	}
	return "unknown";
}

/* Status of a finished c-ares query (never ECANCELLED/EDESTRUCTION here). */
static enum dns_status
dns_map_status(int rc)
{
	switch (rc) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_EBADRESP:
	case ARES_EFORMERR:
		return DNS_BADANSWER;
	case ARES_EBADNAME:
		/* Names are checked before c-ares sees them; a name c-ares
		 * cannot encode cannot exist either. */
		return DNS_NXDOMAIN;
	default:
		/* ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED, ENOTIMP, ENOMEM,
		 * EOF...: the answer may differ later. A resolver failure must
		 * never be mistaken for a permanent "no such domain/policy". */
		return DNS_TEMPFAIL;
	}
}

/* Status of an ares_parse_*_reply() failure. */
static enum dns_status
dns_map_parse(int rc)
{
	switch (rc) {
	case ARES_ENODATA:
		/* Well-formed, but no record of the type (only CNAMEs). */
		return DNS_NODATA;
	case ARES_ENOMEM:
		return DNS_TEMPFAIL;
	default:
		return DNS_BADANSWER;
	}
}

/* --- the libev side --------------------------------------------------- */

static void
dns_enter(struct dns *d)
{
	d->depth++;
}

/* Leave a c-ares call: destroy a resolver freed meanwhile, else re-arm. */
static void
dns_leave(struct dns *d)
{
	if (--d->depth > 0)
		return;
	if (d->dying)
		dns_destroy(d);
	else
		dns_rearm(d);
}

static void
dns_rearm(struct dns *d)
{
	struct timeval tv, *tvp;

	ev_timer_stop(d->loop, &d->timer);
	tvp = ares_timeout(d->ch, NULL, &tv);
	if (tvp == NULL)
		return; /* nothing outstanding */
	ev_timer_set(&d->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.);
	ev_timer_start(d->loop, &d->timer);
}

static void
dns_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns *d = w->data;

	(void)loop;
	(void)revents;
	dns_enter(d);
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_leave(d);
}

static void
dns_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns_sock *s = w->data;
	struct dns *d = s->d;
	ares_socket_t fd = w->fd;

	(void)loop;
	/* s may be freed inside ares_process_fd (socket closed). */
	dns_enter(d);
	ares_process_fd(d->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_leave(d);
}

static void
dns_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (pp = &d->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->io.fd == fd)
			break;
	s = *pp;

	if (events == 0) {
		/* c-ares is about to close fd: stop watching before it does. */
		if (s != NULL) {
			ev_io_stop(d->loop, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		/* On allocation failure the socket goes unwatched; its queries
		 * then end by timeout (the timer still runs), not by a hang. */
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;
		s->d = d;
		ev_io_init(&s->io, dns_on_io, fd, events);
		s->io.data = s;
		s->next = d->socks;
		d->socks = s;
		ev_io_start(d->loop, &s->io);
		return;
	}
	if ((s->io.events & (EV_READ | EV_WRITE)) != events) {
		ev_io_stop(d->loop, &s->io);
		ev_io_set(&s->io, fd, events);
		ev_io_start(d->loop, &s->io);
	}
}

/* --- resolver --------------------------------------------------------- */

/*
 * One server: "1.2.3.4", "1.2.3.4:5353", "[::1]:53", "[::1]" or "::1".
 * Parsed here rather than by ares_set_servers_ports_csv() to reject
 * host names and zone indexes with a message naming the entry.
 */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *n, char *err, size_t errsz)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *end;
	size_t hlen;
	long p = 53;

	memset(n, 0, sizeof(*n));
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			goto bad;
		hlen = (size_t)(end - s - 1);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			goto bad;
		if (inet_pton(AF_INET6, host, &n->addr.addr6) != 1)
			goto bad;
		n->family = AF_INET6;
	} else if ((end = strchr(s, ':')) != NULL && strchr(end + 1, ':') != NULL) {
		/* Bare IPv6, no port. */
		if (inet_pton(AF_INET6, s, &n->addr.addr6) != 1)
			goto bad;
		n->family = AF_INET6;
	} else {
		hlen = end != NULL ? (size_t)(end - s) : strlen(s);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (end != NULL)
			port = end + 1;
		if (inet_pton(AF_INET, host, &n->addr.addr4) != 1)
			goto bad;
		n->family = AF_INET;
	}
	if (port != NULL) {
		char *ep;

		errno = 0;
		p = strtol(port, &ep, 10);
		if (port[0] < '0' || port[0] > '9' || *ep != '\0' || errno != 0 || p < 1 ||
		    p > 65535)
			goto bad;
	}
	n->udp_port = n->tcp_port = (int)p;
	return 0;
bad:
	snprintf(err, errsz, "dns_servers: \"%s\": expected an IP address with an optional port",
	         s);
	return -1;
}

static int
dns_set_servers(struct dns *d, const struct cfg *cfg, char *err, size_t errsz)
{
	struct ares_addr_port_node *nodes;
	size_t textsz, off = 0;
	int i, rc;

	if (cfg == NULL || cfg->ndns_servers <= 0) {
		d->servers_text = strdup("");
		if (d->servers_text == NULL) {
			snprintf(err, errsz, "dns: out of memory");
			return -1;
		}
		return 0;
	}
	nodes = calloc((size_t)cfg->ndns_servers, sizeof(*nodes));
	/* "[" v6 "]:" port "," per server */
	textsz = (size_t)cfg->ndns_servers * (INET6_ADDRSTRLEN + 10) + 1;
	d->servers_text = malloc(textsz);
	if (nodes == NULL || d->servers_text == NULL) {
		free(nodes);
		snprintf(err, errsz, "dns: out of memory");
		return -1;
	}
	d->servers_text[0] = '\0';
	for (i = 0; i < cfg->ndns_servers; i++) {
		char a[INET6_ADDRSTRLEN];
		const char *s = cfg->dns_servers[i];

		if (s == NULL || dns_parse_server(s, &nodes[i], err, errsz) == -1) {
			if (s == NULL)
				snprintf(err, errsz, "dns_servers: empty entry");
			free(nodes);
			return -1;
		}
		if (i + 1 < cfg->ndns_servers)
			nodes[i].next = &nodes[i + 1];
		inet_ntop(nodes[i].family, &nodes[i].addr, a, sizeof(a));
		off += (size_t)snprintf(d->servers_text + off, textsz - off,
		                        nodes[i].family == AF_INET6 ? "%s[%s]:%d" : "%s%s:%d",
		                        i > 0 ? "," : "", a, nodes[i].udp_port);
	}
	rc = ares_set_servers_ports(d->ch, nodes);
	free(nodes);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errsz, "dns_servers: %s", ares_strerror(rc));
		return -1;
	}
	return 0;
}

struct dns *
dns_new(struct ev_loop *loop, const struct cfg *cfg, char *err, size_t errsz)
{
	struct ares_options o;
	struct dns *d;
	int rc, mask;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errsz, "dns: %s", ares_strerror(rc));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errsz, "dns: out of memory");
		ares_library_cleanup();
		return NULL;
	}
	d->loop = loop;
	ev_init(&d->timer, dns_on_timer);
	d->timer.data = d;

	memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_on_sock_state;
	o.sock_state_cb_data = d;
	mask = ARES_OPT_SOCK_STATE_CB;
	/* Zero keeps the resolv.conf / c-ares defaults. c-ares doubles the
	 * per-try timeout on each round over the servers. */
	if (cfg != NULL && cfg->dns_timeout > 0) {
		double ms = cfg->dns_timeout * 1000.;

		o.timeout = ms > 3600000. ? 3600000 : ms < 1. ? 1 : (int)ms;
		mask |= ARES_OPT_TIMEOUTMS;
	}
	if (cfg != NULL && cfg->dns_tries > 0) {
		o.tries = cfg->dns_tries;
		mask |= ARES_OPT_TRIES;
	}
	/*
	 * Every name we ask is absolute: a recipient domain, an MX host, an
	 * _mta-sts name. ares_query() never appends the search list, so a
	 * domain like "corp" cannot turn into "corp.local.example" (which
	 * would point a policy or a certificate check at the wrong name).
	 */
	o.flags = ARES_FLAG_NOSEARCH;
	mask |= ARES_OPT_FLAGS;

	if ((rc = ares_init_options(&d->ch, &o, mask)) != ARES_SUCCESS) {
		snprintf(err, errsz, "dns: %s", ares_strerror(rc));
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->have_ch = 1;
	if (dns_set_servers(d, cfg, err, errsz) == -1) {
		dns_destroy(d);
		return NULL;
	}
	return d;
}

static void
dns_destroy(struct dns *d)
{
	struct dns_sock *s;

	d->dying = 1;
	/* Every outstanding query now ends with ARES_EDESTRUCTION: their
	 * handles are freed, no user callback runs. */
	if (d->have_ch)
		ares_destroy(d->ch);
	ev_timer_stop(d->loop, &d->timer);
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		ev_io_stop(d->loop, &s->io);
		free(s);
	}
	free(d->servers_text);
	free(d);
	ares_library_cleanup();
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	if (d->depth > 0) {
		d->dying = 1;
		return;
	}
	dns_destroy(d);
}

const char *
dns_servers_text(const struct dns *d)
{
	return d != NULL && d->servers_text != NULL ? d->servers_text : "";
}

/* --- answers ---------------------------------------------------------- */

/* Insert keeping the DNS_MAXMX lowest preferences, ties in answer order. */
static void
dns_mx_insert(struct dns_mx *mx, int *n, const struct dns_mx *one)
{
	int pos = *n, last;

	while (pos > 0 && mx[pos - 1].preference > one->preference)
		pos--;
	if (pos >= DNS_MAXMX)
		return;
	last = *n < DNS_MAXMX ? *n : DNS_MAXMX - 1;
	memmove(&mx[pos + 1], &mx[pos], (size_t)(last - pos) * sizeof(*mx));
	mx[pos] = *one;
	if (*n < DNS_MAXMX)
		(*n)++;
}

static void
dns_deliver_mx(struct dns_query *q, enum dns_status st, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *head = NULL, *r;
	struct dns_mx mx[DNS_MAXMX], one;
	int n = 0, rc;

	if (st == DNS_OK) {
		if ((rc = ares_parse_mx_reply(abuf, alen, &head)) != ARES_SUCCESS) {
			st = dns_map_parse(rc);
		} else if (head == NULL) {
			/* c-ares 1.18 says SUCCESS when the answer holds only
			 * CNAMEs (a chain to a name without MX). */
			st = DNS_NODATA;
		} else {
			/*
			 * A record whose exchange is not a host name is
			 * skipped (as Postfix does), so one hostile record
			 * does not hide the usable ones; an answer with no
			 * usable record at all is BADANSWER. The root is kept
			 * as "" for the null MX (RFC 7505).
			 */
			for (r = head; r != NULL; r = r->next) {
				if (dns_answer_name(r->host, one.host, sizeof(one.host), 1) == -1)
					continue;
				one.preference = r->priority;
				dns_mx_insert(mx, &n, &one);
			}
			ares_free_data(head);
			if (n == 0)
				st = DNS_BADANSWER;
		}
	}
	q->cb.mx(q->arg, st, st == DNS_OK ? mx : NULL, st == DNS_OK ? n : 0);
}

/* Parse one half of an address query into q->ap. */
static void
dns_store_addrs(struct dns_query *q, int half, enum dns_status st, const unsigned char *abuf,
                int alen)
{
	struct dns_addrpart *ap = q->ap;
	int i, n = DNS_MAXADDRS, rc;

	ap->n[half] = 0;
	if (st == DNS_OK) {
		if (half == 0) {
			struct ares_addrttl t[DNS_MAXADDRS];

			rc = ares_parse_a_reply(abuf, alen, NULL, t, &n);
			for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&ap->a[0][i].ss;

				sin->sin_family = AF_INET;
				sin->sin_addr = t[i].ipaddr;
				ap->a[0][i].len = sizeof(*sin);
			}
		} else {
			struct ares_addr6ttl t[DNS_MAXADDRS];

			rc = ares_parse_aaaa_reply(abuf, alen, NULL, t, &n);
			for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ap->a[1][i].ss;

				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, &t[i].ip6addr, sizeof(sin6->sin6_addr));
				ap->a[1][i].len = sizeof(*sin6);
			}
		}
		if (rc != ARES_SUCCESS)
			st = dns_map_parse(rc);
		else if (n <= 0)
			st = DNS_NODATA; /* only CNAMEs */
		else
			ap->n[half] = n > DNS_MAXADDRS ? DNS_MAXADDRS : n;
	}
	ap->st[half] = st;
}

/* Both halves are in: combine and call back. */
static void
dns_deliver_addrs(struct dns_query *q)
{
	struct dns_addrpart *ap = q->ap;
	struct dns_addr out[DNS_MAXADDRS];
	enum dns_status s4 = ap->st[0], s6 = ap->st[1], st;
	int n4 = ap->n[0], n6 = ap->n[1], n;

	if (n4 + n6 > 0)
		st = DNS_OK;
	else if (s4 == DNS_NXDOMAIN && s6 == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN;
	else if (s4 == DNS_TEMPFAIL || s6 == DNS_TEMPFAIL)
		st = DNS_TEMPFAIL;
	else if (s4 == DNS_BADANSWER || s6 == DNS_BADANSWER)
		st = DNS_BADANSWER;
	else if (s4 == DNS_NXDOMAIN || s6 == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN; /* the other half said NODATA: inconsistent */
	else
		st = DNS_NODATA;

	/* Over the bound: half each, a family with fewer leaves room. */
	if (n4 + n6 > DNS_MAXADDRS) {
		if (n4 > DNS_MAXADDRS / 2 && n6 > DNS_MAXADDRS / 2)
			n4 = n6 = DNS_MAXADDRS / 2;
		else if (n4 > DNS_MAXADDRS / 2)
			n4 = DNS_MAXADDRS - n6;
		else
			n6 = DNS_MAXADDRS - n4;
	}
	memcpy(out, ap->a[0], (size_t)n4 * sizeof(*out));
	memcpy(out + n4, ap->a[1], (size_t)n6 * sizeof(*out));
	n = n4 + n6;
	q->cb.addr(q->arg, st, st == DNS_OK ? out : NULL, st == DNS_OK ? n : 0);
}

static void
dns_deliver_ptr(struct dns_query *q, enum dns_status st, const unsigned char *abuf, int alen)
{
	struct hostent *he = NULL;
	char name[DNS_NAME_MAX + 1];
	int rc;

	if (st == DNS_OK) {
		rc = ares_parse_ptr_reply(abuf, alen, q->ptr_addr,
		                          q->ptr_family == AF_INET ? 4 : 16, q->ptr_family, &he);
		if (rc != ARES_SUCCESS)
			st = dns_map_parse(rc);
		else if (he == NULL || dns_answer_name(he->h_name, name, sizeof(name), 0) == -1)
			st = DNS_BADANSWER;
		if (he != NULL)
			ares_free_hostent(he);
	}
	q->cb.name(q->arg, st, st == DNS_OK ? name : NULL);
}

static void
dns_deliver_txt(struct dns_query *q, enum dns_status st, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *head = NULL, *r;
	const char *rec[DNS_MAXTXT];
	size_t len[DNS_MAXTXT], total = 0, off = 0;
	char *buf = NULL;
	int n = 0, i, rc;

	if (st != DNS_OK)
		goto out;
	if ((rc = ares_parse_txt_reply_ext(abuf, alen, &head)) != ARES_SUCCESS) {
		st = dns_map_parse(rc);
		goto out;
	}
	/*
	 * RFC 8461 §3.1: the strings of one TXT record are joined without a
	 * separator; records stay apart (several STS records = no policy, a
	 * decision for the caller). Pass 1 measures, bounded.
	 */
	for (r = head; r != NULL; r = r->next) {
		if (r->record_start || n == 0) {
			if (n == DNS_MAXTXT)
				break;
			len[n++] = 0;
		}
		if (r->length > DNS_MAXTXTLEN - len[n - 1]) {
			st = DNS_BADANSWER;
			goto out;
		}
		len[n - 1] += r->length;
	}
	if (n == 0) {
		st = DNS_NODATA;
		goto out;
	}
	for (i = 0; i < n; i++)
		total += len[i] + 1;
	if ((buf = malloc(total)) == NULL) {
		st = DNS_TEMPFAIL;
		goto out;
	}
	/* Pass 2 copies the same records. */
	i = -1;
	for (r = head; r != NULL; r = r->next) {
		if (r->record_start || i == -1) {
			if (i + 1 == n)
				break;
			if (i >= 0)
				buf[off++] = '\0';
			rec[++i] = buf + off;
		}
		memcpy(buf + off, r->txt, r->length);
		off += r->length;
	}
	buf[off] = '\0';
out:
	if (head != NULL)
		ares_free_data(head);
	q->cb.txt(q->arg, st, st == DNS_OK ? rec : NULL, st == DNS_OK ? len : NULL,
	          st == DNS_OK ? n : 0);
	free(buf);
}

/* --- queries ---------------------------------------------------------- */

static void
dns_query_free(struct dns_query *q)
{
	free(q->ap);
	free(q);
}

static void
dns_on_ares(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_sub *sub = arg;
	struct dns_query *q = sub->q;
	enum dns_status st;

	(void)timeouts;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION || q->d->dying)
		q->cancelled = 1;
	st = dns_map_status(status);
	if (st != DNS_OK) {
		abuf = NULL;
		alen = 0;
	}

	if (!q->cancelled) {
		switch (q->kind) {
		case DNS_K_MX:
			dns_deliver_mx(q, st, abuf, alen);
			break;
		case DNS_K_ADDRS:
			dns_store_addrs(q, sub->half, st, abuf, alen);
			if (q->pending == 1)
				dns_deliver_addrs(q);
			break;
		case DNS_K_PTR:
			dns_deliver_ptr(q, st, abuf, alen);
			break;
		case DNS_K_TXT:
			dns_deliver_txt(q, st, abuf, alen);
			break;
		}
	}
	/* The user callback may have cancelled q (harmless) or freed the
	 * resolver (deferred: depth > 0 here). */
	if (--q->pending == 0 && !q->starting)
		dns_query_free(q);
}

/*
 * Fail synchronously (bad input, no memory): the callback runs now and
 * the query function returns NULL.
 */
static void
dns_fail_now(enum dns_kind kind, union dns_cb cb, void *arg, enum dns_status st)
{
	switch (kind) {
	case DNS_K_MX:
		cb.mx(arg, st, NULL, 0);
		break;
	case DNS_K_ADDRS:
		cb.addr(arg, st, NULL, 0);
		break;
	case DNS_K_PTR:
		cb.name(arg, st, NULL);
		break;
	case DNS_K_TXT:
		cb.txt(arg, st, NULL, NULL, 0);
		break;
	}
}

static struct dns_query *
dns_query_new(struct dns *d, enum dns_kind kind, union dns_cb cb, void *arg)
{
	struct dns_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if (kind == DNS_K_ADDRS && (q->ap = calloc(1, sizeof(*q->ap))) == NULL) {
		free(q);
		return NULL;
	}
	q->d = d;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	q->sub[0].q = q->sub[1].q = q;
	q->sub[1].half = 1;
	return q;
}

/* Send the one or two c-ares queries behind q. */
static struct dns_query *
dns_start(struct dns_query *q, const char *name, const int *types, int ntypes)
{
	struct dns *d = q->d;
	int i;

	q->starting = 1;
	q->pending = ntypes;
	dns_enter(d);
	for (i = 0; i < ntypes; i++)
		ares_query(d->ch, name, ns_c_in, types[i], dns_on_ares, &q->sub[i]);
	dns_leave(d); /* may destroy d if a callback called dns_free() */
	q->starting = 0;
	if (q->pending == 0) {
		/* Answered (or failed) before we return: the callback ran. */
		dns_query_free(q);
		return NULL;
	}
	return q;
}

/* Common front: check the name and the resolver, allocate. */
static struct dns_query *
dns_prepare(struct dns *d, enum dns_kind kind, const char *in, char *name, size_t namesz,
            union dns_cb cb, void *arg)
{
	struct dns_query *q;

	if (in != NULL && dns_normalize_name(in, name, namesz) == -1) {
		dns_fail_now(kind, cb, arg, DNS_NXDOMAIN);
		return NULL;
	}
	if (d == NULL || d->dying || (q = dns_query_new(d, kind, cb, arg)) == NULL) {
		dns_fail_now(kind, cb, arg, DNS_TEMPFAIL);
		return NULL;
	}
	return q;
}

struct dns_query *
dns_query_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	static const int types[] = {ns_t_mx};
	char name[DNS_NAME_MAX + 1];
	struct dns_query *q;
	union dns_cb u = {.mx = cb};

	if ((q = dns_prepare(d, DNS_K_MX, domain, name, sizeof(name), u, arg)) == NULL)
		return NULL;
	return dns_start(q, name, types, 1);
}

/*
 * An address literal ("192.0.2.1", "2001:db8::1", "[2001:db8::1]") is its
 * own answer: asking DNS for an A record named "192.0.2.1" makes no sense.
 * 1 if host was a literal and cb has run.
 */
static int
dns_addr_literal(const char *host, dns_addr_cb *cb, void *arg)
{
	char buf[INET6_ADDRSTRLEN + 2];
	struct dns_addr a;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
	size_t len;

	if (host == NULL || (len = strlen(host)) >= sizeof(buf))
		return 0;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		a.len = sizeof(*sin);
	} else {
		if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
			memcpy(buf, host + 1, len - 2);
			buf[len - 2] = '\0';
			host = buf;
		}
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return 0;
		sin6->sin6_family = AF_INET6;
		a.len = sizeof(*sin6);
	}
	cb(arg, DNS_OK, &a, 1);
	return 1;
}

struct dns_query *
dns_query_addrs(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	static const int types[] = {ns_t_a, ns_t_aaaa};
	char name[DNS_NAME_MAX + 1];
	struct dns_query *q;
	union dns_cb u = {.addr = cb};

	if (dns_addr_literal(host, cb, arg))
		return NULL;

	if ((q = dns_prepare(d, DNS_K_ADDRS, host, name, sizeof(name), u, arg)) == NULL)
		return NULL;
	return dns_start(q, name, types, 2);
}

struct dns_query *
dns_query_txt(struct dns *d, const char *host, dns_txt_cb *cb, void *arg)
{
	static const int types[] = {ns_t_txt};
	char name[DNS_NAME_MAX + 1];
	struct dns_query *q;
	union dns_cb u = {.txt = cb};

	if ((q = dns_prepare(d, DNS_K_TXT, host, name, sizeof(name), u, arg)) == NULL)
		return NULL;
	return dns_start(q, name, types, 1);
}

struct dns_query *
dns_query_ptr(struct dns *d, const struct sockaddr *sa, dns_name_cb *cb, void *arg)
{
	static const int types[] = {ns_t_ptr};
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const char hex[] = "0123456789abcdef";
	char name[80], *p = name;
	unsigned char a[16];
	int family, i;
	struct dns_query *q;
	union dns_cb u = {.name = cb};

	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		family = AF_INET6;
		/* A v4-mapped address is the v4 host: ask in-addr.arpa. */
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		dns_fail_now(DNS_K_PTR, u, arg, DNS_NXDOMAIN);
		return NULL;
	}
	if (family == AF_INET) {
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
	} else {
		for (i = 15; i >= 0; i--) {
			*p++ = hex[a[i] & 0xf];
			*p++ = '.';
			*p++ = hex[a[i] >> 4];
			*p++ = '.';
		}
		strcpy(p, "ip6.arpa");
	}
	if ((q = dns_prepare(d, DNS_K_PTR, NULL, NULL, 0, u, arg)) == NULL)
		return NULL;
	q->ptr_family = family;
	memcpy(q->ptr_addr, a, family == AF_INET ? 4 : 16);
	return dns_start(q, name, types, 1);
}

void
dns_cancel(struct dns_query *q)
{
	/* c-ares still owns the query; dns_on_ares() frees q when it ends. */
	if (q != NULL)
		q->cancelled = 1;
}
