/*
 * test_metrics: the node_exporter textfile (proxy/metrics.c).
 *
 * - every file written parses under the Prometheus text exposition
 *   grammar, checked line by line by a strict reader below: HELP then
 *   TYPE before a family's samples, one contiguous group per family,
 *   valid metric and label names, only the three legal escapes in label
 *   values, a number as value, no timestamps (node_exporter's textfile
 *   collector refuses them), no duplicate series, our naming rules
 *   (stsproxy_ prefix, counters end in _total);
 * - label values are escaped (quote, backslash, newline; other bytes
 *   outside printable ASCII become '?');
 * - counters never go down from one write to the next;
 * - the file is replaced atomically: a reader holding the old file still
 *   reads it complete, the new one is complete, mode 0644 whatever the
 *   umask, no temporary file is left behind, also when the rename fails;
 * - no metrics.textfile = disabled, and every entry point is NULL-safe;
 * - the interval timer rewrites the file; label sets are bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <ev.h>

#include "cfg.h"
#include "metrics.h"
#include "proxy.h"
#include "session.h"
#include "tlspolicy.h"

static char tmpdir[] = "/tmp/test_metrics.XXXXXX";
static char path[512];

/* ---- a strict reader of the text exposition format ------------------------ */

#define MAXSERIES 1024

struct sample {
	char key[512]; /* name{labels as written} */
	char name[128];
	double v;
	int counter;
};

struct parsed {
	struct sample s[MAXSERIES];
	int n;
};

static int
name_start(int c)
{
	return isalpha(c) || c == '_' || c == ':';
}

static int
name_char(int c)
{
	return isalnum(c) || c == '_' || c == ':';
}

/* Length of a metric name at p (0 if none). */
static size_t
metric_name(const char *p)
{
	size_t n = 0;

	if (!name_start((unsigned char)p[0]))
		return 0;
	while (name_char((unsigned char)p[n]))
		n++;
	return n;
}

static int
parse_fail(char *why, size_t whysz, int line, const char *fmt, const char *arg)
{
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, arg);
	snprintf(why, whysz, "line %d: %s", line, msg);
	return -1;
}

static double
parse_value(const char *p, const char **end)
{
	if (strncmp(p, "+Inf", 4) == 0 || strncmp(p, "-Inf", 4) == 0 || strncmp(p, "NaN", 3) == 0) {
		*end = p + (p[0] == 'N' ? 3 : 4);
		return p[0] == '-' ? -INFINITY : p[0] == '+' ? INFINITY : NAN;
	}
	return strtod(p, (char **)end);
}

/*
 * Parse text into out; 0 if it is valid, else -1 with the reason. Checks
 * the grammar and the contract (see the header comment).
 */
