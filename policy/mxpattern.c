/*
 * mxpattern: MX host names against the "mx:" patterns of an MTA-STS policy
 * (RFC 8461 §4.1) and of static policies.
 *
 * Owns nothing; pure functions over NUL-terminated names (match) or
 * (const char *, size_t) (valid). Contracts: comparison is ASCII
 * case-insensitive, one trailing dot on either side is ignored, "*." stands
 * for exactly one whole non-empty left-most label. An invalid pattern or a
 * host that is not an LDH name never matches: a garbled policy or MX record
 * must fail closed, not match by accident.
 *
 * "*.com" (a wildcard over a single-label base) is accepted: RFC 8461
 * §3.2 does not forbid it and refusing it would reject a whole policy for
 * one odd line; it matches "example.com" and nothing deeper.
 */
#include "mxpattern.h"

#include <string.h>

#define MXPATTERN_NAMEMAX 253 /* RFC 1035 §2.3.4, without the trailing dot */

static int
mxpattern_ldh(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       c == '-';
}

static char
mxpattern_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * A host name without trailing dot: LDH labels of 1..63 octets with no
 * leading or trailing hyphen (RFC 1123 §2.1, so a digit may lead; RFC 5890
 * A-labels "xn--..." are LDH too).
 */
static bool
mxpattern_name_ok(const char *s, size_t len)
{
	size_t i, lab = 0;

	if (len == 0 || len > MXPATTERN_NAMEMAX)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!mxpattern_ldh(s[i]) || (lab == 0 && s[i] == '-') || ++lab > 63)
			return false;
	}
	return lab > 0 && s[len - 1] != '-';
}

/* Drop one trailing dot: "mx.example.com." is the same name. */
static size_t
mxpattern_trim(const char *s, size_t len)
{
	return (len > 0 && s[len - 1] == '.') ? len - 1 : len;
}

bool
mxpattern_valid(const char *pattern, size_t len)
{
	if (pattern == NULL)
		return false;
	len = mxpattern_trim(pattern, len);
	if (len > MXPATTERN_NAMEMAX)
		return false;
	/* RFC 8461 §4.1: the wildcard is only ever a whole left-most label. */
	if (len >= 2 && pattern[0] == '*' && pattern[1] == '.')
		return mxpattern_name_ok(pattern + 2, len - 2);
	return mxpattern_name_ok(pattern, len);
}

static bool
mxpattern_caseeq(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (mxpattern_lower(a[i]) != mxpattern_lower(b[i]))
			return false;
	return true;
}

bool
mxpattern_match(const char *pattern, const char *host)
{
	size_t plen, hlen, lab;

	if (pattern == NULL || host == NULL)
		return false;
	plen = strlen(pattern);
	hlen = strlen(host);
	if (!mxpattern_valid(pattern, plen))
		return false;
	hlen = mxpattern_trim(host, hlen);
	plen = mxpattern_trim(pattern, plen);
	if (!mxpattern_name_ok(host, hlen))
		return false;
	if (pattern[0] != '*')
		return plen == hlen && mxpattern_caseeq(pattern, host, hlen);
	/* RFC 8461 §4.1: "*.example.com" matches "mx.example.com" but not
	 * "example.com" (zero labels) nor "a.b.example.com" (two): strip
	 * exactly the host's first label and compare the rest whole. */
	for (lab = 0; lab < hlen && host[lab] != '.'; lab++)
		;
	if (lab == hlen)
		return false;
	return hlen - lab - 1 == plen - 2 &&
	       mxpattern_caseeq(pattern + 2, host + lab + 1, plen - 2);
}

bool
mxpattern_match_any(const char *const *patterns, int n, const char *host)
{
	int i;

	if (patterns == NULL)
		return false;
	for (i = 0; i < n; i++)
		if (patterns[i] != NULL && mxpattern_match(patterns[i], host))
			return true;
	return false;
}
