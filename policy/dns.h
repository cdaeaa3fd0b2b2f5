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
typedef void dns_txt_cb(void *arg, enum dns_status st, const char *const *rec,
			const size_t *len, int n);

/* Create the resolver from cfg (dns_servers, dns_timeout, dns_tries). */
struct dns *dns_new(struct ev_loop *loop, const struct cfg *cfg, char *err, size_t errsz);
/* Cancels everything outstanding (no callbacks run) and frees. NULL-safe. */
void dns_free(struct dns *d);

/* MX records sorted by preference (ties keep answer order). */
struct dns_query *dns_query_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg);
/* A and AAAA of name, both asked in parallel; DNS_OK if either has data. */
struct dns_query *dns_query_addrs(struct dns *d, const char *name, dns_addr_cb *cb, void *arg);
/* PTR of an address: first name, lower-case, no trailing dot. */
struct dns_query *dns_query_ptr(struct dns *d, const struct sockaddr *sa, dns_name_cb *cb,
				void *arg);
/* TXT records of name (CNAMEs followed by the resolver). */
struct dns_query *dns_query_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg);

/* NULL-safe; after it the query's callback never runs. */
void dns_cancel(struct dns_query *q);

const char *dns_strstatus(enum dns_status st);

/* Resolver addresses in "a.b.c.d:port,[v6]:port" form, for libcurl's
 * CURLOPT_RESOLVE or logs; "" when the system resolver is used. */
const char *dns_servers_text(const struct dns *d);

#endif
