/*
 * sts_policy: parse an MTA-STS policy file (RFC 8461 §3.2) and match MX
 * host names against it.
 *
 * Owns nothing; sts_policy_parse() is pure over (const char *, size_t),
 * never reads past len, never allocates, and either fills the whole struct
 * (0) or zeroes it and explains why in err (-1). The fetched text is
 * attacker-reachable input (anyone who can serve HTTPS for mta-sts.<domain>
 * or trick the fetcher), so every length is bounded and every message
 * quoting input is sanitised. Choices (clamping max_age, duplicates, empty
 * lines, bounds) are listed in sts_policy.h.
 */
#include "sts_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mxpattern.h"

#define STS_KEY_MAX   32 /* §3.2 sts-policy-ext-name: 1 + *31 */
#define STS_QUOTE_MAX 40 /* input bytes quoted in an error message */

struct sts_pol_state {
	struct sts_policy *p;
	bool have_version, have_mode, have_max_age;
	char *err;
	size_t errsz;
	unsigned long line;
};

static bool
sts_pol_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool
sts_pol_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* sts-policy-vchar (VCHAR / UTF-8 multi-byte) or WSP inside a value. */
static bool
sts_pol_valchar(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= 0x21 && u != 0x7f) || sts_pol_wsp(c);
}

static void
sts_pol_err(struct sts_pol_state *st, bool withline, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (st->err == NULL || st->errsz == 0)
		return;
	if (withline)
		n = snprintf(st->err, st->errsz, "line %lu: ", st->line);
	if (n < 0 || (size_t)n >= st->errsz)
		return;
	va_start(ap, fmt);
	vsnprintf(st->err + n, st->errsz - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * Copy at most STS_QUOTE_MAX bytes of s for an error message, printable
 * ASCII only: the message goes to logs, and raw policy bytes there would
 * allow log injection (CR, LF, escape sequences).
 */
static const char *
sts_pol_quote(char *buf, size_t bufsz, const char *s, size_t len)
{
	size_t i, n = len > STS_QUOTE_MAX ? STS_QUOTE_MAX : len;

	if (bufsz < STS_QUOTE_MAX + 4)
		return "";
	for (i = 0; i < n; i++) {
		unsigned char u = (unsigned char)s[i];

		buf[i] = (u >= 0x20 && u < 0x7f && u != '\'') ? s[i] : '?';
	}
	buf[i] = '\0';
	if (len > n)
		memcpy(buf + i, "...", 4);
	return buf;
}

static bool
sts_pol_is(const char *key, size_t keylen, const char *name)
{
	return strlen(name) == keylen && memcmp(key, name, keylen) == 0;
}

static int
sts_pol_mode(struct sts_pol_state *st, const char *v, size_t vlen)
{
	char q[STS_QUOTE_MAX + 4];

	/* §3.2: exactly these three, case-sensitive. */
	if (sts_pol_is(v, vlen, "enforce"))
		st->p->mode = STS_MODE_ENFORCE;
	else if (sts_pol_is(v, vlen, "testing"))
		st->p->mode = STS_MODE_TESTING;
	else if (sts_pol_is(v, vlen, "none"))
		st->p->mode = STS_MODE_NONE;
	else {
		sts_pol_err(st, true, "mode: unknown value '%s'",
		            sts_pol_quote(q, sizeof q, v, vlen));
		return -1;
	}
	return 0;
}

static int
sts_pol_max_age(struct sts_pol_state *st, const char *v, size_t vlen)
{
	char q[STS_QUOTE_MAX + 4];
	uint64_t n = 0;
	size_t i;

	/* §3.2: sts-policy-max-age-value = 1*10(DIGIT) */
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9') {
			sts_pol_err(st, true, "max_age: not a number '%s'",
			            sts_pol_quote(q, sizeof q, v, vlen));
			return -1;
		}
		n = n * 10 + (uint64_t)(v[i] - '0');
		if (i >= 10) {
			sts_pol_err(st, true, "max_age: more than 10 digits '%s'",
			            sts_pol_quote(q, sizeof q, v, vlen));
			return -1;
		}
	}
	/* §3.2 caps max_age at 31557600 (a year). Clamp rather than reject:
	 * see sts_policy.h. */
	if (n > STS_POLICY_MAXAGE) {
		n = STS_POLICY_MAXAGE;
		st->p->max_age_clamped = true;
	}
	st->p->max_age = (uint32_t)n;
	return 0;
}

static int
sts_pol_mx(struct sts_pol_state *st, const char *v, size_t vlen)
{
	char q[STS_QUOTE_MAX + 4], pat[STS_MX_MAXLEN + 1];
	size_t i, n = vlen;
	int k;

	/* §3.2 sts-policy-mx-value = ["*."] Domain, checked by mxpattern so
	 * policies and matching agree on what a pattern is (§4.1: "*" is one
	 * whole left-most label only). One trailing dot names the same host
	 * and is dropped; two are invalid. */
	if (n > 1 && v[n - 1] == '.')
		n--;
	if (!mxpattern_valid(v, vlen) || n == 0 || n > STS_MX_MAXLEN || v[n - 1] == '.') {
		sts_pol_err(st, true, "mx: invalid pattern '%s'",
		            sts_pol_quote(q, sizeof q, v, vlen));
		return -1;
	}
	for (i = 0; i < n; i++)
		pat[i] = (v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] - 'A' + 'a') : v[i];
	pat[n] = '\0';
	for (k = 0; k < st->p->nmx; k++)
		if (strcmp(st->p->mx[k], pat) == 0)
			return 0;
	if (st->p->nmx >= STS_POLICY_MAXMX) {
		sts_pol_err(st, true, "mx: more than %d patterns", STS_POLICY_MAXMX);
		return -1;
	}
	memcpy(st->p->mx[st->p->nmx++], pat, n + 1);
	return 0;
}

