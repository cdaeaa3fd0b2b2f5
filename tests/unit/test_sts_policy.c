/*
 * test_sts_policy: the MTA-STS policy file parser (policy/sts_policy.c,
 * RFC 8461 §3.2).
 *
 * - a table of bodies with the expected result: the parsed mode, max_age,
 *   clamping and mx list, or the exact error message;
 * - golden files: every tests/data/sts/<name>.policy is parsed and dumped,
 *   and the dump must equal <name>.ref byte for byte;
 * - LF and CRLF give the same policy; every prefix of a valid policy is
 *   parsed safely; the size bound; error buffers of any size;
 * - sts_policy_mx_ok and sts_mode_name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sts_policy.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/data"
#endif
#define STS_DATA TEST_DATA_DIR "/sts"

#define V  "version: STSv1\n"
#define ME "mode: enforce\n"
#define MA "max_age: 86400\n"
#define MX "mx: mail.example.com\n"

struct pol_case {
	const char *name;
	const char *body;
	const char *err; /* NULL: must parse; else the exact message */
	enum sts_mode mode;
	uint32_t max_age;
	bool clamped;
	const char *mx; /* patterns joined by "," */
};

/* A case that must fail with exactly msg. */
#define BAD(name, body, msg)                                                                       \
	{                                                                                          \
		name, body, msg, STS_MODE_NONE, 0, false, NULL                                     \
	}

