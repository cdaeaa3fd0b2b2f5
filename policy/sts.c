/*
 * sts: MTA-STS discovery, fetch, cache and answers (see sts.h).
 *
 * Owns the policy cache (pcache), the fetcher (fetch), the operations in
 * flight (struct sts_op: one per domain, holding its DNS query or fetch
 * handle and its waiters), a table of per-domain memory (last TXT check,
 * the id whose fetch failed and until when it is not retried) and the
 * refresh timer. Waiters are records in their operation's list, not
 * pointers into sessions: a session that goes away cancels its record and
 * nothing points back at it.
 *
 * Time: cache times (fetched, expires, last checked) are wall-clock
 * seconds (time(NULL)) because they outlive the process in the cache file;
 * the negative memory and the TXT re-check use the loop's clock.
 */
#include "sts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <ev.h>

#include "cfg.h"
#include "detect.h"
#include "dns.h"
#include "fetch.h"
#include "log.h"
#include "pcache.h"
#include "sts_record.h"

#define STS_DOM_BUCKETS   1024
#define STS_DOM_MAX       20000       /* per-domain memory entries kept at most */
#define STS_REFRESH_BATCH 64          /* refreshes started per scan */
#define STS_EXPIRED_GRACE (7 * 86400) /* expired entries kept for logs */
#define STS_FIRST_SCAN    60.0        /* first refresh scan after start-up, at most */

struct sts_dom {
	struct sts_dom *next;
	char name[DNS_NAME_MAX + 1];
	ev_tstamp txt_checked; /* last TXT answer (any but a temporary failure) */
	char neg_id[STS_ID_MAXLEN + 1];
	ev_tstamp neg_until;
	char neg_err[STS_ERRMAX];
};

struct sts_op;

struct sts_lookup {
	struct sts_op *op; /* NULL once popped for its callback */
	TAILQ_ENTRY(sts_lookup) entry;
	uint64_t qid;
	sts_cb *cb;
	void *arg;
	int *answered; /* set while sts_lookup_flags is on the stack */
	int in_cb;
};

TAILQ_HEAD(sts_waiters, sts_lookup);

struct sts_op {
	struct sts *e;
	TAILQ_ENTRY(sts_op) entry;
	char domain[DNS_NAME_MAX + 1];
	int refresh; /* proactive: fetch even when the id is unchanged */
	struct dns_query *dq;
	struct fetch_req *fr;
	char id[STS_ID_MAXLEN + 1]; /* from the TXT record */
	char *txt;                  /* the STSv1 record, or NULL */
	char *body;                 /* a fetched body that did not parse */
	size_t bodylen;
	struct sts_waiters waiters;
};

struct sts {
	struct ev_loop *loop;
	struct dns *dns;
	struct fetch *fetch;
	struct pcache *cache;
	struct cfg *cfg; /* a reference: the settings we started with */
	TAILQ_HEAD(, sts_op) ops;
	int nops;
	struct sts_dom *doms[STS_DOM_BUCKETS];
	size_t ndoms;
	uint64_t seed;
	uint64_t next_qid;
	ev_timer refresh;
	struct sts_stats stats;
	sts_event_fn *on_event;
	void *on_event_arg;
};

const char *
sts_strwhy(enum sts_why why)
{
	switch (why) {
	case STS_WHY_OK:
		return "ok";
	case STS_WHY_NO_RECORD:
		return "no_record";
	case STS_WHY_RECORD_INVALID:
		return "record_invalid";
	case STS_WHY_DNS_TEMP:
		return "dns_temporary";
	case STS_WHY_FETCH:
		return "fetch_failed";
	case STS_WHY_POLICY_INVALID:
		return "policy_invalid";
	case STS_WHY_NEGATIVE:
		return "recently_failed";
	case STS_WHY_BAD_DOMAIN:
		return "bad_domain";
	case STS_WHY_INTERNAL:
		return "internal";
	}
	return "unknown";
}

const char *
sts_strstatus(enum sts_status st)
{
	switch (st) {
	case STS_FOUND:
		return "found";
	case STS_NONE:
		return "none";
	case STS_TEMPERROR:
		return "temperror";
	}
	return "unknown";
}

/* --- events ---------------------------------------------------------------- */

/* One named record per finding: the event record schema of docs/events.md
 * (no session fields: the engine works for all sessions). */
