/*
 * test_smtp_body: the end-of-DATA matcher (proxy/smtp_body.c).
 * Only CRLF "." CRLF ends a body (RFC 5321 §4.1.1.4); a bare LF on either
 * side of the dot never does, so stsproxy and a strict server always agree
 * on where a message ends (SMTP smuggling, 2023). The terminator is found
 * wherever the stream happens to be cut, and the byte count matches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_body.h"

#define S(lit)                                                                                     \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

struct bytes {
	const char *s;
	size_t len;
};

/* ---- whole bodies ---------------------------------------------------------- */

static const struct {
	struct bytes in;
	long end; /* offset just past the terminator, -1 = body goes on */
	int bare_lf;
} whole[] = {
        /* the end marker right after DATA: the DATA line's CRLF counts */
        {S(".\r\n"), 3, 0},
        {S(".\r\nMAIL FROM:<>\r\n"), 3, 0},
        {S("Subject: x\r\n\r\nbody\r\n.\r\n"), 23, 0},
        {S("a\r\n.\r\nQUIT\r\n"), 6, 0}, /* pipelined command after the dot */
        {S("\r\n.\r\n"), 5, 0},
        {S("a\r\n.\r\n.\r\n"), 6, 0}, /* the first one ends it */
        {S("x\r\r\n.\r\n"), 7, 0},    /* CR CR LF: the second CR pairs with LF */
        {S("\r\r\r\n.\r\n"), 7, 0},
        {S("a\0b\r\n.\r\n"), 8, 0}, /* NUL is just a byte */
        {S(".x\r\n.\r\n"), 7, 0},
        /* not the end */
        {S(""), -1, 0},
        {S("."), -1, 0},
        {S(".\r"), -1, 0},
        {S("body"), -1, 0},
        {S("body\r\n."), -1, 0},
        {S("body\r\n.\r"), -1, 0},
        {S("..\r\n"), -1, 0}, /* dot-stuffed "." line */
        {S("a\r\n..\r\n"), -1, 0},
        {S("a\r\n..x\r\n"), -1, 0},
        {S("a\r\n...\r\n"), -1, 0},
        {S("a\r\n. \r\n"), -1, 0},
        {S("a\r\n.x\r\n"), -1, 0},
        {S("a\r\n \r\n"), -1, 0},
        {S("a.\r\n"), -1, 0},
        {S("a\r\n.\r\r\n"), -1, 0}, /* ".\r" then CRLF: not a lone dot */
        {S("a\r\n.\rx\n"), -1, 1},
        {S("a\r\n\0.\r\n"), -1, 0},
        {S("a\r\r.\r\n"), -1, 0},
        {S("a\r.\r\n"), -1, 0},
        {S("a\n\r.\r\n"), -1, 1},
        /* bare LF never ends the body, and is flagged */
        {S("\n.\n"), -1, 1},
        {S("a\n.\n"), -1, 1},
        {S("a\r\n.\n"), -1, 1},
        {S("a\n.\r\n"), -1, 1},
        {S(".\n"), -1, 1},
        {S("a\nb\r\n"), -1, 1},
        {S("\n"), -1, 1},
        {S("a\n.\nMAIL FROM:<evil@x>\r\n"), -1, 1},
        /* ... but the real terminator after it still counts */
        {S("a\n.\nb\r\n.\r\n"), 10, 1},
        {S("a\n.\r\n.\r\n"), 8, 1},
        /* a bare LF after the real end is not looked at */
        {S(".\r\n\n"), 3, 0},
        {S("ok\r\n.\r\n\n.\n"), 7, 0},
};

static void
test_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		struct smtp_body b;
		long r;

		smtp_body_init(&b);
		r = smtp_body_scan(&b, whole[i].in.s, whole[i].in.len);
		if (r != whole[i].end)
			fail_msg("case %zu: end %ld, want %ld", i, r, whole[i].end);
		if (b.bare_lf != whole[i].bare_lf)
			fail_msg("case %zu: bare_lf %d, want %d", i, b.bare_lf, whole[i].bare_lf);
		assert_int_equal(b.bytes, r >= 0 ? (unsigned long long)r : whole[i].in.len);
	}
}

/*
 * The same bodies fed one byte at a time, and in two and three pieces at
 * every possible cut, give the same end, byte count and bare_lf flag.
 */
struct feed {
	long end; /* offset in the whole input, -1 */
	unsigned long long bytes;
	int bare_lf;
};

static struct feed
feed_cuts(const char *p, size_t n, const size_t *cuts, size_t ncuts)
{
	struct smtp_body b;
	struct feed f = {-1, 0, 0};
	size_t at = 0;

	smtp_body_init(&b);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		long r = smtp_body_scan(&b, p + at, to - at);

		if (r >= 0) {
			assert_true((size_t)r <= to - at);
			assert_true(r > 0);
			f.end = (long)at + r;
			break;
		}
		at = to;
	}
	f.bytes = b.bytes;
	f.bare_lf = b.bare_lf;
	return f;
}

static void
check_same(size_t i, const char *how, struct feed f, long end, int bare_lf, size_t n)
{
	if (f.end != end || f.bare_lf != bare_lf ||
	    f.bytes != (end >= 0 ? (unsigned long long)end : n))
		fail_msg("case %zu (%s): end %ld bare_lf %d bytes %llu, want %ld %d", i, how, f.end,
		         f.bare_lf, f.bytes, end, bare_lf);
}

