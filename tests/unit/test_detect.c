/*
 * test_detect: the downgrade classifier, table-driven from the transcripts
 * in tests/data/transcripts/ (format in its README.md), plus direct tests
 * of the shape predicates, escaping, bounds and detect_combine().
 *
 * Every transcript must produce exactly its "# expect:" multiset of
 * event:SEVERITY; benign-* ones must stay at NOTICE or below.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detect.h"
#include "smtp_reply.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/data"
#endif

#define TX_DIR       TEST_DATA_DIR "/transcripts"
#define TX_MAXCHECKS 16
#define TX_MINFILES  40 /* guard against a silently empty directory */

/* ---- helpers ------------------------------------------------------------ */

/* Every finding must satisfy the module's output contract. */
static void
check_invariants(const struct detect_findings *fx)
{
	int i;

	assert_true(fx->n >= 0 && fx->n <= DETECT_MAX);
	for (i = 0; i < fx->n; i++) {
		const struct detect_finding *f = &fx->f[i];
		size_t len = strnlen(f->evidence, sizeof(f->evidence));
		size_t k;

		assert_non_null(detect_event_name(f->event));
		assert_non_null(detect_severity_name(f->severity));
		assert_true(len <= DETECT_EVIDENCE_MAX);
		for (k = 0; k < len; k++) {
			unsigned char c = (unsigned char)f->evidence[k];

			assert_true(c >= 0x20 && c <= 0x7e && c != '"' && c != '\\');
		}
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode %XX in place; returns the new length. */
static size_t
pct_decode(char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			s[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	return o;
}

/* Feed a whole reply given as NUL-terminated lines. */
static void
feed(struct smtp_reply *r, const char *const *lines)
{
	smtp_reply_init(r, 0);
	for (; *lines != NULL; lines++)
		assert_true(smtp_reply_feed(r, *lines, strlen(*lines)) <= SMTP_REPLY_DONE);
	assert_true(r->done);
}

static int
count_event(const struct detect_findings *fx, enum detect_event ev)
{
	int i, n = 0;

	for (i = 0; i < fx->n; i++)
		if (fx->f[i].event == ev)
			n++;
	return n;
}

static const struct detect_finding *
find_event(const struct detect_findings *fx, enum detect_event ev)
{
	int i;

	for (i = 0; i < fx->n; i++)
		if (fx->f[i].event == ev)
			return &fx->f[i];
	return NULL;
}

/* ---- transcripts ---------------------------------------------------------- */

enum tx_cmd { TX_GREETING, TX_EHLO, TX_HELO, TX_STARTTLS, TX_OTHER };

struct tx_run {
	const char *path;
	struct smtp_reply *r;
	int r_active;     /* lines fed, reply not yet dispatched */
	size_t pipelined; /* P: bytes after the pending reply */
	enum tx_cmd cmd;  /* the command the pending reply answers */
	int advertised;
	int in_tls;
	int have_mem;
	struct detect_memory mem;
	struct detect_findings fx;
};

static void
tx_combine(struct tx_run *t)
{
	struct detect_findings again;

	detect_combine(&t->fx, t->have_mem ? &t->mem : NULL);
	/* Idempotence: a second run changes nothing. */
	again = t->fx;
	detect_combine(&again, t->have_mem ? &t->mem : NULL);
	assert_memory_equal(&again, &t->fx, sizeof(again));
	check_invariants(&t->fx);
}

static void
tx_dispatch(struct tx_run *t)
{
	if (!t->r_active)
		return;
	switch (t->cmd) {
	case TX_GREETING:
		detect_greeting(t->r, &t->fx);
		break;
	case TX_EHLO:
		if (!t->in_tls)
			t->advertised = detect_ehlo(t->r, &t->fx);
		break;
	case TX_STARTTLS:
		detect_starttls_reply(t->r, t->advertised, t->pipelined, &t->fx);
		if (t->r->code == 220)
			t->in_tls = 1;
		break;
	case TX_HELO:
	case TX_OTHER:
		break;
	}
	t->r_active = 0;
	t->pipelined = 0;
	tx_combine(t);
}

static enum tx_cmd
tx_verb(const char *s)
{
	if (strncasecmp(s, "EHLO", 4) == 0)
		return TX_EHLO;
	if (strncasecmp(s, "HELO", 4) == 0)
		return TX_HELO;
	if (strncasecmp(s, "STARTTLS", 8) == 0)
		return TX_STARTTLS;
	return TX_OTHER;
}

static enum detect_tls_kind
tx_tls_kind(const char *s, size_t *skip)
{
	static const struct {
		const char *name;
		enum detect_tls_kind kind;
	} k[] = {
	        {"handshake", DETECT_TLS_HANDSHAKE}, {"version", DETECT_TLS_VERSION},
	        {"untrusted", DETECT_TLS_UNTRUSTED}, {"name", DETECT_TLS_NAME},
	        {"expired", DETECT_TLS_EXPIRED},     {"changed", DETECT_TLS_CHANGED},
	        {"invalid", DETECT_TLS_INVALID},
	};
	size_t i;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		size_t n = strlen(k[i].name);

		if (strncmp(s, k[i].name, n) == 0 && (s[n] == ' ' || s[n] == '\0')) {
			*skip = n + (s[n] == ' ');
			return k[i].kind;
		}
	}
	fail_msg("unknown TLS failure kind in '%s'", s);
	return DETECT_TLS_HANDSHAKE;
}

static long long
finding_field(const struct detect_finding *f, const char *name, const char **sval)
{
	*sval = NULL;
	if (strcmp(name, "line") == 0)
		return f->line;
	if (strcmp(name, "code") == 0)
		return f->code;
	if (strcmp(name, "count") == 0)
		return f->count;
	if (strcmp(name, "bytes") == 0)
		return (long long)f->bytes;
	if (strcmp(name, "direction") == 0)
		return f->direction;
	if (strcmp(name, "remembered") == 0)
		return f->remembered;
	if (strcmp(name, "escalated_by") == 0) {
		*sval = f->escalated_by_memory && f->escalated_by == DETECT_EV_NONE
		                ? "memory"
		                : detect_event_name(f->escalated_by);
		if (*sval == NULL)
			*sval = "none";
		return 0;
	}
	fail_msg("unknown field '%s'", name);
	return 0;
}

static void
tx_expect(const struct tx_run *t, const char *spec, int benign)
{
	int used[DETECT_MAX] = {0};
	char buf[1024], *tok, *save = NULL;
	int i, nexp = 0;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		char *colon = strchr(tok, ':');
		int matched = 0;

		if (colon == NULL)
			fail_msg("%s: expect entry '%s' is not event:SEVERITY", t->path, tok);
		*colon = '\0';
		if (detect_event_by_name(tok) == DETECT_EV_NONE)
			fail_msg("%s: '%s' is not in the catalogue", t->path, tok);
		nexp++;
		for (i = 0; i < t->fx.n && !matched; i++) {
			const struct detect_finding *f = &t->fx.f[i];

			if (!used[i] && strcmp(detect_event_name(f->event), tok) == 0 &&
			    strcasecmp(detect_severity_name(f->severity), colon + 1) == 0) {
				used[i] = 1;
				matched = 1;
			}
		}
		if (!matched)
			fail_msg("%s: expected %s:%s not produced", t->path, tok, colon + 1);
	}
	for (i = 0; i < t->fx.n; i++) {
		const struct detect_finding *f = &t->fx.f[i];

		if (!used[i])
			fail_msg("%s: unexpected %s:%s evidence '%s'", t->path,
			         detect_event_name(f->event), detect_severity_name(f->severity),
			         f->evidence);
		if (benign && f->severity > DETECT_SEV_NOTICE)
			fail_msg("%s: benign transcript produced %s at %s", t->path,
			         detect_event_name(f->event), detect_severity_name(f->severity));
	}
	assert_int_equal(nexp, t->fx.n);
	assert_int_equal(t->fx.dropped, 0);
}

static void
test_transcript(void **state)
{
	const char *path = *state;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char expect[1024] = "", evid[TX_MAXCHECKS][512], field[TX_MAXCHECKS][256];
	int nevid = 0, nfield = 0, have_expect = 0, i;
	struct tx_run *t = calloc(1, sizeof(*t));
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	FILE *fp;

	assert_non_null(t);
	t->r = calloc(1, sizeof(*t->r));
	assert_non_null(t->r);
	t->path = base;
	t->cmd = TX_GREETING;
	detect_init(&t->fx);
	fp = fopen(path, "r");
	assert_non_null(fp);

	while ((got = getline(&line, &cap, fp)) >= 0) {
		size_t len = (size_t)got;

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (line[0] == '#') {
			if (strncmp(line, "# expect:", 9) == 0) {
				snprintf(expect, sizeof(expect), "%s", line + 9);
				have_expect = 1;
			} else if (strncmp(line, "# memory:", 9) == 0) {
				int off = 0, tok = 0;
				long long lo = 0;

				if (sscanf(line + 9, " offered=%d tls_ok_last=%d last_offered=%lld",
				           &off, &tok, &lo) != 3)
					fail_msg("%s: bad memory line", base);
				t->have_mem = 1;
				t->mem.starttls_offered = off;
				t->mem.tls_ok_last = tok;
				t->mem.last_offered = lo;
			} else if (strncmp(line, "# evidence: ", 12) == 0 && nevid < TX_MAXCHECKS) {
				snprintf(evid[nevid++], sizeof(evid[0]), "%s", line + 12);
			} else if (strncmp(line, "# field: ", 9) == 0 && nfield < TX_MAXCHECKS) {
				snprintf(field[nfield++], sizeof(field[0]), "%s", line + 9);
			}
			continue;
		}
		if (len == 0)
			continue;
		if (len < 3 || line[1] != ':' || line[2] != ' ')
			fail_msg("%s: bad line '%s'", base, line);
		switch (line[0]) {
		case 'S': {
			size_t n = pct_decode(line + 3, len - 3);
			enum smtp_reply_status st;

			if (!t->r_active) {
				smtp_reply_init(t->r, 0);
				t->r_active = 1;
			}
			st = smtp_reply_feed(t->r, line + 3, n);
			if (st > SMTP_REPLY_DONE) {
				/* Only a greeting may be unparseable: the relay then
				 * shows detect the raw line and gives up on the reply. */
				if (t->cmd != TX_GREETING)
					fail_msg("%s: reply line '%s': %s", base, line + 3,
					         smtp_reply_strstatus(st));
				detect_greeting_line(line + 3, n, &t->fx);
				t->r_active = 0;
				tx_combine(t);
			}
			break;
		}
		case 'P':
			t->pipelined += pct_decode(line + 3, len - 3) + 2;
			break;
		case 'C':
			tx_dispatch(t);
			t->cmd = tx_verb(line + 3);
			break;
		case 'T': {
			size_t skip = 0;
			enum detect_tls_kind k;

			tx_dispatch(t);
			k = tx_tls_kind(line + 3, &skip);
			detect_tls_failure(k, line + 3 + skip, &t->fx);
			tx_combine(t);
			break;
		}
		case 'I': {
			enum detect_direction dir = DETECT_FROM_SERVER;
			char *sample;
			size_t n;

			tx_dispatch(t);
			if (strncmp(line + 3, "client ", 7) == 0)
				dir = DETECT_FROM_CLIENT;
			else if (strncmp(line + 3, "server ", 7) == 0)
				dir = DETECT_FROM_SERVER;
			else
				fail_msg("%s: bad I: line", base);
			sample = line + 10;
			n = pct_decode(sample, strlen(sample));
			detect_injection(dir, n + 2, sample, n, &t->fx);
			tx_combine(t);
			break;
		}
		default:
			fail_msg("%s: bad line '%s'", base, line);
		}
	}
	tx_dispatch(t);
	tx_combine(t);
	free(line);
	fclose(fp);

	if (!have_expect)
		fail_msg("%s: no '# expect:' line", base);
	tx_expect(t, expect, strncmp(base, "benign-", 7) == 0);

	for (i = 0; i < nevid; i++) {
		char *sp = strchr(evid[i], ' ');
		const struct detect_finding *f;

		assert_non_null(sp);
		*sp = '\0';
		f = find_event(&t->fx, detect_event_by_name(evid[i]));
		if (f == NULL)
			fail_msg("%s: no %s for an evidence check", base, evid[i]);
		if (strcmp(f->evidence, sp + 1) != 0)
			fail_msg("%s: %s evidence '%s', expected '%s'", base, evid[i], f->evidence,
			         sp + 1);
	}
	for (i = 0; i < nfield; i++) {
		char ev[64], name[32], val[64];
		const struct detect_finding *f;
		const char *sval;
		long long v;

		if (sscanf(field[i], "%63s %31[^=]=%63s", ev, name, val) != 3)
			fail_msg("%s: bad field check '%s'", base, field[i]);
		f = find_event(&t->fx, detect_event_by_name(ev));
		if (f == NULL)
			fail_msg("%s: no %s for a field check", base, ev);
		v = finding_field(f, name, &sval);
		if (sval != NULL) {
			if (strcmp(sval, val) != 0)
				fail_msg("%s: %s.%s = %s, expected %s", base, ev, name, sval, val);
		} else if (v != strtoll(val, NULL, 10)) {
			fail_msg("%s: %s.%s = %lld, expected %s", base, ev, name, v, val);
		}
	}
	free(t->r);
	free(t);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- direct tests ------------------------------------------------------- */

static void
test_catalogue(void **state)
{
	int i;

	(void)state;
	assert_null(detect_event_name(DETECT_EV_NONE));
	assert_null(detect_event_name(DETECT_EV_COUNT));
	for (i = DETECT_EV_NONE + 1; i < DETECT_EV_COUNT; i++) {
		const char *n = detect_event_name((enum detect_event)i);
		size_t k;

		assert_non_null(n);
		assert_int_equal(detect_event_by_name(n), i);
		/* snake_case, stable */
		for (k = 0; n[k] != '\0'; k++)
			assert_true((n[k] >= 'a' && n[k] <= 'z') || (n[k] >= '0' && n[k] <= '9') ||
			            n[k] == '_');
	}
	assert_int_equal(detect_event_by_name("no_such_event"), DETECT_EV_NONE);
	assert_int_equal(detect_event_by_name(NULL), DETECT_EV_NONE);
	assert_int_equal(detect_event_severity(DETECT_EV_STARTTLS_NOT_ADVERTISED), DETECT_SEV_INFO);
	assert_int_equal(detect_event_severity(DETECT_EV_STARTTLS_GARBLED), DETECT_SEV_ALERT);
	assert_string_equal(detect_severity_name(DETECT_SEV_WARNING), "warning");
	assert_null(detect_severity_name((enum detect_severity)42));
}

static void
test_keyword_shapes(void **state)
{
	static const struct {
		const char *kw;
		int masked, near;
	} t[] = {
	        {"XXXXXXXA", 1, 0},     {"XXXXXXXB", 1, 0}, {"XXXXXXXX", 1, 0},
	        {"xxxxxxxx", 1, 0},     {"********", 1, 0}, {"XXXXXXXXX", 1, 0},
	        {"XXXA", 1, 0},         {"XXXX", 1, 0},     {"XXX", 0, 0},
	        {"XADR", 0, 0},         {"XEXCH50", 0, 0},  {"XCLIENT", 0, 0},
	        {"XFORWARD", 0, 0},     {"X-EXPS", 0, 0},   {"XRDST", 0, 0},
	        {"X-LINK2STATE", 0, 0}, {"XSHADOW", 0, 0},  {"STARTTLS", 0, 0},
	        {"starttls", 0, 0},     {"STARTTLX", 0, 1}, {"XXARTTLS", 0, 1},
	        {"SXXXTTLS", 0, 1},     {"XXXXTTLS", 0, 0}, {"CHUNKING", 0, 0},
	        {"SMTPUTF8", 0, 0},     {"8BITMIME", 0, 0}, {"STARTTLS1", 0, 0},
	        {"STARTTL", 0, 0},      {"sTaRtTlZ", 0, 1}, {"XXXXXXAB", 0, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].kw);

		if (detect_keyword_masked(t[i].kw, n) != t[i].masked)
			fail_msg("masked(%s) != %d", t[i].kw, t[i].masked);
		if (detect_keyword_near_starttls(t[i].kw, n) != t[i].near)
			fail_msg("near(%s) != %d", t[i].kw, t[i].near);
	}
	assert_false(detect_keyword_masked(NULL, 8));
	assert_false(detect_keyword_near_starttls(NULL, 8));
}

static void
test_text_masked(void **state)
{
	static const struct {
		const char *text;
		int masked;
	} t[] = {
	        {"*******************************0*2******0***********", 1},
	        {"*********0********** ************2*************", 1},
	        {"********", 1},
	        {"*******", 0},
	        {"mx.example.com ESMTP ******** Welcome ********", 0},
	        {"***** mx.example.com *****", 0},
	        {"mail.example.com ESMTP Postfix", 0},
	        {"", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (detect_text_masked(t[i].text, strlen(t[i].text)) != t[i].masked)
			fail_msg("text_masked('%s') != %d", t[i].text, t[i].masked);
}

static void
test_escape(void **state)
{
	char out[16];
	int cut = -1;
	size_t n;

	(void)state;
	n = detect_escape("a\"b\\c%d\r\n", 9, out, sizeof(out), &cut);
	/* a %22 b %5C c %25 d %0D %0A = 4 + 5*3 = 19 > 15: cut */
	assert_int_equal(cut, 1);
	assert_string_equal(out, "a%22b%5Cc%25d");
	assert_int_equal(n, strlen(out));

	n = detect_escape("\x00\xff", 2, out, sizeof(out), &cut);
	assert_int_equal(cut, 0);
	assert_string_equal(out, "%00%FF");
	assert_int_equal(n, 6);

	/* never half an escape: 4 bytes of room for "%0A%0A" */
	n = detect_escape("\n\n", 2, out, 5, &cut);
	assert_int_equal(cut, 1);
	assert_string_equal(out, "%0A");

	n = detect_escape("abc", 3, out, 1, &cut);
	assert_int_equal(n, 0);
	assert_int_equal(cut, 1);
	assert_string_equal(out, "");
	assert_int_equal(detect_escape("abc", 3, NULL, 0, &cut), 0);
	assert_int_equal(cut, 1);
}

static void
test_evidence_bounded(void **state)
{
	struct detect_findings fx;
	char big[1500];
	const struct detect_finding *f;

	(void)state;
	memset(big, 0x01, sizeof(big));
	detect_init(&fx);
	detect_injection(DETECT_FROM_SERVER, sizeof(big), big, sizeof(big), &fx);
	assert_int_equal(fx.n, 1);
	f = &fx.f[0];
	assert_int_equal(f->event, DETECT_EV_STARTTLS_REPLY_PIPELINED);
	assert_int_equal(f->direction, DETECT_FROM_SERVER);
	assert_int_equal(f->bytes, sizeof(big));
	assert_true(f->truncated);
	/* 66 escapes of 3 bytes fit in 200 */
	assert_int_equal(strlen(f->evidence), 198);
	check_invariants(&fx);

	detect_init(&fx);
	detect_injection(DETECT_FROM_CLIENT, 0, "x", 1, &fx);
	assert_int_equal(fx.n, 0);
	detect_injection((enum detect_direction)0, 3, "abc", 3, &fx); /* bad side: upstream */
	assert_int_equal(fx.n, 1);
	assert_int_equal(fx.f[0].event, DETECT_EV_STARTTLS_REPLY_PIPELINED);
	assert_int_equal(fx.f[0].direction, DETECT_FROM_SERVER);
	detect_injection(DETECT_FROM_CLIENT, 3, NULL, 0, &fx);
	assert_int_equal(fx.f[1].event, DETECT_EV_PLAINTEXT_INJECTION);
	assert_int_equal(fx.f[1].severity, DETECT_SEV_WARNING);
	detect_init(&fx);
	detect_tls_failure((enum detect_tls_kind)99, "x", &fx);
	assert_int_equal(fx.n, 0);
	detect_tls_failure(DETECT_TLS_EXPIRED, NULL, &fx);
	assert_int_equal(fx.n, 1);
	assert_string_equal(fx.f[0].evidence, "");
}

/* A full array yields only to more severe findings, and counts the rest. */
static void
test_full_array(void **state)
{
	struct detect_findings fx;
	int i;

	(void)state;
	detect_init(&fx);
	for (i = 0; i < DETECT_MAX + 3; i++)
		detect_tls_failure(DETECT_TLS_EXPIRED, "notice", &fx);
	assert_int_equal(fx.n, DETECT_MAX);
	assert_int_equal(fx.dropped, 3);
	detect_injection(DETECT_FROM_SERVER, 5, "hello", 5, &fx);
	assert_int_equal(fx.n, DETECT_MAX);
	assert_int_equal(fx.dropped, 4);
	assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_REPLY_PIPELINED), 1);
	assert_int_equal(count_event(&fx, DETECT_EV_TLS_CERT_EXPIRED), DETECT_MAX - 1);
	/* Fill with ALERTs: a NOTICE no longer gets in. */
	for (i = 0; i < DETECT_MAX; i++)
		detect_injection(DETECT_FROM_SERVER, 5, "hello", 5, &fx);
	assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_REPLY_PIPELINED), DETECT_MAX);
	detect_tls_failure(DETECT_TLS_EXPIRED, "notice", &fx);
	assert_int_equal(count_event(&fx, DETECT_EV_TLS_CERT_EXPIRED), 0);
	check_invariants(&fx);

	/* combine on a full array: the memory ALERT displaces a NOTICE */
	detect_init(&fx);
	{
		struct smtp_reply *r = calloc(1, sizeof(*r));
		static const char *const ehlo[] = {"250-mx.example.com", "250 PIPELINING", NULL};
		struct detect_memory mem = {1, 1, 1};

		assert_non_null(r);
		feed(r, ehlo);
		detect_ehlo(r, &fx);
		for (i = 1; i < DETECT_MAX; i++)
			detect_tls_failure(DETECT_TLS_EXPIRED, "notice", &fx);
		detect_combine(&fx, &mem);
		assert_int_equal(fx.n, DETECT_MAX);
		assert_int_equal(fx.dropped, 1);
		assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY), 1);
		assert_int_equal(find_event(&fx, DETECT_EV_STARTTLS_NOT_ADVERTISED)->severity,
		                 DETECT_SEV_ALERT);
		detect_combine(&fx, &mem);
		assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY), 1);
		check_invariants(&fx);

		/* ... but not an equal ALERT: 16 escalated not_advertised */
		detect_init(&fx);
		for (i = 0; i < DETECT_MAX; i++)
			detect_ehlo(r, &fx);
		detect_combine(&fx, &mem);
		assert_int_equal(fx.n, DETECT_MAX);
		assert_int_equal(fx.dropped, 1);
		assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY), 0);
		free(r);
	}
}

