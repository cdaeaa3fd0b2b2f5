/*
 * test_mxpattern: table-driven tests of MX pattern syntax and matching
 * (policy/mxpattern.c, RFC 8461 §4.1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mxpattern.h"

#define L63 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define L64 L63 "a"
/* 3 * 64 + 57 = 249 octets, then 253 and 254 */
#define N249                                                                                       \
	L63 "." L63 "." L63 "."                                                                    \
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define N253 N249 ".bbb"
#define N254 N249 ".bbbb"

static const struct {
	const char *pattern;
	int valid;
} valid[] = {
        {"mx.example.com", 1},
        {"mx.example.com.", 1},
        {"MX.Example.COM", 1},
        {"*.example.com", 1},
        {"*.example.com.", 1},
        {"*.com", 1}, /* accepted: see policy/mxpattern.c */
        {"localhost", 1},
        {"a", 1},
        {"a-b.c", 1},
        {"a--b.c", 1},
        {"1.2.3.4", 1},
        {"123.example", 1},
        {"xn--bcher-kva.example", 1},
        {"*.xn--bcher-kva.example", 1},
        {L63 ".example", 1},
        {N253, 1},
        {N253 ".", 1},
        {"", 0},
        {".", 0},
        {"*", 0},
        {"*.", 0},
        {"*..", 0},
        {"**.example.com", 0},
        {"*example.com", 0},
        {"*.*.example.com", 0},
        {"a.*.example.com", 0},
        {"example.*", 0},
        {"mx.*", 0},
        {".example.com", 0},
        {"-a.example.com", 0},
        {"a-.example.com", 0},
        {"a.example-", 0},
        {"*.-a.com", 0},
        {"a..example.com", 0},
        {"a.example.com..", 0},
        {"a_b.example.com", 0},
        {"a b.example.com", 0},
        {"a.example.com ", 0},
        {" a.example.com", 0},
        {"mx.example.com/", 0},
        {"\xc3\xbc.example", 0}, /* U-labels must come as A-labels */
        {L64 ".example", 0},
        {N254, 0},
        {N254 ".", 0},
        {"*." N253, 0},
};

static void
test_valid(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(strlen(N253), 253);
	assert_int_equal(strlen(N254), 254);
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		bool v = mxpattern_valid(valid[i].pattern, strlen(valid[i].pattern));

		if (v != (valid[i].valid != 0))
			fail_msg("case %zu (%s): got %d", i, valid[i].pattern, v);
	}
	/* the length is what counts: a NUL inside is invalid, a prefix valid */
	assert_false(mxpattern_valid("mx.example.com\0x", 16));
	assert_false(mxpattern_valid("mx\0.example.com", 15));
	assert_true(mxpattern_valid("mx.example.comXYZ", 14));
	assert_true(mxpattern_valid("mx.example.com.", 15));
	assert_false(mxpattern_valid(NULL, 0));
}

static const struct {
	const char *pattern, *host;
	int match;
} match[] = {
        {"mx.example.com", "mx.example.com", 1},
        {"MX.Example.COM", "mx.example.com", 1},
        {"mx.example.com", "MX.EXAMPLE.COM", 1},
        {"mx.example.com.", "mx.example.com", 1},
        {"mx.example.com", "mx.example.com.", 1},
        {"mx.example.com.", "mx.example.com.", 1},
        {"mx.example.com", "mx2.example.com", 0},
        {"mx.example.com", "mx.example.co", 0},
        {"mx.example.co", "mx.example.com", 0},
        {"mx.example.com", "x.example.com", 0},
        {"mx.example.com", "a.mx.example.com", 0},
        {"mx.example.com", "example.com", 0},
        {"mx.example.com", "", 0},
        {"mx.example.com", ".", 0},
        {"mx.example.com", "mx.example.com..", 0},
        /* wildcards: exactly one whole left-most label */
        {"*.example.com", "mx.example.com", 1},
        {"*.example.com", "MX1.EXAMPLE.COM.", 1},
        {"*.Example.Com.", "mx.example.com", 1},
        {"*.example.com", "x.example.com", 1},
        {"*.example.com", "example.com", 0},
        {"*.example.com", "example.com.", 0},
        {"*.example.com", ".example.com", 0},
        {"*.example.com", "a.b.example.com", 0},
        {"*.example.com", "a.b.c.example.com", 0},
        {"*.example.com", "xexample.com", 0},
        {"*.example.com", "mx.example.com.evil", 0},
        {"*.example.com", "mx.example.org", 0},
        {"*.example.com", "mx.badexample.com", 0},
        {"*.example.com", "*.example.com", 0}, /* a host is not a pattern */
        {"*.example.com", "", 0},
        {"*.com", "example.com", 1},
        {"*.com", "a.example.com", 0},
        {"*.com", "com", 0},
        {"*.xn--bcher-kva.example", "mx.xn--bcher-kva.example", 1},
        /* invalid patterns match nothing */
        {"*", "example", 0},
        {"*", "mx.example.com", 0},
        {"*.", "x.", 0},
        {"", "", 0},
        {".", ".", 0},
        {"a.*.example.com", "a.b.example.com", 0},
        {"*.*.example.com", "a.b.example.com", 0},
        {"mx*.example.com", "mx1.example.com", 0},
        {"mx_1.example.com", "mx_1.example.com", 0},
        {"a..b", "a..b", 0},
        /* invalid hosts match nothing */
        {"*.example.com", "mx_1.example.com", 0},
        {"*.example.com", "-mx.example.com", 0},
        {"*.example.com", "mx-.example.com", 0},
        {"*.example.com", L64 ".example.com", 0},
        {"*.example.com", L63 ".example.com", 1},
        {"*.example.com", "m x.example.com", 0},
};

static void
test_match(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(match) / sizeof(match[0]); i++) {
		bool m = mxpattern_match(match[i].pattern, match[i].host);

		if (m != (match[i].match != 0))
			fail_msg("case %zu (%s vs %s): got %d", i, match[i].pattern, match[i].host,
			         m);
	}
	assert_false(mxpattern_match(NULL, "mx.example.com"));
	assert_false(mxpattern_match("mx.example.com", NULL));
}

static void
test_match_any(void **state)
{
	static const char *const pats[] = {"mx1.example.com", NULL, "*.example.net", "*",
	                                   "MX2.EXAMPLE.COM."};
	static const struct {
		const char *host;
		int n;
		int match;
	} t[] = {
	        {"mx1.example.com", 5, 1}, {"mx2.example.com", 5, 1}, {"mx2.example.com", 4, 0},
	        {"a.example.net", 5, 1},   {"a.example.net", 2, 0},   {"example.net", 5, 0},
	        {"anything", 5, 0},        {"mx1.example.com", 0, 0}, {"mx1.example.com", -1, 0},
	        {"a.b.example.net", 5, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool m = mxpattern_match_any(pats, t[i].n, t[i].host);

		if (m != (t[i].match != 0))
			fail_msg("case %zu (%s, n=%d): got %d", i, t[i].host, t[i].n, m);
	}
	assert_false(mxpattern_match_any(NULL, 3, "mx1.example.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid),
	        cmocka_unit_test(test_match),
	        cmocka_unit_test(test_match_any),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