static const struct pol_case pol_cases[] = {
        {"rfc example",
         "version: STSv1\nmode: enforce\nmx: mail.example.com\n"
         "mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
         NULL, STS_MODE_ENFORCE, 604800, false,
         "mail.example.com,*.example.net,backupmx.example.com"},
        {"crlf", "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 86400\r\n",
         NULL, STS_MODE_TESTING, 86400, false, "mx.example.com"},
        {"mixed endings", "version: STSv1\r\nmode: enforce\nmx: mx.example.com\r\nmax_age: 1", NULL,
         STS_MODE_ENFORCE, 1, false, "mx.example.com"},
        {"no final newline", V ME MX "max_age: 86400", NULL, STS_MODE_ENFORCE, 86400, false,
         "mail.example.com"},
        {"any order", MX MA ME V, NULL, STS_MODE_ENFORCE, 86400, false, "mail.example.com"},
        {"white space", "version:STSv1\nmode:\t enforce \t\nmax_age:  86400  \r\nmx: a.example \n",
         NULL, STS_MODE_ENFORCE, 86400, false, "a.example"},
        BAD("missing version", ME MA MX, "version: missing"),
        BAD("version STSv2", "version: STSv2\n" ME MA MX, "line 1: version: unsupported 'STSv2'"),
        BAD("version lower case", "version: stsv1\n" ME MA MX,
            "line 1: version: unsupported 'stsv1'"),
        {"duplicate version, first wins", V "version: STSv2\n" ME MA MX, NULL, STS_MODE_ENFORCE,
         86400, false, "mail.example.com"},
        BAD("duplicate version, first bad", "version: STSv2\n" V ME MA MX,
            "line 1: version: unsupported 'STSv2'"),
        BAD("missing mode", V MA MX, "mode: missing"),
        BAD("unknown mode", V "mode: enforcing\n" MA MX, "line 2: mode: unknown value 'enforcing'"),
        BAD("mode case", V "mode: Enforce\n" MA MX, "line 2: mode: unknown value 'Enforce'"),
        BAD("mode key case", V "Mode: enforce\n" MA MX, "mode: missing"),
        {"mode none without mx", V "mode: none\n" MA, NULL, STS_MODE_NONE, 86400, false, ""},
        {"mode none with mx", V "mode: none\n" MA MX, NULL, STS_MODE_NONE, 86400, false,
         "mail.example.com"},
        {"duplicate mode, first wins", V "mode: testing\nmode: enforce\n" MA MX, NULL,
         STS_MODE_TESTING, 86400, false, "mail.example.com"},
        {"duplicate mode, later junk", V ME "mode: bogus\n" MA MX, NULL, STS_MODE_ENFORCE, 86400,
         false, "mail.example.com"},
        BAD("missing max_age", V ME MX, "max_age: missing"),
        BAD("max_age xxx", V ME "max_age: xxx\n" MX, "line 3: max_age: not a number 'xxx'"),
        BAD("max_age negative", V ME "max_age: -1\n" MX, "line 3: max_age: not a number '-1'"),
        BAD("max_age with unit", V ME "max_age: 86400s\n" MX,
            "line 3: max_age: not a number '86400s'"),
        {"max_age 0", V ME "max_age: 0\n" MX, NULL, STS_MODE_ENFORCE, 0, false, "mail.example.com"},
        {"max_age at limit", V ME "max_age: 31557600\n" MX, NULL, STS_MODE_ENFORCE, 31557600, false,
         "mail.example.com"},
        {"max_age 31557601 clamped", V ME "max_age: 31557601\n" MX, NULL, STS_MODE_ENFORCE,
         31557600, true, "mail.example.com"},
        {"max_age 10 digits clamped", V ME "max_age: 9999999999\n" MX, NULL, STS_MODE_ENFORCE,
         31557600, true, "mail.example.com"},
        {"max_age leading zeros", V ME "max_age: 0000086400\n" MX, NULL, STS_MODE_ENFORCE, 86400,
         false, "mail.example.com"},
        BAD("max_age 11 digits", V ME "max_age: 00000086400\n" MX,
            "line 3: max_age: more than 10 digits '00000086400'"),
        {"duplicate max_age, first wins", V ME MA "max_age: xxx\n" MX, NULL, STS_MODE_ENFORCE,
         86400, false, "mail.example.com"},
        BAD("no mx with enforce", V ME MA, "mx: missing with mode enforce"),
        BAD("no mx with testing", V "mode: testing\n" MA, "mx: missing with mode testing"),
        {"mx trailing dot dropped", V ME MA "mx: mail.example.com.\n", NULL, STS_MODE_ENFORCE,
         86400, false, "mail.example.com"},
        BAD("mx two trailing dots", V ME MA "mx: mail.example.com..\n",
            "line 4: mx: invalid pattern 'mail.example.com..'"),
        BAD("mx lone dot", V ME MA "mx: .\n", "line 4: mx: invalid pattern '.'"),
        {"mx wildcard", V ME MA "mx: *.example.com\n", NULL, STS_MODE_ENFORCE, 86400, false,
         "*.example.com"},
        {"mx wildcard trailing dot", V ME MA "mx: *.Example.COM.\n", NULL, STS_MODE_ENFORCE, 86400,
         false, "*.example.com"},
        BAD("mx double wildcard", V ME MA "mx: *.*.example.com\n",
            "line 4: mx: invalid pattern '*.*.example.com'"),
        BAD("mx inner wildcard", V ME MA "mx: mx.*.example.com\n",
            "line 4: mx: invalid pattern 'mx.*.example.com'"),
        BAD("mx partial wildcard", V ME MA "mx: mx*.example.com\n",
            "line 4: mx: invalid pattern 'mx*.example.com'"),
        BAD("mx bare wildcard", V ME MA "mx: *\n", "line 4: mx: invalid pattern '*'"),
        BAD("mx empty label", V ME MA "mx: mx..example.com\n",
            "line 4: mx: invalid pattern 'mx..example.com'"),
        BAD("mx leading dot", V ME MA "mx: .example.com\n",
            "line 4: mx: invalid pattern '.example.com'"),
        BAD("mx underscore", V ME MA "mx: mx_1.example.com\n",
            "line 4: mx: invalid pattern 'mx_1.example.com'"),
        BAD("mx two names", V ME MA "mx: a.example.com b.example.com\n",
            "line 4: mx: invalid pattern 'a.example.com b.example.com'"),
        {"mx upper case stored lower", V ME MA "mx: MX1.Example.COM\n", NULL, STS_MODE_ENFORCE,
         86400, false, "mx1.example.com"},
        {"mx duplicates stored once", V ME MA "mx: a.example\nmx: A.example.\nmx: b.example\n",
         NULL, STS_MODE_ENFORCE, 86400, false, "a.example,b.example"},
        BAD("mx invalid with mode none", V "mode: none\n" MA "mx: *.*.x\n",
            "line 4: mx: invalid pattern '*.*.x'"),
        BAD("mx empty", V ME MA "mx:\n", "line 4: mx: empty value"),
        {"unknown keys ignored", V "foo: bar\n" ME "x-y.z_1: some value; with=signs\n" MA MX, NULL,
         STS_MODE_ENFORCE, 86400, false, "mail.example.com"},
        {"unknown key utf-8 value", V ME MA MX "comment: caf\xc3\xa9 ok\n", NULL, STS_MODE_ENFORCE,
         86400, false, "mail.example.com"},
        BAD("unknown key empty value", V ME MA MX "comment:\n", "line 5: comment: empty value"),
        BAD("line without colon", V ME "max_age 86400\n" MX,
            "line 3: missing ':' in 'max_age 86400'"),
        BAD("space before colon", V "mode : enforce\n" MA MX,
            "line 2: invalid key 'mode : enforce'"),
        BAD("leading white space", V " mode: enforce\n" MA MX, "line 2: leading white space"),
        BAD("key with bad char", V ME MA MX "a/b: c\n", "line 5: invalid key 'a/b: c'"),
        BAD("key starting with _", V ME MA MX "_x: c\n", "line 5: invalid key '_x: c'"),
        BAD("key of 33 chars", V ME MA MX "abcdefghijabcdefghijabcdefghijabc: 1\n",
            "line 5: invalid key 'abcdefghijabcdefghijabcdefghijabc: 1'"),
        {"key of 32 chars", V ME MA MX "abcdefghijabcdefghijabcdefghijab: 1\n", NULL,
         STS_MODE_ENFORCE, 86400, false, "mail.example.com"},
        {"empty lines ignored", "\n" V "\n\r\n" ME " \t\n" MA MX "\n\n", NULL, STS_MODE_ENFORCE,
         86400, false, "mail.example.com"},
        BAD("bare CR in value", V "mode: enforce\r\r\n" MA MX,
            "line 2: mode: control character in value"),
        BAD("bare CR as separator", "version: STSv1\rmode: enforce\r" MA MX,
            "line 1: version: control character in value"),
        BAD("escape in value", V ME MA "mx: a\x1b[31m.example\n",
            "line 4: mx: control character in value"),
        BAD("empty body", "", "version: missing"),
        BAD("html error page", "<html><body>404</body></html>\n",
            "line 1: missing ':' in '<html><body>404</body></html>'"),
        BAD("long quote cut", V "mode: abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\n",
            "line 2: mode: unknown value 'abcdefghijabcdefghijabcdefghijabcdefghij...'"),
        BAD("json policy", "{\"version\": \"STSv1\"}\n",
            "line 1: invalid key '{\"version\": \"STSv1\"}'"),
};

