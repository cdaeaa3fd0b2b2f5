/*
 * metrics: counters in the Prometheus text format, written atomically to
 * a node_exporter textfile (see metrics.h for the choice and contracts).
 *
 * Labelled counters live in small families of series, kept sorted by
 * label values so that the file reads the same from one write to the
 * next. Label values come from our own code (event names, results, TLS
 * version strings, policy names), never from the network; a family still
 * holds at most METRICS_MAXSERIES series, and anything beyond folds into
 * one series labelled "other", so memory and file size stay bounded
 * whatever a future caller passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "cfg.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "tls.h"
#include "proxy.h"
#include "session.h"
#include "sts.h"
#include "tlspolicy.h"

#define METRICS_MAXLABELS 2
#define METRICS_MAXSERIES 128 /* per family, "other" included */
#define METRICS_OTHER     "other"

struct metrics_series {
	char *lv[METRICS_MAXLABELS];
	unsigned long long n;
};

struct metrics_family {
	const char *name;
	const char *help;
	const char *label[METRICS_MAXLABELS];
	int nlabels;
	struct metrics_series *s;
	int n, cap;
};

enum { MF_EVENTS = 0, MF_SESSIONS, MF_SESSION_TLS, MF_RECIPIENTS, MF_VERDICTS, MF_MAX };

struct metrics {
	struct ev_loop *loop;
	const struct proxy *px;
	char *path;
	char tmpl[PATH_MAX]; /* "<dir>/.<file>.XXXXXX" for mkostemp */
	ev_timer timer;
	time_t started;
	struct timespec started_mono;
	int failing; /* the last write failed (logged once, until it works again) */
	struct metrics_family f[MF_MAX];
};

static const struct {
	const char *name, *help, *l0, *l1;
} family_defs[MF_MAX] = {
        [MF_EVENTS] = {"stsproxy_events_total",
                       "Security events logged (\"type\":\"event\" records, docs/events.md), by "
                       "event name and severity after escalation.",
                       "event", "severity"},
        [MF_SESSIONS] = {"stsproxy_sessions_total",
                         "Sessions ended, by the result field of their outcome record.", "result",
                         NULL},
        [MF_SESSION_TLS] = {"stsproxy_sessions_tls_total",
                            "Sessions ended, by the TLS version of the upstream leg "
                            "(none = plaintext).",
                            "version", NULL},
        [MF_RECIPIENTS] = {"stsproxy_recipients_total",
                           "Recipients of ended sessions by outcome: accepted by the server, "
                           "deferred (4xx, by the server or by stsproxy), rejected (5xx by the "
                           "server).",
                           "outcome", NULL},
        [MF_VERDICTS] = {"stsproxy_policy_verdicts_total",
                         "TLS policy verdicts, one per recipient domain of an ended session, by "
                         "policy source and verdict (ok or the failed check).",
                         "source", "verdict"},
};

/* ------------------------------------------------------------------ */
/* series */

static int
series_cmp(const struct metrics_family *f, const struct metrics_series *s, const char *const *lv)
{
	for (int i = 0; i < f->nlabels; i++) {
		int c = strcmp(s->lv[i], lv[i]);
		if (c != 0)
			return c;
	}
	return 0;
}

/* The series for these label values, created (in sorted position) if
 * new; NULL only when out of memory. */
static struct metrics_series *
series_get(struct metrics_family *f, const char *const *lv)
{
	static const char *const other[METRICS_MAXLABELS] = {METRICS_OTHER, METRICS_OTHER};
	struct metrics_series *s;
	int i;

	for (i = 0; i < f->n; i++) {
		int c = series_cmp(f, &f->s[i], lv);
		if (c == 0)
			return &f->s[i];
		if (c > 0)
			break;
	}
	if (f->n >= METRICS_MAXSERIES - 1 && lv != other)
		return series_get(f, other);
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 8;
		struct metrics_series *ns = realloc(f->s, (size_t)cap * sizeof(*ns));
		if (ns == NULL)
			return NULL;
		f->s = ns;
		f->cap = cap;
	}
	s = &f->s[i];
	memmove(s + 1, s, (size_t)(f->n - i) * sizeof(*s));
	memset(s, 0, sizeof(*s));
	for (int k = 0; k < f->nlabels; k++) {
		if ((s->lv[k] = strdup(lv[k])) == NULL) {
			while (k-- > 0)
				free(s->lv[k]);
			memmove(s, s + 1, (size_t)(f->n - i) * sizeof(*s));
			return NULL;
		}
	}
	f->n++;
	return s;
}