static void
test_splits(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		const char *p = whole[i].in.s;
		size_t n = whole[i].in.len, cuts[3];
		struct smtp_body b;
		struct feed f = {-1, 0, 0};

		/* byte by byte, with empty scans in between */
		smtp_body_init(&b);
		for (size_t k = 0; k < n; k++) {
			long r;

			assert_int_equal(smtp_body_scan(&b, p + k, 0), -1);
			r = smtp_body_scan(&b, p + k, 1);
			if (r >= 0) {
				assert_int_equal(r, 1);
				f.end = (long)k + 1;
				break;
			}
		}
		f.bytes = b.bytes;
		f.bare_lf = b.bare_lf;
		check_same(i, "bytewise", f, whole[i].end, whole[i].bare_lf, n);

		for (size_t c1 = 0; c1 <= n; c1++) {
			cuts[0] = c1;
			check_same(i, "2 pieces", feed_cuts(p, n, cuts, 1), whole[i].end,
			           whole[i].bare_lf, n);
			for (size_t c2 = c1; c2 <= n; c2++) {
				cuts[1] = c2;
				check_same(i, "3 pieces", feed_cuts(p, n, cuts, 2), whole[i].end,
				           whole[i].bare_lf, n);
			}
		}
	}
}

/* "\r\n.\r\n" cut at each of its boundaries, after a longer body. */
static void
test_terminator_cut(void **state)
{
	static const char body[] = "From: a@example.com\r\n\r\nline 1\r\n..stuffed\r\n";
	static const char term[] = "\r\n.\r\n";
	char in[sizeof(body) + sizeof(term) + 8];
	size_t blen = sizeof(body) - 1 - 2; /* body without its last CRLF */
	size_t n;

	(void)state;
	memcpy(in, body, blen);
	memcpy(in + blen, term, 5);
	memcpy(in + blen + 5, "QUIT", 4);
	n = blen + 9;
	for (size_t cut = blen; cut <= blen + 5; cut++) {
		struct smtp_body b;
		long r1, r2;

		smtp_body_init(&b);
		r1 = smtp_body_scan(&b, in, cut);
		if (cut < blen + 5) {
			assert_int_equal(r1, -1);
			assert_int_equal(b.bytes, cut);
			r2 = smtp_body_scan(&b, in + cut, n - cut);
			assert_int_equal(r2, (long)(blen + 5 - cut));
		} else {
			assert_int_equal(r1, (long)(blen + 5));
		}
		assert_int_equal(b.bytes, blen + 5);
		assert_int_equal(b.bare_lf, 0);
	}
}

/* ---- byte counter ---------------------------------------------------------- */

static void
test_bytes(void **state)
{
	static char chunk[65536];
	struct smtp_body b;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	for (size_t k = 99; k < sizeof(chunk); k += 100)
		chunk[k - 1] = '\r', chunk[k] = '\n';
	smtp_body_init(&b);
	for (int k = 0; k < 100; k++)
		assert_int_equal(smtp_body_scan(&b, chunk, sizeof(chunk)), -1);
	assert_int_equal(b.bytes, 100ULL * sizeof(chunk));
	assert_int_equal(smtp_body_scan(&b, "\r\n.\r\n+", 6), 5);
	assert_int_equal(b.bytes, 100ULL * sizeof(chunk) + 5);
	assert_int_equal(b.bare_lf, 0);

	/* init resets everything */
	b.bare_lf = 1;
	smtp_body_init(&b);
	assert_int_equal(b.bytes, 0);
	assert_int_equal(b.bare_lf, 0);
	assert_int_equal(smtp_body_scan(&b, ".\r\n", 3), 3);
}

/* ---- random bodies against a plain substring search ------------------------- */

static uint32_t
xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* First CRLF.CRLF in "\r\n" + p, as an offset into p past it; -1. */
static long
ref_end(const char *p, size_t n)
{
	static char v[512];

	memcpy(v, "\r\n", 2);
	memcpy(v + 2, p, n);
	for (size_t e = 3; e <= n; e++)
		if (memcmp(v + e + 2 - 5, "\r\n.\r\n", 5) == 0)
			return (long)e;
	return -1;
}

static void
test_random(void **state)
{
	static const char alpha[] = "\r\n.x";
	uint32_t seed = 0xdecafbad;
	char in[400];
	int ended = 0, bare = 0;

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = xorshift(&seed) % sizeof(in), cuts[4];
		long end;
		int ref_bare = 0;

		for (size_t k = 0; k < n; k++)
			in[k] = alpha[xorshift(&seed) % 4];
		end = ref_end(in, n);
		for (size_t k = 0; k < (end >= 0 ? (size_t)end : n); k++)
			if (in[k] == '\n' && (k == 0 || in[k - 1] != '\r'))
				ref_bare = 1;
		for (int k = 0; k < 4; k++)
			cuts[k] = n ? xorshift(&seed) % (n + 1) : 0;
		for (int a = 0; a < 4; a++) /* sort the cuts */
			for (int c = a + 1; c < 4; c++)
				if (cuts[c] < cuts[a]) {
					size_t t = cuts[a];
					cuts[a] = cuts[c];
					cuts[c] = t;
				}
		check_same((size_t)iter, "random", feed_cuts(in, n, cuts, 4), end, ref_bare, n);
		ended += end >= 0;
		bare += ref_bare;
	}
	/* the alphabet makes both outcomes common */
	assert_true(ended > 1000);
	assert_true(bare > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_whole),          cmocka_unit_test(test_splits),
	        cmocka_unit_test(test_terminator_cut), cmocka_unit_test(test_bytes),
	        cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
