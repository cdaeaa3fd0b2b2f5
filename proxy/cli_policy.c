/*
 * cli_policy: "stsproxy policy DOMAIN" and "stsproxy cache ..." (see cli.h
 * for usage and exit codes).
 *
 * The policy tool runs the daemon's own engine (sts) on a private loop with
 * the daemon's configuration, so what it prints is what the daemon would
 * decide; the extra lookups (all TXT records, the MX set) are only for
 * display. Output is text for people or, with --json, one JSON object with
 * a stable shape for scripts (documented in the README).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "cfg.h"
#include "cli.h"
#include "dns.h"
#include "jsonw.h"
#include "log.h"
#include "mxfind.h"
#include "mxpattern.h"
#include "pcache.h"
#include "sts.h"
#include "sts_policy.h"
#include "sts_record.h"

#define CLI_WAIT_MAX 600.0 /* seconds: a hard bound on the whole run */

/* --- a small streaming JSON writer for stdout (policies exceed jsonw's
 * record size) ------------------------------------------------------------ */

struct jout {
	FILE *fp;
	int depth;
	int first[16];
};

static void
jo_sep(struct jout *j)
{
	if (!j->first[j->depth])
		fputc(',', j->fp);
	j->first[j->depth] = 0;
}

static void
jo_rawstr(struct jout *j, const char *s, size_t len)
{
	size_t cap = len * 6 + 1;
	char *buf = malloc(cap);

	fputc('"', j->fp);
	if (buf != NULL) {
		size_t n = jsonw_escape(buf, cap, s, len);
		fwrite(buf, 1, n, j->fp);
		free(buf);
	}
	fputc('"', j->fp);
}

static void
jo_key(struct jout *j, const char *key)
{
	jo_sep(j);
	if (key != NULL) {
		jo_rawstr(j, key, strlen(key));
		fputc(':', j->fp);
	}
}

static void
jo_open(struct jout *j, const char *key, int ch)
{
	jo_key(j, key);
	fputc(ch, j->fp);
	j->first[++j->depth] = 1;
}

static void
jo_close(struct jout *j, int ch)
{
	j->depth--;
	fputc(ch, j->fp);
}

static void
jo_strn(struct jout *j, const char *key, const char *s, size_t len)
{
	jo_key(j, key);
	if (s == NULL)
		fputs("null", j->fp);
	else
		jo_rawstr(j, s, len);
}

static void
jo_str(struct jout *j, const char *key, const char *s)
{
	jo_strn(j, key, s, s != NULL ? strlen(s) : 0);
}

static void
jo_int(struct jout *j, const char *key, long long v)
{
	jo_key(j, key);
	fprintf(j->fp, "%lld", v);
}

static void
jo_bool(struct jout *j, const char *key, int v)
{
	jo_key(j, key);
	fputs(v ? "true" : "false", j->fp);
}

static void
jo_null(struct jout *j, const char *key)
{
	jo_key(j, key);
	fputs("null", j->fp);
}

/* --- running the loop until something is done ------------------------------ */

static void
cli_on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	int *expired = w->data;

	(void)revents;
	*expired = 1;
	ev_break(loop, EVBREAK_ALL);
}