static void
sts_event(struct sts *e, int level, const char *name, const char *domain, const char *id,
          const char *evidence)
{
	char ts[40], esc[DETECT_EVIDENCE_MAX + 1];
	struct jsonw j;
	int cut = 0;

	jsonw_begin(&j);
	jsonw_str(&j, "ts", log_timestamp(ts, sizeof(ts)));
	jsonw_str(&j, "type", "event");
	jsonw_str(&j, "event", name);
	jsonw_str(&j, "severity", level <= LOG_WARNING ? "warning" : "notice");
	jsonw_str(&j, "domain", domain);
	if (id != NULL && id[0])
		jsonw_str(&j, "policy_id", id);
	if (evidence != NULL) {
		detect_escape(evidence, strlen(evidence), esc, sizeof(esc), &cut);
		jsonw_str(&j, "evidence", esc);
		if (cut)
			jsonw_bool(&j, "evidence_truncated", 1);
	}
	jsonw_end(&j);
	log_record(level, &j);
	if (e->on_event != NULL)
		e->on_event(e->on_event_arg, name, level <= LOG_WARNING ? "warning" : "notice",
		            domain);
}

void
sts_set_event_hook(struct sts *e, sts_event_fn *fn, void *arg)
{
	e->on_event = fn;
	e->on_event_arg = arg;
}

const struct sts_stats *
sts_stats(const struct sts *e)
{
	return &e->stats;
}

/* One answer to one caller. */
static void
count_answer(struct sts *e, const struct sts_result *r)
{
	if ((unsigned)r->status < STS_STATUS_COUNT && (unsigned)r->why < STS_WHY_COUNT)
		e->stats.answers[r->status][r->why]++;
}

/* --- per-domain memory ------------------------------------------------------ */

static size_t
sts_dom_hash(const struct sts *e, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ e->seed;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return (size_t)(h % STS_DOM_BUCKETS);
}

