/*
 * fetch: MTA-STS policy fetches over HTTPS with libcurl multi on libev
 * (see fetch.h for the contracts).
 *
 * Owns the curl multi handle, one ev_io per curl socket (created and
 * updated from CURLMOPT_SOCKETFUNCTION, freed on CURL_POLL_REMOVE), one
 * ev_timer driven by CURLMOPT_TIMERFUNCTION, and its requests. A request
 * goes through two phases: the address lookup with our c-ares resolver,
 * then the transfer, whose easy handle carries the request in
 * CURLOPT_PRIVATE. Each request has its own ev_timer for the total
 * timeout; the same timer delivers a failure found while fetch_get() is
 * still running, so no callback ever runs inside fetch_get().
 */
#include "fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <ev.h>

#include "dns.h"

#define FETCH_URLMAX     (DNS_NAME_MAX + 64 + 256)
#define FETCH_ERRMAX     256
#define FETCH_POLICYPATH "/.well-known/mta-sts.txt"

enum fetch_phase {
	FETCH_PH_DNS = 0, /* waiting for our resolver */
	FETCH_PH_HTTP,    /* easy handle in the multi */
	FETCH_PH_DONE,    /* result known, delivery pending (timer at 0) */
	FETCH_PH_CB,      /* callback running */
};

struct fetch_sock {
	ev_io io;
	struct fetch *f;
	LIST_ENTRY(fetch_sock) entry;
};

struct fetch_req {
	struct fetch *f;
	LIST_ENTRY(fetch_req) entry;
	enum fetch_phase phase;
	int starting; /* inside fetch_get: failures wait for the timer */
	char host[DNS_NAME_MAX + 1];
	char url[FETCH_URLMAX];
	fetch_cb *cb;
	void *arg;
	ev_tstamp deadline;
	ev_timer timer; /* total timeout, then deferred delivery */

	struct dns_query *dq;
	CURL *easy;
	struct curl_slist *resolve;
	char curlerr[CURL_ERROR_SIZE];

	char *body;
	size_t len, cap;
	int oversize;  /* write callback: body over the cap */
	int badstatus; /* write callback: status other than 200 */
	int badtype;   /* write callback: not text/plain */

	enum fetch_status status; /* FETCH_PH_DONE */
	long http_code;
	char error[FETCH_ERRMAX];
};

struct fetch {
	struct ev_loop *loop;
	struct dns *dns;
	CURLM *multi;
	ev_timer timer;
	char *ca_file, *ca_path;
	double timeout;
	size_t max_size;
	int port;
	LIST_HEAD(, fetch_req) reqs;
	LIST_HEAD(, fetch_sock) socks;
};

static void fetch_deliver(struct fetch_req *r);

const char *
fetch_strstatus(enum fetch_status st)
{
	switch (st) {
	case FETCH_OK:
		return "ok";
	case FETCH_ERR_DNS:
		return "dns";
	case FETCH_ERR_DNSTEMP:
		return "dns_temporary";
	case FETCH_ERR_CONNECT:
		return "connect";
	case FETCH_ERR_TLS:
		return "tls";
	case FETCH_ERR_HTTP:
		return "http_status";
	case FETCH_ERR_TYPE:
		return "content_type";
	case FETCH_ERR_SIZE:
		return "too_large";
	case FETCH_ERR_TIMEOUT:
		return "timeout";
	case FETCH_ERR_INTERNAL:
		return "internal";
	}
	return "unknown";
}

