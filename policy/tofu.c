/*
 * tofu: the per-MX memory (see tofu.h).
 *
 * Owns its records (each key allocated), an open-addressing index over them
 * and a copy of the state file path. Contracts: keys are normalised before
 * every use (lower-case, one trailing dot removed, 1..TOFU_KEY_MAX bytes
 * from [a-z0-9.-_:[]]), so what is stored can always be written back as
 * one space-free field; at most max entries are held; the state file is
 * only ever replaced by rename(2), never rewritten in place.
 *
 * State file, one entry per line, fields separated by one space:
 *
 *   key offered tls_ok_last first_seen last_seen last_offered last_tls_ok sha256
 *
 * offered and tls_ok_last are 0 or 1; times are decimal seconds since the
 * epoch (0 = never); sha256 is 64 lower-case hex digits or "-". Lines
 * starting with '#' are comments (the file starts "# stsproxy-tofu 1").
 */
#include "tofu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOFU_LINE_MAX     1024           /* bytes of a state line, without LF */
#define TOFU_TIME_MAX     253402300799LL /* 9999-12-31T23:59:59Z */
#define TOFU_ENTRIES_CEIL 10000000       /* keep indexes within uint32_t */
#define TOFU_HEADER       "# stsproxy-tofu 1\n"
#define TOFU_FIELDS                                                                                \
	"# key offered tls_ok_last first_seen last_seen last_offered last_tls_ok sha256\n"

struct tofu_rec {
	char *key;
	uint32_t hash;
	unsigned char offered;
	unsigned char tls_ok_last;
	unsigned char has_fp;
	unsigned char fp[32];
	long long first_seen;
	long long last_seen;
	long long last_offered;
	long long last_tls_ok;
};

struct tofu {
	char *path;
	size_t max;
	struct tofu_rec *recs;
	size_t n, cap;
	uint32_t *slots; /* record index + 1; 0 = free */
	size_t nslots;   /* power of two, kept > 2 * n */
	uint32_t seed;
	size_t evicted; /* running total, for tofu_report */
	int dirty;
};

/* ---- keys and hashing ------------------------------------------------- */

/*
 * Normalise a key into out (TOFU_KEY_MAX + 1 bytes). Host names compare
 * case-insensitively (RFC 4343) and "mx.example.com." is the same host as
 * "mx.example.com"; anything outside the characters of names and address
 * literals is refused so that a key can never break the line format.
 */
static int
tofu_key_norm(const char *in, char *out, size_t *outlen)
{
	size_t i, len;

	if (in == NULL)
		return -1;
	len = strnlen(in, TOFU_KEY_MAX + 2);
	if (len > 1 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > TOFU_KEY_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_' || c == ':' || c == '[' || c == ']'))
			return -1;
		out[i] = c;
	}
	out[len] = '\0';
	*outlen = len;
	return 0;
}

/* FNV-1a, seeded per instance so that names chosen by a remote party
 * cannot be precomputed to pile up in one probe chain. */
static uint32_t
tofu_hash(const struct tofu *t, const char *key, size_t len)
{
	uint32_t h = 2166136261u ^ t->seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 16777619u;
	}
	return h;
}

static long
tofu_find(const struct tofu *t, const char *key, uint32_t hash)
{
	size_t mask, i;

	if (t->nslots == 0)
		return -1;
	mask = t->nslots - 1;
	for (i = hash & mask;; i = (i + 1) & mask) {
		uint32_t s = t->slots[i];

		if (s == 0)
			return -1;
		if (t->recs[s - 1].hash == hash && strcmp(t->recs[s - 1].key, key) == 0)
			return (long)(s - 1);
	}
}

static void
tofu_slot_put(struct tofu *t, size_t idx)
{
	size_t mask = t->nslots - 1, i;

	for (i = t->recs[idx].hash & mask; t->slots[i] != 0; i = (i + 1) & mask)
		;
	t->slots[i] = (uint32_t)(idx + 1);
}

