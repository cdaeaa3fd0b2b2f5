/*
 * pcache: the MTA-STS policy cache (RFC 8461 §5.1, §10.2), in memory and
 * in one file. Data layer only: no network, no event loop, no clock (every
 * call that needs the time takes "now"). The engine that looks up TXT
 * records and fetches policies drives it.
 *
 * An entry keeps the policy text exactly as fetched plus what the parser
 * made of it. Entries are only ever built by parsing that text (in
 * pcache_put and again in pcache_load), so the parsed fields always agree
 * with the text and a parser fix applies to policies cached before it.
 *
 * Caching rules encoded here (the why is in pcache.c):
 *  - expires_at = fetched_at + max_age; an entry is FRESH while
 *    now < expires_at. max_age 0 is expired at once.
 *  - A successfully fetched and parsed policy always replaces the cached
 *    one, even with mode none, a weaker mode or the same id; a failed or
 *    unparsable fetch never does (pcache_should_replace). A failure is
 *    recorded with pcache_touch, which never changes the id: the changed
 *    TXT id stays "unseen" until a policy for it is stored, so it is
 *    fetched again.
 *  - pcache_needs_fetch: no entry, expired, or TXT id differs; attempts
 *    after a failure are spaced by PCACHE_RETRY_SECS.
 *  - pcache_needs_refresh (§10.2 proactive refresh): not checked for
 *    PCACHE_REFRESH_SECS (a day), or the last attempt failed, or less than
 *    min(max_age / 2, a day) of life left; never within PCACHE_RETRY_SECS
 *    of the last attempt. A refresh is a full TXT lookup and fetch: only a
 *    fetch moves expires_at.
 *
 * Bounds: PCACHE_MAXENTRIES entries (a put beyond it evicts the entry that
 * expires first; a load beyond it skips the rest), policy text up to
 * STS_POLICY_MAXLEN, last_error up to PCACHE_ERRMAX - 1 printable bytes.
 *
 * File format, line-oriented text ('#' lines are comments):
 *   stsproxy-pcache 1
 *   <domain> <id> <fetched_at> <last_checked> <error> <policy> <crc32>
 * one entry per line; times are decimal Unix seconds; <error> is "-" when
 * the last check succeeded, else the message percent-encoded (so it has
 * no space and no "-" alone); <policy> is the policy text in base64
 * (RFC 4648 §4, padded); <crc32> is 8 lower-case hex digits of the CRC-32
 * (IEEE) of the line up to the space before it. Loading skips and reports
 * any damaged line (bad field, bad CRC, policy that no longer parses,
 * truncated last line) and keeps the others; it never fails on content.
 * An unknown header version loads nothing. Written atomically (temporary
 * file in the same directory, fsync, rename, fsync of the directory),
 * mode 0600, entries sorted by domain.
 */
#ifndef STSPROXY_PCACHE_H
#define STSPROXY_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "sts_policy.h"

#define PCACHE_MAXENTRIES   100000
#define PCACHE_ERRMAX       256            /* last_error buffer, NUL included */
#define PCACHE_REFRESH_SECS 86400          /* §10.2: refresh about once a day */
#define PCACHE_RETRY_SECS   900            /* least spacing of attempts for one domain */
#define PCACHE_TIME_MAX     253402300799LL /* 9999-12-31: larger times are damage */

enum pcache_state {
	PCACHE_MISSING = 0, /* no entry */
	PCACHE_FRESH,       /* now < expires_at: the policy applies */
	PCACHE_EXPIRED,     /* kept for refresh and logs; must not be applied */
};

enum pcache_fetch {
	PCACHE_FETCH_OK = 0,  /* fetched over verified HTTPS and parsed */
	PCACHE_FETCH_FAILED,  /* DNS, TCP, TLS, HTTP status, size, timeout */
	PCACHE_FETCH_INVALID, /* fetched, but sts_policy_parse refused it */
};

struct pcache_entry {
	char domain[256];           /* lower-case, no trailing dot */
	char id[STS_ID_MAXLEN + 1]; /* TXT id the policy was fetched for */
	char *text;                 /* policy as fetched, NUL-terminated */
	size_t textlen;
	enum sts_mode mode;
	uint32_t max_age;
	int nmx;
	char (*mx)[STS_MX_MAXLEN + 1]; /* nmx patterns, lower-case */
	time_t fetched_at;
	time_t expires_at;              /* fetched_at + max_age */
	time_t last_checked;            /* last fetch attempt, good or bad */
	char last_error[PCACHE_ERRMAX]; /* "" when the last attempt succeeded */
};