/* "a,b,c" of the parsed patterns */
static void
join_mx(const struct sts_policy *p, char *buf, size_t bufsz)
{
	int i;

	buf[0] = '\0';
	for (i = 0; i < p->nmx; i++) {
		if (i > 0)
			strncat(buf, ",", bufsz - strlen(buf) - 1);
		strncat(buf, p->mx[i], bufsz - strlen(buf) - 1);
	}
}

static void
test_policy_table(void **state)
{
	static struct sts_policy p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof pol_cases / sizeof pol_cases[0]; i++) {
		const struct pol_case *tc = &pol_cases[i];
		char err[STS_POLICY_ERRSZ], mx[2048];
		int rc;

		memset(&p, 0x55, sizeof p);
		strcpy(err, "unset");
		rc = sts_policy_parse(tc->body, strlen(tc->body), &p, err, sizeof err);
		if (tc->err != NULL) {
			if (rc != -1)
				fail_msg("case \"%s\": parsed, want error \"%s\"", tc->name,
				         tc->err);
			if (strcmp(err, tc->err) != 0)
				fail_msg("case \"%s\": error \"%s\", want \"%s\"", tc->name, err,
				         tc->err);
			assert_int_equal(p.nmx, 0); /* zeroed on failure */
			assert_int_equal(p.max_age, 0);
			continue;
		}
		if (rc != 0)
			fail_msg("case \"%s\": error \"%s\"", tc->name, err);
		assert_string_equal(err, "");
		if (p.mode != tc->mode || p.max_age != tc->max_age ||
		    p.max_age_clamped != tc->clamped)
			fail_msg("case \"%s\": mode %s max_age %u clamped %d", tc->name,
			         sts_mode_name(p.mode), p.max_age, p.max_age_clamped);
		join_mx(&p, mx, sizeof mx);
		if (strcmp(mx, tc->mx) != 0)
			fail_msg("case \"%s\": mx \"%s\", want \"%s\"", tc->name, mx, tc->mx);
		assert_string_equal(p.id, "");
	}
}