static void
test_ehlo_lines(void **state)
{
	struct smtp_reply *r = calloc(1, sizeof(*r));
	struct detect_findings fx;
	static const char *const adv[] = {"250-mx.example.com", "250-XXXXXXXA", "250-",
	                                  "250-\x1b[31m",       "250 STARTTLS", NULL};
	static const char *const refused[] = {"554 5.7.1 go away", NULL};
	static const char *const one[] = {"250 STARTTLS", NULL};
	const struct detect_finding *f;

	(void)state;
	assert_non_null(r);

	/* STARTTLS advertised: an 8-byte mask is some other keyword. */
	feed(r, adv);
	detect_init(&fx);
	assert_int_equal(detect_ehlo(r, &fx), 1);
	assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_GARBLED), 0);
	assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_NOT_ADVERTISED), 0);
	assert_non_null(f = find_event(&fx, DETECT_EV_EHLO_KEYWORD_MASKED));
	assert_int_equal(f->line, 1);
	assert_non_null(f = find_event(&fx, DETECT_EV_EHLO_EMPTY_LINE));
	assert_int_equal(f->line, 2);
	assert_non_null(f = find_event(&fx, DETECT_EV_EHLO_MALFORMED_LINE));
	assert_int_equal(f->line, 3);
	assert_string_equal(f->evidence, "250-%1B[31m");
	assert_int_equal(fx.n, 3);
	/* Nothing to escalate: STARTTLS is there. */
	detect_combine(&fx, NULL);
	assert_int_equal(fx.f[0].severity, DETECT_SEV_NOTICE);

	/* Non-2xx goes the refused way. */
	feed(r, refused);
	detect_init(&fx);
	assert_int_equal(detect_ehlo(r, &fx), 0);
	assert_int_equal(count_event(&fx, DETECT_EV_EHLO_REFUSED), 1);
	assert_int_equal(count_event(&fx, DETECT_EV_STARTTLS_NOT_ADVERTISED), 1);
	assert_int_equal(count_event(&fx, DETECT_EV_EHLO_COMMAND_REWRITTEN), 0);

	/* One line "250 STARTTLS": greeting text, not an offer. */
	feed(r, one);
	detect_init(&fx);
	assert_int_equal(detect_ehlo(r, &fx), 0);
	assert_int_equal(count_event(&fx, DETECT_EV_EHLO_STARTTLS_IN_GREETING_LINE), 1);

	/* Empty reply and NULLs are ignored. */
	smtp_reply_init(r, 0);
	detect_init(&fx);
	assert_int_equal(detect_ehlo(r, &fx), 0);
	detect_greeting(r, &fx);
	detect_starttls_reply(r, 1, 10, &fx);
	detect_ehlo_refused(r, &fx);
	assert_int_equal(fx.n, 0);
	assert_int_equal(detect_ehlo(NULL, &fx), 0);
	assert_int_equal(detect_greeting_line("220 hello", 9, &fx), 0);
	assert_int_equal(fx.n, 0);
	detect_combine(NULL, NULL);
	free(r);
}

