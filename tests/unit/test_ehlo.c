/*
 * test_ehlo: table-driven tests of EHLO capability parsing and of the
 * filtered EHLO reply (proxy/ehlo.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ehlo.h"

#define MAXSEQ 10

static struct smtp_reply reply, reply2;

/* Feed NULL-terminated lines; returns the status of the last one. */
static enum smtp_reply_status
feed(struct smtp_reply *r, const char *const *lines)
{
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	int i;

	smtp_reply_init(r, 0);
	for (i = 0; i < MAXSEQ && lines[i] != NULL; i++)
		st = smtp_reply_feed(r, lines[i], strlen(lines[i]));
	return st;
}

/* Feed a CRLF-separated wire text, as ehlo_filter writes it. */
static enum smtp_reply_status
feed_wire(struct smtp_reply *r, const char *wire, size_t len)
{
	enum smtp_reply_status st = SMTP_REPLY_ERR_SYNTAX;
	size_t s = 0, i;

	smtp_reply_init(r, 0);
	for (i = 0; i + 1 < len; i++) {
		if (wire[i] == '\r' && wire[i + 1] == '\n') {
			st = smtp_reply_feed(r, wire + s, i - s);
			s = i + 2;
			i++;
		}
	}
	assert_int_equal(s, len); /* ends with CRLF */
	return st;
}

/* ---- keywords ----------------------------------------------------------- */

static const struct {
	const char *kw;
	uint32_t cap;
} keywords[] = {
        {"STARTTLS", EHLO_STARTTLS},
        {"starttls", EHLO_STARTTLS},
        {"StartTLS", EHLO_STARTTLS},
        {"PIPELINING", EHLO_PIPELINING},
        {"SIZE", EHLO_SIZE},
        {"size", EHLO_SIZE},
        {"8BITMIME", EHLO_8BITMIME},
        {"SMTPUTF8", EHLO_SMTPUTF8},
        {"DSN", EHLO_DSN},
        {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDSTATUSCODES},
        {"CHUNKING", EHLO_CHUNKING},
        {"BINARYMIME", EHLO_BINARYMIME},
        {"AUTH", EHLO_AUTH},
        {"AUTH=LOGIN", EHLO_AUTH},
        {"auth=PLAIN", EHLO_AUTH},
        {"REQUIRETLS", EHLO_REQUIRETLS},
        {"XCLIENT", EHLO_XCLIENT},
        {"xclient", EHLO_XCLIENT},
        {"XFORWARD", EHLO_XFORWARD},
        {"XEXCH50", EHLO_XCLIENT}, /* other X extensions share the bit */
        {"X-ANONYMOUSTLS", EHLO_XCLIENT},
        {"XXXXXXXA", EHLO_XCLIENT}, /* STARTTLS masked by a middlebox */
        {"ETRN", EHLO_ETRN},
        {"VRFY", EHLO_VRFY},
        {"DELIVERBY", EHLO_DELIVERBY},
        {"MTRK", EHLO_MTRK},
        {"STARTTLSX", EHLO_UNKNOWN},
        {"STARTTL", EHLO_UNKNOWN},
        {"START-TLS", EHLO_UNKNOWN},
        {"FOOBAR", EHLO_UNKNOWN},
        {"", EHLO_UNKNOWN},
        {"-STARTTLS", EHLO_UNKNOWN},
        {"STARTTLS=1", EHLO_UNKNOWN},
        {"STARTTLS ", EHLO_UNKNOWN},
        {"AUTH_LOGIN", EHLO_UNKNOWN},
        {"AUTH", EHLO_AUTH},
        {"\xc5\xbfTARTTLS", EHLO_UNKNOWN}, /* non-ASCII look-alike */
};

static void
test_keyword_cap(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		uint32_t cap = ehlo_keyword_cap(keywords[i].kw, strlen(keywords[i].kw));

		if (cap != keywords[i].cap)
			fail_msg("case %zu (%s): got %#x want %#x", i, keywords[i].kw, cap,
			         keywords[i].cap);
	}
	/* length counts, not the NUL */
	assert_int_equal(ehlo_keyword_cap("STARTTLSXYZ", 8), EHLO_STARTTLS);
	assert_int_equal(ehlo_keyword_cap("STARTTLS\0", 9), EHLO_UNKNOWN);
	assert_int_equal(ehlo_keyword_cap(NULL, 0), EHLO_UNKNOWN);
}

/* ---- parse -------------------------------------------------------------- */