int
fetch_is_text_plain(const char *ct)
{
	static const char want[] = "text/plain";
	size_t n = sizeof(want) - 1;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Printable one-line copy, for errors that end up in logs and the cache. */
static void fetch_seterr(struct fetch_req *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
fetch_seterr(struct fetch_req *r, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	for (p = r->error; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

/* --- curl multi <-> libev ------------------------------------------------ */

static void
fetch_check_done(struct fetch *f)
{
	struct fetch_req *r;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		char *priv = NULL;
		CURLcode rc;
		long code = 0;
		char *ct = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		r = (struct fetch_req *)(void *)priv;
		if (r == NULL || r->phase != FETCH_PH_HTTP)
			continue;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
		r->http_code = code;
		if (r->badstatus || (rc == CURLE_OK && code != 200)) {
			/* RFC 8461 §3.3: only 200 counts; a redirect is not
			 * followed (it would let whoever controls the target
			 * answer for the domain). */
			r->status = FETCH_ERR_HTTP;
			if (code >= 300 && code < 400)
				fetch_seterr(r, "%s: HTTP %ld redirect, not followed", r->host,
				             code);
			else
				fetch_seterr(r, "%s: HTTP status %ld", r->host, code);
		} else if (r->oversize || rc == CURLE_FILESIZE_EXCEEDED) {
			r->status = FETCH_ERR_SIZE;
			fetch_seterr(r, "%s: policy larger than %zu bytes", r->host, f->max_size);
		} else if (r->badtype || (rc == CURLE_OK && !fetch_is_text_plain(ct))) {
			/* §3.3: the policy is served as "text/plain". */
			r->status = FETCH_ERR_TYPE;
			fetch_seterr(r, "%s: media type \"%.60s\", not text/plain", r->host,
			             ct ? ct : "");
		} else if (rc == CURLE_OK) {
			r->status = FETCH_OK;
			r->error[0] = '\0';
		} else {
			const char *what = "";

			switch (rc) {
			case CURLE_OPERATION_TIMEDOUT:
				r->status = FETCH_ERR_TIMEOUT;
				break;
			case CURLE_COULDNT_CONNECT:
				r->status = FETCH_ERR_CONNECT;
				what = "connect: ";
				break;
			case CURLE_PEER_FAILED_VERIFICATION:
			case CURLE_SSL_CONNECT_ERROR:
			case CURLE_SSL_CERTPROBLEM:
			case CURLE_SSL_CIPHER:
			case CURLE_SSL_CACERT_BADFILE:
			case CURLE_SSL_ISSUER_ERROR:
			case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
			case CURLE_SSL_INVALIDCERTSTATUS:
			case CURLE_SSL_CRL_BADFILE:
				r->status = FETCH_ERR_TLS;
				what = "TLS: ";
				break;
			default:
				r->status = FETCH_ERR_INTERNAL;
				break;
			}
			fetch_seterr(r, "%s: %s%s", r->host, what,
			             r->curlerr[0] ? r->curlerr : curl_easy_strerror(rc));
		}
		r->phase = FETCH_PH_DONE;
		fetch_deliver(r);
	}
}

static void
fetch_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fetch_sock *s = w->data;
	struct fetch *f = s->f;
	int action = 0, running;

	(void)loop;
	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* s may be freed inside (CURL_POLL_REMOVE). */
	curl_multi_socket_action(f->multi, w->fd, action, &running);
	fetch_check_done(f);
}

static void
fetch_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fetch *f = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetch_check_done(f);
}

static int
fetch_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct fetch *f = userp;
	struct fetch_sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			ev_io_stop(f->loop, &s->io);
			LIST_REMOVE(s, entry);
			free(s);
			curl_multi_assign(f->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1; /* curl fails the transfer */
		s->f = f;
		s->io.data = s;
		ev_init(&s->io, fetch_on_io);
		LIST_INSERT_HEAD(&f->socks, s, entry);
		curl_multi_assign(f->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	ev_io_stop(f->loop, &s->io);
	ev_io_set(&s->io, fd, events);
	ev_io_start(f->loop, &s->io);
	return 0;
}

/* curl asks for a timer: -1 stop, 0 "as soon as possible", else ms. Never
 * call curl back from here; the loop does it. */
static int
fetch_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct fetch *f = userp;

	(void)multi;
	ev_timer_stop(f->loop, &f->timer);
	if (timeout_ms >= 0) {
		/* Milliseconds to seconds as a double: integer division
		 * would turn 999 ms into a busy 0 s timer. */
		ev_timer_set(&f->timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(f->loop, &f->timer);
	}
	return 0;
}

/* --- requests ------------------------------------------------------------- */

/* Release everything but the request itself and its timer. */
static void
fetch_release(struct fetch_req *r)
{
	struct fetch *f = r->f;

	if (r->dq != NULL) {
		dns_cancel(r->dq);
		r->dq = NULL;
	}
	if (r->easy != NULL) {
		curl_multi_remove_handle(f->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	curl_slist_free_all(r->resolve);
	r->resolve = NULL;
}

static void
fetch_req_free(struct fetch_req *r)
{
	fetch_release(r);
	ev_timer_stop(r->f->loop, &r->timer);
	LIST_REMOVE(r, entry);
	free(r->body);
	free(r);
}

/* The result is known (phase DONE): call back now, or from the timer when
 * fetch_get is still on the stack. */
static void
fetch_deliver(struct fetch_req *r)
{
	struct fetch_result res;
	struct fetch *f = r->f;

	if (r->starting) {
		ev_timer_stop(f->loop, &r->timer);
		ev_timer_set(&r->timer, 0., 0.);
		ev_timer_start(f->loop, &r->timer);
		return;
	}
	fetch_release(r);
	ev_timer_stop(f->loop, &r->timer);
	memset(&res, 0, sizeof(res));
	res.status = r->status;
	res.http_code = r->http_code;
	res.error = r->error;
	if (r->status == FETCH_OK) {
		if (r->body == NULL && (r->body = malloc(1)) == NULL) {
			res.status = FETCH_ERR_INTERNAL;
			res.error = "out of memory";
		} else {
			r->body[r->len] = '\0';
			res.body = r->body;
			res.len = r->len;
			res.content_type = "text/plain";
		}
	}
	r->phase = FETCH_PH_CB;
	r->cb(r->arg, &res);
	fetch_req_free(r);
}

static void
fetch_fail(struct fetch_req *r, enum fetch_status st)
{
	r->status = st;
	r->phase = FETCH_PH_DONE;
	fetch_deliver(r);
}

static void
fetch_on_req_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fetch_req *r = w->data;

	(void)loop;
	(void)revents;
	if (r->phase == FETCH_PH_DONE) {
		fetch_deliver(r);
		return;
	}
	/* §3.3: a policy host that does not answer in time is a failed
	 * fetch, like any other. */
	fetch_seterr(r, "%s: no complete answer within %.1f s", r->host, r->f->timeout);
	fetch_fail(r, FETCH_ERR_TIMEOUT);
}

static size_t
fetch_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct fetch_req *r = userp;
	size_t n = size * nmemb, need;
	long code = 0;
	char *ct = NULL;

	if (r->len == 0 && r->body == NULL) {
		/* Headers are in: refuse an error page or a non-policy
		 * document before downloading it. */
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
		if (code != 200) {
			r->badstatus = 1;
			return 0;
		}
		if (!fetch_is_text_plain(ct)) {
			r->badtype = 1;
			return 0;
		}
	}
	/* The cap is checked before growing: a hostile server gets at most
	 * max_size bytes of our memory. */
	if (n > r->f->max_size - r->len) {
		r->oversize = 1;
		return 0;
	}
	need = r->len + n + 1;
	if (need > r->cap) {
		size_t ncap = r->cap ? r->cap : 4096;
		char *nb;

		while (ncap < need)
			ncap *= 2;
		if (ncap > r->f->max_size + 1)
			ncap = r->f->max_size + 1;
		if ((nb = realloc(r->body, ncap)) == NULL)
			return 0;
		r->body = nb;
		r->cap = ncap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return n;
}

static int
fetch_fmt_addr(const struct dns_addr *a, char *out, size_t outsz)
{
	char buf[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)) == NULL)
			return -1;
		snprintf(out, outsz, "%s", buf);
		return 0;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)) == NULL)
			return -1;
		snprintf(out, outsz, "[%s]", buf);
		return 0;
	}
	return -1;
}