static struct sts_dom *
sts_dom_find(struct sts *e, const char *name, int create)
{
	size_t b = sts_dom_hash(e, name);
	struct sts_dom *d;

	for (d = e->doms[b]; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	if (!create || e->ndoms >= STS_DOM_MAX)
		return NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->txt_checked = -1e18;
	d->next = e->doms[b];
	e->doms[b] = d;
	e->ndoms++;
	return d;
}

/* Forget memory that no longer changes a decision. */
static void
sts_dom_prune(struct sts *e)
{
	ev_tstamp now = ev_now(e->loop);
	size_t b;

	for (b = 0; b < STS_DOM_BUCKETS; b++) {
		struct sts_dom **pp = &e->doms[b], *d;

		while ((d = *pp) != NULL) {
			if (d->neg_until <= now && now - d->txt_checked >= STS_TXT_RECHECK) {
				*pp = d->next;
				free(d);
				e->ndoms--;
			} else {
				pp = &d->next;
			}
		}
	}
}

/* Was a fetch for this id refused recently? Then why, else NULL. */
static const char *
sts_negative(struct sts *e, const char *domain, const char *id)
{
	struct sts_dom *d = sts_dom_find(e, domain, 0);

	if (d == NULL || d->neg_until <= ev_now(e->loop) || strcmp(d->neg_id, id) != 0)
		return NULL;
	return d->neg_err;
}

static void
sts_set_negative(struct sts *e, const char *domain, const char *id, const char *why)
{
	struct sts_dom *d = sts_dom_find(e, domain, 1);

	if (d == NULL)
		return;
	snprintf(d->neg_id, sizeof(d->neg_id), "%s", id);
	snprintf(d->neg_err, sizeof(d->neg_err), "%s", why);
	d->neg_until = ev_now(e->loop) + e->cfg->sts_negative_ttl;
}

/* --- cache helpers ------------------------------------------------------------ */

int
sts_save(struct sts *e)
{
	if (e == NULL || !pcache_dirty(e->cache))
		return 0;
	if (pcache_save(e->cache) == -1) {
		log_warn("mta-sts: cannot save the policy cache %s",
		         e->cfg->sts_cache_file ? e->cfg->sts_cache_file : "");
		return -1;
	}
	return 0;
}

struct sts_victim {
	const struct pcache_entry *best;
	char domain[DNS_NAME_MAX + 1];
};

static int
sts_find_victim(void *arg, const struct pcache_entry *ent)
{
	struct sts_victim *v = arg;

	if (v->best == NULL || ent->expires_at < v->best->expires_at)
		v->best = ent;
	return 0;
}

/* Keep at most sts_max_cache_entries: make room for one more domain by
 * dropping the policy that expires first (it protects least). */
static void
sts_make_room(struct sts *e, const char *domain)
{
	struct sts_victim v;

	if (pcache_lookup(e->cache, domain, 0, NULL) != PCACHE_MISSING)
		return;
	while (pcache_count(e->cache) >= (size_t)e->cfg->sts_max_cache_entries) {
		memset(&v, 0, sizeof(v));
		pcache_iter(e->cache, sts_find_victim, &v);
		if (v.best == NULL)
			return;
		snprintf(v.domain, sizeof(v.domain), "%s", v.best->domain);
		log_info("mta-sts: cache full (%d), dropping the policy of %s",
		         e->cfg->sts_max_cache_entries, v.domain);
		if (pcache_remove(e->cache, v.domain) == -1)
			return;
	}
}

/* --- answers ------------------------------------------------------------------ */

static void
sts_result_from_entry(struct sts_result *r, const struct pcache_entry *ent, int from_cache)
{
	r->status = STS_FOUND;
	r->mode = ent->mode;
	r->nmx = ent->nmx;
	r->mx = (const char(*)[STS_MX_MAXLEN + 1]) ent->mx;
	r->id = ent->id;
	r->max_age = ent->max_age;
	r->from_cache = from_cache != 0;
	r->fetched_at = ent->fetched_at;
	r->expires = ent->expires_at;
	r->policy_text = ent->text;
	r->policy_len = ent->textlen;
}

static void
sts_op_free(struct sts_op *op)
{
	struct sts_lookup *w;

	dns_cancel(op->dq);
	fetch_cancel(op->fr);
	while ((w = TAILQ_FIRST(&op->waiters)) != NULL) {
		TAILQ_REMOVE(&op->waiters, w, entry);
		free(w);
	}
	free(op->txt);
	free(op->body);
	free(op);
}

/*
 * Answer every waiter and end the operation. The result is built from a
 * private copy of the cache entry: a waiter's callback may start lookups
 * that change the cache.
 */
static void
sts_op_finish(struct sts_op *op, enum sts_status st, enum sts_why reason, int from_cache,
              const char *why)
{
	struct sts *e = op->e;
	const struct pcache_entry *ent = NULL;
	struct sts_result r;
	char(*mx)[STS_MX_MAXLEN + 1] = NULL;
	char id[STS_ID_MAXLEN + 1] = "", *text = NULL;
	struct sts_lookup *w;

	TAILQ_REMOVE(&e->ops, op, entry);
	e->nops--;
	memset(&r, 0, sizeof(r));
	r.status = st;
	r.why = reason;
	r.domain = op->domain;
	r.error = why != NULL ? why : "";
	r.txt = op->txt;
	r.policy_text = op->body;
	r.policy_len = op->bodylen;
	if (st == STS_FOUND &&
	    pcache_lookup(e->cache, op->domain, time(NULL), &ent) != PCACHE_MISSING && ent) {
		sts_result_from_entry(&r, ent, from_cache);
		snprintf(id, sizeof(id), "%s", ent->id);
		r.id = id;
		if (ent->nmx > 0 && (mx = malloc((size_t)ent->nmx * sizeof(*mx))) != NULL)
			memcpy(mx, ent->mx, (size_t)ent->nmx * sizeof(*mx));
		if ((text = malloc(ent->textlen + 1)) != NULL)
			memcpy(text, ent->text, ent->textlen + 1);
		if ((ent->nmx > 0 && mx == NULL) || text == NULL) {
			memset(&r, 0, sizeof(r));
			r.status = STS_TEMPERROR;
			r.why = STS_WHY_INTERNAL;
			r.domain = op->domain;
			r.error = "out of memory";
		} else {
			r.mx = (const char(*)[STS_MX_MAXLEN + 1]) mx;
			r.policy_text = text;
		}
	} else if (st == STS_FOUND) {
		r.status = STS_TEMPERROR;
		r.why = STS_WHY_INTERNAL;
		r.error = "policy vanished from the cache";
	}
	while ((w = TAILQ_FIRST(&op->waiters)) != NULL) {
		TAILQ_REMOVE(&op->waiters, w, entry);
		w->op = NULL;
		w->in_cb = 1;
		if (w->answered != NULL)
			*w->answered = 1;
		count_answer(op->e, &r);
		w->cb(w->arg, &r);
		free(w);
	}
	free(mx);
	free(text);
	sts_op_free(op);
}

/* The cached policy if one applies, else "no policy" (or tempfail). */
static void
sts_op_fallback(struct sts_op *op, enum sts_status without, enum sts_why reason, const char *why)
{
	if (pcache_lookup(op->e->cache, op->domain, time(NULL), NULL) == PCACHE_FRESH) {
		/* §5.1, §10.2: an unexpired cached policy keeps applying
		 * while discovery or fetch fails (else an attacker who
		 * blocks them downgrades us). */
		sts_op_finish(op, STS_FOUND, reason, 1, why);
		return;
	}
	sts_op_finish(op, without, reason, 0, why);
}

static void
sts_on_fetch(void *arg, const struct fetch_result *res)
{
	struct sts_op *op = arg;
	struct sts *e = op->e;
	char err[STS_ERRMAX], perr[STS_POLICY_ERRSZ + 16];
	time_t now = time(NULL);
	enum sts_why reason = STS_WHY_FETCH;

	op->fr = NULL;
	if (res->status != FETCH_OK) {
		snprintf(err, sizeof(err), "policy fetch failed: %s", res->error);
		sts_event(e, LOG_WARNING, "mta_sts_fetch_failed", op->domain, op->id, res->error);
		goto failed;
	}
	sts_make_room(e, op->domain);
	if (pcache_put(e->cache, op->domain, op->id, res->body, res->len, now, perr,
	               sizeof(perr)) == -1) {
		/* §3.3: a policy that does not parse is no policy; the
		 * cached one (if any) stays. */
		snprintf(err, sizeof(err), "invalid policy: %s", perr);
		sts_event(e, LOG_WARNING, "mta_sts_policy_invalid", op->domain, op->id, perr);
		reason = STS_WHY_POLICY_INVALID;
		if ((op->body = malloc(res->len + 1)) != NULL) {
			memcpy(op->body, res->body, res->len + 1);
			op->bodylen = res->len;
		}
		goto failed;
	}
	(void)sts_save(e);
	{
		const struct pcache_entry *ent = NULL;

		if (pcache_lookup(e->cache, op->domain, now, &ent) != PCACHE_MISSING && ent)
			log_notice("mta-sts: %s: policy id %s fetched: mode %s, max_age %u, %d mx "
			           "pattern(s)",
			           op->domain, op->id, sts_mode_name(ent->mode),
			           (unsigned)ent->max_age, ent->nmx);
	}
	sts_op_finish(op, STS_FOUND, STS_WHY_OK, 0, NULL);
	return;
failed:
	sts_set_negative(e, op->domain, op->id, err);
	/* Recorded, never replacing the cached policy (§5.1). */
	if (pcache_touch(e->cache, op->domain, now, err) == 0)
		(void)sts_save(e);
	sts_op_fallback(op, STS_NONE, reason, err);
}

static void
sts_start_fetch(struct sts_op *op)
{
	struct fetch_req *fr = fetch_policy(op->e->fetch, op->domain, sts_on_fetch, op);

	if (fr == NULL) {
		sts_op_fallback(op, STS_TEMPERROR, STS_WHY_INTERNAL, "out of memory");
		return;
	}
	op->e->stats.fetches++;
	op->fr = fr;
}

static void
sts_on_txt(void *arg, enum dns_status st, const char *const *recs, const size_t *lens, int n)
{
	struct sts_op *op = arg;
	struct sts *e = op->e;
	const struct pcache_entry *ent = NULL;
	struct sts_dom *d;
	struct sts_record rec;
	enum sts_rec_status rs;
	enum pcache_state cs;
	const char *neg;
	char why[STS_ERRMAX];
	int i;

	op->dq = NULL;
	if (st != DNS_TEMPFAIL && st != DNS_BADANSWER && (d = sts_dom_find(e, op->domain, 1)))
		d->txt_checked = ev_now(e->loop);
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		/* §3.1: no record, no policy; but §5.1/§10.2: a cached one
		 * stays valid until it expires (removing the record is not
		 * how a policy is retired, mode "none" is). */
		snprintf(why, sizeof(why), "no _mta-sts TXT record (%s)", dns_strstatus(st));
		sts_op_fallback(op, STS_NONE, STS_WHY_NO_RECORD, why);
		return;
	default:
		snprintf(why, sizeof(why), "TXT lookup failed: %s", dns_strstatus(st));
		sts_op_fallback(op, STS_TEMPERROR, STS_WHY_DNS_TEMP, why);
		return;
	}
	rs = sts_record_select(recs, lens, n, &rec);
	for (i = 0; i < n && op->txt == NULL; i++)
		if (recs[i] != NULL && sts_record_is_sts(recs[i], lens[i]))
			op->txt = strndup(recs[i], lens[i]);
	if (rs != STS_REC_OK) {
		snprintf(why, sizeof(why), "TXT record: %s", sts_rec_strstatus(rs));
		if (rs == STS_REC_MULTIPLE || rs == STS_REC_INVALID)
			sts_event(e, LOG_NOTICE, "mta_sts_record_invalid", op->domain, NULL, why);
		sts_op_fallback(op, STS_NONE,
		                rs == STS_REC_NONE ? STS_WHY_NO_RECORD : STS_WHY_RECORD_INVALID,
		                why);
		return;
	}
	snprintf(op->id, sizeof(op->id), "%s", rec.id);
	cs = pcache_lookup(e->cache, op->domain, time(NULL), &ent);
	if (cs == PCACHE_FRESH && ent != NULL && strcmp(ent->id, rec.id) == 0 && !op->refresh) {
		/* §5.1: same id, unexpired: nothing to fetch. */
		sts_op_finish(op, STS_FOUND, STS_WHY_OK, 1, NULL);
		return;
	}
	if ((neg = sts_negative(e, op->domain, rec.id)) != NULL) {
		/* Not again for the same id within negative_ttl: one
		 * broken policy host must not cost a fetch per message. */
		sts_op_fallback(op, STS_NONE, STS_WHY_NEGATIVE, neg);
		return;
	}
	sts_start_fetch(op);
}