/* Rebuild the index with at least 2 * want free-enough slots. */
static int
tofu_reindex(struct tofu *t, size_t want)
{
	size_t ns = 16, i;
	uint32_t *slots;

	while (ns < 2 * want + 2)
		ns *= 2;
	if ((slots = calloc(ns, sizeof(*slots))) == NULL)
		return -1;
	free(t->slots);
	t->slots = slots;
	t->nslots = ns;
	for (i = 0; i < t->n; i++)
		tofu_slot_put(t, i);
	return 0;
}

/* ---- eviction ------------------------------------------------------------ */

struct tofu_age {
	long long last_seen;
	size_t idx;
};

static int
tofu_age_cmp(const void *a, const void *b)
{
	const struct tofu_age *x = a, *y = b;

	if (x->last_seen != y->last_seen)
		return x->last_seen < y->last_seen ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Drop the least recently seen entry the slow way (no memory needed). */
static void
tofu_evict_one(struct tofu *t)
{
	size_t i, victim = 0;

	for (i = 1; i < t->n; i++)
		if (t->recs[i].last_seen < t->recs[victim].last_seen)
			victim = i;
	free(t->recs[victim].key);
	t->recs[victim].key = NULL;
}

/*
 * Evict the want least recently seen entries, then compact and reindex.
 * Evicting a batch (1/64 of the bound) keeps the sort off the path of
 * every new MX once the memory is full.
 */
static void
tofu_evict(struct tofu *t, size_t want)
{
	struct tofu_age *age;
	size_t i, j;

	if (want > t->n)
		want = t->n;
	if (want == 0)
		return;
	if ((age = malloc(t->n * sizeof(*age))) != NULL) {
		for (i = 0; i < t->n; i++) {
			age[i].last_seen = t->recs[i].last_seen;
			age[i].idx = i;
		}
		qsort(age, t->n, sizeof(*age), tofu_age_cmp);
		for (i = 0; i < want; i++) {
			free(t->recs[age[i].idx].key);
			t->recs[age[i].idx].key = NULL;
		}
		free(age);
	} else {
		/* Out of memory: still stay within the bound, one at a time. */
		want = 1;
		tofu_evict_one(t);
	}
	for (i = j = 0; i < t->n; i++)
		if (t->recs[i].key != NULL)
			t->recs[j++] = t->recs[i];
	t->n = j;
	t->evicted += want;
	t->dirty = 1;
	/* Same slot count: it cannot fail for lack of a bigger array. */
	memset(t->slots, 0, t->nslots * sizeof(*t->slots));
	for (i = 0; i < t->n; i++)
		tofu_slot_put(t, i);
}

/* A new zeroed record for key (normalised, len bytes); its index or -1. */
static long
tofu_insert(struct tofu *t, const char *key, size_t len, uint32_t hash)
{
	struct tofu_rec *r;

	if (t->n >= t->max) {
		size_t batch = t->max / 64;

		tofu_evict(t, batch > 0 ? batch : 1);
	}
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		struct tofu_rec *nr;

		if (ncap > t->max)
			ncap = t->max;
		if ((nr = realloc(t->recs, ncap * sizeof(*nr))) == NULL)
			return -1;
		t->recs = nr;
		t->cap = ncap;
	}
	if (2 * (t->n + 1) + 2 > t->nslots && tofu_reindex(t, t->n + 1) < 0)
		return -1;
	r = &t->recs[t->n];
	memset(r, 0, sizeof(*r));
	if ((r->key = malloc(len + 1)) == NULL)
		return -1;
	memcpy(r->key, key, len + 1);
	r->hash = hash;
	tofu_slot_put(t, t->n);
	return (long)t->n++;
}

/* ---- public API ---------------------------------------------------------- */

