/*
 * tlspolicy: requirement levels and their check (see tlspolicy.h).
 */
#include <stdio.h>
#include <string.h>

#include <mbedtls/x509.h>

#include "mxpattern.h"
#include "tlspolicy.h"

static const char *
verify_text(uint32_t flags)
{
	if (flags & MBEDTLS_X509_BADCERT_MISSING)
		return "no certificate";
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		return "untrusted chain";
	if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
		return "expired";
	if (flags & MBEDTLS_X509_BADCERT_FUTURE)
		return "not yet valid";
	if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
		return "name mismatch";
	return "invalid";
}

enum tlspolicy_fail
tlspolicy_check(const struct tls_req *req, const struct tls_state *st, char *why, size_t whysz)
{
	int matched = 0;

	if (why && whysz)
		why[0] = '\0';
	if (req->level <= CFG_TLS_MAY)
		return TLSPOLICY_OK;
	if (!st->tls) {
		snprintf(why, whysz, "TLS required (%s policy) but the session is not encrypted",
		         tlspolicy_source_name(req->source));
		return TLSPOLICY_FAIL_NOTLS;
	}
	if (req->level == CFG_TLS_ENCRYPT)
		return TLSPOLICY_OK;

	/* verify: RFC 8461 §4.1/§4.2: the MX host must match the policy and
	 * the certificate must be valid for that MX host name. A name learned
	 * only from PTR proves nothing about the domain's MX set. */
	if (st->mx_name == NULL || !st->name_from_mx) {
		snprintf(why, whysz, "destination is not an MX host of the domain%s%s%s",
		         st->mx_name ? " (reverse name " : "", st->mx_name ? st->mx_name : "",
		         st->mx_name ? ")" : "");
		return TLSPOLICY_FAIL_NOMXNAME;
	}
	if (req->nmx > 0) {
		for (int i = 0; i < req->nmx && !matched; i++)
			matched = mxpattern_match(req->mx[i], st->mx_name);
		if (!matched) {
			snprintf(why, whysz,
			         "MX host %s matches none of the %s policy's mx patterns",
			         st->mx_name, tlspolicy_source_name(req->source));
			return TLSPOLICY_FAIL_MXPATTERN;
		}
	}
	if (st->verify != 0) {
		snprintf(why, whysz, "certificate for %s: %s", st->mx_name,
		         verify_text(st->verify));
		return TLSPOLICY_FAIL_CERT;
	}
	return TLSPOLICY_OK;
}

const char *
tlspolicy_fail_name(enum tlspolicy_fail f)
{
	switch (f) {
	case TLSPOLICY_OK:
		return "ok";
	case TLSPOLICY_FAIL_NOTLS:
		return "no_tls";
	case TLSPOLICY_FAIL_NOMXNAME:
		return "not_an_mx";
	case TLSPOLICY_FAIL_MXPATTERN:
		return "mx_mismatch";
	case TLSPOLICY_FAIL_CERT:
		return "certificate";
	}
	return "unknown";
}

const char *
tlspolicy_source_name(enum tlspolicy_source s)
{
	switch (s) {
	case TLSPOLICY_SRC_DEFAULT:
		return "default";
	case TLSPOLICY_SRC_STATIC:
		return "static";
	case TLSPOLICY_SRC_MTASTS:
		return "mta-sts";
	case TLSPOLICY_SRC_DANE:
		return "dane";
	}
	return "unknown";
}

int
tlspolicy_wants_tls(const struct tls_req *req)
{
	return req->level > CFG_TLS_NONE;
}

int
tlspolicy_requires_tls(const struct tls_req *req)
{
	return req->level >= CFG_TLS_ENCRYPT && !req->testing;
}

void
tlspolicy_from_cfg(const struct cfg *cfg, const char *domain, struct tls_req *req)
{
	const struct cfg_policy *p = domain && *domain ? cfg_policy_find(cfg, domain) : NULL;

	memset(req, 0, sizeof(*req));
	if (p == NULL) {
		req->level = cfg->default_level;
		req->source = TLSPOLICY_SRC_DEFAULT;
		return;
	}
	req->level = p->level;
	req->source = TLSPOLICY_SRC_STATIC;
	for (int i = 0; i < p->nmx && req->nmx < TLSPOLICY_MAXMX; i++)
		snprintf(req->mx[req->nmx++], sizeof(req->mx[0]), "%s", p->mx[i]);
}