/* --- operations ------------------------------------------------------------- */

static struct sts_op *
sts_op_find(struct sts *e, const char *domain)
{
	struct sts_op *op;

	TAILQ_FOREACH(op, &e->ops, entry)
	if (strcmp(op->domain, domain) == 0)
		return op;
	return NULL;
}

static struct sts_op *
sts_op_new(struct sts *e, const char *domain, int refresh)
{
	struct sts_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return NULL;
	op->e = e;
	op->refresh = refresh;
	snprintf(op->domain, sizeof(op->domain), "%s", domain);
	TAILQ_INIT(&op->waiters);
	TAILQ_INSERT_TAIL(&e->ops, op, entry);
	e->nops++;
	return op;
}

/* Start the TXT lookup; the operation may be finished (and freed) when
 * this returns. */
static void
sts_op_start(struct sts_op *op)
{
	char name[DNS_NAME_MAX + 16];
	struct dns_query *q;

	/* §3.1: the record lives at "_mta-sts." + the recipient domain. */
	snprintf(name, sizeof(name), "_mta-sts.%s", op->domain);
	q = dns_query_txt(op->e->dns, name, sts_on_txt, op);
	if (q != NULL)
		op->dq = q;
}

static void
sts_answer_now(struct sts *e, const char *domain, enum sts_status st, enum sts_why reason,
               const struct pcache_entry *ent, const char *why, sts_cb *cb, void *arg)
{
	struct sts_result r;

	memset(&r, 0, sizeof(r));
	r.status = st;
	r.why = reason;
	r.domain = domain;
	r.error = why != NULL ? why : "";
	if (ent != NULL)
		sts_result_from_entry(&r, ent, 1);
	count_answer(e, &r);
	cb(arg, &r);
}