/* Many odd lines still give one finding per event, with a count. */
static void
test_many_lines(void **state)
{
	struct smtp_reply *r = calloc(1, sizeof(*r));
	struct detect_findings fx;
	const struct detect_finding *f;
	char line[64];
	int i;

	(void)state;
	assert_non_null(r);
	smtp_reply_init(r, 0);
	assert_int_equal(smtp_reply_feed(r, "250-mx.example.com", 18), SMTP_REPLY_MORE);
	for (i = 1; i < SMTP_REPLY_MAXLINES - 1; i++) {
		const char *s = (i % 3 == 0) ? "250-" : (i % 3 == 1) ? "250-XXXXXXXA" : "250-_odd";

		snprintf(line, sizeof(line), "%s", s);
		assert_int_equal(smtp_reply_feed(r, line, strlen(line)), SMTP_REPLY_MORE);
	}
	assert_int_equal(smtp_reply_feed(r, "250 HELP", 8), SMTP_REPLY_DONE);
	detect_init(&fx);
	assert_int_equal(detect_ehlo(r, &fx), 0);
	assert_int_equal(fx.n, 4);
	assert_non_null(f = find_event(&fx, DETECT_EV_STARTTLS_GARBLED));
	assert_int_equal(f->count, 85);
	assert_non_null(f = find_event(&fx, DETECT_EV_STARTTLS_NOT_ADVERTISED));
	assert_true(f->truncated);
	check_invariants(&fx);
	free(r);
}