static int
fetch_setup_easy(struct fetch_req *r, const struct dns_addr *a, int n)
{
	struct fetch *f = r->f;
	char line[DNS_NAME_MAX + 16 + DNS_MAXADDRS * (INET6_ADDRSTRLEN + 3)], addr[64];
	size_t off;
	double left;
	long ms;
	int i, added = 0;
	CURL *e;

	off = (size_t)snprintf(line, sizeof(line), "%s:%d:", r->host, f->port);
	for (i = 0; i < n && off < sizeof(line); i++) {
		if (fetch_fmt_addr(&a[i], addr, sizeof(addr)) == -1)
			continue;
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%s%s", added ? "," : "",
		                        addr);
		added++;
	}
	if (added == 0 || off >= sizeof(line)) {
		fetch_seterr(r, "%s: no usable address", r->host);
		return -1;
	}
	if ((r->resolve = curl_slist_append(NULL, line)) == NULL ||
	    (r->easy = e = curl_easy_init()) == NULL) {
		fetch_seterr(r, "%s: out of memory", r->host);
		return -1;
	}
	left = r->deadline - ev_now(f->loop);
	ms = left < 0.001 ? 1 : (long)(left * 1000.0);

	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(void *)r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curlerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Our resolver's answer, and only that: with the name in the DNS
	 * cache curl never asks another resolver (system, DoH). */
	curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	/* §3.3: HTTPS only, no redirects; no proxy from the environment
	 * (http_proxy would hand the fetch to a third party). */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	/* §3.3: the certificate must be valid for mta-sts.<domain>, chained
	 * to a trusted root; SNI carries the host name (from the URL). */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (f->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
	/* Only the configured trust anchors: no built-in CA directory. */
	curl_easy_setopt(e, CURLOPT_CAPATH, f->ca_path);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "stsproxy (MTA-STS policy fetch)");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max_size);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
		fetch_seterr(r, "%s: cannot start the transfer", r->host);
		return -1;
	}
	r->phase = FETCH_PH_HTTP;
	return 0;
}