/* --- golden files ------------------------------------------------------- */

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* The .ref format: "error: <msg>" or "mode/max_age/clamped/mx" lines. */
static void
dump_policy(int rc, const struct sts_policy *p, const char *err, char *out, size_t outsz)
{
	int i;
	size_t o;

	if (rc < 0) {
		snprintf(out, outsz, "error: %s\n", err);
		return;
	}
	o = (size_t)snprintf(out, outsz, "mode: %s\nmax_age: %u\nclamped: %s\n",
	                     sts_mode_name(p->mode), p->max_age, p->max_age_clamped ? "yes" : "no");
	for (i = 0; i < p->nmx && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "mx: %s\n", p->mx[i]);
}

static void
test_policy_golden(void **state)
{
	static struct sts_policy p;
	DIR *d;
	struct dirent *de;
	int n = 0;

	(void)state;
	d = opendir(STS_DATA);
	if (d == NULL)
		fail_msg("cannot open %s", STS_DATA);
	while ((de = readdir(d)) != NULL) {
		char path[4096], ref[4096], err[STS_POLICY_ERRSZ], got[32768];
		size_t nl = strlen(de->d_name), len, rlen;
		char *body, *want;
		int rc;

		if (nl < 8 || strcmp(de->d_name + nl - 7, ".policy") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", STS_DATA, de->d_name);
		snprintf(ref, sizeof ref, "%s/%.*s.ref", STS_DATA, (int)(nl - 7), de->d_name);
		body = slurp(path, &len);
		want = slurp(ref, &rlen);
		if (body == NULL || want == NULL)
			fail_msg("%s: missing file or .ref", de->d_name);
		rc = sts_policy_parse(body, len, &p, err, sizeof err);
		dump_policy(rc, &p, err, got, sizeof got);
		if (strcmp(got, want) != 0)
			fail_msg("%s: got\n%s--- want\n%s", de->d_name, got, want);
		free(body);
		free(want);
		n++;
	}
	closedir(d);
	assert_true(n >= 5);
}

/* --- properties --------------------------------------------------------- */

static void
test_policy_crlf_equals_lf(void **state)
{
	static struct sts_policy a, b;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof pol_cases / sizeof pol_cases[0]; i++) {
		const char *s = pol_cases[i].body;
		char crlf[4096], ea[STS_POLICY_ERRSZ], eb[STS_POLICY_ERRSZ];
		size_t k, o = 0;
		int ra, rb;

		for (k = 0; s[k] != '\0' && o + 2 < sizeof crlf; k++) {
			if (s[k] == '\n' && (k == 0 || s[k - 1] != '\r'))
				crlf[o++] = '\r';
			crlf[o++] = s[k];
		}
		ra = sts_policy_parse(s, strlen(s), &a, ea, sizeof ea);
		rb = sts_policy_parse(crlf, o, &b, eb, sizeof eb);
		assert_int_equal(ra, rb);
		assert_string_equal(ea, eb);
		assert_memory_equal(&a, &b, sizeof a);
	}
}

static void
test_policy_prefixes(void **state)
{
	static struct sts_policy p;
	const char *body = pol_cases[0].body;
	size_t k, len = strlen(body);
	char *copy;

	(void)state;
	/* Each prefix in its own allocation so ASan sees any over-read. */
	for (k = 0; k <= len; k++) {
		char err[STS_POLICY_ERRSZ];

		copy = malloc(k > 0 ? k : 1);
		assert_non_null(copy);
		memcpy(copy, body, k);
		(void)sts_policy_parse(copy, k, &p, err, sizeof err);
		assert_true(strlen(err) < sizeof err);
		free(copy);
	}
}