static void
test_combine_rules(void **state)
{
	struct detect_findings fx;
	struct detect_memory mem = {0, 1, 0};
	const struct detect_finding *f;

	(void)state;
	/* Memory of TLS success raises one level, never past ALERT, not expiry. */
	detect_init(&fx);
	detect_tls_failure(DETECT_TLS_UNTRUSTED, "u", &fx);
	detect_tls_failure(DETECT_TLS_HANDSHAKE, "h", &fx);
	detect_tls_failure(DETECT_TLS_EXPIRED, "e", &fx);
	detect_tls_failure(DETECT_TLS_CHANGED, "c", &fx);
	detect_combine(&fx, &mem);
	assert_int_equal(find_event(&fx, DETECT_EV_TLS_CERT_UNTRUSTED)->severity,
	                 DETECT_SEV_WARNING);
	assert_int_equal(find_event(&fx, DETECT_EV_TLS_HANDSHAKE_FAILED)->severity,
	                 DETECT_SEV_ALERT);
	assert_int_equal(find_event(&fx, DETECT_EV_TLS_CERT_EXPIRED)->severity, DETECT_SEV_NOTICE);
	f = find_event(&fx, DETECT_EV_TLS_CERT_CHANGED);
	assert_int_equal(f->severity, DETECT_SEV_ALERT);
	assert_int_equal(f->escalated_by, DETECT_EV_TLS_CERT_UNTRUSTED);
	detect_combine(&fx, &mem);
	assert_int_equal(find_event(&fx, DETECT_EV_TLS_CERT_UNTRUSTED)->severity,
	                 DETECT_SEV_WARNING);

	/* No memory, nothing corroborating: a missing STARTTLS stays INFO. */
	detect_init(&fx);
	{
		struct smtp_reply *r = calloc(1, sizeof(*r));
		static const char *const ehlo[] = {"250-mx.example.com", "250 SIZE", NULL};

		assert_non_null(r);
		feed(r, ehlo);
		detect_ehlo(r, &fx);
		detect_tls_failure(DETECT_TLS_UNTRUSTED, "u", &fx); /* not corroborating */
		detect_combine(&fx, NULL);
		assert_int_equal(find_event(&fx, DETECT_EV_STARTTLS_NOT_ADVERTISED)->severity,
		                 DETECT_SEV_INFO);
		free(r);
	}
}

