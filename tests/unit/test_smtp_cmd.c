/*
 * test_smtp_cmd: table-driven tests of SMTP command lines and of
 * MAIL FROM / RCPT TO paths (proxy/smtp_cmd.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_cmd.h"

/* A string literal with its length, so that tables can hold NUL bytes. */
#define S(lit)                                                                                     \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

struct bytes {
	const char *s;
	size_t len;
};

/* ---- command lines --------------------------------------------------------- */

static const struct {
	struct bytes line;
	int rc;
	enum smtp_verb verb;
	const char *arg; /* expected argument when rc == 0 */
} cmds[] = {
        {S("EHLO client.example"), 0, SMTP_CMD_EHLO, "client.example"},
        {S("ehlo client.example"), 0, SMTP_CMD_EHLO, "client.example"},
        {S("HeLo client"), 0, SMTP_CMD_HELO, "client"},
        {S("EHLO  two.spaces"), 0, SMTP_CMD_EHLO, " two.spaces"},
        {S("EHLO [192.0.2.1]"), 0, SMTP_CMD_EHLO, "[192.0.2.1]"},
        {S("EHLO"), -1, SMTP_CMD_EHLO, NULL},
        {S("EHLO "), -1, SMTP_CMD_EHLO, NULL},
        {S("HELO   "), -1, SMTP_CMD_HELO, NULL},
        {S("MAIL FROM:<a@b.example>"), 0, SMTP_CMD_MAIL, "<a@b.example>"},
        {S("mail from:<a@b.example>"), 0, SMTP_CMD_MAIL, "<a@b.example>"},
        {S("Mail From: <a@b.example> SIZE=10"), 0, SMTP_CMD_MAIL, "<a@b.example> SIZE=10"},
        {S("MAIL FROM:   <>"), 0, SMTP_CMD_MAIL, "<>"},
        {S("MAIL FROM:a@b"), 0, SMTP_CMD_MAIL, "a@b"},
        {S("MAIL FROM <a@b>"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL FROM"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL TO:<a@b>"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL  FROM:<a@b>"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL FROM:"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL FROM:   "), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL"), -1, SMTP_CMD_MAIL, NULL},
        {S("MAIL "), -1, SMTP_CMD_MAIL, NULL},
        {S("MAILFROM:<a@b>"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("MAIL:FROM:<a@b>"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("RCPT TO:<a@b.example>"), 0, SMTP_CMD_RCPT, "<a@b.example>"},
        {S("rcpt to: <a@b.example> NOTIFY=NEVER"), 0, SMTP_CMD_RCPT, "<a@b.example> NOTIFY=NEVER"},
        {S("RCPT TO:<a@b.example>\0"), -1, SMTP_CMD_RCPT, NULL},
        {S("RCPT FROM:<a@b>"), -1, SMTP_CMD_RCPT, NULL},
        {S("RCPT TO<a@b>"), -1, SMTP_CMD_RCPT, NULL},
        {S("RCPT"), -1, SMTP_CMD_RCPT, NULL},
        {S("DATA"), 0, SMTP_CMD_DATA, ""},
        {S("data"), 0, SMTP_CMD_DATA, ""},
        {S("DATA  "), 0, SMTP_CMD_DATA, ""},
        {S("DATA x"), -1, SMTP_CMD_DATA, NULL},
        {S("RSET"), 0, SMTP_CMD_RSET, ""},
        {S("RSET now"), -1, SMTP_CMD_RSET, NULL},
        {S("QUIT"), 0, SMTP_CMD_QUIT, ""},
        {S("QUIT bye"), -1, SMTP_CMD_QUIT, NULL},
        {S("STARTTLS"), 0, SMTP_CMD_STARTTLS, ""},
        {S("starttls"), 0, SMTP_CMD_STARTTLS, ""},
        {S("STARTTLS "), 0, SMTP_CMD_STARTTLS, ""},
        {S("STARTTLS x"), -1, SMTP_CMD_STARTTLS, NULL},
        {S("STARTTLSX"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("STARTTLS\r"), -1, SMTP_CMD_UNKNOWN, NULL}, /* CR right after the verb */
        {S("STARTTLS \r\nRSET"), -1, SMTP_CMD_STARTTLS, NULL},
        {S("NOOP"), 0, SMTP_CMD_NOOP, ""},
        {S("NOOP hello there"), 0, SMTP_CMD_NOOP, "hello there"},
        {S("HELP"), 0, SMTP_CMD_HELP, ""},
        {S("HELP MAIL"), 0, SMTP_CMD_HELP, "MAIL"},
        {S("VRFY user"), 0, SMTP_CMD_VRFY, "user"},
        {S("VRFY"), -1, SMTP_CMD_VRFY, NULL},
        {S("EXPN list"), 0, SMTP_CMD_EXPN, "list"},
        {S("BDAT 1000 LAST"), 0, SMTP_CMD_BDAT, "1000 LAST"},
        {S("BDAT"), -1, SMTP_CMD_BDAT, NULL},
        {S("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q="), 0, SMTP_CMD_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q="},
        {S("AUTH"), -1, SMTP_CMD_AUTH, NULL},
        {S("ETRN example.com"), 0, SMTP_CMD_ETRN, "example.com"},
        {S("XCLIENT ADDR=192.0.2.1"), 0, SMTP_CMD_XCLIENT, "ADDR=192.0.2.1"},
        {S("XFORWARD NAME=x"), 0, SMTP_CMD_XFORWARD, "NAME=x"},
        {S("xforward NAME=x"), 0, SMTP_CMD_XFORWARD, "NAME=x"},
        /* not commands */
        {S(""), -1, SMTP_CMD_UNKNOWN, NULL},
        {S(" "), -1, SMTP_CMD_UNKNOWN, NULL},
        {S(" EHLO x"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("EHLO\tx"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("EHLOx"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("EHL"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("FOO bar"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("GET / HTTP/1.1"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("MAIL\0FROM:<a@b>"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("\0EHLO x"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("12345"), -1, SMTP_CMD_UNKNOWN, NULL},
        {S("\xc3\x89HLO x"), -1, SMTP_CMD_UNKNOWN, NULL},
        /* line ends and NUL inside the line */
        {S("EHLO a\0b"), -1, SMTP_CMD_EHLO, NULL},
        {S("RCPT TO:<a@b>\nDATA"), -1, SMTP_CMD_RCPT, NULL},
        {S("MAIL FROM:<a@b>\r"), -1, SMTP_CMD_MAIL, NULL},
        {S("NOOP \n"), -1, SMTP_CMD_NOOP, NULL},
};

static void
test_cmd_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct smtp_cmd c;
		int rc = smtp_cmd_parse(cmds[i].line.s, cmds[i].line.len, &c);

		if (rc != cmds[i].rc || c.verb != cmds[i].verb)
			fail_msg("case %zu (%s): rc %d verb %s, want %d %s", i, cmds[i].line.s, rc,
			         smtp_cmd_name(c.verb), cmds[i].rc, smtp_cmd_name(cmds[i].verb));
		if (rc != 0)
			continue;
		assert_true(c.arg >= cmds[i].line.s);
		assert_true(c.arg + c.arglen <= cmds[i].line.s + cmds[i].line.len);
		assert_int_equal(c.arglen, strlen(cmds[i].arg));
		assert_memory_equal(c.arg, cmds[i].arg, c.arglen);
	}
}

static void
test_cmd_huge(void **state)
{
	static char line[1 << 20];
	struct smtp_cmd c;

	(void)state;
	memset(line, 'A', sizeof(line));
	assert_int_equal(smtp_cmd_parse(line, sizeof(line), &c), -1);
	assert_int_equal(c.verb, SMTP_CMD_UNKNOWN);
	memcpy(line, "NOOP ", 5);
	assert_int_equal(smtp_cmd_parse(line, sizeof(line), &c), 0);
	assert_int_equal(c.verb, SMTP_CMD_NOOP);
	assert_int_equal(c.arglen, sizeof(line) - 5);
	assert_int_equal(smtp_cmd_parse(NULL, 0, &c), -1);
	assert_int_equal(c.verb, SMTP_CMD_UNKNOWN);
}

static void
test_cmd_name(void **state)
{
	static const struct {
		enum smtp_verb verb;
		const char *name;
	} t[] = {
	        {SMTP_CMD_UNKNOWN, "UNKNOWN"},    {SMTP_CMD_EHLO, "EHLO"},
	        {SMTP_CMD_HELO, "HELO"},          {SMTP_CMD_MAIL, "MAIL"},
	        {SMTP_CMD_RCPT, "RCPT"},          {SMTP_CMD_DATA, "DATA"},
	        {SMTP_CMD_BDAT, "BDAT"},          {SMTP_CMD_RSET, "RSET"},
	        {SMTP_CMD_NOOP, "NOOP"},          {SMTP_CMD_QUIT, "QUIT"},
	        {SMTP_CMD_VRFY, "VRFY"},          {SMTP_CMD_EXPN, "EXPN"},
	        {SMTP_CMD_HELP, "HELP"},          {SMTP_CMD_STARTTLS, "STARTTLS"},
	        {SMTP_CMD_AUTH, "AUTH"},          {SMTP_CMD_ETRN, "ETRN"},
	        {SMTP_CMD_XCLIENT, "XCLIENT"},    {SMTP_CMD_XFORWARD, "XFORWARD"},
	        {(enum smtp_verb)999, "UNKNOWN"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_cmd c;

		assert_string_equal(smtp_cmd_name(t[i].verb), t[i].name);
		/* every name parses back to its verb */
		if (t[i].verb != SMTP_CMD_UNKNOWN && t[i].verb != (enum smtp_verb)999) {
			smtp_cmd_parse(t[i].name, strlen(t[i].name), &c);
			assert_int_equal(c.verb, t[i].verb);
		}
	}
}

/* ---- paths ---------------------------------------------------------------- */

static const struct {
	struct bytes arg;
	int null_path, addr_literal;
	const char *mailbox, *domain, *params;
} path_ok[] = {
        {S("<a@b.example>"), 0, 0, "a@b.example", "b.example", NULL},
        {S("<>"), 1, 0, "", "", NULL},
        {S("<> SIZE=100"), 1, 0, "", "", "SIZE=100"},
        {S("<> BODY=8BITMIME SIZE=1"), 1, 0, "", "", "BODY=8BITMIME SIZE=1"},
        {S("<User@Example.COM.>"), 0, 0, "User@example.com", "example.com", NULL},
        {S("<u@EXAMPLE.com>"), 0, 0, "u@example.com", "example.com", NULL},
        {S("<@a.example,@b.example:u@d.example>"), 0, 0, "u@d.example", "d.example", NULL},
        {S("<@a.example:u@d.example>"), 0, 0, "u@d.example", "d.example", NULL},
        {S("<\"a\\\"b\"@d.example>"), 0, 0, "\"a\\\"b\"@d.example", "d.example", NULL},
        {S("<\"a@b\"@d.example>"), 0, 0, "\"a@b\"@d.example", "d.example", NULL},
        {S("<\"a b\"@d.example>"), 0, 0, "\"a b\"@d.example", "d.example", NULL},
        {S("<\"a>b\"@d.example>"), 0, 0, "\"a>b\"@d.example", "d.example", NULL},
        {S("<\"\\\\\"@d.example>"), 0, 0, "\"\\\\\"@d.example", "d.example", NULL},
        {S("<u@[192.0.2.1]>"), 0, 1, "u@[192.0.2.1]", "192.0.2.1", NULL},
        {S("<u@[0.0.0.0]>"), 0, 1, "u@[0.0.0.0]", "0.0.0.0", NULL},
        {S("<u@[IPv6:2001:DB8::1]>"), 0, 1, "u@[ipv6:2001:db8::1]", "ipv6:2001:db8::1", NULL},
        {S("<u@[IPv6:::ffff:192.0.2.1]>"), 0, 1, "u@[ipv6:::ffff:192.0.2.1]",
         "ipv6:::ffff:192.0.2.1", NULL},
        {S("u@d.example"), 0, 0, "u@d.example", "d.example", NULL},
        {S("u@d.example SIZE=1 BODY=8BITMIME"), 0, 0, "u@d.example", "d.example",
         "SIZE=1 BODY=8BITMIME"},
        {S("\"q x\"@d.example SIZE=1"), 0, 0, "\"q x\"@d.example", "d.example", "SIZE=1"},
        {S("<a@b>  SIZE=1"), 0, 0, "a@b", "b", "SIZE=1"},
        {S("<a@b> "), 0, 0, "a@b", "b", NULL},
        {S("  <a@b>"), 0, 0, "a@b", "b", NULL},
        {S("<a.b+c-d_e@d-e.example>"), 0, 0, "a.b+c-d_e@d-e.example", "d-e.example", NULL},
        {S("<!#$%&'*+-/=?^_`{|}~@d>"), 0, 0, "!#$%&'*+-/=?^_`{|}~@d", "d", NULL},
        {S("<a..b@d>"), 0, 0, "a..b@d", "d", NULL},
        {S("<a@1.2.3.4>"), 0, 0, "a@1.2.3.4", "1.2.3.4", NULL},
        {S("<u@xn--bcher-kva.example>"), 0, 0, "u@xn--bcher-kva.example", "xn--bcher-kva.example",
         NULL},
        /* RFC 6531 UTF-8 local part and U-label */
        {S("<\xc3\xbc@B\xc3\xbc"
           "cher.example>"),
         0, 0,
         "\xc3\xbc@b\xc3\xbc"
         "cher.example",
         "b\xc3\xbc"
         "cher.example",
         NULL},
        /* 63-octet label */
        {S("<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>"), 0, 0,
         "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", NULL},
};

static void
test_path_ok(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(path_ok) / sizeof(path_ok[0]); i++) {
		struct smtp_path p, q;
		char again[SMTP_PATH_MAX + 2];
		int rc = smtp_path_parse(path_ok[i].arg.s, path_ok[i].arg.len, &p);

		if (rc != 0)
			fail_msg("case %zu (%s): rejected", i, path_ok[i].arg.s);
		assert_int_equal(p.null_path, path_ok[i].null_path);
		assert_int_equal(p.addr_literal, path_ok[i].addr_literal);
		assert_string_equal(p.mailbox, path_ok[i].mailbox);
		assert_string_equal(p.domain, path_ok[i].domain);
		if (path_ok[i].params == NULL) {
			assert_null(p.params);
			assert_int_equal(p.paramslen, 0);
		} else {
			assert_non_null(p.params);
			assert_int_equal(p.paramslen, strlen(path_ok[i].params));
			assert_memory_equal(p.params, path_ok[i].params, p.paramslen);
		}
		/* "<" mailbox ">" parses back to the same path */
		snprintf(again, sizeof(again), "<%s>", p.mailbox);
		assert_int_equal(smtp_path_parse(again, strlen(again), &q), 0);
		assert_string_equal(q.mailbox, p.mailbox);
		assert_string_equal(q.domain, p.domain);
		assert_int_equal(q.null_path, p.null_path);
		assert_int_equal(q.addr_literal, p.addr_literal);
	}
}

static const struct bytes path_bad[] = {
        S(""),
        S(" "),
        S("<"),
        S(">"),
        S("< >"),
        S("<<a@b>>"),
        S("<a@b"),
        S("a@b>"),
        S("<a@b>x"),
        S("<a@b>,<c@d>"),
        S("<a@b>\tSIZE=1"),
        S("<a@b> SIZE=1\t"),
        /* missing parts */
        S("<a>"),
        S("<postmaster>"), /* RFC 5321 §4.1.1.3 special case: the caller's */
        S("<@d.example>"),
        S("@d.example"),
        S("<a@>"),
        S("<a@.>"),
        S("a@"),
        S("<\"\"@d.example>"),
        /* two unquoted @ */
        S("<a@b@c>"),
        S("a@b@c"),
        S("<a@b@c.example>"),
        /* quotes */
        S("<\"a@b>"),
        S("<\"a@b.example"),
        S("<a\"b\"@d>"),
        S("<\"a\"b@d>"),
        S("<\"a\\"),
        S("<\"a\\\x01\"@d>"),
        S("<\"a\x01\"@d>"),
        S("<\"a\x7f\"@d>"),
        /* unquoted specials */
        S("<a b@d>"),
        S("<a\\b@d>"),
        S("<a(b)@d>"),
        S("<a,b@d>"),
        S("<a:b@d>"),
        S("<a;b@d>"),
        S("<a[b]@d>"),
        /* domains */
        S("<u@-d.example>"),
        S("<u@d-.example>"),
        S("<u@d.example->"),
        S("<u@d..example>"),
        S("<u@.d.example>"),
        S("<u@d.example..>"),
        S("<u@d_x.example>"),
        S("<u@d!x.example>"),
        S("<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>"),
        /* address literals */
        S("<u@[192.0.2.1>"),
        S("<u@192.0.2.1]>"),
        S("<u@[]>"),
        S("<u@[192.0.2.256]>"),
        S("<u@[192.0.2]>"),
        S("<u@[192.0.2.1.5]>"),
        S("<u@[1234.0.2.1]>"),
        S("<u@[192.0.2.1 ]>"),
        S("<u@[IPv6:zz::1]>"),
        S("<u@[IPv6:1.2.3.4]>"),
        S("<u@[IPv6:]>"),
        S("<u@[x-tag:some-thing]>"), /* only IPv6 is a registered tag */
        S("<u@[x-tag:f..]>"),
        S("<u@[IPv6]>"),
        S("<u@[IPv6::1]>"),
        S("<u@[IPv7:::1]>"),
        S("<u@[tag:]>"),
        S("<u@[:x]>"),
        S("<u@[ta-:x]>"),
        S("<u@[t_g:x]>"),
        S("<u@[nocolon]>"),
        S("<u@[a[b]>"),
        S("<u@[a\\b:c]>"),
        S("<u@[192.0.2.1]x>"),
        /* source routes */
        S("<@a,u@d>"),
        S("<@:u@d>"),
        S("<@a.example,:u@d>"),
        S("<@a.example,@:u@d>"),
        S("<@[192.0.2.1]:u@d>"),
        S("<@a_b:u@d>"),
        /* control characters and NUL */
        S("<a\0b@d>"),
        S("<a@d\0>"),
        S("<a@b>\r"),
        S("<a@b>\n"),
        S("<a@b> SIZE=\0"),
        S("<a\x7f@d>"),
        S("\0"),
};

static void
test_path_bad(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(path_bad) / sizeof(path_bad[0]); i++) {
		struct smtp_path p;
		int rc = smtp_path_parse(path_bad[i].s, path_bad[i].len, &p);

		if (rc != -1)
			fail_msg("case %zu (%s): accepted as %s", i, path_bad[i].s, p.mailbox);
		/* nothing half-parsed is left behind */
		assert_int_equal(p.mailbox[0], '\0');
		assert_int_equal(p.domain[0], '\0');
		assert_null(p.params);
		assert_int_equal(p.null_path, 0);
	}
	assert_int_equal(smtp_path_parse(NULL, 0, &(struct smtp_path){0}), -1);
}

/* Length limits: domain 253, label 63, mailbox < SMTP_PATH_MAX. */
static void
test_path_lengths(void **state)
{
	static const struct {
		size_t local, domain; /* octets of each part */
		int rc;
	} t[] = {
	        {1, 253, 0},
	        {1, 254, -1},
	        {200, 253, 0},
	        {SMTP_PATH_MAX - 1 - 1 - 10, 10, 0}, /* mailbox exactly 511 */
	        {SMTP_PATH_MAX - 1 - 10, 10, -1},    /* mailbox 512: no room for NUL */
	        {100000, 10, -1},
	        {1, 100000, -1},
	};
	static char buf[200000];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_path p;
		size_t n = 0, k;
		int rc;

		buf[n++] = '<';
		memset(buf + n, 'l', t[i].local);
		n += t[i].local;
		buf[n++] = '@';
		/* labels of 9 letters and a dot, the last one cut to size */
		for (k = 0; k < t[i].domain; k++)
			buf[n + k] = (k % 10 == 9 && k + 1 < t[i].domain) ? '.' : 'd';
		n += t[i].domain;
		buf[n++] = '>';
		rc = smtp_path_parse(buf, n, &p);
		if (rc != t[i].rc)
			fail_msg("case %zu: local %zu domain %zu: rc %d", i, t[i].local,
			         t[i].domain, rc);
		if (rc == 0) {
			assert_int_equal(strlen(p.domain), t[i].domain);
			assert_int_equal(strlen(p.mailbox), t[i].local + 1 + t[i].domain);
		}
	}
}

/* The command parser and the path parser together, as the relay uses them. */
static void
test_cmd_then_path(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
		const char *domain;
		const char *params;
	} t[] = {
	        {"MAIL FROM:<Alice@Example.ORG> SIZE=12345", SMTP_CMD_MAIL, "example.org",
	         "SIZE=12345"},
	        {"mail from: <alice@example.org.>", SMTP_CMD_MAIL, "example.org", NULL},
	        {"RCPT TO:<bob@mx.EXAMPLE.net> NOTIFY=SUCCESS,FAILURE", SMTP_CMD_RCPT,
	         "mx.example.net", "NOTIFY=SUCCESS,FAILURE"},
	        {"RCPT TO: bob@example.net", SMTP_CMD_RCPT, "example.net", NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_cmd c;
		struct smtp_path p;

		assert_int_equal(smtp_cmd_parse(t[i].line, strlen(t[i].line), &c), 0);
		assert_int_equal(c.verb, t[i].verb);
		assert_int_equal(smtp_path_parse(c.arg, c.arglen, &p), 0);
		assert_string_equal(p.domain, t[i].domain);
		if (t[i].params == NULL) {
			assert_null(p.params);
		} else {
			assert_int_equal(p.paramslen, strlen(t[i].params));
			assert_memory_equal(p.params, t[i].params, p.paramslen);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cmd_parse),     cmocka_unit_test(test_cmd_huge),
	        cmocka_unit_test(test_cmd_name),      cmocka_unit_test(test_path_ok),
	        cmocka_unit_test(test_path_bad),      cmocka_unit_test(test_path_lengths),
	        cmocka_unit_test(test_cmd_then_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