static void
test_policy_bounds(void **state)
{
	static struct sts_policy p;
	char err[STS_POLICY_ERRSZ], small[8];
	char *body;
	size_t o;
	int i;

	(void)state;
	/* STS_POLICY_MAXMX distinct patterns fit, one more is refused */
	body = malloc(STS_POLICY_MAXLEN + 2);
	assert_non_null(body);
	o = (size_t)sprintf(body, V ME MA);
	for (i = 0; i < STS_POLICY_MAXMX; i++)
		o += (size_t)sprintf(body + o, "mx: mx%d.example.com\n", i);
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof err), 0);
	assert_int_equal(p.nmx, STS_POLICY_MAXMX);
	assert_true(sts_policy_mx_ok(&p, "mx63.example.com"));
	/* a repeat of a stored pattern does not count */
	o += (size_t)sprintf(body + o, "mx: MX0.example.com.\n");
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof err), 0);
	o += (size_t)sprintf(body + o, "mx: one-more.example.com\n");
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof err), -1);
	assert_string_equal(err, "line 69: mx: more than 64 patterns");

	/* the body bound: STS_POLICY_MAXLEN is fine, one byte more is not */
	o = (size_t)sprintf(body, V ME MA MX "pad: ");
	memset(body + o, 'x', STS_POLICY_MAXLEN - o - 1);
	body[STS_POLICY_MAXLEN - 1] = '\n';
	body[STS_POLICY_MAXLEN] = '\n';
	assert_int_equal(sts_policy_parse(body, STS_POLICY_MAXLEN, &p, err, sizeof err), 0);
	assert_int_equal(sts_policy_parse(body, STS_POLICY_MAXLEN + 1, &p, err, sizeof err), -1);
	assert_string_equal(err, "policy: 65537 bytes exceeds 65536");

	/* a pattern of 253 octets is fine, 254 is not */
	o = (size_t)sprintf(body, V ME MA "mx: ");
	for (i = 0; i < 4; i++)
		o += (size_t)sprintf(
		        body + o, "%.62s.",
		        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	o += (size_t)sprintf(body + o, "a\n"); /* 4 * 63 + 1 = 253 */
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof err), 0);
	assert_int_equal(strlen(p.mx[0]), 253);
	o -= 2;
	o += (size_t)sprintf(body + o, "ab\n");
	assert_int_equal(sts_policy_parse(body, o, &p, err, sizeof err), -1);
	free(body);

	/* tiny, zero-sized and absent error buffers */
	assert_int_equal(sts_policy_parse("x", 1, &p, small, sizeof small), -1);
	assert_string_equal(small, "line 1:");
	small[0] = 'Z';
	assert_int_equal(sts_policy_parse("x", 1, &p, small, 0), -1);
	assert_int_equal(small[0], 'Z');
	assert_int_equal(sts_policy_parse("x", 1, &p, NULL, 0), -1);
	assert_int_equal(sts_policy_parse(NULL, 0, &p, err, sizeof err), -1);
	assert_int_equal(sts_policy_parse("x", 1, NULL, err, sizeof err), -1);
	/* NUL bytes are characters, not ends */
	assert_int_equal(sts_policy_parse(V ME MA MX "x: a\0b\n",
	                                  sizeof(V ME MA MX "x: a\0b\n") - 1, &p, err, sizeof err),
	                 -1);
	assert_string_equal(err, "line 5: x: control character in value");
}

static void
test_policy_mx_ok(void **state)
{
	static struct sts_policy p;
	static const char body[] = V ME MA "mx: mail.example.com\nmx: *.example.net\n";
	char err[STS_POLICY_ERRSZ];

	(void)state;
	assert_int_equal(sts_policy_parse(body, sizeof body - 1, &p, err, sizeof err), 0);
	assert_true(sts_policy_mx_ok(&p, "mail.example.com"));
	assert_true(sts_policy_mx_ok(&p, "MAIL.Example.com."));
	assert_true(sts_policy_mx_ok(&p, "mx1.example.net"));
	/* §4.1: the wildcard is exactly one label */
	assert_false(sts_policy_mx_ok(&p, "example.net"));
	assert_false(sts_policy_mx_ok(&p, "a.b.example.net"));
	assert_false(sts_policy_mx_ok(&p, "mail.example.com.evil.org"));
	assert_false(sts_policy_mx_ok(&p, "xmail.example.com"));
	assert_false(sts_policy_mx_ok(&p, ""));
	assert_false(sts_policy_mx_ok(&p, NULL));
	assert_false(sts_policy_mx_ok(NULL, "mail.example.com"));
}

static void
test_mode_name(void **state)
{
	(void)state;
	assert_string_equal(sts_mode_name(STS_MODE_NONE), "none");
	assert_string_equal(sts_mode_name(STS_MODE_TESTING), "testing");
	assert_string_equal(sts_mode_name(STS_MODE_ENFORCE), "enforce");
	assert_string_equal(sts_mode_name((enum sts_mode)7), "unknown");
	assert_true(STS_MODE_NONE < STS_MODE_TESTING && STS_MODE_TESTING < STS_MODE_ENFORCE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_policy_table),
	        cmocka_unit_test(test_policy_golden),
	        cmocka_unit_test(test_policy_crlf_equals_lf),
	        cmocka_unit_test(test_policy_prefixes),
	        cmocka_unit_test(test_policy_bounds),
	        cmocka_unit_test(test_policy_mx_ok),
	        cmocka_unit_test(test_mode_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