static void
test_starttls_reply(void **state)
{
	struct smtp_reply *r = calloc(1, sizeof(*r));
	struct detect_findings fx;
	static const char *const ok[] = {"220-2.0.0 Ready", "220 go ahead", NULL};

	(void)state;
	assert_non_null(r);
	feed(r, ok);
	detect_init(&fx);
	detect_starttls_reply(r, 1, 0, &fx);
	detect_starttls_reply(r, 0, 0, &fx);
	assert_int_equal(fx.n, 0);
	/* accepted though an EHLO reply did not offer it: stripped */
	detect_starttls_stripped(r, &fx);
	assert_int_equal(fx.n, 1);
	assert_int_equal(fx.f[0].event, DETECT_EV_STARTTLS_STRIPPED);
	assert_int_equal(fx.f[0].severity, DETECT_SEV_ALERT);
	assert_string_equal(fx.f[0].evidence, "220-2.0.0 Ready");
	detect_init(&fx);
	detect_starttls_reply(r, 1, 7, &fx);
	assert_int_equal(fx.n, 1);
	assert_int_equal(fx.f[0].event, DETECT_EV_STARTTLS_REPLY_PIPELINED);
	assert_int_equal(fx.f[0].line, 1);
	assert_int_equal(fx.f[0].bytes, 7);
	assert_string_equal(fx.f[0].evidence, "220 go ahead");
	free(r);
}