struct sts_lookup *
sts_lookup_flags(struct sts *e, const char *domain, int flags, sts_cb *cb, void *arg)
{
	char name[DNS_NAME_MAX + 1];
	const struct pcache_entry *ent = NULL;
	struct sts_lookup *w;
	struct sts_op *op;
	struct sts_dom *d;
	int answered = 0;

	if (domain == NULL || dns_normalize_name(domain, name, sizeof(name)) == -1 ||
	    !pcache_domain_valid(name, strlen(name))) {
		/* An address literal or a name that can't carry a policy
		 * ("mta-sts.<domain>" must be a host name). */
		sts_answer_now(e, domain ? domain : "", STS_NONE, STS_WHY_BAD_DOMAIN, NULL,
		               "not a valid domain name", cb, arg);
		return NULL;
	}
	if (pcache_lookup(e->cache, name, time(NULL), &ent) == PCACHE_FRESH &&
	    !(flags & STS_LOOKUP_CHECK)) {
		/* A fresh policy answers at once; the TXT id is checked
		 * behind it now and then (§5.1), so a new policy is picked
		 * up without delaying mail. */
		d = sts_dom_find(e, name, 0);
		if ((d == NULL || ev_now(e->loop) - d->txt_checked >= STS_TXT_RECHECK) &&
		    sts_op_find(e, name) == NULL && (op = sts_op_new(e, name, 0)) != NULL) {
			sts_op_start(op);
			/* The lookup may have finished synchronously and
			 * changed nothing but the memory: look again. */
			if (pcache_lookup(e->cache, name, time(NULL), &ent) != PCACHE_FRESH)
				ent = NULL;
		}
		if (ent != NULL) {
			sts_answer_now(e, name, STS_FOUND, STS_WHY_OK, ent, NULL, cb, arg);
			return NULL;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		sts_answer_now(e, name, STS_TEMPERROR, STS_WHY_INTERNAL, NULL, "out of memory", cb,
		               arg);
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	w->qid = ++e->next_qid;
	w->answered = &answered;
	if ((op = sts_op_find(e, name)) != NULL) {
		w->op = op;
		TAILQ_INSERT_TAIL(&op->waiters, w, entry);
		w->answered = NULL;
		return w;
	}
	if ((op = sts_op_new(e, name, 0)) == NULL) {
		free(w);
		sts_answer_now(e, name, STS_TEMPERROR, STS_WHY_INTERNAL, NULL, "out of memory", cb,
		               arg);
		return NULL;
	}
	w->op = op;
	TAILQ_INSERT_TAIL(&op->waiters, w, entry);
	sts_op_start(op);
	if (answered)
		return NULL; /* w was answered and freed */
	w->answered = NULL;
	return w;
}

struct sts_lookup *
sts_lookup(struct sts *e, const char *domain, sts_cb *cb, void *arg)
{
	return sts_lookup_flags(e, domain, 0, cb, arg);
}

void
sts_cancel(struct sts_lookup *w)
{
	if (w == NULL || w->in_cb)
		return;
	if (w->op != NULL)
		TAILQ_REMOVE(&w->op->waiters, w, entry);
	/* The operation goes on without waiters: its result still fills
	 * the cache for the next message. */
	free(w);
}

int
sts_pending(const struct sts *e)
{
	return e != NULL ? e->nops : 0;
}

struct pcache *
sts_cache(struct sts *e)
{
	return e != NULL ? e->cache : NULL;
}

/* --- proactive refresh ----------------------------------------------------------- */

struct sts_due {
	time_t now;
	int n;
	char names[STS_REFRESH_BATCH][DNS_NAME_MAX + 1];
};

static int
sts_collect_due(void *arg, const struct pcache_entry *ent)
{
	struct sts_due *due = arg;

	if (!pcache_needs_refresh(ent, due->now))
		return 0;
	snprintf(due->names[due->n], sizeof(due->names[0]), "%s", ent->domain);
	return ++due->n == STS_REFRESH_BATCH;
}

int
sts_refresh_scan(struct sts *e)
{
	struct sts_due *due;
	struct sts_op *op;
	int i, started = 0;

	if (e == NULL || (due = calloc(1, sizeof(*due))) == NULL)
		return 0;
	due->now = time(NULL);
	if (pcache_expire(e->cache, due->now, STS_EXPIRED_GRACE) > 0)
		log_info("mta-sts: dropped policies expired for more than %d days",
		         STS_EXPIRED_GRACE / 86400);
	/* §10.2: refresh before expiry and about daily, so a domain we
	 * send to keeps its policy even if its policy host is blocked
	 * later. The entries are collected first: starting an operation may
	 * change the cache. */
	pcache_iter(e->cache, sts_collect_due, due);
	for (i = 0; i < due->n; i++) {
		if (sts_op_find(e, due->names[i]) != NULL)
			continue;
		if ((op = sts_op_new(e, due->names[i], 1)) == NULL)
			break;
		log_debug("mta-sts: refreshing the policy of %s", due->names[i]);
		started++;
		sts_op_start(op);
	}
	free(due);
	sts_dom_prune(e);
	(void)sts_save(e);
	return started;
}

static void
sts_on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sts *e = w->data;

	(void)loop;
	(void)revents;
	sts_refresh_scan(e);
	w->repeat = e->cfg->sts_refresh_interval;
	ev_timer_again(e->loop, w);
}

/* --- life cycle ------------------------------------------------------------------ */

static void
sts_load_warn(void *arg, unsigned long line, const char *msg)
{
	const char *path = arg;

	if (line == 0)
		log_warnx("mta-sts: policy cache %s: %s", path, msg);
	else
		log_warnx("mta-sts: policy cache %s:%lu: %s", path, line, msg);
}

/* The cache's directory (state_dir) may not exist on a first start: make
 * the last component, owner only (the cache tells whom we mail). */
static void
sts_make_dir(const char *file)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", file);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		log_warn("mta-sts: cannot create %s", dir);
}