struct tofu *
tofu_new(const char *path, size_t max_entries)
{
	struct tofu *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (path != NULL && (t->path = strdup(path)) == NULL) {
		free(t);
		return NULL;
	}
	if (max_entries == 0)
		max_entries = TOFU_MAX_ENTRIES;
	if (max_entries > TOFU_ENTRIES_CEIL)
		max_entries = TOFU_ENTRIES_CEIL;
	t->max = max_entries;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
		t->seed =
		        (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ (uint32_t)(uintptr_t)t;
	return t;
}

void
tofu_free(struct tofu *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		free(t->recs[i].key);
	free(t->recs);
	free(t->slots);
	free(t->path);
	free(t);
}

size_t
tofu_count(const struct tofu *t)
{
	return t != NULL ? t->n : 0;
}

int
tofu_dirty(const struct tofu *t)
{
	return t != NULL && t->dirty;
}

static int
tofu_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 64 hex digits (either case), nothing else, into 32 bytes. */
static int
tofu_fp_parse(const char *s, size_t len, unsigned char fp[32])
{
	size_t i;

	if (len != TOFU_FP_HEXLEN)
		return -1;
	for (i = 0; i < 32; i++) {
		int hi = tofu_hexval(s[2 * i]), lo = tofu_hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		fp[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static void
tofu_fp_hex(const unsigned char fp[32], char out[TOFU_FP_HEXLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[fp[i] >> 4];
		out[2 * i + 1] = hex[fp[i] & 0x0f];
	}
	out[TOFU_FP_HEXLEN] = '\0';
}

int
tofu_lookup(const struct tofu *t, const char *key, struct tofu_entry *out)
{
	char k[TOFU_KEY_MAX + 1];
	const struct tofu_rec *r;
	size_t len;
	long idx;

	if (t == NULL || out == NULL || tofu_key_norm(key, k, &len) < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((idx = tofu_find(t, k, tofu_hash(t, k, len))) < 0) {
		errno = ENOENT;
		return -1;
	}
	r = &t->recs[idx];
	memset(out, 0, sizeof(*out));
	memcpy(out->key, k, len + 1);
	out->starttls_offered_ever = r->offered;
	out->tls_ok_last = r->tls_ok_last;
	if (r->has_fp)
		tofu_fp_hex(r->fp, out->fingerprint);
	out->first_seen = (time_t)r->first_seen;
	out->last_seen = (time_t)r->last_seen;
	out->last_offered = (time_t)r->last_offered;
	out->last_tls_ok = (time_t)r->last_tls_ok;
	return 0;
}

static long long
tofu_clamp_time(time_t when)
{
	long long w = (long long)when;

	if (w < 0)
		return 0;
	return w > TOFU_TIME_MAX ? TOFU_TIME_MAX : w;
}

int
tofu_record(struct tofu *t, const struct tofu_observation *obs)
{
	char k[TOFU_KEY_MAX + 1];
	unsigned char fp[32];
	int have_fp = 0;
	struct tofu_rec *r;
	long long when;
	uint32_t hash;
	size_t len;
	long idx;

	if (t == NULL || obs == NULL || tofu_key_norm(obs->key, k, &len) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (obs->tls == TOFU_TLS_OK && obs->fingerprint != NULL) {
		if (tofu_fp_parse(obs->fingerprint, strnlen(obs->fingerprint, TOFU_FP_HEXLEN + 1),
		                  fp) < 0) {
			errno = EINVAL;
			return -1;
		}
		have_fp = 1;
	}
	when = tofu_clamp_time(obs->when);
	hash = tofu_hash(t, k, len);
	if ((idx = tofu_find(t, k, hash)) < 0) {
		if ((idx = tofu_insert(t, k, len, hash)) < 0) {
			errno = ENOMEM;
			return -1;
		}
		t->recs[idx].first_seen = when;
		t->recs[idx].last_seen = when;
	}
	r = &t->recs[idx];
	if (when < r->first_seen)
		r->first_seen = when;
	if (when > r->last_seen)
		r->last_seen = when;
	if (obs->starttls_offered) {
		r->offered = 1;
		if (when > r->last_offered)
			r->last_offered = when;
	}
	switch (obs->tls) {
	case TOFU_TLS_OK:
		r->tls_ok_last = 1;
		if (when > r->last_tls_ok)
			r->last_tls_ok = when;
		if (have_fp) {
			memcpy(r->fp, fp, sizeof(r->fp));
			r->has_fp = 1;
		}
		break;
	case TOFU_TLS_FAILED:
		r->tls_ok_last = 0;
		break;
	case TOFU_TLS_NOT_TRIED:
		break;
	}
	t->dirty = 1;
	return 0;
}

int
tofu_cert_changed(const struct tofu_entry *e, const char *fp)
{
	if (e == NULL || fp == NULL || fp[0] == '\0' || e->fingerprint[0] == '\0')
		return 0;
	return strcasecmp(e->fingerprint, fp) != 0;
}

int
tofu_offered_within(const struct tofu_entry *e, time_t now, time_t max_age)
{
	if (e == NULL || !e->starttls_offered_ever)
		return 0;
	if (max_age <= 0 || now <= e->last_offered)
		return 1;
	return now - e->last_offered <= max_age;
}

/* ---- the state file ------------------------------------------------------- */

static int
tofu_parse_flag(const char *s, size_t len, unsigned char *out)
{
	if (len != 1 || (s[0] != '0' && s[0] != '1'))
		return -1;
	*out = (unsigned char)(s[0] - '0');
	return 0;
}

static int
tofu_parse_time(const char *s, size_t len, long long *out)
{
	long long v = 0;
	size_t i;

	/* 12 digits hold TOFU_TIME_MAX; no sign, no leading junk. */
	if (len == 0 || len > 12)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > TOFU_TIME_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Parse one data line (no LF) into r; the normalised key goes to key and
 * keylen (r->key is left NULL). NULL if fine, else why not. */
static const char *
tofu_parse_line(char *line, size_t len, struct tofu_rec *r, char *key, size_t *keylen)
{
	const char *f[8];
	size_t fl[8], nf = 0, i, start = 0;

	for (i = 0; i <= len; i++) {
		if (i == len || line[i] == ' ') {
			if (nf == 8)
				return "too many fields";
			if (i == start)
				return "empty field";
			f[nf] = line + start;
			fl[nf] = i - start;
			nf++;
			start = i + 1;
		}
	}
	if (nf != 8)
		return "too few fields";
	memset(r, 0, sizeof(*r));
	{
		char raw[TOFU_KEY_MAX + 2];

		if (fl[0] > TOFU_KEY_MAX)
			return "key too long";
		memcpy(raw, f[0], fl[0]);
		raw[fl[0]] = '\0';
		if (tofu_key_norm(raw, key, keylen) < 0)
			return "bad key";
	}
	if (tofu_parse_flag(f[1], fl[1], &r->offered) < 0 ||
	    tofu_parse_flag(f[2], fl[2], &r->tls_ok_last) < 0)
		return "bad flag";
	if (tofu_parse_time(f[3], fl[3], &r->first_seen) < 0 ||
	    tofu_parse_time(f[4], fl[4], &r->last_seen) < 0 ||
	    tofu_parse_time(f[5], fl[5], &r->last_offered) < 0 ||
	    tofu_parse_time(f[6], fl[6], &r->last_tls_ok) < 0)
		return "bad time";
	/* An entry that contradicts itself was not written by us: trusting
	 * half of it could invent a STARTTLS history for an MX. */
	if (r->first_seen > r->last_seen || r->last_offered > r->last_seen ||
	    r->last_tls_ok > r->last_seen)
		return "times out of order";
	if (!r->offered && r->last_offered != 0)
		return "last_offered without offered";
	if (fl[7] == 1 && f[7][0] == '-') {
		r->has_fp = 0;
	} else {
		if (tofu_fp_parse(f[7], fl[7], r->fp) < 0)
			return "bad fingerprint";
		r->has_fp = 1;
	}
	return NULL;
}

static void
tofu_bad(struct tofu_report *rep, long lineno, const char *why)
{
	rep->damaged++;
	if (rep->first_bad_line == 0) {
		rep->first_bad_line = lineno;
		snprintf(rep->first_bad_reason, sizeof(rep->first_bad_reason), "%s", why);
	}
}

int
tofu_load(struct tofu *t, struct tofu_report *rep)
{
	struct tofu_report dummy;
	char *line = NULL;
	size_t cap = 0, evicted0;
	long lineno = 0;
	ssize_t got;
	FILE *fp;
	int saved;

	if (rep == NULL)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if (t == NULL || t->path == NULL)
		return 0;
	if ((fp = fopen(t->path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	evicted0 = t->evicted;
	errno = 0;
	while ((got = getline(&line, &cap, fp)) >= 0) {
		size_t len = (size_t)got;
		char key[TOFU_KEY_MAX + 1];
		struct tofu_rec r;
		const char *why;
		size_t keylen;
		uint32_t hash;
		long idx;

		lineno++;
		/* We always end a line with LF: a last line without one is
		 * a write cut short, and its last field cannot be trusted. */
		if (len == 0 || line[len - 1] != '\n') {
			tofu_bad(rep, lineno, "truncated line");
			continue;
		}
		line[--len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			tofu_bad(rep, lineno, "NUL byte");
			continue;
		}
		if (len > TOFU_LINE_MAX) {
			tofu_bad(rep, lineno, "line too long");
			continue;
		}
		if (len == 0 || line[0] == '#')
			continue;
		if ((why = tofu_parse_line(line, len, &r, key, &keylen)) != NULL) {
			tofu_bad(rep, lineno, why);
			continue;
		}
		hash = tofu_hash(t, key, keylen);
		if ((idx = tofu_find(t, key, hash)) >= 0) {
			/* Known both ways: the fresher observation wins. */
			if (r.last_seen >= t->recs[idx].last_seen) {
				r.key = t->recs[idx].key;
				r.hash = hash;
				t->recs[idx] = r;
			}
		} else {
			if ((idx = tofu_insert(t, key, keylen, hash)) < 0) {
				saved = ENOMEM;
				goto fail;
			}
			r.key = t->recs[idx].key;
			r.hash = hash;
			t->recs[idx] = r;
		}
		rep->loaded++;
	}
	if (ferror(fp)) {
		saved = errno ? errno : EIO;
		goto fail;
	}
	free(line);
	fclose(fp);
	rep->evicted = t->evicted - evicted0;
	/* Rewrite a damaged file at the next save even if nothing changes. */
	if (rep->damaged > 0 || rep->evicted > 0)
		t->dirty = 1;
	return 0;
fail:
	free(line);
	fclose(fp);
	rep->evicted = t->evicted - evicted0;
	errno = saved;
	return -1;
}

/* Make the rename durable; failure only costs durability, never the file. */
static void
tofu_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

int
tofu_save(struct tofu *t)
{
	char fphex[TOFU_FP_HEXLEN + 1];
	FILE *fp = NULL;
	char *tmp;
	size_t i, tlen;
	int fd, saved;

	if (t == NULL || t->path == NULL)
		return 0;
	tlen = strlen(t->path) + sizeof(".XXXXXX");
	if ((tmp = malloc(tlen)) == NULL)
		return -1;
	snprintf(tmp, tlen, "%s.XXXXXX", t->path);
	/* Same directory as the target: rename(2) is then atomic, and a
	 * crash leaves either the old file or the new one, never half. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	/* The file says which MX hosts this site mails: not for others. */
	if (fchmod(fd, 0600) < 0)
		goto fail;
	if ((fp = fdopen(fd, "w")) == NULL)
		goto fail;
	fd = -1;
	if (fputs(TOFU_HEADER, fp) < 0 || fputs(TOFU_FIELDS, fp) < 0)
		goto fail;
	for (i = 0; i < t->n; i++) {
		const struct tofu_rec *r = &t->recs[i];

		if (r->has_fp)
			tofu_fp_hex(r->fp, fphex);
		if (fprintf(fp, "%s %d %d %lld %lld %lld %lld %s\n", r->key, r->offered,
		            r->tls_ok_last, r->first_seen, r->last_seen, r->last_offered,
		            r->last_tls_ok, r->has_fp ? fphex : "-") < 0)
			goto fail;
	}
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
		goto fail;
	if (fclose(fp) != 0) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, t->path) < 0)
		goto fail;
	tofu_sync_dir(t->path);
	free(tmp);
	t->dirty = 0;
	return 0;
fail:
	saved = errno;
	if (fp != NULL)
		fclose(fp);
	else if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	errno = saved ? saved : EIO;
	return -1;
}