static int
parse_exposition(const char *text, struct parsed *out, char *why, size_t whysz)
{
	char helped[64][128], typed[64][128], types[64][16], done[64][128];
	int nhelped = 0, ntyped = 0, ndone = 0, line = 0;
	char cur[128] = "";
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (*text == '\0')
		return parse_fail(why, whysz, 0, "%s", "empty file");
	while (*p) {
		const char *eol = strchr(p, '\n');
		char buf[1024];
		size_t len;

		line++;
		if (eol == NULL)
			return parse_fail(why, whysz, line, "%s", "last line without newline");
		len = (size_t)(eol - p);
		if (len == 0 || len >= sizeof(buf))
			return parse_fail(why, whysz, line, "%s", "empty or huge line");
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = eol + 1;

		if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
			const char *q = buf + 7;
			size_t nl = metric_name(q);
			char name[128];
			if (nl == 0 || nl >= sizeof(name) || q[nl] != ' ')
				return parse_fail(why, whysz, line, "bad name in %s", buf);
			memcpy(name, q, nl);
			name[nl] = '\0';
			q += nl + 1;
			if (buf[2] == 'H') {
				for (int i = 0; i < nhelped; i++)
					if (strcmp(helped[i], name) == 0)
						return parse_fail(why, whysz, line,
						                  "second HELP for %s", name);
				for (const char *e = q; *e; e++)
					if (*e == '\\' && e[1] != '\\' && e[1] != 'n')
						return parse_fail(why, whysz, line,
						                  "bad escape in HELP %s", name);
					else if (*e == '\\')
						e++;
				snprintf(helped[nhelped++], sizeof(helped[0]), "%s", name);
			} else {
				int h = 0;
				for (int i = 0; i < nhelped; i++)
					h |= strcmp(helped[i], name) == 0;
				if (!h)
					return parse_fail(why, whysz, line,
					                  "TYPE before HELP for %s", name);
				for (int i = 0; i < ntyped; i++)
					if (strcmp(typed[i], name) == 0)
						return parse_fail(why, whysz, line,
						                  "second TYPE for %s", name);
				if (strcmp(q, "counter") != 0 && strcmp(q, "gauge") != 0)
					return parse_fail(why, whysz, line, "unexpected type %s",
					                  q);
				if (strncmp(name, "stsproxy_", 9) != 0)
					return parse_fail(why, whysz, line, "%s lacks the prefix",
					                  name);
				if (strcmp(q, "counter") == 0 &&
				    (strlen(name) < 6 ||
				     strcmp(name + strlen(name) - 6, "_total") != 0))
					return parse_fail(why, whysz, line,
					                  "counter %s does not end in _total",
					                  name);
				snprintf(typed[ntyped], sizeof(typed[0]), "%s", name);
				snprintf(types[ntyped++], sizeof(types[0]), "%s", q);
			}
			if (nhelped >= 64 || ntyped >= 64)
				return parse_fail(why, whysz, line, "%s", "too many families");
			continue;
		}
		if (buf[0] == '#')
			return parse_fail(why, whysz, line, "unexpected comment %s", buf);

		/* a sample: name [{labels}] value */
		struct sample *s = &out->s[out->n];
		const char *q = buf;
		size_t nl = metric_name(q);
		int t = -1;
		if (out->n >= MAXSERIES)
			return parse_fail(why, whysz, line, "%s", "too many samples");
		if (nl == 0 || nl >= sizeof(s->name))
			return parse_fail(why, whysz, line, "bad metric name in %s", buf);
		memcpy(s->name, q, nl);
		s->name[nl] = '\0';
		for (int i = 0; i < ntyped; i++)
			if (strcmp(typed[i], s->name) == 0)
				t = i;
		if (t < 0)
			return parse_fail(why, whysz, line, "sample before HELP/TYPE: %s", s->name);
		s->counter = strcmp(types[t], "counter") == 0;
		/* all samples of a family form one group */
		if (strcmp(cur, s->name) != 0) {
			for (int i = 0; i < ndone; i++)
				if (strcmp(done[i], s->name) == 0)
					return parse_fail(why, whysz, line,
					                  "%s is split in two groups", s->name);
			if (cur[0])
				snprintf(done[ndone++], sizeof(done[0]), "%s", cur);
			snprintf(cur, sizeof(cur), "%s", s->name);
		}
		q += nl;
		if (*q == '{') {
			q++;
			while (*q != '}') {
				size_t ln = 0;
				if (!(isalpha((unsigned char)q[0]) || q[0] == '_'))
					return parse_fail(why, whysz, line, "bad label name in %s",
					                  buf);
				if (q[0] == '_' && q[1] == '_')
					return parse_fail(why, whysz, line, "reserved label in %s",
					                  buf);
				while (isalnum((unsigned char)q[ln]) || q[ln] == '_')
					ln++;
				q += ln;
				if (q[0] != '=' || q[1] != '"')
					return parse_fail(why, whysz, line, "expected =\" in %s",
					                  buf);
				q += 2;
				for (;;) {
					if (*q == '\0')
						return parse_fail(why, whysz, line,
						                  "unterminated label value in %s",
						                  buf);
					if (*q == '"')
						break;
					if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
						return parse_fail(why, whysz, line,
						                  "raw byte in %s", buf);
					if (*q == '\\') {
						if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
							return parse_fail(why, whysz, line,
							                  "bad escape in %s", buf);
						q++;
					}
					q++;
				}
				q++;
				if (*q == ',')
					q++;
				else if (*q != '}')
					return parse_fail(why, whysz, line, "expected , or } in %s",
					                  buf);
			}
			q++;
		}
		if (*q != ' ')
			return parse_fail(why, whysz, line, "no space before the value in %s", buf);
		snprintf(s->key, sizeof(s->key), "%.*s", (int)(q - buf), buf);
		q++;
		{
			const char *end;
			errno = 0;
			s->v = parse_value(q, &end);
			if (end == q || errno != 0)
				return parse_fail(why, whysz, line, "bad value in %s", buf);
			if (*end != '\0')
				return parse_fail(why, whysz, line,
				                  "trailing text (a timestamp?) in %s", buf);
		}
		if (s->counter && !(s->v >= 0))
			return parse_fail(why, whysz, line, "negative counter in %s", buf);
		for (int i = 0; i < out->n; i++)
			if (strcmp(out->s[i].key, s->key) == 0)
				return parse_fail(why, whysz, line, "duplicate series %s", s->key);
		out->n++;
	}
	/* every family announced has its TYPE */
	if (nhelped != ntyped)
		return parse_fail(why, whysz, line, "%s", "a HELP without TYPE");
	return 0;
}