/* Run until *done, bounded. 0, or -1 when the bound passed. */
static int
cli_run_until(struct ev_loop *loop, const int *done)
{
	ev_timer guard;
	int expired = 0;

	ev_timer_init(&guard, cli_on_guard, CLI_WAIT_MAX, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (!*done && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return *done ? 0 : -1;
}

static void
cli_usage(FILE *fp)
{
	fprintf(fp, "usage: stsproxy policy DOMAIN [--json] [-c FILE] [-v]\n"
	            "       stsproxy cache list|show DOMAIN|flush DOMAIN [--json] [-c FILE]\n"
	            "\n"
	            "policy: discover, fetch and check DOMAIN's MTA-STS policy like the daemon.\n"
	            "  exit 0 valid policy, 1 no policy, 2 invalid or failed, 3 usage/config "
	            "error\n"
	            "cache: list, show or flush entries of the persistent policy cache.\n"
	            "  exit 0 done, 1 no such domain, 2 cache file error, 3 usage/config error\n");
}

static struct cfg *
cli_config(const char *path)
{
	char err[1024];
	struct cfg *cfg = path ? cfg_load(path, err, sizeof(err)) : cfg_defaults();

	if (cfg == NULL)
		fprintf(stderr, "stsproxy: %s\n", path ? err : "out of memory");
	return cfg;
}

static const char *
cli_time(time_t t, char *buf, size_t sz)
{
	struct tm tm;

	if (t <= 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, sz, "-");
		return buf;
	}
	strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static const char *
cli_state_name(enum pcache_state st)
{
	switch (st) {
	case PCACHE_MISSING:
		return "missing";
	case PCACHE_FRESH:
		return "fresh";
	case PCACHE_EXPIRED:
		return "expired";
	}
	return "?";
}

/* --- what the policy tool collects ------------------------------------------ */

struct cli_cachestate {
	enum pcache_state state;
	char id[STS_ID_MAXLEN + 1];
	enum sts_mode mode;
	time_t fetched_at, expires_at, last_checked;
	char last_error[PCACHE_ERRMAX];
};

struct cli_policy {
	char domain[DNS_NAME_MAX + 1];
	/* every TXT record, for display */
	int txt_done;
	enum dns_status txt_status;
	int ntxt;
	char *txt[DNS_MAXTXT];
	/* the engine's verdict */
	int sts_done;
	enum sts_status status;
	enum sts_why why;
	enum sts_mode mode;
	char id[STS_ID_MAXLEN + 1];
	uint32_t max_age;
	int from_cache;
	time_t fetched_at, expires;
	char error[STS_ERRMAX];
	char *selected; /* the STSv1 record the engine used */
	char *text;     /* policy text */
	size_t textlen;
	int nmx;
	char (*mx)[STS_MX_MAXLEN + 1];
	/* the MX set */
	int mx_done;
	struct mxfind_result mxr;
	/* cache before / after */
	struct cli_cachestate before, after;
};

static void
cli_on_txt(void *arg, enum dns_status st, const char *const *rec, const size_t *len, int n)
{
	struct cli_policy *p = arg;

	p->txt_done = 1;
	p->txt_status = st;
	for (int i = 0; i < n && i < DNS_MAXTXT; i++)
		if ((p->txt[p->ntxt] = strndup(rec[i], len[i])) != NULL)
			p->ntxt++;
}

static void
cli_on_sts(void *arg, const struct sts_result *r)
{
	struct cli_policy *p = arg;

	p->sts_done = 1;
	p->status = r->status;
	p->why = r->why;
	p->mode = r->mode;
	snprintf(p->id, sizeof(p->id), "%s", r->id ? r->id : "");
	p->max_age = r->max_age;
	p->from_cache = r->from_cache;
	p->fetched_at = r->fetched_at;
	p->expires = r->expires;
	snprintf(p->error, sizeof(p->error), "%s", r->error ? r->error : "");
	if (r->txt != NULL)
		p->selected = strdup(r->txt);
	if (r->policy_text != NULL && (p->text = malloc(r->policy_len + 1)) != NULL) {
		memcpy(p->text, r->policy_text, r->policy_len);
		p->text[r->policy_len] = '\0';
		p->textlen = r->policy_len;
	}
	if (r->status == STS_FOUND && r->nmx > 0 &&
	    (p->mx = malloc((size_t)r->nmx * sizeof(*p->mx))) != NULL) {
		memcpy(p->mx, r->mx, (size_t)r->nmx * sizeof(*p->mx));
		p->nmx = r->nmx;
	}
}

static void
cli_on_mx(void *arg, const struct mxfind_result *res)
{
	struct cli_policy *p = arg;

	p->mx_done = 1;
	p->mxr = *res;
}

static void
cli_cachestate(struct pcache *c, const char *domain, struct cli_cachestate *cs)
{
	const struct pcache_entry *e = NULL;

	memset(cs, 0, sizeof(*cs));
	cs->state = pcache_lookup(c, domain, time(NULL), &e);
	if (e == NULL)
		return;
	snprintf(cs->id, sizeof(cs->id), "%s", e->id);
	cs->mode = e->mode;
	cs->fetched_at = e->fetched_at;
	cs->expires_at = e->expires_at;
	cs->last_checked = e->last_checked;
	snprintf(cs->last_error, sizeof(cs->last_error), "%s", e->last_error);
}

/* The first pattern host matches, or NULL. */
static const char *
cli_match(const struct cli_policy *p, const char *host)
{
	for (int i = 0; i < p->nmx; i++)
		if (mxpattern_match(p->mx[i], host))
			return p->mx[i];
	return NULL;
}

static int
cli_exit_code(const struct cli_policy *p)
{
	if (p->status == STS_FOUND)
		return CLI_EXIT_OK;
	if (p->status == STS_NONE && (p->why == STS_WHY_NO_RECORD || p->why == STS_WHY_BAD_DOMAIN))
		return CLI_EXIT_NOPOLICY;
	return CLI_EXIT_FAILED;
}

static const char *
cli_verdict(const struct cli_policy *p)
{
	if (p->status == STS_FOUND)
		return sts_mode_name(p->mode);
	if (p->status == STS_TEMPERROR)
		return "temperror";
	return cli_exit_code(p) == CLI_EXIT_NOPOLICY ? "no-policy" : "failed";
}

static void
cli_json_cachestate(struct jout *j, const char *key, const struct cli_cachestate *cs)
{
	jo_open(j, key, '{');
	jo_str(j, "state", cli_state_name(cs->state));
	if (cs->state != PCACHE_MISSING) {
		jo_str(j, "id", cs->id);
		jo_str(j, "mode", sts_mode_name(cs->mode));
		jo_int(j, "fetched_at", (long long)cs->fetched_at);
		jo_int(j, "expires", (long long)cs->expires_at);
		jo_int(j, "last_checked", (long long)cs->last_checked);
		jo_str(j, "last_error", cs->last_error);
	}
	jo_close(j, '}');
}

static void
cli_print_json(const struct cli_policy *p, const struct cfg *cfg, int rc)
{
	struct jout j = {.fp = stdout};
	struct sts_policy *pol = calloc(1, sizeof(*pol));
	char perr[STS_POLICY_ERRSZ] = "";
	int parsed = -1;

	if (p->text != NULL && pol != NULL)
		parsed = sts_policy_parse(p->text, p->textlen, pol, perr, sizeof(perr));
	j.first[0] = 1;
	jo_open(&j, NULL, '{');
	jo_str(&j, "domain", p->domain);
	jo_str(&j, "verdict", cli_verdict(p));
	jo_str(&j, "status", sts_strstatus(p->status));
	jo_str(&j, "reason", sts_strwhy(p->why));
	jo_str(&j, "error", p->error);
	jo_int(&j, "exit", rc);

	jo_open(&j, "txt", '{');
	{
		char name[DNS_NAME_MAX + 16];

		snprintf(name, sizeof(name), "_mta-sts.%s", p->domain);
		jo_str(&j, "name", name);
	}
	jo_str(&j, "dns_status", dns_strstatus(p->txt_status));
	jo_open(&j, "records", '[');
	for (int i = 0; i < p->ntxt; i++)
		jo_str(&j, NULL, p->txt[i]);
	jo_close(&j, ']');
	jo_str(&j, "selected", p->selected);
	jo_close(&j, '}');

	if (p->text != NULL) {
		jo_open(&j, "policy", '{');
		jo_strn(&j, "text", p->text, p->textlen);
		jo_bool(&j, "valid", parsed == 0);
		if (parsed != 0) {
			jo_str(&j, "parse_error", perr);
		} else {
			jo_str(&j, "mode", sts_mode_name(pol->mode));
			jo_int(&j, "max_age", pol->max_age);
			jo_bool(&j, "max_age_clamped", pol->max_age_clamped);
			jo_open(&j, "mx", '[');
			for (int i = 0; i < pol->nmx; i++)
				jo_str(&j, NULL, pol->mx[i]);
			jo_close(&j, ']');
		}
		if (p->status == STS_FOUND) {
			jo_str(&j, "id", p->id);
			jo_bool(&j, "from_cache", p->from_cache);
			jo_int(&j, "fetched_at", (long long)p->fetched_at);
			jo_int(&j, "expires", (long long)p->expires);
			jo_int(&j, "expires_in", (long long)(p->expires - time(NULL)));
		}
		jo_close(&j, '}');
	} else {
		jo_null(&j, "policy");
	}

	jo_open(&j, "mx_hosts", '[');
	for (int i = 0; p->mx_done && i < p->mxr.nhosts; i++) {
		const struct mxfind_host *h = &p->mxr.hosts[i];
		const char *pat = cli_match(p, h->name);

		jo_open(&j, NULL, '{');
		jo_str(&j, "name", h->name);
		jo_int(&j, "preference", h->preference);
		jo_bool(&j, "implicit", h->implicit);
		if (p->status == STS_FOUND && p->mode != STS_MODE_NONE) {
			jo_bool(&j, "matches", pat != NULL);
			jo_str(&j, "pattern", pat);
		} else {
			jo_null(&j, "matches");
		}
		jo_close(&j, '}');
	}
	jo_close(&j, ']');
	jo_str(&j, "mx_status", p->mx_done ? dns_strstatus(p->mxr.mx_status) : "not looked up");

	jo_open(&j, "cache", '{');
	jo_str(&j, "file", cfg->sts_cache_file);
	cli_json_cachestate(&j, "before", &p->before);
	cli_json_cachestate(&j, "after", &p->after);
	jo_close(&j, '}');
	jo_close(&j, '}');
	fputc('\n', stdout);
	free(pol);
}

static void
cli_print_cachestate(const char *what, const struct cli_cachestate *cs)
{
	char t1[40], t2[40];

	if (cs->state == PCACHE_MISSING) {
		printf("  %s: no entry\n", what);
		return;
	}
	printf("  %s: %s, id %s, mode %s, fetched %s, expires %s%s%s\n", what,
	       cli_state_name(cs->state), cs->id, sts_mode_name(cs->mode),
	       cli_time(cs->fetched_at, t1, sizeof(t1)), cli_time(cs->expires_at, t2, sizeof(t2)),
	       cs->last_error[0] ? ", last error: " : "", cs->last_error);
}

static void
cli_print_text(const struct cli_policy *p, const struct cfg *cfg, int rc)
{
	struct sts_policy *pol = calloc(1, sizeof(*pol));
	char perr[STS_POLICY_ERRSZ] = "", t1[40], t2[40];
	long long left;

	printf("domain:   %s\n", p->domain);
	printf("TXT _mta-sts.%s: %s, %d record(s)\n", p->domain, dns_strstatus(p->txt_status),
	       p->ntxt);
	for (int i = 0; i < p->ntxt; i++)
		printf("  record: \"%s\"%s\n", p->txt[i],
		       sts_record_is_sts(p->txt[i], strlen(p->txt[i])) ? "  (STSv1)" : "");
	printf("selected: %s\n", p->selected ? p->selected : "(none)");
	if (p->text != NULL) {
		printf("policy text (%zu bytes):\n", p->textlen);
		for (const char *s = p->text; *s;) {
			const char *nl = strchr(s, '\n');
			size_t n = nl ? (size_t)(nl - s) : strlen(s);

			if (n > 0 && s[n - 1] == '\r')
				n--;
			printf("  | %.*s\n", (int)n, s);
			s += nl ? (size_t)(nl - s) + 1 : strlen(s);
		}
		if (pol != NULL &&
		    sts_policy_parse(p->text, p->textlen, pol, perr, sizeof(perr)) == 0)
			printf("parse:    ok: mode %s, max_age %u%s, %d mx pattern(s)\n",
			       sts_mode_name(pol->mode), (unsigned)pol->max_age,
			       pol->max_age_clamped ? " (clamped)" : "", pol->nmx);
		else
			printf("parse:    INVALID: %s\n", perr);
	}
	printf("verdict:  %s (%s)\n", cli_verdict(p), sts_strwhy(p->why));
	if (p->status == STS_FOUND) {
		left = (long long)(p->expires - time(NULL));
		printf("policy:   id %s, mode %s, max_age %u, %s\n", p->id, sts_mode_name(p->mode),
		       (unsigned)p->max_age, p->from_cache ? "from the cache" : "fetched now");
		printf("validity: fetched %s, expires %s (in %lld s)\n",
		       cli_time(p->fetched_at, t1, sizeof(t1)),
		       cli_time(p->expires, t2, sizeof(t2)), left);
	}
	if (p->error[0])
		printf("note:     %s\n", p->error);
	if (p->mx_done) {
		printf("MX hosts (%s%s):\n", dns_strstatus(p->mxr.mx_status),
		       p->mxr.null_mx ? ", null MX" : "");
		for (int i = 0; i < p->mxr.nhosts; i++) {
			const struct mxfind_host *h = &p->mxr.hosts[i];
			const char *pat = cli_match(p, h->name);

			if (p->status != STS_FOUND || p->mode == STS_MODE_NONE)
				printf("  %3d %s%s: not checked (no policy to enforce)\n",
				       h->preference, h->name, h->implicit ? " (implicit)" : "");
			else if (pat != NULL)
				printf("  %3d %s: matches \"%s\"\n", h->preference, h->name, pat);
			else
				printf("  %3d %s: matches none of the %d pattern(s): %s\n",
				       h->preference, h->name, p->nmx,
				       p->mode == STS_MODE_ENFORCE ? "mail to it is deferred"
				                                   : "reported (testing)");
		}
	}
	printf("cache:    %s\n", cfg->sts_cache_file ? cfg->sts_cache_file : "(memory only)");
	cli_print_cachestate("before", &p->before);
	cli_print_cachestate("after", &p->after);
	printf("exit:     %d\n", rc);
	free(pol);
}

int
cli_policy_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int json = 0, verbose = 0, ch, rc = CLI_EXIT_FAILED;
	struct cli_policy *p = NULL;
	struct ev_loop *loop = NULL;
	struct dns *dns = NULL;
	struct sts *e = NULL;
	struct cfg *cfg = NULL;
	struct dns_query *q;
	struct sts_lookup *sl;
	struct mxfind *m;
	char err[1024], name[DNS_NAME_MAX + 16];

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:jvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			cli_usage(stdout);
			return CLI_EXIT_OK;
		default:
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return CLI_EXIT_FAILED;
	if (dns_normalize_name(argv[optind], p->domain, sizeof(p->domain)) == -1 ||
	    !pcache_domain_valid(p->domain, strlen(p->domain))) {
		fprintf(stderr, "stsproxy policy: \"%s\" is not a domain name\n", argv[optind]);
		free(p);
		return CLI_EXIT_USAGE;
	}
	if ((cfg = cli_config(path)) == NULL) {
		free(p);
		return CLI_EXIT_USAGE;
	}
	log_open("-", LOG_FMT_TEXT, verbose ? LOG_DEBUG : LOG_ERR, 0);
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL ||
	    (dns = dns_new(loop, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "stsproxy policy: %s\n",
		        loop ? err : "cannot create an event loop");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((e = sts_new(loop, dns, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "stsproxy policy: %s\n", err);
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	cli_cachestate(sts_cache(e), p->domain, &p->before);

	/* All TXT records, for display; the engine does its own lookup. */
	snprintf(name, sizeof(name), "_mta-sts.%s", p->domain);
	q = dns_query_txt(dns, name, cli_on_txt, p);
	(void)q;
	cli_run_until(loop, &p->txt_done);

	sl = sts_lookup_flags(e, p->domain, STS_LOOKUP_CHECK, cli_on_sts, p);
	if (cli_run_until(loop, &p->sts_done) == -1) {
		sts_cancel(sl);
		fprintf(stderr, "stsproxy policy: no answer within %.0f s\n", CLI_WAIT_MAX);
		goto out;
	}
	cli_cachestate(sts_cache(e), p->domain, &p->after);

	m = mxfind_start(dns, p->domain, NULL, cli_on_mx, p);
	if (cli_run_until(loop, &p->mx_done) == -1)
		mxfind_cancel(m);

	rc = cli_exit_code(p);
	if (json)
		cli_print_json(p, cfg, rc);
	else
		cli_print_text(p, cfg, rc);
	fflush(stdout);
out:
	sts_free(e);
	dns_free(dns);
	if (loop != NULL)
		ev_loop_destroy(loop);
	cfg_unref(cfg);
	log_close();
	if (p != NULL) {
		for (int i = 0; i < p->ntxt; i++)
			free(p->txt[i]);
		free(p->selected);
		free(p->text);
		free(p->mx);
		free(p);
	}
	return rc;
}

/* --- stsproxy cache ------------------------------------------------------------- */

struct cli_list {
	const struct pcache_entry **v;
	size_t n, cap;
};

static int
cli_collect(void *arg, const struct pcache_entry *e)
{
	struct cli_list *l = arg;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		const struct pcache_entry **nv = realloc(l->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return 1;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = e;
	return 0;
}

static int
cli_entry_cmp(const void *a, const void *b)
{
	const struct pcache_entry *x = *(const struct pcache_entry *const *)a;
	const struct pcache_entry *y = *(const struct pcache_entry *const *)b;

	return strcmp(x->domain, y->domain);
}

static void
cli_warn(void *arg, unsigned long line, const char *msg)
{
	const char *path = arg;

	fprintf(stderr, "stsproxy cache: %s:%lu: %s\n", path, line, msg);
}

static void
cli_json_entry(struct jout *j, const struct pcache_entry *e, time_t now, int full)
{
	jo_open(j, NULL, '{');
	jo_str(j, "domain", e->domain);
	jo_str(j, "id", e->id);
	jo_str(j, "mode", sts_mode_name(e->mode));
	jo_int(j, "max_age", e->max_age);
	jo_str(j, "state", now < e->expires_at ? "fresh" : "expired");
	jo_int(j, "fetched_at", (long long)e->fetched_at);
	jo_int(j, "expires", (long long)e->expires_at);
	jo_int(j, "last_checked", (long long)e->last_checked);
	jo_str(j, "last_error", e->last_error);
	jo_open(j, "mx", '[');
	for (int i = 0; i < e->nmx; i++)
		jo_str(j, NULL, e->mx[i]);
	jo_close(j, ']');
	if (full)
		jo_strn(j, "text", e->text, e->textlen);
	jo_close(j, '}');
}

int
cli_cache_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *cmd, *domain = NULL;
	const struct pcache_entry *ent = NULL;
	struct cli_list l = {0};
	struct pcache *c = NULL;
	struct cfg *cfg = NULL;
	struct jout j = {.fp = stdout};
	time_t now = time(NULL);
	char t1[40], t2[40], t3[40];
	int json = 0, ch, rc = CLI_EXIT_OK;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			cli_usage(stdout);
			return CLI_EXIT_OK;
		default:
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "list") == 0 && optind + 1 == argc) {
		/* ok */
	} else if ((strcmp(cmd, "show") == 0 || strcmp(cmd, "flush") == 0) && optind + 2 == argc) {
		domain = argv[optind + 1];
	} else {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((cfg = cli_config(path)) == NULL)
		return CLI_EXIT_USAGE;
	if (cfg->sts_cache_file == NULL) {
		fprintf(stderr,
		        "stsproxy cache: no cache file (set sts.cache_file or state_dir)\n");
		cfg_unref(cfg);
		return CLI_EXIT_USAGE;
	}
	if ((c = pcache_new(cfg->sts_cache_file)) == NULL ||
	    pcache_load(c, cli_warn, cfg->sts_cache_file) == -1) {
		perror(cfg->sts_cache_file);
		rc = CLI_EXIT_FAILED;
		goto out;
	}
	j.first[0] = 1;
	if (strcmp(cmd, "list") == 0) {
		pcache_iter(c, cli_collect, &l);
		if (l.n > 0)
			qsort(l.v, l.n, sizeof(*l.v), cli_entry_cmp);
		if (json) {
			jo_open(&j, NULL, '[');
			for (size_t i = 0; i < l.n; i++)
				cli_json_entry(&j, l.v[i], now, 0);
			jo_close(&j, ']');
			fputc('\n', stdout);
		} else {
			printf("%-32s %-20s %-8s %-7s %-20s %s\n", "domain", "id", "mode", "state",
			       "expires", "last error");
			for (size_t i = 0; i < l.n; i++)
				printf("%-32s %-20s %-8s %-7s %-20s %s\n", l.v[i]->domain,
				       l.v[i]->id, sts_mode_name(l.v[i]->mode),
				       now < l.v[i]->expires_at ? "fresh" : "expired",
				       cli_time(l.v[i]->expires_at, t1, sizeof(t1)),
				       l.v[i]->last_error[0] ? l.v[i]->last_error : "-");
		}
		goto out;
	}
	if (pcache_lookup(c, domain, now, &ent) == PCACHE_MISSING || ent == NULL) {
		fprintf(stderr, "stsproxy cache: %s is not in %s\n", domain, cfg->sts_cache_file);
		rc = CLI_EXIT_NOPOLICY;
		goto out;
	}
	if (strcmp(cmd, "show") == 0) {
		if (json) {
			cli_json_entry(&j, ent, now, 1);
			fputc('\n', stdout);
		} else {
			printf("domain:       %s\nid:           %s\nmode:         %s\nmax_age:     "
			       " "
			       "%u\nstate:        %s\nfetched:      %s\nexpires:      %s\nlast "
			       "check:   %s\nlast error:   %s\nmx:          ",
			       ent->domain, ent->id, sts_mode_name(ent->mode),
			       (unsigned)ent->max_age, now < ent->expires_at ? "fresh" : "expired",
			       cli_time(ent->fetched_at, t1, sizeof(t1)),
			       cli_time(ent->expires_at, t2, sizeof(t2)),
			       cli_time(ent->last_checked, t3, sizeof(t3)),
			       ent->last_error[0] ? ent->last_error : "-");
			for (int i = 0; i < ent->nmx; i++)
				printf(" %s", ent->mx[i]);
			printf("\npolicy:\n%s%s", ent->text,
			       ent->textlen && ent->text[ent->textlen - 1] == '\n' ? "" : "\n");
		}
		goto out;
	}
	/* flush */
	if (pcache_remove(c, domain) == -1 || pcache_save(c) == -1) {
		perror(cfg->sts_cache_file);
		rc = CLI_EXIT_FAILED;
		goto out;
	}
	if (!json)
		printf("%s removed from %s\n", domain, cfg->sts_cache_file);
out:
	free(l.v);
	pcache_free(c);
	cfg_unref(cfg);
	return rc;
}
