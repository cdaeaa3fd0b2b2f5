/*
 * test_smtp_reply: table-driven tests of the SMTP reply assembler
 * (proxy/smtp_reply.c): line syntax, multiline rules, limits, accessors,
 * RFC 3463 enhanced status codes, serialisation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

/* A string literal with its length, so that tables can hold NUL bytes. */
#define S(lit)                                                                                     \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

struct bytes {
	const char *s;
	size_t len;
};

static struct smtp_reply reply; /* ~22 KiB: keep it off the stack */

/* ---- one line ---------------------------------------------------------- */

static const struct {
	struct bytes line;
	enum smtp_reply_status st;
	int code;
} one_line[] = {
        /* permit */
        {S("220 mx.example.com ESMTP"), SMTP_REPLY_DONE, 220},
        {S("250 ok"), SMTP_REPLY_DONE, 250},
        {S("250"), SMTP_REPLY_DONE, 250}, /* bare code: last line */
        {S("250 "), SMTP_REPLY_DONE, 250},
        {S("250-"), SMTP_REPLY_MORE, 250}, /* empty continuation */
        {S("250-mx.example.com"), SMTP_REPLY_MORE, 250},
        {S("354 go ahead"), SMTP_REPLY_DONE, 354},
        {S("421 4.3.2 shutting down"), SMTP_REPLY_DONE, 421},
        {S("559 x"), SMTP_REPLY_DONE, 559},
        {S("200 x"), SMTP_REPLY_DONE, 200},
        {S("250 tab\there"), SMTP_REPLY_DONE, 250},
        {S("250 \xc3\xa9t\xc3\xa9 8-bit text"), SMTP_REPLY_DONE, 250},
        {S("250  two spaces"), SMTP_REPLY_DONE, 250},
        {S("250 -dash text"), SMTP_REPLY_DONE, 250},
        /* reject: code */
        {S(""), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("2"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("25"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("25x ok"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("abc ok"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("150 x"), SMTP_REPLY_ERR_SYNTAX, 0}, /* 1xx is not SMTP */
        {S("099 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("650 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("999 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("260 x"), SMTP_REPLY_ERR_SYNTAX, 0}, /* second digit 0..5 */
        {S("2a0 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S(" 250 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("+250 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        /* reject: separator */
        {S("2500 x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250\tx"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250_x"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250:x"), SMTP_REPLY_ERR_SYNTAX, 0},
        /* reject: smuggled line ends and NUL */
        {S("250 a\0b"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250\0"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250-a\rb"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250 a\nb"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250 ok\r"), SMTP_REPLY_ERR_SYNTAX, 0},
        {S("250 ok\r\n250 injected"), SMTP_REPLY_ERR_SYNTAX, 0},
};

static void
test_one_line(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(one_line) / sizeof(one_line[0]); i++) {
		enum smtp_reply_status st;
		int ok = one_line[i].st == SMTP_REPLY_MORE || one_line[i].st == SMTP_REPLY_DONE;
		const char *l;
		size_t len;

		smtp_reply_init(&reply, 0);
		st = smtp_reply_feed(&reply, one_line[i].line.s, one_line[i].line.len);
		if (st != one_line[i].st)
			fail_msg("case %zu: got %s, want %s", i, smtp_reply_strstatus(st),
			         smtp_reply_strstatus(one_line[i].st));
		assert_int_equal(reply.code, one_line[i].code);
		assert_int_equal(reply.nlines, ok ? 1 : 0);
		assert_int_equal(reply.done, one_line[i].st == SMTP_REPLY_DONE);
		if (!ok)
			continue;
		l = smtp_reply_line(&reply, 0, &len);
		assert_non_null(l);
		assert_int_equal(len, one_line[i].line.len);
		assert_memory_equal(l, one_line[i].line.s, len);
		assert_int_equal(l[len], '\0');
	}
}

/* ---- line lengths ------------------------------------------------------ */

static void
test_line_length(void **state)
{
	static char big[1 << 20];

	(void)state;
	memset(big, 'x', sizeof(big));
	memcpy(big, "250 ", 4);

	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_feed(&reply, big, SMTP_REPLY_MAXLINE), SMTP_REPLY_DONE);

	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_feed(&reply, big, SMTP_REPLY_MAXLINE + 1),
	                 SMTP_REPLY_ERR_TOOLONG);
	assert_int_equal(reply.nlines, 0);

	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_feed(&reply, big, sizeof(big)), SMTP_REPLY_ERR_TOOLONG);

	/* Many maximal lines exhaust the buffer before the line limit. */
	big[3] = '-';
	smtp_reply_init(&reply, 0);
	{
		enum smtp_reply_status st;
		int n = 0;

		while ((st = smtp_reply_feed(&reply, big, SMTP_REPLY_MAXLINE)) == SMTP_REPLY_MORE)
			n++;
		assert_int_equal(st, SMTP_REPLY_ERR_TOOLONG);
		assert_int_equal(n, (int)(sizeof(reply.buf) / (SMTP_REPLY_MAXLINE + 1)));
		assert_true(reply.used <= sizeof(reply.buf));
	}
}

/* ---- multiline replies --------------------------------------------------- */

#define MAXSEQ 6

static const struct {
	int maxlines;
	const char *lines[MAXSEQ]; /* NULL-terminated */
	enum smtp_reply_status st; /* status of the last line fed */
	int nlines;                /* stored lines at the end */
	int code;
} multi[] = {
        {0, {"250-mx.example.com", "250-PIPELINING", "250 8BITMIME"}, SMTP_REPLY_DONE, 3, 250},
        {0, {"250-a", "250"}, SMTP_REPLY_DONE, 2, 250},
        {0, {"250-", "250-", "250 x"}, SMTP_REPLY_DONE, 3, 250},
        {0, {"250-a", "250-b"}, SMTP_REPLY_MORE, 2, 250},
        /* the code changes mid-reply */
        {0, {"250-a", "251 b"}, SMTP_REPLY_ERR_CODE, 1, 250},
        {0, {"250-a", "550-b", "550 c"}, SMTP_REPLY_ERR_CODE, 1, 250},
        {0, {"220-a", "250 b"}, SMTP_REPLY_ERR_CODE, 1, 220},
        {0, {"250-a", "250-b", "25 c"}, SMTP_REPLY_ERR_SYNTAX, 2, 250},
        {0, {"250-a", "250+b"}, SMTP_REPLY_ERR_SYNTAX, 1, 250},
        /* limits */
        {1, {"250 a"}, SMTP_REPLY_DONE, 1, 250},
        {1, {"250-a"}, SMTP_REPLY_ERR_TOOMANY, 0, 0},
        {2, {"250-a", "250 b"}, SMTP_REPLY_DONE, 2, 250},
        {2, {"250-a", "250-b"}, SMTP_REPLY_ERR_TOOMANY, 1, 250},
        {3, {"250-a", "250-b", "250-c"}, SMTP_REPLY_ERR_TOOMANY, 2, 250},
        {-5, {"250-a", "250 b"}, SMTP_REPLY_DONE, 2, 250},
        {100000, {"250-a", "250 b"}, SMTP_REPLY_DONE, 2, 250},
        /* sticky errors: a good line after an error is refused too */
        {0, {"250-a", "251-b", "250 c"}, SMTP_REPLY_ERR_CODE, 1, 250},
        {0, {"xyz", "250 c"}, SMTP_REPLY_ERR_SYNTAX, 0, 0},
        {1, {"250-a", "250 c"}, SMTP_REPLY_ERR_TOOMANY, 0, 0},
        /* a line after the last: refused, the reply stays complete */
        {0, {"250 a", "250 b"}, SMTP_REPLY_ERR_SYNTAX, 1, 250},
};

static void
test_multiline(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		enum smtp_reply_status st = SMTP_REPLY_MORE;
		int j;

		smtp_reply_init(&reply, multi[i].maxlines);
		for (j = 0; j < MAXSEQ && multi[i].lines[j] != NULL; j++)
			st = smtp_reply_feed(&reply, multi[i].lines[j], strlen(multi[i].lines[j]));
		if (st != multi[i].st)
			fail_msg("case %zu: got %s, want %s", i, smtp_reply_strstatus(st),
			         smtp_reply_strstatus(multi[i].st));
		assert_int_equal(reply.nlines, multi[i].nlines);
		assert_int_equal(reply.code, multi[i].code);
		for (j = 0; j < reply.nlines; j++) {
			size_t len;
			const char *l = smtp_reply_line(&reply, j, &len);

			assert_non_null(l);
			assert_string_equal(l, multi[i].lines[j]);
		}
	}
}

static void
test_sticky_after_done(void **state)
{
	(void)state;
	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_feed(&reply, "250 ok", 6), SMTP_REPLY_DONE);
	assert_int_equal(smtp_reply_feed(&reply, "250 more", 8), SMTP_REPLY_ERR_SYNTAX);
	assert_int_equal(reply.done, 1);
	assert_int_equal(reply.nlines, 1);
	assert_int_equal(reply.err, 0);
	/* init makes it usable again */
	smtp_reply_init(&reply, 0);
	assert_int_equal(reply.nlines, 0);
	assert_int_equal(reply.code, 0);
	assert_int_equal(smtp_reply_feed(&reply, "554 no", 6), SMTP_REPLY_DONE);
	assert_int_equal(smtp_reply_class(&reply), 5);
}

/* A reply of n lines: n - 1 continuations, then a last line. */
static enum smtp_reply_status
feed_n(int maxlines, int n, int *accepted)
{
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	char line[32];
	int i;

	smtp_reply_init(&reply, maxlines);
	*accepted = 0;
	for (i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "250%cline%d", i == n - 1 ? ' ' : '-', i);

		st = smtp_reply_feed(&reply, line, (size_t)len);
		if (st != SMTP_REPLY_MORE && st != SMTP_REPLY_DONE)
			break;
		(*accepted)++;
	}
	return st;
}

static void
test_line_count(void **state)
{
	static const struct {
		int maxlines, n;
		enum smtp_reply_status st;
		int accepted;
	} t[] = {
	        {0, 1, SMTP_REPLY_DONE, 1},
	        {0, SMTP_REPLY_MAXLINES, SMTP_REPLY_DONE, SMTP_REPLY_MAXLINES},
	        /* 300 lines: the 256th is a continuation that cannot complete */
	        {0, 300, SMTP_REPLY_ERR_TOOMANY, SMTP_REPLY_MAXLINES - 1},
	        {0, SMTP_REPLY_MAXLINES + 1, SMTP_REPLY_ERR_TOOMANY, SMTP_REPLY_MAXLINES - 1},
	        {10, 10, SMTP_REPLY_DONE, 10},
	        {10, 11, SMTP_REPLY_ERR_TOOMANY, 9},
	        {10, 300, SMTP_REPLY_ERR_TOOMANY, 9},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int accepted;
		enum smtp_reply_status st = feed_n(t[i].maxlines, t[i].n, &accepted);

		if (st != t[i].st || accepted != t[i].accepted)
			fail_msg("case %zu: got %s after %d lines, want %s after %d", i,
			         smtp_reply_strstatus(st), accepted, smtp_reply_strstatus(t[i].st),
			         t[i].accepted);
	}
}

/* ---- accessors ------------------------------------------------------------ */

static void
test_accessors(void **state)
{
	static const char *lines[] = {"250-mx.example.com hi", "250-", "250-SIZE 100", "250"};
	static const char *texts[] = {"mx.example.com hi", "", "SIZE 100", ""};
	size_t len, i;
	const char *t;

	(void)state;
	smtp_reply_init(&reply, 0);
	for (i = 0; i < 4; i++)
		smtp_reply_feed(&reply, lines[i], strlen(lines[i]));
	assert_true(reply.done);
	assert_int_equal(reply.nlines, 4);
	for (i = 0; i < 4; i++) {
		t = smtp_reply_text(&reply, (int)i, &len);
		assert_non_null(t);
		assert_int_equal(len, strlen(texts[i]));
		assert_memory_equal(t, texts[i], len);
		assert_int_equal(t[len], '\0');
		t = smtp_reply_line(&reply, (int)i, &len);
		assert_string_equal(t, lines[i]);
		assert_int_equal(len, strlen(lines[i]));
	}
	assert_null(smtp_reply_line(&reply, 4, &len));
	assert_null(smtp_reply_line(&reply, -1, &len));
	assert_null(smtp_reply_text(&reply, 4, &len));
	assert_null(smtp_reply_text(&reply, -1, &len));
	assert_non_null(smtp_reply_line(&reply, 0, NULL));
	assert_non_null(smtp_reply_text(&reply, 0, NULL));

	smtp_reply_init(&reply, 0);
	assert_null(smtp_reply_line(&reply, 0, &len));
}

/* ---- enhanced status codes ---------------------------------------------- */

static const struct {
	const char *first; /* first line of the reply */
	int rc;
	const char *esc;
} enhanced[] = {
        {"250 2.1.0 Ok", 0, "2.1.0"},
        {"550 5.7.1 Relaying denied", 0, "5.7.1"},
        {"550 5.7.1", 0, "5.7.1"},
        {"451 4.3.0", 0, "4.3.0"},
        {"250-2.0.0 first line of many", 0, "2.0.0"},
        {"250 2.100.999 max digits", 0, "2.100.999"},
        {"250 2.0.00 leading zero", 0, "2.0.00"},
        {"250 3.1.0 bad class", -1, NULL},
        {"250 1.1.0 bad class", -1, NULL},
        {"250 2.1000.0 subject too long", -1, NULL},
        {"250 2.1.1000 detail too long", -1, NULL},
        {"250 2..0 empty subject", -1, NULL},
        {"250 2.1. empty detail", -1, NULL},
        {"250 2.1.", -1, NULL},
        {"250 2.1", -1, NULL},
        {"250 2.", -1, NULL},
        {"250 2", -1, NULL},
        {"250 2.1.0x", -1, NULL},
        {"250 2.1.0.1 four parts", -1, NULL},
        {"250 2.1.0\tTab", -1, NULL},
        {"250 22.1.0", -1, NULL},
        {"250 .2.1.0", -1, NULL},
        {"250  2.1.0 leading space", -1, NULL},
        {"250 x2.1.0", -1, NULL},
        {"250 2,1,0", -1, NULL},
        {"250", -1, NULL},
        {"250 ", -1, NULL},
        {"250 Ok", -1, NULL},
};

static void
test_enhanced(void **state)
{
	size_t i;
	char out[32];

	(void)state;
	for (i = 0; i < sizeof(enhanced) / sizeof(enhanced[0]); i++) {
		int rc;

		smtp_reply_init(&reply, 0);
		smtp_reply_feed(&reply, enhanced[i].first, strlen(enhanced[i].first));
		memset(out, 'Z', sizeof(out));
		rc = smtp_reply_enhanced(&reply, out, sizeof(out));
		if (rc != enhanced[i].rc)
			fail_msg("case %zu (%s): rc %d", i, enhanced[i].first, rc);
		if (rc == 0)
			assert_string_equal(out, enhanced[i].esc);
	}
	/* out too small for code + NUL */
	smtp_reply_init(&reply, 0);
	smtp_reply_feed(&reply, "250 2.1.0 Ok", 12);
	assert_int_equal(smtp_reply_enhanced(&reply, out, 5), -1);
	assert_int_equal(smtp_reply_enhanced(&reply, out, 6), 0);
	assert_string_equal(out, "2.1.0");
	assert_int_equal(smtp_reply_enhanced(&reply, NULL, 0), -1);
	/* only the first line counts */
	smtp_reply_init(&reply, 0);
	smtp_reply_feed(&reply, "250-hello", 9);
	smtp_reply_feed(&reply, "250 2.1.0 Ok", 12);
	assert_int_equal(smtp_reply_enhanced(&reply, out, sizeof(out)), -1);
	/* empty reply */
	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_enhanced(&reply, out, sizeof(out)), -1);
}

/* ---- serialisation ------------------------------------------------------ */

static void
test_serialize(void **state)
{
	static const struct {
		const char *lines[MAXSEQ];
		const char *wire;
	} t[] = {
	        {{"250 ok"}, "250 ok\r\n"},
	        {{"250"}, "250\r\n"},
	        {{"250-a", "250-", "250 c"}, "250-a\r\n250-\r\n250 c\r\n"},
	        {{"421-4.3.2 bye", "421 4.3.2 now"}, "421-4.3.2 bye\r\n421 4.3.2 now\r\n"},
	};
	char out[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t want = strlen(t[i].wire), n;
		int j;

		smtp_reply_init(&reply, 0);
		for (j = 0; j < MAXSEQ && t[i].lines[j] != NULL; j++)
			smtp_reply_feed(&reply, t[i].lines[j], strlen(t[i].lines[j]));
		assert_int_equal(smtp_reply_serialize(&reply, out, sizeof(out)), (long)want);
		assert_string_equal(out, t[i].wire);
		/* every size short of the whole fails; the exact size works */
		for (n = 0; n < want; n++)
			assert_int_equal(smtp_reply_serialize(&reply, out, n), -1);
		memset(out, 'Z', sizeof(out));
		assert_int_equal(smtp_reply_serialize(&reply, out, want), (long)want);
		assert_memory_equal(out, t[i].wire, want);
		assert_int_equal(out[want], 'Z');
	}
	smtp_reply_init(&reply, 0);
	assert_int_equal(smtp_reply_serialize(&reply, out, sizeof(out)), 0);
}

static void
test_strstatus(void **state)
{
	static const enum smtp_reply_status all[] = {
	        SMTP_REPLY_MORE,     SMTP_REPLY_DONE,        SMTP_REPLY_ERR_SYNTAX,
	        SMTP_REPLY_ERR_CODE, SMTP_REPLY_ERR_TOOMANY, SMTP_REPLY_ERR_TOOLONG,
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_non_null(smtp_reply_strstatus(all[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(smtp_reply_strstatus(all[i]),
			                        smtp_reply_strstatus(all[j]));
	}
	assert_string_equal(smtp_reply_strstatus((enum smtp_reply_status)99), "unknown status");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_one_line),   cmocka_unit_test(test_line_length),
	        cmocka_unit_test(test_multiline),  cmocka_unit_test(test_sticky_after_done),
	        cmocka_unit_test(test_line_count), cmocka_unit_test(test_accessors),
	        cmocka_unit_test(test_enhanced),   cmocka_unit_test(test_serialize),
	        cmocka_unit_test(test_strstatus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
