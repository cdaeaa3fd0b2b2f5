/*
 * fuzz_sts_policy: libFuzzer driver for the MTA-STS policy parser
 * (policy/sts_policy.c, RFC 8461 §3.2).
 *
 * Input: the policy body. Invariants on success: no error text; mode is
 * one of the three; max_age <= 31557600 and "clamped" only at that value;
 * 0 <= nmx <= STS_POLICY_MAXMX and at least one mx unless mode none;
 * every mx is NUL-terminated, passes mxpattern_valid, is lower-case,
 * without trailing dot and distinct from the others, and a literal one
 * matches itself through sts_policy_mx_ok. On failure: the struct is
 * zeroed and the error is a non-empty line of printable ASCII, and a
 * smaller error buffer gets a prefix of it. Always: turning every bare LF
 * into CRLF changes nothing (§3.2: either terminator).
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpattern.h"
#include "sts_policy.h"

#define FSP_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fsp_fail(#c, __LINE__);                                                    \
	} while (0)

static void
fsp_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_sts_policy.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static void
fsp_check_ok(const struct sts_policy *p)
{
	int i, k;

	FSP_CHECK(p->mode == STS_MODE_NONE || p->mode == STS_MODE_TESTING ||
	          p->mode == STS_MODE_ENFORCE);
	FSP_CHECK(p->max_age <= STS_POLICY_MAXAGE);
	FSP_CHECK(!p->max_age_clamped || p->max_age == STS_POLICY_MAXAGE);
	FSP_CHECK(p->nmx >= 0 && p->nmx <= STS_POLICY_MAXMX);
	FSP_CHECK(p->mode == STS_MODE_NONE || p->nmx >= 1);
	FSP_CHECK(p->id[0] == '\0');
	for (i = 0; i < p->nmx; i++) {
		const char *m = p->mx[i];
		size_t n = strnlen(m, sizeof p->mx[i]), j;

		FSP_CHECK(n >= 1 && n <= STS_MX_MAXLEN);
		FSP_CHECK(mxpattern_valid(m, n));
		FSP_CHECK(m[n - 1] != '.');
		for (j = 0; j < n; j++)
			FSP_CHECK(!(m[j] >= 'A' && m[j] <= 'Z'));
		for (k = 0; k < i; k++)
			FSP_CHECK(strcmp(p->mx[k], m) != 0);
		if (m[0] != '*')
			FSP_CHECK(sts_policy_mx_ok(p, m));
	}
}

static void
fsp_check_err(const struct sts_policy *p, const char *err)
{
	static const struct sts_policy zero;
	size_t i, n = strnlen(err, STS_POLICY_ERRSZ);

	FSP_CHECK(memcmp(p, &zero, sizeof zero) == 0);
	FSP_CHECK(n >= 1 && n < STS_POLICY_ERRSZ);
	for (i = 0; i < n; i++)
		FSP_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sts_policy a, b;
	const char *s = (const char *)data;
	char ea[STS_POLICY_ERRSZ], eb[STS_POLICY_ERRSZ], small[9];
	char *crlf;
	size_t i, o = 0;
	int ra, rb;

	ra = sts_policy_parse(s, size, &a, ea, sizeof ea);
	FSP_CHECK(ra == 0 || ra == -1);
	if (ra == 0) {
		FSP_CHECK(ea[0] == '\0');
		fsp_check_ok(&a);
	} else {
		fsp_check_err(&a, ea);
		FSP_CHECK(sts_policy_parse(s, size, &b, small, sizeof small) == -1);
		FSP_CHECK(strncmp(small, ea, sizeof small - 1) == 0);
		FSP_CHECK(strlen(small) < sizeof small);
	}

	/* LF and CRLF are the same terminator */
	crlf = malloc(2 * size + 1);
	if (crlf == NULL)
		return 0;
	for (i = 0; i < size; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			crlf[o++] = '\r';
		crlf[o++] = s[i];
	}
	if (o <= STS_POLICY_MAXLEN) {
		rb = sts_policy_parse(crlf, o, &b, eb, sizeof eb);
		FSP_CHECK(ra == rb);
		FSP_CHECK(strcmp(ea, eb) == 0);
		FSP_CHECK(memcmp(&a, &b, sizeof a) == 0);
	}
	free(crlf);
	return 0;
}
