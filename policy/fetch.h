/*
 * fetch: HTTPS GET of MTA-STS policies (RFC 8461 §3.3) with libcurl multi
 * on the one libev loop.
 *
 * One ev_io per curl socket (CURLMOPT_SOCKETFUNCTION), one ev_timer for
 * curl's timeout (CURLMOPT_TIMERFUNCTION); CURLOPT_PRIVATE maps an easy
 * handle back to its request. The host's addresses come from OUR resolver
 * (dns_query_addrs) and are handed to curl with CURLOPT_RESOLVE, so a
 * policy lookup never escapes to another DNS.
 *
 * Rules applied to every transfer (each a "failed fetch" when broken):
 *  - https only (CURLOPT_PROTOCOLS_STR "https"), no proxy from the
 *    environment, no redirects (a 3xx is a failure: §3.3), no cookies,
 *    no content encoding, no HTTP cache (§3.3);
 *  - certificate chain verified against the configured CA file / path and
 *    the host name checked (SNI = the host name): §3.3, RFC 6125;
 *  - only status 200, media type "text/plain" (parameters allowed);
 *  - body capped (the transfer is cut off past the cap);
 *  - one total timeout covering the address lookup and the transfer.
 *
 * Contracts:
 *  - fetch_get() never calls back before it returns; it returns NULL only
 *    for allocation failure (errno set), and then never calls back.
 *  - After fetch_cancel() the callback never runs. A handle is valid until
 *    its callback returns or it is cancelled; cancelling from inside its
 *    own callback is harmless (a no-op).
 *  - Callbacks may start and cancel other fetches. fetch_free() must not be
 *    called from inside a fetch callback; it cancels everything pending.
 *  - The result (body, texts) is valid only during the callback.
 */
#ifndef STSPROXY_FETCH_H
#define STSPROXY_FETCH_H

#include <stddef.h>

struct ev_loop;
struct dns;
struct fetch;
struct fetch_req;

enum fetch_status {
	FETCH_OK = 0,       /* 200, text/plain, body within the cap */
	FETCH_ERR_DNS,      /* no address for the host (NXDOMAIN, NODATA, ...) */
	FETCH_ERR_DNSTEMP,  /* address lookup failed temporarily */
	FETCH_ERR_CONNECT,  /* TCP connection failed */
	FETCH_ERR_TLS,      /* handshake or certificate verification failed */
	FETCH_ERR_HTTP,     /* status other than 200 (3xx included) */
	FETCH_ERR_TYPE,     /* Content-Type is not text/plain */
	FETCH_ERR_SIZE,     /* body larger than the cap */
	FETCH_ERR_TIMEOUT,  /* the total timeout passed */
	FETCH_ERR_INTERNAL, /* anything else (protocol error, out of memory) */
};

struct fetch_opts {
	const char *ca_file; /* PEM bundle; NULL = curl's default */
	const char *ca_path; /* directory, may be NULL */
	double timeout;      /* seconds, whole fetch */
	size_t max_size;     /* body bytes */
	int port;            /* TCP port, 443 outside tests */
};

struct fetch_result {
	enum fetch_status status;
	long http_code;           /* 0 when no response */
	const char *content_type; /* as sent, or NULL */
	const char *body;         /* NUL-terminated; NULL unless FETCH_OK */
	size_t len;
	const char *error; /* one printable line; "" for FETCH_OK */
};

typedef void fetch_cb(void *arg, const struct fetch_result *res);

/* NULL with a message in err on failure. The strings in opts are copied. */
struct fetch *fetch_new(struct ev_loop *loop, struct dns *dns, const struct fetch_opts *opts,
                        char *err, size_t errsz);
void fetch_free(struct fetch *f); /* NULL-safe */

/* GET https://host:port/path; host is a DNS name (lower-case, no dot at the
 * end), path starts with "/". */
struct fetch_req *fetch_get(struct fetch *f, const char *host, const char *path, fetch_cb *cb,
                            void *arg);
/* https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3). */
struct fetch_req *fetch_policy(struct fetch *f, const char *domain, fetch_cb *cb, void *arg);

/* NULL-safe. */
void fetch_cancel(struct fetch_req *r);

const char *fetch_strstatus(enum fetch_status st);

/* Is this Content-Type value the media type text/plain (RFC 9110 §8.3:
 * case-insensitive type/subtype, optional white space and parameters)? */
int fetch_is_text_plain(const char *ct);

#endif
