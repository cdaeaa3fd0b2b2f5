/*
 * sts_policy: the MTA-STS policy file of RFC 8461 §3.2
 * (https://mta-sts.<domain>/.well-known/mta-sts.txt).
 *
 * A pure parser over (const char *, size_t) into a fixed-size, copyable
 * struct; no allocation. Lines end with LF or CRLF (mixed is fine), each
 * is "key:" *WSP value *WSP; keys are case-sensitive.
 *
 * Documented choices (each is tested in tests/unit/test_sts_policy.c):
 *  - version: "STSv1" is required; mode: "enforce" / "testing" / "none"
 *    is required; max_age: 1*10DIGIT is required; mx: at least one unless
 *    mode is none.
 *  - Duplicate keys other than mx: the first occurrence is used, later
 *    ones are ignored (§3.2) and only need to be well-formed lines; so
 *    "max_age: 86400" followed by "max_age: xxx" is valid.
 *  - max_age above 31557600 (§3.2's maximum) is CLAMPED to 31557600 and
 *    max_age_clamped is set, not rejected: the publisher plainly asks for
 *    the longest protection, and rejecting would leave its domain with no
 *    policy at all, i.e. open to downgrade. 11 or more digits is a syntax
 *    error.
 *  - Unknown keys are ignored (§3.2) but the line must still be
 *    well-formed: key = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" /
 *    "."), value non-empty, no control characters (bytes >= 0x80 are
 *    accepted as UTF-8 without further checks). "Mode: enforce" is an
 *    unknown key, so a policy whose only mode line is capitalised has no
 *    mode and is invalid.
 *  - A line without ":" is invalid, as is a line starting with white space
 *    (it would read as an RFC 5322 continuation; §3.2 has none) and white
 *    space before the ":".
 *  - A leading UTF-8 byte order mark is skipped.
 *  - Empty lines (also white-space-only ones) are ignored anywhere: they
 *    carry no field, and rejecting a policy for them would drop
 *    protection over a cosmetic slip.
 *  - mx patterns are validated with mxpattern_valid() (labels, "*." only
 *    as the whole left-most label). One trailing dot is accepted and
 *    dropped; patterns are stored lower-case. One invalid mx line makes
 *    the whole policy invalid. Identical patterns are stored once.
 *  - More than STS_POLICY_MAXMX distinct mx patterns makes the policy
 *    invalid rather than truncated: dropping patterns silently would make
 *    enforce mode refuse a legitimate MX with no hint why.
 *  - Bodies longer than STS_POLICY_MAXLEN (the fetcher's cap) are invalid;
 *    any len is safe to pass.
 */
#ifndef STSPROXY_STS_POLICY_H
#define STSPROXY_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sts_record.h"

#define STS_POLICY_MAXLEN 65536    /* bytes of policy text accepted */
#define STS_POLICY_MAXMX  64       /* distinct mx patterns per policy */
#define STS_MX_MAXLEN     253      /* pattern without trailing dot */
#define STS_POLICY_MAXAGE 31557600 /* §3.2: max_age maximum, one year */
#define STS_POLICY_ERRSZ  128      /* a buffer this size holds any error */

/* Ordered by strictness. */
enum sts_mode {
	STS_MODE_NONE = 0, /* policy explicitly off (§5, used to retire one) */
	STS_MODE_TESTING,  /* check and report, deliver anyway */
	STS_MODE_ENFORCE,  /* deliver only to matching MX with verified TLS */
};

struct sts_policy {
	enum sts_mode mode;
	uint32_t max_age;     /* seconds, <= STS_POLICY_MAXAGE */
	bool max_age_clamped; /* the file said more than STS_POLICY_MAXAGE */
	int nmx;
	char mx[STS_POLICY_MAXMX][STS_MX_MAXLEN + 1]; /* lower-case, no trailing dot */
	char id[STS_ID_MAXLEN + 1]; /* TXT id; "" from the parser, set by the caller */
};

/*
 * Parse body into out. Returns 0, or -1 with out zeroed and a one-line
 * message in err (if errsz > 0) naming the problem, e.g.
 *   "line 2: mode: unknown value 'enforcing'", "mx: missing with mode enforce".
 * Quoted input in messages is cut short and non-printable bytes replaced,
 * so err is safe to log.
 */
int sts_policy_parse(const char *body, size_t len, struct sts_policy *out, char *err, size_t errsz);

/* Does mxhost match one of the policy's patterns (mxpattern_match)? The
 * mode is not considered: that is the caller's decision. */
bool sts_policy_mx_ok(const struct sts_policy *p, const char *mxhost);

/* "none", "testing", "enforce"; "unknown" for anything else. */
const char *sts_mode_name(enum sts_mode m);

#endif
