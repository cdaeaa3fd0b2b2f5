/*
 * test_jsonw: the bounded JSON writer for log records (proxy/jsonw.c).
 * Hostile SMTP text must not break a record: quotes, backslashes, control
 * bytes, DEL and bytes that are not valid UTF-8 (overlong forms,
 * surrogates, beyond U+10FFFF, truncated sequences) are escaped, valid
 * multi-byte UTF-8 is kept, and a record cut at the buffer size is still
 * one valid JSON object. Validity is checked by a small strict parser here
 * (objects, arrays, strings with escapes and UTF-8, numbers, literals).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jsonw.h"

#define S(lit)                                                                                     \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

struct bytes {
	const char *s;
	size_t len;
};

static struct jsonw jw; /* 8 KiB: keep it off the stack */

/* ---- a strict little JSON checker ------------------------------------------ */

struct jp {
	const unsigned char *p, *end;
	int depth;
};

static int jp_value(struct jp *j);

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
jp_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One UTF-8 scalar value, strictly (RFC 3629): no overlongs, no surrogates. */
static int
jp_utf8(struct jp *j)
{
	const unsigned char *s = j->p;
	size_t n = (size_t)(j->end - s), need;
	unsigned long cp;

	if (s[0] < 0x80) {
		j->p++;
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		need = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		need = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		need = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	j->p += need;
	return 1;
}

static int
jp_string(struct jp *j)
{
	if (j->p >= j->end || *j->p != '"')
		return 0;
	j->p++;
	while (j->p < j->end) {
		unsigned char c = *j->p;

		if (c == '"') {
			j->p++;
			return 1;
		}
		if (c < 0x20)
			return 0;
		if (c == '\\') {
			if (j->end - j->p < 2)
				return 0;
			c = j->p[1];
			if (c == 'u') {
				if (j->end - j->p < 6)
					return 0;
				for (int k = 2; k < 6; k++)
					if (!jp_hex(j->p[k]))
						return 0;
				j->p += 6;
			} else if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
				j->p += 2;
			} else {
				return 0;
			}
			continue;
		}
		if (!jp_utf8(j))
			return 0;
	}
	return 0;
}

static int
jp_number(struct jp *j)
{
	const unsigned char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return 0;
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return 0;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return 0;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s;
}

static int
jp_lit(struct jp *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return 0;
	j->p += n;
	return 1;
}

static int
jp_container(struct jp *j, char open, char close)
{
	int first = 1;

	if (++j->depth > 64)
		return 0;
	j->p++; /* open */
	(void)open;
	for (;;) {
		jp_ws(j);
		if (j->p >= j->end)
			return 0;
		if (*j->p == close) {
			j->p++;
			j->depth--;
			return 1;
		}
		if (!first) {
			if (*j->p != ',')
				return 0;
			j->p++;
			jp_ws(j);
		}
		first = 0;
		if (close == '}') {
			if (!jp_string(j))
				return 0;
			jp_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return 0;
			j->p++;
			jp_ws(j);
		}
		if (!jp_value(j))
			return 0;
	}
}

static int
jp_value(struct jp *j)
{
	if (j->p >= j->end)
		return 0;
	switch (*j->p) {
	case '{':
		return jp_container(j, '{', '}');
	case '[':
		return jp_container(j, '[', ']');
	case '"':
		return jp_string(j);
	case 't':
		return jp_lit(j, "true");
	case 'f':
		return jp_lit(j, "false");
	case 'n':
		return jp_lit(j, "null");
	default:
		return jp_number(j);
	}
}

/* s[0..n) is exactly one JSON object. */
static int
json_object_ok(const char *s, size_t n)
{
	struct jp j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};

	jp_ws(&j);
	if (j.p >= j.end || *j.p != '{' || !jp_value(&j))
		return 0;
	jp_ws(&j);
	return j.p == j.end;
}