/* Add n to a series; a lost count (no memory) never stops the daemon. */
static void
count(struct metrics_family *f, const char *l0, const char *l1, unsigned long long n)
{
	const char *lv[METRICS_MAXLABELS] = {l0 != NULL && l0[0] ? l0 : "unknown",
	                                     l1 != NULL && l1[0] ? l1 : "unknown"};
	struct metrics_series *s = series_get(f, lv);

	if (s != NULL)
		s->n += n;
}

void
metrics_event(struct metrics *m, const char *name, const char *severity)
{
	if (m != NULL)
		count(&m->f[MF_EVENTS], name, severity, 1);
}

void
metrics_sts_event(void *arg, const char *name, const char *severity, const char *domain)
{
	(void)domain;
	metrics_event(arg, name, severity);
}

void
metrics_session_end(struct metrics *m, const struct session *s)
{
	const char *ver;

	if (m == NULL || s == NULL)
		return;
	count(&m->f[MF_SESSIONS], s->result, NULL, 1);
	/* Monitor mode sets tls_ok for a client's own TLS without a version. */
	ver = s->tls_version[0] ? s->tls_version : s->tls_ok ? "unknown" : "none";
	count(&m->f[MF_SESSION_TLS], ver, NULL, 1);
	count(&m->f[MF_RECIPIENTS], "accepted", NULL, s->rcpt_ok);
	count(&m->f[MF_RECIPIENTS], "deferred", NULL, s->rcpt_tempfail);
	count(&m->f[MF_RECIPIENTS], "rejected", NULL, s->rcpt_permfail);
	for (int i = 0; i < s->ndomains; i++) {
		const struct session_domain *d = s->domains[i];
		if (d != NULL)
			count(&m->f[MF_VERDICTS], tlspolicy_source_name(d->req.source),
			      tlspolicy_fail_name(d->verdict), 1);
	}
}

/* ------------------------------------------------------------------ */
/* the text format */

/*
 * Label values: \ " and newline escaped as the format requires. Other
 * control bytes and non-ASCII become '?': the format wants UTF-8, and
 * nothing we count should contain them.
 */