static void
fetch_on_addrs(void *arg, enum dns_status st, const struct dns_addr *a, int n)
{
	struct fetch_req *r = arg;

	r->dq = NULL;
	if (st != DNS_OK || n == 0) {
		fetch_seterr(r, "%s: address lookup: %s", r->host, dns_strstatus(st));
		fetch_fail(r, st == DNS_TEMPFAIL ? FETCH_ERR_DNSTEMP : FETCH_ERR_DNS);
		return;
	}
	if (fetch_setup_easy(r, a, n) == -1)
		fetch_fail(r, FETCH_ERR_INTERNAL);
}

struct fetch_req *
fetch_get(struct fetch *f, const char *host, const char *path, fetch_cb *cb, void *arg)
{
	struct fetch_req *r;
	struct dns_query *q;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->f = f;
	r->cb = cb;
	r->arg = arg;
	r->starting = 1;
	LIST_INSERT_HEAD(&f->reqs, r, entry);
	ev_timer_init(&r->timer, fetch_on_req_timer, f->timeout, 0.);
	r->timer.data = r;
	ev_timer_start(f->loop, &r->timer);
	r->deadline = ev_now(f->loop) + f->timeout;

	if (dns_normalize_name(host, r->host, sizeof(r->host)) == -1 || path == NULL ||
	    path[0] != '/') {
		snprintf(r->host, sizeof(r->host), "?");
		fetch_seterr(r, "not a host name or path");
		fetch_fail(r, FETCH_ERR_INTERNAL);
	} else {
		if (f->port == 443)
			snprintf(r->url, sizeof(r->url), "https://%s%s", r->host, path);
		else
			snprintf(r->url, sizeof(r->url), "https://%s:%d%s", r->host, f->port, path);
		q = dns_query_addrs(f->dns, r->host, fetch_on_addrs, r);
		if (q != NULL)
			r->dq = q;
	}
	r->starting = 0;
	return r;
}

struct fetch_req *
fetch_policy(struct fetch *f, const char *domain, fetch_cb *cb, void *arg)
{
	char host[DNS_NAME_MAX + 16];

	/* §3.3: the policy host is "mta-sts" prepended to the domain. */
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	return fetch_get(f, host, FETCH_POLICYPATH, cb, arg);
}

void
fetch_cancel(struct fetch_req *r)
{
	if (r == NULL || r->phase == FETCH_PH_CB)
		return;
	fetch_req_free(r);
}

/* --- life cycle ------------------------------------------------------------ */

struct fetch *
fetch_new(struct ev_loop *loop, struct dns *dns, const struct fetch_opts *o, char *err,
          size_t errsz)
{
	struct fetch *f;
	CURLcode rc;

	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		snprintf(err, errsz, "libcurl: %s", curl_easy_strerror(rc));
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto nomem;
	f->loop = loop;
	f->dns = dns;
	f->timeout = o->timeout > 0 ? o->timeout : 30.;
	f->max_size = o->max_size > 0 ? o->max_size : 65536;
	f->port = o->port > 0 ? o->port : 443;
	LIST_INIT(&f->reqs);
	LIST_INIT(&f->socks);
	ev_init(&f->timer, fetch_on_timer);
	f->timer.data = f;
	if ((o->ca_file != NULL && (f->ca_file = strdup(o->ca_file)) == NULL) ||
	    (o->ca_path != NULL && (f->ca_path = strdup(o->ca_path)) == NULL) ||
	    (f->multi = curl_multi_init()) == NULL)
		goto nomem;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, fetch_sock_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, fetch_timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
nomem:
	snprintf(err, errsz, "fetch: out of memory");
	if (f != NULL) {
		free(f->ca_file);
		free(f->ca_path);
		free(f);
	}
	curl_global_cleanup();
	return NULL;
}

void
fetch_free(struct fetch *f)
{
	struct fetch_sock *s;

	if (f == NULL)
		return;
	while (!LIST_EMPTY(&f->reqs))
		fetch_req_free(LIST_FIRST(&f->reqs));
	curl_multi_cleanup(f->multi);
	/* Sockets curl did not report removed (closed by the cleanup). */
	while ((s = LIST_FIRST(&f->socks)) != NULL) {
		ev_io_stop(f->loop, &s->io);
		LIST_REMOVE(s, entry);
		free(s);
	}
	ev_timer_stop(f->loop, &f->timer);
	free(f->ca_file);
	free(f->ca_path);
	free(f);
	curl_global_cleanup();
}