/* The checker itself must reject what it is there to catch. */
static void
test_checker(void **state)
{
	static const struct {
		struct bytes s;
		int ok;
	} t[] = {
	        {S("{}"), 1},
	        {S("{\"a\":1,\"b\":[\"x\",null,true,false,-1.5e3],\"c\":{}}"), 1},
	        {S("{\"a\":\"\\u00e9\\n\\\"\\\\\"}"), 1},
	        {S("{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"), 1},
	        {S("{"), 0},
	        {S("{\"a\":}"), 0},
	        {S("{\"a\":\"x}"), 0},
	        {S("{\"a\":\"x\"}}"), 0},
	        {S("{\"a\":[1}"), 0},
	        {S("{\"a\":1,}"), 0},
	        {S("{,\"a\":1}"), 0},
	        {S("{\"a\"}"), 0},
	        {S("{\"a\":\"\x01\"}"), 0},
	        {S("{\"a\":\"\\x\"}"), 0},
	        {S("{\"a\":\"\\u00g0\"}"), 0},
	        {S("{\"a\":\"\xc3\"}"), 0},
	        {S("{\"a\":\"\xc0\x80\"}"), 0},
	        {S("{\"a\":\"\xed\xa0\x80\"}"), 0},
	        {S("{\"a\":\"\xf4\x90\x80\x80\"}"), 0},
	        {S("{\"a\":\"\xff\"}"), 0},
	        {S("{\"a\":nan}"), 0},
	        {S("{\"a\":inf}"), 0},
	        {S("{\"a\":01}"), 0},
	        {S("{\"a\":1.}"), 0},
	        {S("[]"), 0},
	        {S("{}x"), 0},
	        {S("{\"a\":1}\0"), 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (json_object_ok(t[i].s.s, t[i].s.len) != t[i].ok)
			fail_msg("checker case %zu: got %d", i, !t[i].ok);
}

/* ---- jsonw_escape ------------------------------------------------------------- */

static const struct {
	struct bytes in;
	const char *out;
} esc[] = {
        {S(""), ""},
        {S("plain text 123"), "plain text 123"},
        {S("\""), "\\\""},
        {S("\\"), "\\\\"},
        {S("say \"hi\" \\o/"), "say \\\"hi\\\" \\\\o/"},
        {S("/"), "/"},
        {S("\n\r\t"), "\\n\\r\\t"},
        {S("\x01"), "\\u0001"},
        {S("\x08\x0c"), "\\u0008\\u000c"},
        {S("\x1b[31m"), "\\u001b[31m"}, /* terminal escape in a hostile reply */
        {S("\x1f"), "\\u001f"},
        {S(" ~"), " ~"},
        {S("\x7f"), "\\u007f"},
        {S("a\0b"), "a\\u0000b"},
        {S("250 ok\r\n250 injected"), "250 ok\\r\\n250 injected"},
        /* valid UTF-8 is kept */
        {S("\xc2\x80"), "\xc2\x80"},                   /* U+0080, smallest 2-byte */
        {S("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9"}, /* été */
        {S("\xdf\xbf"), "\xdf\xbf"},
        {S("\xe0\xa0\x80"), "\xe0\xa0\x80"}, /* U+0800, smallest 3-byte */
        {S("\xe2\x82\xac"), "\xe2\x82\xac"}, /* € */
        {S("\xed\x9f\xbf"), "\xed\x9f\xbf"}, /* U+D7FF, just below surrogates */
        {S("\xee\x80\x80"), "\xee\x80\x80"}, /* U+E000, just above */
        {S("\xef\xbf\xbf"), "\xef\xbf\xbf"},
        {S("\xf0\x90\x80\x80"), "\xf0\x90\x80\x80"}, /* U+10000 */
        {S("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80"},
        {S("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf"}, /* U+10FFFF */
        /* invalid UTF-8 becomes \u00XX, byte by byte */
        {S("\x80"), "\\u0080"}, /* lone continuation byte */
        {S("\xbf"), "\\u00bf"},
        {S("\xc3"), "\\u00c3"}, /* truncated at the end */
        {S("\xc3x"), "\\u00c3x"},
        {S("\xe2\x82"), "\\u00e2\\u0082"},
        {S("\xe2\x82x"), "\\u00e2\\u0082x"},
        {S("\xf0\x9f\x98"), "\\u00f0\\u009f\\u0098"},
        {S("\xc0\x80"), "\\u00c0\\u0080"}, /* overlong NUL */
        {S("\xc0\xaf"), "\\u00c0\\u00af"}, /* overlong '/' */
        {S("\xc1\xbf"), "\\u00c1\\u00bf"},
        {S("\xe0\x80\xaf"), "\\u00e0\\u0080\\u00af"}, /* overlong 3-byte */
        {S("\xe0\x9f\xbf"), "\\u00e0\\u009f\\u00bf"},
        {S("\xf0\x80\x80\xaf"), "\\u00f0\\u0080\\u0080\\u00af"}, /* overlong 4-byte */
        {S("\xf0\x8f\xbf\xbf"), "\\u00f0\\u008f\\u00bf\\u00bf"},
        {S("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080"}, /* UTF-16 surrogate */
        {S("\xed\xbf\xbf"), "\\u00ed\\u00bf\\u00bf"},
        {S("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080"}, /* > U+10FFFF */
        {S("\xf5\x80\x80\x80"), "\\u00f5\\u0080\\u0080\\u0080"},
        {S("\xf8\x88\x80\x80\x80"), "\\u00f8\\u0088\\u0080\\u0080\\u0080"},
        {S("\xfe\xff"), "\\u00fe\\u00ff"},
        /* a bad lead byte does not swallow a following quote */
        {S("\xe2\"x"), "\\u00e2\\\"x"},
        {S("\xc3\\"), "\\u00c3\\\\"},
        {S("\xe2\x82\n"), "\\u00e2\\u0082\\n"},
};

static void
test_escape(void **state)
{
	char out[256], wrapped[300];

	(void)state;
	for (size_t i = 0; i < sizeof(esc) / sizeof(esc[0]); i++) {
		size_t n = jsonw_escape(out, sizeof(out), esc[i].in.s, esc[i].in.len);

		if (n != strlen(esc[i].out) || strcmp(out, esc[i].out) != 0)
			fail_msg("case %zu: got \"%s\" (%zu), want \"%s\"", i, out, n, esc[i].out);
		snprintf(wrapped, sizeof(wrapped), "{\"k\":\"%s\"}", out);
		if (!json_object_ok(wrapped, strlen(wrapped)))
			fail_msg("case %zu: not valid JSON: %s", i, wrapped);
	}
}

/* A small output buffer: nothing written past it, always terminated, and
 * never half an escape or half a UTF-8 character. */
static void
test_escape_bounded(void **state)
{
	static const char in[] = "a\"\xc3\xa9\x01\xf0\x9f\x98\x80\\\xff\xe2\x82\xac\nz";
	char full[128], out[128], wrapped[160];
	size_t fn = jsonw_escape(full, sizeof(full), in, sizeof(in) - 1);

	(void)state;
	for (size_t sz = 0; sz <= fn + 2; sz++) {
		size_t n;

		memset(out, '#', sizeof(out));
		n = jsonw_escape(out, sz, in, sizeof(in) - 1);
		for (size_t k = sz; k < sizeof(out); k++)
			if (out[k] != '#')
				fail_msg("outsz %zu: byte %zu written", sz, k);
		if (sz == 0) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(n < sz);
		assert_int_equal(out[n], '\0');
		assert_int_equal(strlen(out), n);
		assert_memory_equal(out, full, n); /* a prefix of the full escape */
		snprintf(wrapped, sizeof(wrapped), "{\"k\":\"%s\"}", out);
		if (!json_object_ok(wrapped, strlen(wrapped)))
			fail_msg("outsz %zu: cut inside a sequence: %s", sz, out);
	}
	/* exactly enough: full output */
	assert_int_equal(jsonw_escape(out, fn + 1, in, sizeof(in) - 1), fn);
	assert_string_equal(out, full);
}

/* All 256 byte values, in every pair: output is always valid JSON text. */
static void
test_escape_all_pairs(void **state)
{
	char in[2], out[32], wrapped[48];

	(void)state;
	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			in[0] = (char)a;
			in[1] = (char)b;
			jsonw_escape(out, sizeof(out), in, 2);
			snprintf(wrapped, sizeof(wrapped), "{\"k\":\"%s\"}", out);
			if (!json_object_ok(wrapped, strlen(wrapped)))
				fail_msg("bytes %02x %02x: %s", a, b, out);
		}
}

/* ---- records ------------------------------------------------------------------ */

static void
test_object(void **state)
{
	(void)state;
	jsonw_begin(&jw);
	jsonw_end(&jw);
	assert_string_equal(jw.buf, "{}");
	assert_int_equal(jw.len, 2);
	assert_false(jw.overflow);

	jsonw_begin(&jw);
	jsonw_str(&jw, "type", "session");
	jsonw_str(&jw, "helo", "evil\"}\n{\"type\":\"forged");
	jsonw_str(&jw, "none", NULL);
	jsonw_strn(&jw, "bin", "a\0\xff", 3);
	jsonw_strn(&jw, "cut", "abcdef", 3);
	jsonw_int(&jw, "neg", -42);
	jsonw_int(&jw, "min", INT64_MIN);
	jsonw_uint(&jw, "max", UINT64_MAX);
	jsonw_double(&jw, "dur", 1.5);
	jsonw_bool(&jw, "t", 1);
	jsonw_bool(&jw, "f", 0);
	jsonw_end(&jw);
	assert_string_equal(jw.buf, "{\"type\":\"session\","
	                            "\"helo\":\"evil\\\"}\\n{\\\"type\\\":\\\"forged\","
	                            "\"none\":null,\"bin\":\"a\\u0000\\u00ff\",\"cut\":\"abc\","
	                            "\"neg\":-42,\"min\":-9223372036854775808,"
	                            "\"max\":18446744073709551615,\"dur\":1.500,"
	                            "\"t\":true,\"f\":false}");
	assert_int_equal(jw.len, strlen(jw.buf));
	assert_true(json_object_ok(jw.buf, jw.len));
	assert_null(memchr(jw.buf, '\n', jw.len)); /* one record, one line */
}

static void
test_arrays(void **state)
{
	(void)state;
	jsonw_begin(&jw);
	jsonw_array_begin(&jw, "empty");
	jsonw_array_end(&jw);
	jsonw_array_begin(&jw, "rcpt");
	jsonw_array_str(&jw, "a@example.com");
	jsonw_array_str(&jw, NULL);
	jsonw_array_str(&jw, "\"q\"");
	jsonw_array_end(&jw);
	jsonw_int(&jw, "n", 3);
	jsonw_end(&jw);
	assert_string_equal(jw.buf, "{\"empty\":[],\"rcpt\":[\"a@example.com\",null,\"\\\"q\\\"\"],"
	                            "\"n\":3}");
	assert_true(json_object_ok(jw.buf, jw.len));

	/* array first, and an array left open is closed by jsonw_end */
	jsonw_begin(&jw);
	jsonw_array_begin(&jw, "domains");
	jsonw_array_str(&jw, "example.com");
	jsonw_end(&jw);
	assert_string_equal(jw.buf, "{\"domains\":[\"example.com\"]}");
	assert_int_equal(jw.depth, 0);

	/* nested arrays */
	jsonw_begin(&jw);
	jsonw_array_begin(&jw, "a");
	jsonw_array_begin(&jw, NULL);
	jsonw_array_str(&jw, "x");
	jsonw_array_end(&jw);
	jsonw_array_begin(&jw, NULL);
	jsonw_array_end(&jw);
	jsonw_array_end(&jw);
	jsonw_end(&jw);
	assert_string_equal(jw.buf, "{\"a\":[[\"x\"],[]]}");
	assert_true(json_object_ok(jw.buf, jw.len));
}

/* ---- overflow ----------------------------------------------------------------- */

static char bigval[3 * JSONW_MAX];

/*
 * What a cut record guarantees today: the flag, the bound, NUL
 * termination, one line, and a closing brace at the end.
 */
static void
check_cut(const char *what)
{
	if (!jw.overflow)
		fail_msg("%s: no overflow", what);
	if (jw.len >= JSONW_MAX || strlen(jw.buf) != jw.len)
		fail_msg("%s: len %zu strlen %zu", what, jw.len, strlen(jw.buf));
	if (jw.len < 2 || jw.buf[0] != '{' || jw.buf[jw.len - 1] != '}')
		fail_msg("%s: not closed: ...%s", what, jw.buf + (jw.len > 60 ? jw.len - 60 : 0));
	for (size_t k = 0; k < jw.len; k++)
		if ((unsigned char)jw.buf[k] < 0x20)
			fail_msg("%s: control byte at %zu", what, k);
}

/*
 * And what jsonw.h promises on top: the cut record is still one valid
 * JSON object. KNOWN BUG (reported, not fixed here): a member whose value
 * does not fit leaves its key and opening quote behind, e.g.
 * {"type":"session","huge":"} (fixed: members are now written whole or not at all).
 */
static void
check_truncated(const char *what)
{
	check_cut(what);
	if (!json_object_ok(jw.buf, jw.len))
		fail_msg("%s: invalid JSON after truncation: ...%s", what,
		         jw.buf + (jw.len > 60 ? jw.len - 60 : 0));
}

/* Ways to fill a record past its size; each is cut and stays valid. */
static void
fill(int how, size_t step)
{
	char key[32];

	jsonw_begin(&jw);
	jsonw_str(&jw, "type", "session");
	if (how == 3)
		jsonw_array_begin(&jw, "rcpt");
	for (int k = 0; k < 4000; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		switch (how) {
		case 0: /* many strings of one length */
			jsonw_strn(&jw, key, bigval, step);
			break;
		case 1: /* many numbers */
			jsonw_uint(&jw, key, UINT64_MAX - (unsigned)k);
			break;
		case 2: /* escape-heavy strings: output grows 6x */
			jsonw_strn(&jw, key, "\x01\x02\x03\x04\x05\x06\x07", step % 8);
			break;
		case 3: /* inside an open array */
			jsonw_array_str(&jw, step ? "\x01\"" : "r@example.com");
			break;
		case 4: /* mixed members */
			jsonw_int(&jw, key, -k);
			jsonw_bool(&jw, "b", k & 1);
			jsonw_double(&jw, "d", k / 7.0);
			jsonw_str(&jw, "n", NULL);
			jsonw_strn(&jw, "s", bigval, step);
			break;
		}
	}
	if (how == 3)
		jsonw_array_end(&jw);
	jsonw_end(&jw);
}

static void
test_overflow(void **state)
{
	char what[64];

	(void)state;
	memset(bigval, 'v', sizeof(bigval));

	/* a single value bigger than the record */
	jsonw_begin(&jw);
	jsonw_str(&jw, "type", "session");
	jsonw_strn(&jw, "huge", bigval, sizeof(bigval));
	jsonw_int(&jw, "after", 1);
	jsonw_end(&jw);
	check_truncated("huge value");
	/* nothing after the cut gets in */
	assert_null(strstr(jw.buf, "after"));

	/* a hostile 4 KiB HELO of control bytes escapes to 24 KiB */
	memset(bigval, '\x01', 4096);
	jsonw_begin(&jw);
	jsonw_strn(&jw, "helo", bigval, 4096);
	jsonw_end(&jw);
	check_truncated("escaped helo");
	memset(bigval, 'v', sizeof(bigval));

	for (int how = 0; how <= 4; how++)
		for (size_t step = 0; step < 40; step++) {
			fill(how, how == 0 ? step * 37 + 1 : step);
			snprintf(what, sizeof(what), "fill %d step %zu", how, step);
			check_truncated(what);
			/* overflow is sticky: a later short member is dropped too */
			assert_null(strstr(jw.buf, "k3999"));
		}
}

/* A record that just fits is complete and not marked as overflowing. */
static void
test_near_limit(void **state)
{
	size_t n;

	(void)state;
	memset(bigval, 'v', sizeof(bigval));
	for (n = 7000; n < JSONW_MAX; n++) {
		jsonw_begin(&jw);
		jsonw_strn(&jw, "s", bigval, n);
		jsonw_end(&jw);
		if (jw.overflow)
			break;
		assert_int_equal(jw.len, n + 8);
		assert_true(json_object_ok(jw.buf, jw.len));
	}
	/* overflow happened, and not long before the buffer is full */
	assert_true(n > JSONW_MAX - 64 && n < JSONW_MAX);
	check_truncated("near limit");
}

/*
 * KNOWN BUG (reported): jsonw_double prints "%.3f", so NaN and infinities
 * come out as bare nan/inf (not JSON) and a value past ~1e44 is cut to a
 * wrong integer by the 48-byte scratch buffer.
 */
static void
test_double_special(void **state)
{
	static const double v[] = {NAN, INFINITY, -INFINITY, 1e300};

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		jsonw_begin(&jw);
		jsonw_double(&jw, "d", v[i]);
		jsonw_end(&jw);
		if (!json_object_ok(jw.buf, jw.len))
			fail_msg("case %zu: %s", i, jw.buf);
		if (isfinite(v[i]) && strtod(jw.buf + 5, NULL) != v[i])
			fail_msg("case %zu: wrong value %s", i, jw.buf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_checker),        cmocka_unit_test(test_escape),
	        cmocka_unit_test(test_escape_bounded), cmocka_unit_test(test_escape_all_pairs),
	        cmocka_unit_test(test_object),         cmocka_unit_test(test_arrays),
	        cmocka_unit_test(test_overflow),       cmocka_unit_test(test_near_limit),
	        cmocka_unit_test(test_double_special),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