static void
put_label_value(FILE *fp, const char *v)
{
	for (; *v; v++) {
		unsigned char ch = (unsigned char)*v;
		if (ch == '\\' || ch == '"')
			fprintf(fp, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", fp);
		else if (ch < 0x20 || ch >= 0x7f)
			fputc('?', fp);
		else
			fputc(ch, fp);
	}
}

/* HELP text: \ and newline escaped. */
static void
put_help(FILE *fp, const char *name, const char *help, const char *type)
{
	fprintf(fp, "# HELP %s ", name);
	for (; *help; help++) {
		if (*help == '\\')
			fputs("\\\\", fp);
		else if (*help == '\n')
			fputs("\\n", fp);
		else
			fputc(*help, fp);
	}
	fprintf(fp, "\n# TYPE %s %s\n", name, type);
}

static void
put_family(FILE *fp, const struct metrics_family *f)
{
	put_help(fp, f->name, f->help, "counter");
	for (int i = 0; i < f->n; i++) {
		fprintf(fp, "%s{", f->name);
		for (int k = 0; k < f->nlabels; k++) {
			fprintf(fp, "%s%s=\"", k ? "," : "", f->label[k]);
			put_label_value(fp, f->s[i].lv[k]);
			fputc('"', fp);
		}
		fprintf(fp, "} %llu\n", f->s[i].n);
	}
}

static void
put_counter(FILE *fp, const char *name, const char *help, unsigned long long v)
{
	put_help(fp, name, help, "counter");
	fprintf(fp, "%s %llu\n", name, v);
}

static void
put_gauge(FILE *fp, const char *name, const char *help, double v)
{
	put_help(fp, name, help, "gauge");
	if (v == (double)(long long)v)
		fprintf(fp, "%s %lld\n", name, (long long)v);
	else
		fprintf(fp, "%s %.3f\n", name, v);
}

/* What the MTA-STS engine answered, read from its counters at each write. */
static void
put_sts(FILE *fp, const struct sts *e)
{
	const struct sts_stats *st = e != NULL ? sts_stats(e) : NULL;
	static const char name[] = "stsproxy_mta_sts_answers_total";

	if (st == NULL)
		return;
	put_help(fp, name,
	         "MTA-STS answers to policy lookups (one per waiting session), by status and "
	         "reason.",
	         "counter");
	for (int i = 0; i < STS_STATUS_COUNT; i++)
		for (int k = 0; k < STS_WHY_COUNT; k++)
			if (st->answers[i][k] > 0)
				fprintf(fp, "%s{status=\"%s\",reason=\"%s\"} %llu\n", name,
				        sts_strstatus((enum sts_status)i),
				        sts_strwhy((enum sts_why)k), st->answers[i][k]);
	put_counter(fp, "stsproxy_mta_sts_fetches_total", "MTA-STS policy fetches (HTTPS) started.",
	            st->fetches);
}

static void
render(struct metrics *m, FILE *fp)
{
	const struct proxy *px = m->px;
	struct timespec now;
	double up;

	clock_gettime(CLOCK_MONOTONIC, &now);
	up = (double)(now.tv_sec - m->started_mono.tv_sec) +
	     (double)(now.tv_nsec - m->started_mono.tv_nsec) / 1e9;
	put_gauge(fp, "stsproxy_start_time_seconds", "Start time of the process, Unix time.",
	          (double)m->started);
	put_gauge(fp, "stsproxy_uptime_seconds", "Seconds since the process started.", up);
	put_gauge(fp, "stsproxy_sessions_current", "Sessions open now.",
	          (double)(px ? px->nsessions : 0));
	put_counter(fp, "stsproxy_sessions_accepted_total",
	            "Intercepted connections that became a session.", px ? px->stats.sessions : 0);
	put_counter(fp, "stsproxy_connections_refused_total",
	            "Connections refused by limits.max_sessions or as a relay loop.",
	            px ? px->stats.refused : 0);
	put_counter(fp, "stsproxy_messages_total",
	            "Messages whose end of data a server answered 2xx.",
	            px ? px->stats.messages : 0);
	put_counter(fp, "stsproxy_tls_upgrades_total",
	            "TLS handshakes stsproxy completed toward servers (a rerouted session can "
	            "count once per server).",
	            px ? px->stats.tls_upgraded : 0);
	put_counter(fp, "stsproxy_tls_chain_checks_total",
	            "Server certificate chains checked with their CA signatures.",
	            px && px->tls ? tls_stats(px->tls)->verify_full : 0);
	put_counter(fp, "stsproxy_tls_chain_checks_cached_total",
	            "Server certificate chains found already verified for that name "
	            "(no signature checked again).",
	            px && px->tls ? tls_stats(px->tls)->verify_cached : 0);
	put_counter(fp, "stsproxy_recipients_deferred_by_stsproxy_total",
	            "Recipients stsproxy itself answered 4xx (policy not met, reroute failed), "
	            "counted when answered.",
	            px ? px->stats.rcpt_deferred : 0);
	put_sts(fp, px ? policy_sts(px->policy) : NULL);
	for (int i = 0; i < MF_MAX; i++)
		put_family(fp, &m->f[i]);
}

int
metrics_write(struct metrics *m)
{
	char tmp[PATH_MAX];
	FILE *fp;
	int fd, bad, saved;

	if (m == NULL)
		return 0;
	memcpy(tmp, m->tmpl, sizeof(tmp));
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return -1;
	/* node_exporter may run as another user; mkostemp makes 0600. */
	if (fchmod(fd, 0644) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	render(m, fp);
	bad = ferror(fp);
	saved = errno;
	if (fclose(fp) != 0 && !bad) {
		bad = 1;
		saved = errno;
	}
	/* rename() replaces the file in one step: a scrape reads the old
	 * file or the new one, never a partial write. */
	if (bad || rename(tmp, m->path) == -1) {
		if (!bad)
			saved = errno;
		unlink(tmp);
		errno = saved ? saved : EIO;
		return -1;
	}
	return 0;
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics *m = w->data;

	if (metrics_write(m) == -1) {
		if (!m->failing)
			log_warn("metrics: writing %s", m->path);
		m->failing = 1;
	} else if (m->failing) {
		log_notice("metrics: %s written again", m->path);
		m->failing = 0;
	}
}

/* ------------------------------------------------------------------ */
/* life cycle */

struct metrics *
metrics_new(struct ev_loop *loop, const struct cfg *cfg, const struct proxy *px, char *err,
            size_t errsz)
{
	struct metrics *m;
	const char *slash;
	int n;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (cfg == NULL || cfg->metrics_textfile == NULL)
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->path = strdup(cfg->metrics_textfile)) == NULL) {
		snprintf(err, errsz, "out of memory");
		free(m);
		return NULL;
	}
	m->loop = loop;
	m->px = px;
	m->started = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &m->started_mono);
	for (int i = 0; i < MF_MAX; i++) {
		m->f[i].name = family_defs[i].name;
		m->f[i].help = family_defs[i].help;
		m->f[i].label[0] = family_defs[i].l0;
		m->f[i].label[1] = family_defs[i].l1;
		m->f[i].nlabels = family_defs[i].l1 ? 2 : 1;
	}
	/* The recipient outcomes are known: show them as 0 from the start. */
	count(&m->f[MF_RECIPIENTS], "accepted", NULL, 0);
	count(&m->f[MF_RECIPIENTS], "deferred", NULL, 0);
	count(&m->f[MF_RECIPIENTS], "rejected", NULL, 0);

	ev_timer_init(&m->timer, on_timer, cfg->metrics_interval, cfg->metrics_interval);
	m->timer.data = m;

	/* The temporary file lives in the target's directory (rename does
	 * not cross file systems) and does not end in ".prom", so the
	 * collector never reads it. */
	slash = strrchr(m->path, '/');
	if (slash == NULL)
		n = snprintf(m->tmpl, sizeof(m->tmpl), ".%s.XXXXXX", m->path);
	else
		n = snprintf(m->tmpl, sizeof(m->tmpl), "%.*s/.%s.XXXXXX", (int)(slash - m->path),
		             m->path, slash + 1);
	if (n < 0 || (size_t)n >= sizeof(m->tmpl)) {
		snprintf(err, errsz, "%s: name too long", m->path);
		metrics_free(m);
		return NULL;
	}
	if (metrics_write(m) == -1) {
		snprintf(err, errsz, "cannot write %s: %s", m->path, strerror(errno));
		metrics_free(m);
		return NULL;
	}
	if (loop != NULL)
		ev_timer_start(loop, &m->timer);
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->loop != NULL)
		ev_timer_stop(m->loop, &m->timer);
	for (int i = 0; i < MF_MAX; i++) {
		for (int k = 0; k < m->f[i].n; k++) {
			free(m->f[i].s[k].lv[0]);
			free(m->f[i].s[k].lv[1]);
		}
		free(m->f[i].s);
	}
	free(m->path);
	free(m);
}
