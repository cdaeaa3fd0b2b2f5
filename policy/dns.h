/*
 * dns: asynchronous DNS over c-ares, driven by the one libev loop.
 *
 * One ev_io per c-ares socket, created on demand from the socket-state
 * callback; one timer re-armed from ares_timeout(). No polling, no fixed
 * watcher arrays.
 *
 * Every query returns a handle; dns_cancel() guarantees that its callback
 * never runs afterwards. A callback may run before the query function
 * returns (c-ares answers some queries synchronously, e.g. from
 * /etc/hosts or on immediate failure): then the function returns NULL and
 * the caller must not touch a handle. Results are only valid during the
 * callback.
 *
 * Additions to the contract (dns.c):
 * - A query function returns NULL only after the callback has run (or
 *   when dns_free() was called meanwhile): bad input (a name that is not a
 *   host name) is reported as DNS_NXDOMAIN, allocation failure as
 *   DNS_TEMPFAIL, both synchronously.
 * - A handle is valid until its callback returns or dns_cancel() is called.
 *   Cancelling it from inside its own callback is harmless.
 * - Any query function may run callbacks of other, older queries before it
 *   returns (c-ares fails queries sharing a broken socket at once).
 * - dns_free() may be called from inside a callback; the resolver is then
 *   destroyed when c-ares returns, and no further callback runs. Handles
 *   (and mxfind handles) must not be used after dns_free().
 */
#ifndef STSPROXY_DNS_H
#define STSPROXY_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct cfg;

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,  /* the name does not exist (authoritative) */
	DNS_NODATA,    /* the name exists, no record of that type */
	DNS_TEMPFAIL,  /* SERVFAIL, timeout, refused, network: try again later */
	DNS_BADANSWER, /* malformed or hostile answer */
};

struct dns;
struct dns_query;

/* Bounds on what one answer may contribute; the rest is ignored. */
#define DNS_NAME_MAX  253         /* presentation form, no trailing dot */
#define DNS_MAXMX     32          /* the lowest-preference MX records kept */
#define DNS_MAXADDRS  16          /* addresses from A and AAAA together */
#define DNS_MAXTXT    16          /* TXT records, in answer order */
#define DNS_MAXTXTLEN (64 * 1024) /* one TXT record after concatenation */

struct dns_mx {
	int preference;
	char host[256]; /* lower-case, no trailing dot */
};

struct dns_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

typedef void dns_mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx, int n);
typedef void dns_addr_cb(void *arg, enum dns_status st, const struct dns_addr *a, int n);
typedef void dns_name_cb(void *arg, enum dns_status st, const char *name);
/* TXT: each record's strings concatenated without separator (RFC 8461 §3.1);
 * rec[i] has len[i] bytes and is also NUL-terminated. */
typedef void dns_txt_cb(void *arg, enum dns_status st, const char *const *rec, const size_t *len,
                        int n);

/* Create the resolver from cfg (dns_servers, dns_timeout, dns_tries). */
struct dns *dns_new(struct ev_loop *loop, const struct cfg *cfg, char *err, size_t errsz);
/* Cancels everything outstanding (no callbacks run) and frees. NULL-safe. */
void dns_free(struct dns *d);

/* MX records sorted by preference (ties keep answer order). */
struct dns_query *dns_query_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg);
/* A and AAAA of name, both asked in parallel; DNS_OK if either has data.
 * An address literal (v4, v6, "[v6]") is answered synchronously. */
struct dns_query *dns_query_addrs(struct dns *d, const char *name, dns_addr_cb *cb, void *arg);
/* PTR of an address: first name, lower-case, no trailing dot. */
struct dns_query *dns_query_ptr(struct dns *d, const struct sockaddr *sa, dns_name_cb *cb,
                                void *arg);
/* TXT records of name (CNAMEs followed by the resolver). */
struct dns_query *dns_query_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg);

/* NULL-safe; after it the query's callback never runs. */
void dns_cancel(struct dns_query *q);

const char *dns_strstatus(enum dns_status st);

/*
 * Copy a host or domain name into out (outsz >= DNS_NAME_MAX + 1) in the
 * form used everywhere in stsproxy: lower-case, no trailing dot. Accepts
 * letters, digits, '-' and '_' in labels of 1..63 bytes, DNS_NAME_MAX in
 * total. Returns 0, or -1 with errno EINVAL (ENOSPC if out is too small).
 */
int dns_normalize_name(const char *in, char *out, size_t outsz);

/* Resolver addresses in "a.b.c.d:port,[v6]:port" form, for libcurl's
 * CURLOPT_RESOLVE or logs; "" when the system resolver is used. */
const char *dns_servers_text(const struct dns *d);

#endif