struct sts *
sts_new(struct ev_loop *loop, struct dns *dns, const struct cfg *cfg, char *err, size_t errsz)
{
	struct fetch_opts fo;
	struct sts *e;
	int n;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errsz, "mta-sts: out of memory");
		return NULL;
	}
	e->loop = loop;
	e->dns = dns;
	e->cfg = cfg_ref((struct cfg *)cfg);
	TAILQ_INIT(&e->ops);
	if (getrandom(&e->seed, sizeof(e->seed), GRND_NONBLOCK) != (ssize_t)sizeof(e->seed))
		e->seed = (uint64_t)(uintptr_t)e ^ (uint64_t)time(NULL);
	memset(&fo, 0, sizeof(fo));
	fo.ca_file = cfg->ca_file;
	fo.ca_path = cfg->ca_path;
	fo.timeout = cfg->sts_fetch_timeout;
	fo.max_size = cfg->sts_max_policy_size;
	fo.port = cfg->sts_https_port;
	if ((e->fetch = fetch_new(loop, dns, &fo, err, errsz)) == NULL)
		goto fail;
	if (cfg->sts_cache_file != NULL)
		sts_make_dir(cfg->sts_cache_file);
	if ((e->cache = pcache_new(cfg->sts_cache_file)) == NULL) {
		snprintf(err, errsz, "mta-sts: out of memory");
		goto fail;
	}
	/* A cache we cannot read is reported, never fatal: we start
	 * empty, as after a first install, and overwrite it on save. */
	n = pcache_load(e->cache, sts_load_warn, cfg->sts_cache_file);
	if (n == -1)
		log_warn("mta-sts: cannot read the policy cache %s", cfg->sts_cache_file);
	else if (cfg->sts_cache_file != NULL)
		log_info("mta-sts: %d cached polic%s loaded from %s", n, n == 1 ? "y" : "ies",
		         cfg->sts_cache_file);
	ev_timer_init(&e->refresh, sts_on_refresh,
	              cfg->sts_refresh_interval < STS_FIRST_SCAN ? cfg->sts_refresh_interval
	                                                         : STS_FIRST_SCAN,
	              cfg->sts_refresh_interval);
	e->refresh.data = e;
	ev_timer_start(loop, &e->refresh);
	/* The refresh timer alone must not keep a loop alive. */
	ev_unref(loop);
	return e;
fail:
	fetch_free(e->fetch);
	cfg_unref(e->cfg);
	free(e);
	return NULL;
}

void
sts_free(struct sts *e)
{
	struct sts_op *op;
	size_t b;

	if (e == NULL)
		return;
	while ((op = TAILQ_FIRST(&e->ops)) != NULL) {
		TAILQ_REMOVE(&e->ops, op, entry);
		sts_op_free(op);
	}
	ev_ref(e->loop);
	ev_timer_stop(e->loop, &e->refresh);
	(void)sts_save(e);
	pcache_free(e->cache);
	fetch_free(e->fetch);
	for (b = 0; b < STS_DOM_BUCKETS; b++) {
		struct sts_dom *d, *next;

		for (d = e->doms[b]; d != NULL; d = next) {
			next = d->next;
			free(d);
		}
	}
	cfg_unref(e->cfg);
	free(e);
}
