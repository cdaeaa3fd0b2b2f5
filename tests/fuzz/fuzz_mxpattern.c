/*
 * fuzz_mxpattern: libFuzzer driver for MX pattern syntax and matching.
 *
 * Input: "pattern\nhost" (each cut at 600 bytes; a NUL ends it early, as it
 * would a C string). Invariants: only valid patterns match; matching
 * ignores ASCII case and one trailing dot on either side; a valid literal
 * pattern matches itself; a valid "*.base" matches "x.base" but neither
 * "base" nor "a.b.base"; mxpattern_valid agrees with itself on a copy
 * and match_any is the OR of match.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxpattern.h"

#define FZM_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fzm_fail(#c, __LINE__);                                                    \
	} while (0)

#define FZM_MAX 600

static void
fzm_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_mxpattern.c:%d: invariant failed: %s\n", line, what);
	abort();
}

/* Copy a C string changing ASCII case (up != 0: upper) and maybe a dot. */
static void
fzm_variant(char *dst, const char *src, int up, int dot)
{
	size_t i, n = strlen(src);

	for (i = 0; i < n; i++) {
		char c = src[i];

		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!up && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		dst[i] = c;
	}
	if (dot && (n == 0 || src[n - 1] != '.'))
		dst[n++] = '.';
	dst[n] = '\0';
}

static void
fzm_check(const char *pat, const char *host)
{
	static char pv[FZM_MAX + 2], hv[FZM_MAX + 2], tmp[FZM_MAX + 8];
	size_t plen = strlen(pat);
	bool valid = mxpattern_valid(pat, plen);
	bool m = mxpattern_match(pat, host);
	const char *both[2];
	int up, dot;

	if (m)
		FZM_CHECK(valid);
	for (up = 0; up < 2; up++) {
		for (dot = 0; dot < 2; dot++) {
			fzm_variant(pv, pat, up, dot);
			fzm_variant(hv, host, !up, !dot);
			FZM_CHECK(mxpattern_match(pv, hv) == m);
			FZM_CHECK(mxpattern_valid(pv, strlen(pv)) == valid);
		}
	}
	both[0] = pat;
	both[1] = host;
	FZM_CHECK(mxpattern_match_any(both, 2, host) == (m || mxpattern_match(host, host)));
	FZM_CHECK(mxpattern_match_any(both, 1, host) == m);

	if (!valid)
		return;
	{
		size_t n = plen;

		if (pat[n - 1] == '.')
			n--;
		if (pat[0] != '*') {
			FZM_CHECK(mxpattern_match(pat, pat));
		} else {
			const char *base = pat + 2;
			size_t bl = n - 2;

			FZM_CHECK(!mxpattern_match(pat, pat));
			memcpy(tmp, base, bl);
			tmp[bl] = '\0';
			FZM_CHECK(!mxpattern_match(pat, tmp));
			FZM_CHECK(mxpattern_valid(tmp, bl));
			tmp[0] = 'x';
			tmp[1] = '.';
			memcpy(tmp + 2, base, bl);
			tmp[bl + 2] = '\0';
			FZM_CHECK(mxpattern_match(pat, tmp));
			if (bl + 4 <= 253) {
				memcpy(tmp, "a.b.", 4);
				memcpy(tmp + 4, base, bl);
				tmp[bl + 4] = '\0';
				FZM_CHECK(!mxpattern_match(pat, tmp));
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char pat[FZM_MAX + 1], host[FZM_MAX + 1];
	const char *nl = memchr(data, '\n', size);
	size_t pl = nl != NULL ? (size_t)(nl - (const char *)data) : size;
	size_t hl = nl != NULL ? size - pl - 1 : 0;

	/* the (const char *, size_t) form on the raw bytes */
	(void)mxpattern_valid((const char *)data, size);

	if (pl > FZM_MAX)
		pl = FZM_MAX;
	if (hl > FZM_MAX)
		hl = FZM_MAX;
	memcpy(pat, data, pl);
	pat[pl] = '\0';
	if (nl != NULL)
		memcpy(host, nl + 1, hl);
	host[hl] = '\0';
	fzm_check(pat, host);
	return 0;
}