/* One line without its terminator. */
static int
sts_pol_line(struct sts_pol_state *st, const char *s, size_t len)
{
	char q[STS_QUOTE_MAX + 4];
	size_t i, keylen, vstart;

	for (i = 0; i < len && sts_pol_wsp(s[i]); i++)
		;
	if (i == len)
		return 0; /* empty or blank: ignored, see sts_policy.h */
	if (i > 0) {
		/* Not in the §3.2 grammar, and an RFC 5322 reader would take
		 * it as a continuation of the previous field: refuse rather
		 * than guess which. */
		sts_pol_err(st, true, "leading white space");
		return -1;
	}
	if (memchr(s, ':', len) == NULL) {
		sts_pol_err(st, true, "missing ':' in '%s'", sts_pol_quote(q, sizeof q, s, len));
		return -1;
	}
	/* sts-policy-ext-name, which the registered keys also satisfy */
	if (!sts_pol_alnum(s[0])) {
		sts_pol_err(st, true, "invalid key '%s'", sts_pol_quote(q, sizeof q, s, len));
		return -1;
	}
	for (i = 1; i < len && (sts_pol_alnum(s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.');
	     i++)
		;
	keylen = i;
	if (i >= len || s[i] != ':' || keylen > STS_KEY_MAX) {
		sts_pol_err(st, true, "invalid key '%s'", sts_pol_quote(q, sizeof q, s, len));
		return -1;
	}
	for (i++; i < len && sts_pol_wsp(s[i]); i++)
		;
	vstart = i;
	while (len > vstart && sts_pol_wsp(s[len - 1]))
		len--;
	if (len == vstart) {
		sts_pol_err(st, true, "%.*s: empty value", (int)keylen, s);
		return -1;
	}
	for (i = vstart; i < len; i++) {
		if (!sts_pol_valchar(s[i])) {
			/* NUL, a bare CR, escapes...: not text (§3.2 vchar). */
			sts_pol_err(st, true, "%.*s: control character in value", (int)keylen, s);
			return -1;
		}
	}

	/* §3.2: keys are case-sensitive; every field but mx counts once,
	 * first occurrence wins; unknown keys are ignored. */
	if (sts_pol_is(s, keylen, "version")) {
		if (st->have_version)
			return 0;
		st->have_version = true;
		if (!sts_pol_is(s + vstart, len - vstart, "STSv1")) {
			sts_pol_err(st, true, "version: unsupported '%s'",
			            sts_pol_quote(q, sizeof q, s + vstart, len - vstart));
			return -1;
		}
		return 0;
	}
	if (sts_pol_is(s, keylen, "mode")) {
		if (st->have_mode)
			return 0;
		st->have_mode = true;
		return sts_pol_mode(st, s + vstart, len - vstart);
	}
	if (sts_pol_is(s, keylen, "max_age")) {
		if (st->have_max_age)
			return 0;
		st->have_max_age = true;
		return sts_pol_max_age(st, s + vstart, len - vstart);
	}
	if (sts_pol_is(s, keylen, "mx"))
		return sts_pol_mx(st, s + vstart, len - vstart);
	return 0;
}

int
sts_policy_parse(const char *body, size_t len, struct sts_policy *out, char *err, size_t errsz)
{
	struct sts_pol_state st;
	size_t pos = 0;

	memset(&st, 0, sizeof st);
	st.p = out;
	st.err = err;
	st.errsz = errsz;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (out == NULL) {
		sts_pol_err(&st, false, "no output");
		return -1;
	}
	memset(out, 0, sizeof *out);
	if (body == NULL) {
		sts_pol_err(&st, false, "no policy text");
		return -1;
	}
	if (len > STS_POLICY_MAXLEN) {
		sts_pol_err(&st, false, "policy: %zu bytes exceeds %d", len, STS_POLICY_MAXLEN);
		return -1;
	}

	/* A UTF-8 byte order mark some editors prepend is not part of the
	 * first key; skipping it costs nothing and keeps the policy. */
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
		pos = 3;

	/* §3.2 sts-policy-term = LF / CRLF, either on any line. */
	while (pos < len) {
		const char *nl = memchr(body + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - body) : len;
		size_t linelen = end - pos;

		st.line++;
		if (nl != NULL && linelen > 0 && body[end - 1] == '\r')
			linelen--;
		if (sts_pol_line(&st, body + pos, linelen) < 0)
			goto fail;
		pos = end + 1;
	}

	if (!st.have_version) {
		sts_pol_err(&st, false, "version: missing");
		goto fail;
	}
	if (!st.have_mode) {
		sts_pol_err(&st, false, "mode: missing");
		goto fail;
	}
	if (!st.have_max_age) {
		sts_pol_err(&st, false, "max_age: missing");
		goto fail;
	}
	/* §3.2: mx is required; with mode none nothing is checked against
	 * it, so a retiring policy without mx lines is still valid. */
	if (out->mode != STS_MODE_NONE && out->nmx == 0) {
		sts_pol_err(&st, false, "mx: missing with mode %s", sts_mode_name(out->mode));
		goto fail;
	}
	return 0;
fail:
	memset(out, 0, sizeof *out);
	return -1;
}

bool
sts_policy_mx_ok(const struct sts_policy *p, const char *mxhost)
{
	int i;

	if (p == NULL || mxhost == NULL)
		return false;
	for (i = 0; i < p->nmx && i < STS_POLICY_MAXMX; i++)
		if (mxpattern_match(p->mx[i], mxhost))
			return true;
	return false;
}

const char *
sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_NONE:
		return "none";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_ENFORCE:
		return "enforce";
	}
	return "unknown";
}
