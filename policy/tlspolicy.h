/*
 * tlspolicy: what a recipient domain requires of the upstream TLS session,
 * and whether an established session meets it.
 *
 * Every source of policy (global default, static config, MTA-STS, later
 * DANE) produces one struct tls_req; the relay checks each recipient's
 * requirement against the session's struct tls_state with
 * tlspolicy_check(). Levels are ordered integers (enum cfg_tls_level): a
 * level that requires TLS has no path to plaintext, only an explicit
 * failure with a 4.7.x status (RFC 8461 §5: "temporary failure").
 */
#ifndef STSPROXY_TLSPOLICY_H
#define STSPROXY_TLSPOLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define TLSPOLICY_MAXMX 64 /* = the MTA-STS parser's bound */

enum tlspolicy_source {
	TLSPOLICY_SRC_DEFAULT = 0, /* cfg default_level */
	TLSPOLICY_SRC_STATIC,      /* policy.static in the config */
	TLSPOLICY_SRC_MTASTS,      /* RFC 8461 */
	TLSPOLICY_SRC_DANE,        /* RFC 7672 (future; wins over MTA-STS) */
};

struct tls_req {
	enum cfg_tls_level level;
	enum tlspolicy_source source;
	int testing; /* report violations, deliver anyway */
	int nmx;     /* acceptable MX patterns; 0 = any MX */
	char mx[TLSPOLICY_MAXMX][256];
	char id[40]; /* MTA-STS policy id, "" otherwise */
};

struct tls_state {
	int tls;         /* TLS established with the destination */
	int tls13;       /* TLS 1.3 (else 1.2) */
	uint32_t verify; /* mbed TLS flags for mx_name (or chain only without a name); 0 = ok */
	const char
	        *mx_name; /* MX host the destination belongs to for this domain; NULL if unknown */
	int name_from_mx; /* mx_name came from the domain's own MX set (or the
	                       operator's configured upstream), not from PTR */
};

/* Failure kinds, for events and metrics. */
enum tlspolicy_fail {
	TLSPOLICY_OK = 0,
	TLSPOLICY_FAIL_NOTLS,     /* TLS required, session is plaintext */
	TLSPOLICY_FAIL_NOMXNAME,  /* verify: destination is not a known MX of the domain */
	TLSPOLICY_FAIL_MXPATTERN, /* verify: the MX name matches none of the policy's patterns */
	TLSPOLICY_FAIL_CERT,      /* verify: chain or name check failed */
};

/*
 * Check st against req. Returns TLSPOLICY_OK or the failure, with a short
 * human explanation in why ("certificate for mx1.example.com: expired").
 * Pure function.
 */
enum tlspolicy_fail tlspolicy_check(const struct tls_req *req, const struct tls_state *st,
                                    char *why, size_t whysz);

const char *tlspolicy_fail_name(enum tlspolicy_fail f);
const char *tlspolicy_source_name(enum tlspolicy_source s);

/* Does this requirement want a STARTTLS attempt at all? (level > none) */
int tlspolicy_wants_tls(const struct tls_req *req);
/* Does it forbid plaintext (enforced, level >= encrypt)? */
int tlspolicy_requires_tls(const struct tls_req *req);

/*
 * The static/default part of the policy decision, synchronous: fill req
 * for domain from cfg (static policy, else default level). Used by the
 * policy engine, which layers MTA-STS (and later DANE) on top.
 */
void tlspolicy_from_cfg(const struct cfg *cfg, const char *domain, struct tls_req *req);

#endif