struct pcache;

/* Problems found while loading; line 0 is about the whole file. */
typedef void pcache_warn_cb(void *arg, unsigned long line, const char *msg);
/* Return non-zero to stop. Must not add or remove entries. */
typedef int pcache_iter_cb(void *arg, const struct pcache_entry *e);

/* path: the cache file, or NULL for a memory-only cache (load and save
 * then do nothing and return 0). NULL with errno on allocation failure. */
struct pcache *pcache_new(const char *path);
void pcache_free(struct pcache *c); /* NULL-safe */

/*
 * Replace the cache's contents with the file's. Returns the number of
 * entries loaded (a missing file is 0 entries), or -1 with errno when the
 * file exists but cannot be opened (contents then unchanged). Damage is
 * reported through warn (may be NULL) and skipped, never fatal.
 */
int pcache_load(struct pcache *c, pcache_warn_cb *warn, void *arg);
/* The same from an open stream (tests, fuzzing). */
int pcache_load_file(struct pcache *c, FILE *fp, pcache_warn_cb *warn, void *arg);

/*
 * Write the cache atomically to its path. 0, or -1 with errno; on failure
 * the previous file is untouched and no temporary file is left behind.
 */
int pcache_save(struct pcache *c);
/* Serialise to a stream, no atomicity (tests, fuzzing). 0 or -1. */
int pcache_save_file(const struct pcache *c, FILE *fp);
/* Changed since the last load or successful save? */
bool pcache_dirty(const struct pcache *c);

/*
 * Look a domain up (case-insensitive, trailing dot ignored). Returns the
 * state and, unless PCACHE_MISSING, the entry in *out (out may be NULL).
 * The pointer stays valid until an entry is added or removed (put,
 * remove, expire, load) or the cache is freed; pcache_touch keeps it.
 */
enum pcache_state pcache_lookup(const struct pcache *c, const char *domain, time_t now,
                                const struct pcache_entry **out);

/*
 * Store a freshly fetched policy for domain under the TXT id, replacing
 * any entry: fetched_at = last_checked = now, last_error cleared. The text
 * is parsed here; 0, or -1 with a message in err (invalid domain, id,
 * policy, out of memory) and the cache unchanged.
 */
int pcache_put(struct pcache *c, const char *domain, const char *id, const char *text, size_t len,
               time_t now, char *err, size_t errsz);

/* Record a fetch attempt: last_checked = now, last_error = error (NULL or
 * "" for success; made printable and cut to PCACHE_ERRMAX - 1). Policy, id
 * and expiry are not touched. 0, or -1 if there is no such entry or now
 * is out of range (negative or past PCACHE_TIME_MAX). */
int pcache_touch(struct pcache *c, const char *domain, time_t now, const char *error);

/* 0, or -1 if there is no such entry. */
int pcache_remove(struct pcache *c, const char *domain);

/* Drop entries expired for more than grace seconds; returns how many. */
size_t pcache_expire(struct pcache *c, time_t now, time_t grace);

/* Every entry, in no particular order. */
void pcache_iter(const struct pcache *c, pcache_iter_cb *cb, void *arg);
size_t pcache_count(const struct pcache *c);

/* The replacement rule of §5.1/§10.2: true only for PCACHE_FETCH_OK. */
bool pcache_should_replace(enum pcache_fetch result);

/* Should the engine fetch the policy now? txt_id is the id of the TXT
 * record just seen, or NULL if none was usable (e == NULL is "missing"). */
bool pcache_needs_fetch(const struct pcache_entry *e, const char *txt_id, time_t now);

/* Is a proactive refresh due (§10.2)? */
bool pcache_needs_refresh(const struct pcache_entry *e, time_t now);

/* Does mxhost match one of the entry's mx patterns? Mode not considered. */
bool pcache_entry_mx_ok(const struct pcache_entry *e, const char *mxhost);

/* Copy the parsed policy (with id) into out. 0, or -1 if e is NULL. */
int pcache_entry_policy(const struct pcache_entry *e, struct sts_policy *out);

/* An LDH domain name: labels 1..63, 253 octets, one trailing dot allowed. */
bool pcache_domain_valid(const char *d, size_t len);

#endif