static const struct {
	const char *lines[MAXSEQ];
	int rc;
	uint32_t caps;
	unsigned long size_max;
	int nkeywords, nmalformed, nempty;
} parse[] = {
        {{"250-mx.example.com Hello", "250-PIPELINING", "250-SIZE 10240000", "250-STARTTLS",
          "250 8BITMIME"},
         0,
         EHLO_PIPELINING | EHLO_SIZE | EHLO_STARTTLS | EHLO_8BITMIME,
         10240000,
         4,
         0,
         0},
        /* the greeting is never a capability */
        {{"250-STARTTLS", "250 SIZE"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250 STARTTLS"}, 0, 0, 0, 0, 0, 0},
        {{"250 mx.example.com"}, 0, 0, 0, 0, 0, 0},
        {{"250"}, 0, 0, 0, 0, 0, 0},
        /* case */
        {{"250-mx", "250-starttls", "250 pipelining"},
         0,
         EHLO_STARTTLS | EHLO_PIPELINING,
         0,
         2,
         0,
         0},
        /* middlebox masking: not STARTTLS */
        {{"250-mx", "250-XXXXXXXA", "250 8BITMIME"}, 0, EHLO_XCLIENT | EHLO_8BITMIME, 0, 2, 0, 0},
        /* AUTH, both forms */
        {{"250-mx", "250-AUTH=LOGIN PLAIN", "250 AUTH LOGIN PLAIN"}, 0, EHLO_AUTH, 0, 2, 0, 0},
        /* empty and malformed lines */
        {{"250-mx", "250-", "250 DSN"}, 0, EHLO_DSN, 0, 1, 0, 1},
        {{"250-mx", "250-DSN", "250 "}, 0, EHLO_DSN, 0, 1, 0, 1},
        {{"250-mx", "250-DSN", "250"}, 0, EHLO_DSN, 0, 1, 0, 1},
        {{"250-mx", "250- STARTTLS", "250 DSN"}, 0, EHLO_DSN | EHLO_UNKNOWN, 0, 1, 1, 0},
        {{"250-mx", "250--STARTTLS", "250 DSN"}, 0, EHLO_DSN | EHLO_UNKNOWN, 0, 1, 1, 0},
        {{"250-mx", "250-STARTTLS=yes", "250-ST_ARTTLS", "250 START\tTLS"},
         0,
         EHLO_UNKNOWN,
         0,
         0,
         3,
         0},
        {{"250-mx", "250-START TLS"}, -1, 0, 0, 0, 0, 0}, /* incomplete reply */
        {{"250-mx", "250 START TLS"}, 0, EHLO_UNKNOWN, 0, 1, 0, 0},
        {{"250-mx", "250 FOO-BAR baz"}, 0, EHLO_UNKNOWN, 0, 1, 0, 0},
        /* SIZE parameter */
        {{"250-mx", "250 SIZE 0"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250 SIZE"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250 SIZE  52428800"}, 0, EHLO_SIZE, 52428800, 1, 0, 0},
        {{"250-mx", "250 SIZE 52428800 "}, 0, EHLO_SIZE, 52428800, 1, 0, 0},
        {{"250-mx", "250 SIZE 99999999999999999999999999999"}, 0, EHLO_SIZE, ULONG_MAX, 1, 0, 0},
        {{"250-mx", "250 SIZE 18446744073709551616"}, 0, EHLO_SIZE, ULONG_MAX, 1, 0, 0},
        {{"250-mx", "250 SIZE abc"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250 SIZE 12x"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250 SIZE -1"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250 SIZE +1"}, 0, EHLO_SIZE, 0, 1, 0, 0},
        {{"250-mx", "250-SIZE 100", "250 size 200"}, 0, EHLO_SIZE, 100, 2, 0, 0},
        {{"250-SIZE 100", "250 8BITMIME"}, 0, EHLO_8BITMIME, 0, 1, 0, 0},
        /* not a 2xx / not complete */
        {{"550 5.7.1 go away"}, -1, 0, 0, 0, 0, 0},
        {{"421-mx", "421 STARTTLS"}, -1, 0, 0, 0, 0, 0},
        {{"250-mx", "250-STARTTLS"}, -1, 0, 0, 0, 0, 0},
};

static void
test_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
		struct ehlo_caps c;
		int rc;

		feed(&reply, parse[i].lines);
		memset(&c, 0xa5, sizeof(c));
		rc = ehlo_parse(&reply, &c);
		if (rc != parse[i].rc || c.caps != parse[i].caps)
			fail_msg("case %zu: rc %d caps %#x, want %d %#x", i, rc, c.caps,
			         parse[i].rc, parse[i].caps);
		assert_int_equal(c.size_max, parse[i].size_max);
		assert_int_equal(c.nkeywords, parse[i].nkeywords);
		assert_int_equal(c.nmalformed, parse[i].nmalformed);
		assert_int_equal(c.nempty, parse[i].nempty);
		if (rc == 0)
			assert_int_equal(c.nkeywords + c.nmalformed + c.nempty, reply.nlines - 1);
	}
}

/* A 300-line EHLO reply never parses: the assembler stops at the limit. */
static void
test_parse_huge(void **state)
{
	struct ehlo_caps c;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	int i;

	(void)state;
	smtp_reply_init(&reply, 0);
	st = smtp_reply_feed(&reply, "250-mx", 6);
	for (i = 0; i < 298 && st == SMTP_REPLY_MORE; i++)
		st = smtp_reply_feed(&reply, "250-STARTTLS", 12);
	assert_int_equal(st, SMTP_REPLY_ERR_TOOMANY);
	assert_int_equal(ehlo_parse(&reply, &c), -1);
	assert_int_equal(c.caps, 0);

	/* 256 lines exactly: fine */
	smtp_reply_init(&reply, 0);
	smtp_reply_feed(&reply, "250-mx", 6);
	for (i = 0; i < SMTP_REPLY_MAXLINES - 2; i++)
		assert_int_equal(smtp_reply_feed(&reply, "250-PIPELINING", 14), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&reply, "250 STARTTLS", 12), SMTP_REPLY_DONE);
	assert_int_equal(ehlo_parse(&reply, &c), 0);
	assert_int_equal(c.caps, EHLO_PIPELINING | EHLO_STARTTLS);
	assert_int_equal(c.nkeywords, SMTP_REPLY_MAXLINES - 1);
}

/* ---- filter -------------------------------------------------------------- */

static const struct {
	const char *lines[MAXSEQ];
	uint32_t drop;
	int add_starttls;
	const char *wire; /* NULL: ehlo_filter fails */
} filter[] = {
        {{"250-mx.example.com", "250-PIPELINING", "250-STARTTLS", "250-XCLIENT NAME ADDR",
          "250 8BITMIME"},
         EHLO_STARTTLS | EHLO_XCLIENT,
         0,
         "250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n"},
        /* the dropped line was the last one */
        {{"250-mx", "250-PIPELINING", "250 STARTTLS"},
         EHLO_STARTTLS,
         0,
         "250-mx\r\n250 PIPELINING\r\n"},
        /* everything dropped: the greeting remains, now last */
        {{"250-mx", "250-STARTTLS", "250 starttls"}, EHLO_STARTTLS, 0, "250 mx\r\n"},
        /* single-line replies */
        {{"250 mx"}, 0, 0, "250 mx\r\n"},
        {{"250 mx"}, EHLO_STARTTLS, 1, "250-mx\r\n250 STARTTLS\r\n"},
        {{"250"}, 0, 0, "250\r\n"},
        {{"250"}, 0, 1, "250-\r\n250 STARTTLS\r\n"},
        /* STARTTLS added: the server's own goes, ours comes last */
        {{"250-mx", "250-STARTTLS", "250 SIZE 100"},
         0,
         1,
         "250-mx\r\n250-SIZE 100\r\n250 STARTTLS\r\n"},
        /* the greeting is text: it stays even if it reads "STARTTLS" */
        {{"250-STARTTLS", "250 SIZE"}, EHLO_STARTTLS, 0, "250-STARTTLS\r\n250 SIZE\r\n"},
        /* case-insensitive dropping */
        {{"250-mx", "250-starttls", "250-StartTls", "250 DSN"},
         EHLO_STARTTLS,
         0,
         "250-mx\r\n250 DSN\r\n"},
        /* empty capability lines never pass */
        {{"250-mx", "250-", "250-DSN", "250 "}, 0, 0, "250-mx\r\n250 DSN\r\n"},
        {{"250-mx", "250-DSN", "250"}, 0, 0, "250-mx\r\n250 DSN\r\n"},
        /* malformed and unknown keywords go with EHLO_UNKNOWN */
        {{"250-mx", "250-X=1", "250-FOO", "250- STARTTLS", "250-DSN", "250 BAR"},
         EHLO_UNKNOWN,
         0,
         "250-mx\r\n250 DSN\r\n"},
        {{"250-mx", "250-FOO", "250- STARTTLS", "250 DSN"},
         EHLO_UNKNOWN,
         0,
         "250-mx\r\n250 DSN\r\n"},
        {{"250-mx", "250-FOO", "250 DSN"}, 0, 0, "250-mx\r\n250-FOO\r\n250 DSN\r\n"},
        /* X* keywords all go with EHLO_XCLIENT; XFORWARD has its own bit */
        {{"250-mx", "250-XEXCH50", "250-XXXXXXXA", "250-XFORWARD NAME", "250 DSN"},
         EHLO_XCLIENT,
         0,
         "250-mx\r\n250-XFORWARD NAME\r\n250 DSN\r\n"},
        /* AUTH in both forms */
        {{"250-mx", "250-AUTH LOGIN", "250-AUTH=LOGIN", "250 DSN"},
         EHLO_AUTH,
         0,
         "250-mx\r\n250 DSN\r\n"},
        /* parameters and spacing are passed unchanged */
        {{"250-mx  hello  ", "250 SIZE  100 "}, 0, 0, "250-mx  hello  \r\n250 SIZE  100 \r\n"},
        /* not a complete 2xx reply */
        {{"550 no"}, 0, 0, NULL},
        {{"250-mx"}, 0, 0, NULL},
};

static void
test_filter(void **state)
{
	char out[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(filter) / sizeof(filter[0]); i++) {
		long n;
		size_t want, k;
		struct ehlo_caps c;

		feed(&reply, filter[i].lines);
		memset(out, 'Z', sizeof(out));
		n = ehlo_filter(&reply, filter[i].drop, filter[i].add_starttls, out, sizeof(out));
		if (filter[i].wire == NULL) {
			assert_int_equal(n, -1);
			continue;
		}
		want = strlen(filter[i].wire);
		if (n != (long)want || memcmp(out, filter[i].wire, want) != 0)
			fail_msg("case %zu: got %ld \"%.*s\"", i, n, n > 0 ? (int)n : 0, out);
		assert_int_equal(out[want], '\0');

		/* the output is a valid reply without the dropped keywords */
		assert_int_equal(feed_wire(&reply2, out, want), SMTP_REPLY_DONE);
		assert_int_equal(reply2.code, reply.code);
		assert_int_equal(ehlo_parse(&reply2, &c), 0);
		assert_int_equal(c.caps & filter[i].drop & ~(uint32_t)EHLO_STARTTLS, 0);
		if (filter[i].add_starttls)
			assert_true(c.caps & EHLO_STARTTLS);
		else
			assert_int_equal(c.caps & filter[i].drop, 0);
		assert_int_equal(c.nempty, 0);

		/* any shorter buffer fails; the exact size works */
		for (k = 0; k < want; k++)
			assert_int_equal(
			        ehlo_filter(&reply, filter[i].drop, filter[i].add_starttls, out, k),
			        -1);
		memset(out, 'Z', sizeof(out));
		assert_int_equal(
		        ehlo_filter(&reply, filter[i].drop, filter[i].add_starttls, out, want),
		        (long)want);
		assert_memory_equal(out, filter[i].wire, want);
		assert_int_equal(out[want], 'Z');
	}
	feed(&reply, (const char *const[]){"250 mx", NULL});
	assert_int_equal(ehlo_filter(&reply, 0, 0, NULL, 100), -1);
}

/* STARTTLS appended to a full reply: 256 lines in, 257 out. */
static void
test_filter_full(void **state)
{
	static char out[sizeof(reply.buf) + 4 * SMTP_REPLY_MAXLINES + 64];
	long n;
	int i;

	(void)state;
	smtp_reply_init(&reply, 0);
	smtp_reply_feed(&reply, "250-mx", 6);
	for (i = 0; i < SMTP_REPLY_MAXLINES - 2; i++)
		smtp_reply_feed(&reply, "250-DSN", 7);
	assert_int_equal(smtp_reply_feed(&reply, "250 DSN", 7), SMTP_REPLY_DONE);
	n = ehlo_filter(&reply, 0, 1, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, 8 + (SMTP_REPLY_MAXLINES - 1) * 9 + 14);
	assert_memory_equal(out + n - 23, "250-DSN\r\n250 STARTTLS\r\n", 23);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_keyword_cap), cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_parse_huge),  cmocka_unit_test(test_filter),
	        cmocka_unit_test(test_filter_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