int
main(void)
{
	const struct CMUnitTest direct[] = {
	        cmocka_unit_test(test_catalogue),        cmocka_unit_test(test_keyword_shapes),
	        cmocka_unit_test(test_text_masked),      cmocka_unit_test(test_escape),
	        cmocka_unit_test(test_evidence_bounded), cmocka_unit_test(test_full_array),
	        cmocka_unit_test(test_ehlo_lines),       cmocka_unit_test(test_many_lines),
	        cmocka_unit_test(test_combine_rules),    cmocka_unit_test(test_starttls_reply),
	};
	struct CMUnitTest *tx;
	char **paths = NULL;
	size_t n = 0, i;
	struct dirent *de;
	DIR *d;
	int rc;

	rc = cmocka_run_group_tests_name("detect", direct, NULL, NULL);

	if ((d = opendir(TX_DIR)) == NULL) {
		fprintf(stderr, "cannot open %s\n", TX_DIR);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char **np;

		if (len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0)
			continue;
		if ((np = realloc(paths, (n + 1) * sizeof(*paths))) == NULL)
			return 1;
		paths = np;
		if ((paths[n] = malloc(sizeof(TX_DIR) + len + 1)) == NULL)
			return 1;
		snprintf(paths[n], sizeof(TX_DIR) + len + 1, "%s/%s", TX_DIR, de->d_name);
		n++;
	}
	closedir(d);
	if (n < TX_MINFILES) {
		fprintf(stderr, "only %zu transcripts in %s\n", n, TX_DIR);
		return 1;
	}
	qsort(paths, n, sizeof(*paths), cmp_str);
	if ((tx = calloc(n, sizeof(*tx))) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		const char *base = strrchr(paths[i], '/') + 1;

		tx[i].name = base;
		tx[i].test_func = test_transcript;
		tx[i].initial_state = paths[i];
	}
	rc |= _cmocka_run_group_tests("transcripts", tx, n, NULL, NULL);
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(tx);
	return rc != 0;
}