static const struct sample *
find(const struct parsed *p, const char *key)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->s[i].key, key) == 0)
			return &p->s[i];
	return NULL;
}

/* Value of a series, -1 when absent. */
static double
value(const struct parsed *p, const char *key)
{
	const struct sample *s = find(p, key);

	return s ? s->v : -1;
}

/* ---- helpers -------------------------------------------------------------- */

static char *
slurp(const char *file)
{
	FILE *fp = fopen(file, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

/* Read and parse the textfile; fails the test when it is not valid. */
static void
read_parsed(const char *file, struct parsed *p)
{
	char why[512];
	char *text = slurp(file);

	if (parse_exposition(text, p, why, sizeof(why)) == -1)
		fail_msg("%s: %s\n%s", file, why, text);
	free(text);
}

static struct cfg *
metrics_cfg(const char *file, double interval)
{
	struct cfg *c = cfg_defaults();

	assert_non_null(c);
	c->metrics_textfile = file ? strdup(file) : NULL;
	c->metrics_interval = interval;
	return c;
}

/* Entries of tmpdir other than . and .. */
static int
dir_entries(char names[][256], int max)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n < max)
			snprintf(names[n], 256, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* A finished session as outcome_record sees it. */
struct fake_session {
	struct session s;
	struct session_domain d[2];
};

static struct fake_session *
fake_session(const char *result, const char *tlsver, unsigned ok, unsigned tmp, unsigned perm)
{
	struct fake_session *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->s.result, sizeof(f->s.result), "%s", result);
	if (tlsver != NULL) {
		f->s.tls_ok = 1;
		snprintf(f->s.tls_version, sizeof(f->s.tls_version), "%s", tlsver);
	}
	f->s.rcpt_ok = ok;
	f->s.rcpt_tempfail = tmp;
	f->s.rcpt_permfail = perm;
	snprintf(f->d[0].name, sizeof(f->d[0].name), "example.com");
	f->d[0].req.source = TLSPOLICY_SRC_MTASTS;
	f->d[0].verdict = TLSPOLICY_OK;
	snprintf(f->d[1].name, sizeof(f->d[1].name), "other.example");
	f->d[1].req.source = TLSPOLICY_SRC_STATIC;
	f->d[1].verdict = TLSPOLICY_FAIL_MXPATTERN;
	f->s.domains[0] = &f->d[0];
	f->s.domains[1] = &f->d[1];
	f->s.ndomains = 2;
	return f;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_disabled(void **state)
{
	struct cfg *c = metrics_cfg(NULL, 15);
	char err[256] = "x";
	struct proxy px;
	struct fake_session *f = fake_session("ok", NULL, 1, 0, 0);
	char names[8][256];

	(void)state;
	memset(&px, 0, sizeof(px));
	assert_null(metrics_new(NULL, c, &px, err, sizeof(err)));
	assert_string_equal(err, ""); /* disabled is not an error */
	assert_null(metrics_new(NULL, NULL, &px, err, sizeof(err)));
	/* every entry point is a no-op on NULL */
	metrics_event(NULL, "starttls_garbled", "alert");
	metrics_session_end(NULL, &f->s);
	assert_int_equal(metrics_write(NULL), 0);
	metrics_free(NULL);
	assert_int_equal(dir_entries(names, 8), 0); /* nothing was written */
	free(f);
	cfg_unref(c);
}

static void
test_start_failure(void **state)
{
	char err[512], bad[600];
	struct proxy px;
	struct cfg *c;

	(void)state;
	memset(&px, 0, sizeof(px));
	snprintf(bad, sizeof(bad), "%s/missing-dir/stsproxy.prom", tmpdir);
	c = metrics_cfg(bad, 15);
	assert_null(metrics_new(NULL, c, &px, err, sizeof(err)));
	/* the message names the file and the reason */
	assert_non_null(strstr(err, bad));
	assert_non_null(strstr(err, "No such file or directory"));
	cfg_unref(c);
}

static void
test_format(void **state)
{
	struct cfg *c = metrics_cfg(path, 15);
	struct fake_session *ok = fake_session("ok", "TLSv1.3", 3, 1, 0);
	struct fake_session *plain = fake_session("deferred", NULL, 0, 2, 1);
	struct parsed *p = calloc(1, sizeof(*p));
	char err[256], *text;
	struct metrics *m;
	struct proxy px;

	(void)state;
	assert_non_null(p);
	memset(&px, 0, sizeof(px));
	px.nsessions = 4;
	px.stats.sessions = 9;
	px.stats.messages = 5;
	px.stats.tls_upgraded = 6;
	px.stats.refused = 2;
	px.stats.rcpt_deferred = 3;
	m = metrics_new(NULL, c, &px, err, sizeof(err));
	if (m == NULL)
		fail_msg("metrics_new: %s", err);

	/* the first write, at creation: valid, recipients shown as 0 */
	read_parsed(path, p);
	assert_true(value(p, "stsproxy_recipients_total{outcome=\"accepted\"}") == 0);
	assert_true(value(p, "stsproxy_sessions_current") == 4);

	metrics_event(m, "starttls_garbled", "alert");
	metrics_event(m, "starttls_garbled", "alert");
	metrics_event(m, "starttls_not_advertised", "info");
	metrics_event(m, "starttls_not_advertised", "alert");                   /* escalated */
	metrics_sts_event(m, "mta_sts_fetch_failed", "warning", "example.org"); /* engine hook */
	metrics_event(m, "odd\"name\\with\nnewline\x01\xc3\xa9", "warning");
	metrics_event(m, "", NULL);
	metrics_session_end(m, &ok->s);
	metrics_session_end(m, &plain->s);
	assert_int_equal(metrics_write(m), 0);

	read_parsed(path, p);
	assert_true(
	        value(p, "stsproxy_events_total{event=\"starttls_garbled\",severity=\"alert\"}") ==
	        2);
	assert_true(value(p, "stsproxy_events_total{event=\"starttls_not_advertised\","
	                     "severity=\"info\"}") == 1);
	assert_true(value(p, "stsproxy_events_total{event=\"starttls_not_advertised\","
	                     "severity=\"alert\"}") == 1);
	/* escaped as the format wants; other bytes made '?' */
	assert_true(value(p, "stsproxy_events_total{event=\"odd\\\"name\\\\with\\nnewline???\","
	                     "severity=\"warning\"}") == 1);
	assert_true(value(p, "stsproxy_events_total{event=\"unknown\",severity=\"unknown\"}") == 1);
	assert_true(value(p, "stsproxy_events_total{event=\"mta_sts_fetch_failed\","
	                     "severity=\"warning\"}") == 1);
	/* no MTA-STS engine here: none of its counters */
	assert_true(value(p, "stsproxy_mta_sts_fetches_total") == -1);
	assert_true(value(p, "stsproxy_sessions_total{result=\"ok\"}") == 1);
	assert_true(value(p, "stsproxy_sessions_total{result=\"deferred\"}") == 1);
	assert_true(value(p, "stsproxy_sessions_tls_total{version=\"TLSv1.3\"}") == 1);
	assert_true(value(p, "stsproxy_sessions_tls_total{version=\"none\"}") == 1);
	assert_true(value(p, "stsproxy_recipients_total{outcome=\"accepted\"}") == 3);
	assert_true(value(p, "stsproxy_recipients_total{outcome=\"deferred\"}") == 3);
	assert_true(value(p, "stsproxy_recipients_total{outcome=\"rejected\"}") == 1);
	assert_true(value(p, "stsproxy_policy_verdicts_total{source=\"mta-sts\",verdict=\"ok\"}") ==
	            2);
	assert_true(value(p, "stsproxy_policy_verdicts_total{source=\"static\","
	                     "verdict=\"mx_mismatch\"}") == 2);
	assert_true(value(p, "stsproxy_sessions_current") == 4);
	assert_true(value(p, "stsproxy_sessions_accepted_total") == 9);
	assert_true(value(p, "stsproxy_connections_refused_total") == 2);
	assert_true(value(p, "stsproxy_messages_total") == 5);
	assert_true(value(p, "stsproxy_tls_upgrades_total") == 6);
	assert_true(value(p, "stsproxy_tls_chain_checks_total") == 0); /* no TLS context here */
	assert_true(value(p, "stsproxy_tls_chain_checks_cached_total") == 0);
	assert_true(value(p, "stsproxy_recipients_deferred_by_stsproxy_total") == 3);
	assert_true(value(p, "stsproxy_uptime_seconds") >= 0);
	assert_true(value(p, "stsproxy_start_time_seconds") > 1.6e9);

	/* the exact shape of one family, HELP and TYPE first */
	text = slurp(path);
	assert_non_null(strstr(text, "# HELP stsproxy_sessions_total Sessions ended, by the result "
	                             "field of their outcome record.\n"
	                             "# TYPE stsproxy_sessions_total counter\n"
	                             "stsproxy_sessions_total{result=\"deferred\"} 1\n"
	                             "stsproxy_sessions_total{result=\"ok\"} 1\n"));
	free(text);

	metrics_free(m);
	free(ok);
	free(plain);
	free(p);
	cfg_unref(c);
}

static void
test_grammar_checker(void **state)
{
	/* the reader above is strict enough to catch what it must */
	static const char *const bad[] = {
	        "",
	        "stsproxy_x_total 1\n", /* no HELP/TYPE */
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\nstsproxy_x_total 1",
	        "# TYPE stsproxy_x_total counter\n# HELP stsproxy_x_total h\nstsproxy_x_total 1\n",
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\n"
	        "stsproxy_x_total{a=\"b\\q\"} 1\n",
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\n"
	        "stsproxy_x_total{a=\"b\"c\"} 1\n",
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\n"
	        "stsproxy_x_total 1 1700000000000\n",
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\n"
	        "stsproxy_x_total{a=\"1\"} 1\nstsproxy_x_total{a=\"1\"} 2\n",
	        "# HELP stsproxy_x h\n# TYPE stsproxy_x counter\nstsproxy_x 1\n",
	        "# HELP x_total h\n# TYPE x_total counter\nx_total 1\n",
	        "# HELP stsproxy_x_total h\n# TYPE stsproxy_x_total counter\nstsproxy_x_total "
	        "abc\n",
	        "# HELP stsproxy_a h\n# TYPE stsproxy_a gauge\n# HELP stsproxy_b h\n"
	        "# TYPE stsproxy_b gauge\nstsproxy_a 1\nstsproxy_b 1\nstsproxy_a{l=\"x\"} 1\n",
	};
	struct parsed *p = calloc(1, sizeof(*p));
	char why[256];

	(void)state;
	assert_non_null(p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_exposition(bad[i], p, why, sizeof(why)) != -1)
			fail_msg("bad text %zu accepted:\n%s", i, bad[i]);
	assert_int_equal(parse_exposition("# HELP stsproxy_x_total a \\\\ b\\n\n"
	                                  "# TYPE stsproxy_x_total counter\n"
	                                  "stsproxy_x_total{a=\"\\\"\\\\\\n\",b=\"\"} 1.5e3\n",
	                                  p, why, sizeof(why)),
	                 0);
	assert_true(p->n == 1 && p->s[0].v == 1500);
	free(p);
}

static void
test_monotonic(void **state)
{
	struct cfg *c = metrics_cfg(path, 15);
	struct parsed *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct fake_session *f = fake_session("ok", "TLSv1.2", 1, 0, 0);
	struct metrics *m;
	struct proxy px;
	char err[256];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	memset(&px, 0, sizeof(px));
	m = metrics_new(NULL, c, &px, err, sizeof(err));
	assert_non_null(m);
	for (int round = 0; round < 5; round++) {
		read_parsed(path, a);
		metrics_event(m, "tls_cert_expired", "notice");
		if (round % 2)
			metrics_event(m, round == 3 ? "mx_rerouted" : "policy_failure", "alert");
		metrics_session_end(m, &f->s);
		px.stats.sessions++;
		px.stats.messages += (unsigned)round;
		px.nsessions = round % 3; /* a gauge may go down */
		assert_int_equal(metrics_write(m), 0);
		read_parsed(path, b);
		/* every series survives, and no counter decreases */
		for (int i = 0; i < a->n; i++) {
			const struct sample *s = find(b, a->s[i].key);
			if (s == NULL)
				fail_msg("round %d: %s disappeared", round, a->s[i].key);
			if (a->s[i].counter && s->v < a->s[i].v)
				fail_msg("round %d: counter %s went from %g to %g", round,
				         a->s[i].key, a->s[i].v, s->v);
		}
		assert_true(value(b, "stsproxy_events_total{event=\"tls_cert_expired\","
		                     "severity=\"notice\"}") == round + 1);
		assert_true(value(b, "stsproxy_sessions_tls_total{version=\"TLSv1.2\"}") ==
		            round + 1);
		assert_true(value(b, "stsproxy_sessions_accepted_total") ==
		            value(a, "stsproxy_sessions_accepted_total") + 1);
	}
	metrics_free(m);
	free(f);
	free(a);
	free(b);
	cfg_unref(c);
}

static void
test_atomic(void **state)
{
	struct cfg *c = metrics_cfg(path, 15);
	struct parsed *p = calloc(1, sizeof(*p));
	struct metrics *m;
	struct proxy px;
	struct stat st;
	char err[256], names[8][256], *before, *after, *held;
	FILE *old;
	long n;
	mode_t um;

	(void)state;
	assert_non_null(p);
	memset(&px, 0, sizeof(px));
	um = umask(077);
	m = metrics_new(NULL, c, &px, err, sizeof(err));
	assert_non_null(m);
	/* 0644 whatever the umask: node_exporter often runs as another user */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_true(S_ISREG(st.st_mode));

	/* A reader that opened the file before a rewrite keeps reading the
	 * complete old file; the path then names the complete new one. */
	before = slurp(path);
	old = fopen(path, "r");
	assert_non_null(old);
	for (int i = 0; i < 200; i++)
		metrics_event(m, i % 2 ? "ehlo_empty_line" : "banner_masked", "notice");
	assert_int_equal(metrics_write(m), 0);
	held = calloc(1, strlen(before) + 1);
	assert_non_null(held);
	n = (long)fread(held, 1, strlen(before), old);
	assert_int_equal(n, (long)strlen(before));
	assert_int_equal(fgetc(old), EOF); /* and not a byte more */
	fclose(old);
	assert_string_equal(held, before);
	after = slurp(path);
	assert_string_not_equal(after, before);
	read_parsed(path, p);
	assert_true(
	        value(p, "stsproxy_events_total{event=\"banner_masked\",severity=\"notice\"}") ==
	        100);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* only the textfile is in the directory: no temporary file left */
	assert_int_equal(dir_entries(names, 8), 1);
	assert_string_equal(names[0], "stsproxy.prom");

	/* The rename fails (a directory now has the name): -1 with errno,
	 * and the temporary file is removed. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0755), 0);
	errno = 0;
	assert_int_equal(metrics_write(m), -1);
	assert_int_not_equal(errno, 0);
	assert_int_equal(dir_entries(names, 8), 1);
	assert_string_equal(names[0], "stsproxy.prom");
	assert_int_equal(rmdir(path), 0);
	/* and it works again afterwards */
	assert_int_equal(metrics_write(m), 0);
	read_parsed(path, p);
	umask(um);

	metrics_free(m);
	free(before);
	free(after);
	free(held);
	free(p);
	cfg_unref(c);
}

static void
stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void
test_timer(void **state)
{
	struct cfg *c = metrics_cfg(path, 0.05);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct parsed *p = calloc(1, sizeof(*p));
	struct metrics *m;
	struct proxy px;
	ev_timer stop;
	char err[256];

	(void)state;
	assert_non_null(loop);
	assert_non_null(p);
	memset(&px, 0, sizeof(px));
	m = metrics_new(loop, c, &px, err, sizeof(err));
	assert_non_null(m);
	metrics_event(m, "plaintext_injection", "warning");
	px.nsessions = 7;
	read_parsed(path, p);
	assert_true(value(p, "stsproxy_events_total{event=\"plaintext_injection\","
	                     "severity=\"warning\"}") == -1); /* not written yet */
	ev_timer_init(&stop, stop_loop, 0.3, 0.);
	ev_timer_start(loop, &stop);
	ev_run(loop, 0);
	read_parsed(path, p);
	assert_true(value(p, "stsproxy_events_total{event=\"plaintext_injection\","
	                     "severity=\"warning\"}") == 1);
	assert_true(value(p, "stsproxy_sessions_current") == 7);
	metrics_free(m); /* stops its timer: the loop has nothing left */
	assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0);
	ev_loop_destroy(loop);
	free(p);
	cfg_unref(c);
}

static void
test_bounded(void **state)
{
	struct cfg *c = metrics_cfg(path, 15);
	struct parsed *p = calloc(1, sizeof(*p));
	struct metrics *m;
	struct proxy px;
	char err[256], name[32];
	double sum = 0;
	int nev = 0;

	(void)state;
	assert_non_null(p);
	memset(&px, 0, sizeof(px));
	m = metrics_new(NULL, c, &px, err, sizeof(err));
	assert_non_null(m);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "event_%03d", i);
		metrics_event(m, name, "info");
	}
	assert_int_equal(metrics_write(m), 0);
	read_parsed(path, p);
	for (int i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, "stsproxy_events_total") != 0)
			continue;
		nev++;
		sum += p->s[i].v;
	}
	/* at most 128 series; nothing lost: the rest is in "other" */
	assert_true(nev <= 128);
	assert_true(sum == 500);
	assert_true(value(p, "stsproxy_events_total{event=\"other\",severity=\"other\"}") > 0);
	metrics_free(m);
	free(p);
	cfg_unref(c);
}

/* ---- fixture -------------------------------------------------------------------- */

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/stsproxy.prom", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(tmpdir);
}

/* Each test starts from an empty directory. */
static int
clean(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_disabled, clean),
	        cmocka_unit_test_setup(test_start_failure, clean),
	        cmocka_unit_test_setup(test_grammar_checker, clean),
	        cmocka_unit_test_setup(test_format, clean),
	        cmocka_unit_test_setup(test_monotonic, clean),
	        cmocka_unit_test_setup(test_atomic, clean),
	        cmocka_unit_test_setup(test_timer, clean),
	        cmocka_unit_test_setup(test_bounded, clean),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
