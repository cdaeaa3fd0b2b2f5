/*
 * pcache: in-memory and on-disk cache of MTA-STS policies (RFC 8461 §5.1,
 * §10.2).
 *
 * Owns its entries (domain, the policy text as fetched, the parsed fields,
 * times, last error) in a chained hash table keyed by the normalised
 * domain, and its file path. No I/O but pcache_load/pcache_save, no clock:
 * callers pass "now". Contracts and the file format are in pcache.h.
 *
 * The file is trusted no more than the network: it may be truncated by a
 * crash, edited by hand or damaged on disk, so every line is checked (CRC,
 * field syntax, domain, id, time range) and its policy re-parsed before it
 * becomes an entry, and a bad line costs only that line.
 */
#include "pcache.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mxpattern.h"

#define PCACHE_MAGIC       "stsproxy-pcache"
#define PCACHE_VERSION     1
#define PCACHE_VERSION_STR "1"
#define PCACHE_DOMAIN_MAX  253
#define PCACHE_B64MAX      (((STS_POLICY_MAXLEN + 2) / 3) * 4)
/* domain, id, two times, encoded error, base64 policy, crc and spaces */
#define PCACHE_LINEMAX                                                                             \
	(PCACHE_DOMAIN_MAX + STS_ID_MAXLEN + 2 * 12 + 3 * PCACHE_ERRMAX + PCACHE_B64MAX + 8 + 16)
#define PCACHE_TIME_DIGITS 12

struct pcache_node {
	struct pcache_node *next;
	uint64_t hash;
	struct pcache_entry e;
};

struct pcache {
	char *path;
	struct pcache_node **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	uint64_t key[2]; /* SipHash key */
	bool dirty;
};

/* --- hashing ---------------------------------------------------------- */

static uint64_t
pcache_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void
pcache_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = pcache_rotl(v[1], 13) ^ v[0];
	v[0] = pcache_rotl(v[0], 32);
	v[2] += v[3];
	v[3] = pcache_rotl(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = pcache_rotl(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = pcache_rotl(v[1], 17) ^ v[2];
	v[2] = pcache_rotl(v[2], 32);
}

/*
 * SipHash-2-4 with a per-process random key. Domains come from recipient
 * addresses, i.e. from whoever sends mail through us: an unkeyed hash
 * would let them pick names that all land in one chain (hash flooding).
 */
static uint64_t
pcache_hash(const struct pcache *c, const char *s, size_t len)
{
	const unsigned char *m = (const unsigned char *)s;
	uint64_t v[4], b = (uint64_t)len << 56, w;
	size_t i, j, end = len - len % 8;

	v[0] = 0x736f6d6570736575ULL ^ c->key[0];
	v[1] = 0x646f72616e646f6dULL ^ c->key[1];
	v[2] = 0x6c7967656e657261ULL ^ c->key[0];
	v[3] = 0x7465646279746573ULL ^ c->key[1];
	for (i = 0; i < end; i += 8) {
		for (w = 0, j = 0; j < 8; j++)
			w |= (uint64_t)m[i + j] << (8 * j);
		v[3] ^= w;
		pcache_sipround(v);
		pcache_sipround(v);
		v[0] ^= w;
	}
	for (j = 0; j < len % 8; j++)
		b |= (uint64_t)m[end + j] << (8 * j);
	v[3] ^= b;
	pcache_sipround(v);
	pcache_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (j = 0; j < 4; j++)
		pcache_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint32_t
pcache_crc32(const char *s, size_t len)
{
	uint32_t crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < len; i++) {
		crc ^= (unsigned char)s[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* --- names, ids, errors ----------------------------------------------- */

/*
 * Normalise a domain into out (lower-case, one trailing dot dropped) and
 * check it is an LDH name: the domain becomes part of a URL
 * (https://mta-sts.<domain>/) and a file line, so nothing else may pass.
 */
static int
pcache_norm(const char *d, size_t len, char out[PCACHE_DOMAIN_MAX + 1])
{
	size_t i, lab = 0;

	if (d == NULL)
		return -1;
	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > PCACHE_DOMAIN_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		char ch = d[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '.') {
			if (lab == 0 || out[i - 1] == '-')
				return -1;
			lab = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
			if ((lab == 0 && ch == '-') || ++lab > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = ch;
	}
	if (lab == 0 || out[len - 1] == '-')
		return -1;
	out[len] = '\0';
	return 0;
}

bool
pcache_domain_valid(const char *d, size_t len)
{
	char buf[PCACHE_DOMAIN_MAX + 1];

	return pcache_norm(d, len, buf) == 0;
}

static bool
pcache_id_valid(const char *id, size_t len)
{
	size_t i;

	if (id == NULL || len == 0 || len > STS_ID_MAXLEN)
		return false;
	for (i = 0; i < len; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= 'a' && id[i] <= 'z')))
			return false;
	return true;
}

/* Errors end up in logs and the file: keep them printable ASCII. */
static void
pcache_set_error(struct pcache_entry *e, const char *error, size_t len)
{
	size_t i;

	if (error == NULL)
		len = 0;
	if (len > PCACHE_ERRMAX - 1)
		len = PCACHE_ERRMAX - 1;
	for (i = 0; i < len; i++) {
		unsigned char u = (unsigned char)error[i];

		e->last_error[i] = (u >= 0x20 && u < 0x7f) ? error[i] : '?';
	}
	e->last_error[len] = '\0';
}

static void
pcache_seterr(char *err, size_t errsz, const char *msg)
{
	if (err != NULL && errsz > 0)
		snprintf(err, errsz, "%s", msg);
}

/* --- the table -------------------------------------------------------- */

static void
pcache_node_free(struct pcache_node *n)
{
	if (n == NULL)
		return;
	free(n->e.text);
	free(n->e.mx);
	free(n);
}

/*
 * Build an entry from policy text: the only way entries come to be, so
 * the parsed fields always agree with the stored text.
 */
static struct pcache_node *
pcache_node_build(const char *domain, const char *id, const char *text, size_t len, time_t fetched,
                  time_t checked, const char *error, size_t errlen, char *err, size_t errsz)
{
	struct sts_policy *pol;
	struct pcache_node *n;
	char perr[STS_POLICY_ERRSZ];

	if (!pcache_id_valid(id, id != NULL ? strlen(id) : 0)) {
		pcache_seterr(err, errsz, "invalid id");
		return NULL;
	}
	if (fetched < 0 || fetched > PCACHE_TIME_MAX || checked < 0 || checked > PCACHE_TIME_MAX) {
		pcache_seterr(err, errsz, "time out of range");
		return NULL;
	}
	pol = malloc(sizeof *pol);
	n = calloc(1, sizeof *n);
	if (pol == NULL || n == NULL)
		goto nomem;
	if (sts_policy_parse(text, len, pol, perr, sizeof perr) < 0) {
		if (err != NULL && errsz > 0)
			snprintf(err, errsz, "policy: %s", perr);
		free(pol);
		free(n);
		return NULL;
	}
	n->e.text = malloc(len + 1);
	if (n->e.text == NULL)
		goto nomem;
	memcpy(n->e.text, text, len);
	n->e.text[len] = '\0';
	n->e.textlen = len;
	if (pol->nmx > 0) {
		n->e.mx = malloc((size_t)pol->nmx * sizeof *n->e.mx);
		if (n->e.mx == NULL)
			goto nomem;
		memcpy(n->e.mx, pol->mx, (size_t)pol->nmx * sizeof *n->e.mx);
	}
	n->e.nmx = pol->nmx;
	n->e.mode = pol->mode;
	n->e.max_age = pol->max_age;
	snprintf(n->e.domain, sizeof n->e.domain, "%s", domain);
	snprintf(n->e.id, sizeof n->e.id, "%s", id);
	n->e.fetched_at = fetched;
	/* §5.1: a policy is valid for max_age seconds from its fetch. */
	n->e.expires_at = fetched + (time_t)pol->max_age;
	n->e.last_checked = checked;
	pcache_set_error(&n->e, error, errlen);
	free(pol);
	return n;
nomem:
	free(pol);
	pcache_node_free(n);
	pcache_seterr(err, errsz, "out of memory");
	return NULL;
}

static struct pcache_node **
pcache_find(const struct pcache *c, const char *norm, uint64_t h)
{
	struct pcache_node **pp = &c->buckets[h & (c->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->e.domain, norm) == 0)
			return pp;
	return pp; /* where a new node would go */
}

static void
pcache_grow(struct pcache *c)
{
	struct pcache_node **nb, *n, *next;
	size_t i, nsz = c->nbuckets * 2;

	nb = calloc(nsz, sizeof *nb);
	if (nb == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < c->nbuckets; i++) {
		for (n = c->buckets[i]; n != NULL; n = next) {
			next = n->next;
			n->next = nb[n->hash & (nsz - 1)];
			nb[n->hash & (nsz - 1)] = n;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = nsz;
}

static void
pcache_unlink(struct pcache *c, struct pcache_node **pp)
{
	struct pcache_node *n = *pp;

	*pp = n->next;
	pcache_node_free(n);
	c->count--;
	c->dirty = true;
}

/*
 * At the bound, make room by dropping the entry that expires first (an
 * expired one if any): it is the one whose loss weakens least.
 */
static void
pcache_evict(struct pcache *c)
{
	struct pcache_node **victim = NULL, **pp;
	size_t i;

	for (i = 0; i < c->nbuckets; i++)
		for (pp = &c->buckets[i]; *pp != NULL; pp = &(*pp)->next)
			if (victim == NULL || (*pp)->e.expires_at < (*victim)->e.expires_at ||
			    ((*pp)->e.expires_at == (*victim)->e.expires_at &&
			     (*pp)->e.last_checked < (*victim)->e.last_checked))
				victim = pp;
	if (victim != NULL)
		pcache_unlink(c, victim);
}

/* Insert n, replacing an entry for the same domain. */
static void
pcache_insert(struct pcache *c, struct pcache_node *n)
{
	struct pcache_node **pp;

	n->hash = pcache_hash(c, n->e.domain, strlen(n->e.domain));
	pp = pcache_find(c, n->e.domain, n->hash);
	if (*pp != NULL) {
		n->next = (*pp)->next;
		pcache_node_free(*pp);
		*pp = n;
		c->dirty = true;
		return;
	}
	if (c->count >= PCACHE_MAXENTRIES) {
		pcache_evict(c);
		pp = pcache_find(c, n->e.domain, n->hash);
	}
	n->next = NULL;
	*pp = n;
	c->count++;
	c->dirty = true;
	if (c->count > c->nbuckets)
		pcache_grow(c);
}

static void
pcache_clear(struct pcache *c)
{
	struct pcache_node *n, *next;
	size_t i;

	for (i = 0; i < c->nbuckets; i++) {
		for (n = c->buckets[i]; n != NULL; n = next) {
			next = n->next;
			pcache_node_free(n);
		}
		c->buckets[i] = NULL;
	}
	c->count = 0;
}

/* --- public: lifetime ------------------------------------------------- */

struct pcache *
pcache_new(const char *path)
{
	struct pcache *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->nbuckets = 64;
	c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
	if (c->buckets == NULL || (path != NULL && (c->path = strdup(path)) == NULL)) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	if (getrandom(c->key, sizeof c->key, GRND_NONBLOCK) != (ssize_t)sizeof c->key) {
		/* Early boot without entropy: weaker key, same correctness. */
		c->key[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		c->key[1] = (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL;
	}
	return c;
}

void
pcache_free(struct pcache *c)
{
	if (c == NULL)
		return;
	pcache_clear(c);
	free(c->buckets);
	free(c->path);
	free(c);
}

bool
pcache_dirty(const struct pcache *c)
{
	return c != NULL && c->dirty;
}

size_t
pcache_count(const struct pcache *c)
{
	return c != NULL ? c->count : 0;
}

/* --- public: entries -------------------------------------------------- */

enum pcache_state
pcache_lookup(const struct pcache *c, const char *domain, time_t now,
              const struct pcache_entry **out)
{
	char norm[PCACHE_DOMAIN_MAX + 1];
	struct pcache_node **pp;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || domain == NULL || pcache_norm(domain, strlen(domain), norm) < 0)
		return PCACHE_MISSING;
	pp = pcache_find(c, norm, pcache_hash(c, norm, strlen(norm)));
	if (*pp == NULL)
		return PCACHE_MISSING;
	if (out != NULL)
		*out = &(*pp)->e;
	/* §5.1: a cached policy applies until max_age after its fetch, not
	 * an instant longer. */
	return now < (*pp)->e.expires_at ? PCACHE_FRESH : PCACHE_EXPIRED;
}

int
pcache_put(struct pcache *c, const char *domain, const char *id, const char *text, size_t len,
           time_t now, char *err, size_t errsz)
{
	char norm[PCACHE_DOMAIN_MAX + 1];
	struct pcache_node *n;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (c == NULL || text == NULL) {
		pcache_seterr(err, errsz, "no cache or text");
		return -1;
	}
	if (domain == NULL || pcache_norm(domain, strlen(domain), norm) < 0) {
		pcache_seterr(err, errsz, "invalid domain");
		return -1;
	}
	n = pcache_node_build(norm, id, text, len, now, now, NULL, 0, err, errsz);
	if (n == NULL)
		return -1;
	pcache_insert(c, n);
	return 0;
}

static struct pcache_node **
pcache_find_name(const struct pcache *c, const char *domain)
{
	char norm[PCACHE_DOMAIN_MAX + 1];
	struct pcache_node **pp;

	if (c == NULL || domain == NULL || pcache_norm(domain, strlen(domain), norm) < 0)
		return NULL;
	pp = pcache_find(c, norm, pcache_hash(c, norm, strlen(norm)));
	return *pp != NULL ? pp : NULL;
}

int
pcache_touch(struct pcache *c, const char *domain, time_t now, const char *error)
{
	struct pcache_node **pp = pcache_find_name(c, domain);

	if (pp == NULL)
		return -1;
	if (now < 0 || now > PCACHE_TIME_MAX)
		return -1;
	/* Only the attempt is recorded. Keeping the id is what makes a TXT
	 * id change that we failed to fetch for show up again next time
	 * (pcache_needs_fetch): recording the new id here would leave the
	 * old policy in place under the new id for its whole max_age. */
	(*pp)->e.last_checked = now;
	pcache_set_error(&(*pp)->e, error, error != NULL ? strlen(error) : 0);
	c->dirty = true;
	return 0;
}

int
pcache_remove(struct pcache *c, const char *domain)
{
	struct pcache_node **pp = pcache_find_name(c, domain);

	if (pp == NULL)
		return -1;
	pcache_unlink(c, pp);
	return 0;
}

size_t
pcache_expire(struct pcache *c, time_t now, time_t grace)
{
	struct pcache_node **pp;
	size_t i, dropped = 0;

	if (c == NULL || grace < 0)
		return 0;
	for (i = 0; i < c->nbuckets; i++) {
		pp = &c->buckets[i];
		while (*pp != NULL) {
			time_t exp = (*pp)->e.expires_at;

			if (now > exp && now - exp > grace) {
				pcache_unlink(c, pp);
				dropped++;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	return dropped;
}

void
pcache_iter(const struct pcache *c, pcache_iter_cb *cb, void *arg)
{
	struct pcache_node *n;
	size_t i;

	if (c == NULL || cb == NULL)
		return;
	for (i = 0; i < c->nbuckets; i++)
		for (n = c->buckets[i]; n != NULL; n = n->next)
			if (cb(arg, &n->e) != 0)
				return;
}

/* --- public: rules ---------------------------------------------------- */

bool
pcache_should_replace(enum pcache_fetch result)
{
	/* §5.1/§10.2: a cached policy is given up only for a newer policy
	 * that was fetched over verified HTTPS and parsed; that includes
	 * mode none, a weaker mode or the same id (how a domain retires or
	 * relaxes its policy, §8.3). A failure of any kind never replaces
	 * it, or an attacker who blocks the fetch would erase the policy
	 * and downgrade delivery to plaintext. */
	return result == PCACHE_FETCH_OK;
}

bool
pcache_needs_fetch(const struct pcache_entry *e, const char *txt_id, time_t now)
{
	bool stale;

	if (e == NULL)
		return true;
	/* §5.1: fetch when the cached policy expired or the TXT record
	 * announces a different id; with no usable TXT record, the cached
	 * policy simply goes on applying until it expires. */
	stale = now >= e->expires_at || (txt_id != NULL && strcmp(txt_id, e->id) != 0);
	if (!stale)
		return false;
	/* After a failed attempt, wait before hitting the server again,
	 * rather than once per message. */
	if (e->last_error[0] != '\0' && now >= e->last_checked &&
	    now - e->last_checked < PCACHE_RETRY_SECS)
		return false;
	return true;
}

bool
pcache_needs_refresh(const struct pcache_entry *e, time_t now)
{
	time_t since, window;

	if (e == NULL)
		return false;
	if (now < e->last_checked)
		return true; /* the clock went back: do not trust "recent" */
	since = now - e->last_checked;
	if (since < PCACHE_RETRY_SECS)
		return false;
	if (e->last_error[0] != '\0')
		return true;
	/* §10.2: refresh proactively, about once a day, so a policy does
	 * not lapse between messages... */
	if (since >= PCACHE_REFRESH_SECS)
		return true;
	/* ...and early enough for short-lived ones: in the second half of
	 * their life (at most the last day). */
	window = (time_t)(e->max_age / 2);
	if (window > PCACHE_REFRESH_SECS)
		window = PCACHE_REFRESH_SECS;
	return now >= e->expires_at - window;
}

bool
pcache_entry_mx_ok(const struct pcache_entry *e, const char *mxhost)
{
	int i;

	if (e == NULL || mxhost == NULL)
		return false;
	for (i = 0; i < e->nmx; i++)
		if (mxpattern_match(e->mx[i], mxhost))
			return true;
	return false;
}

int
pcache_entry_policy(const struct pcache_entry *e, struct sts_policy *out)
{
	if (e == NULL || out == NULL)
		return -1;
	/* The text parsed when the entry was made; parsing is deterministic. */
	if (sts_policy_parse(e->text, e->textlen, out, NULL, 0) < 0)
		return -1;
	snprintf(out->id, sizeof out->id, "%s", e->id);
	return 0;
}

/* --- file: encoding --------------------------------------------------- */

static const char pcache_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
pcache_b64_encode(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		out[o++] = pcache_b64[s[i] >> 2];
		out[o++] = pcache_b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		out[o++] = pcache_b64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		out[o++] = pcache_b64[s[i + 2] & 63];
	}
	if (len - i == 1) {
		out[o++] = pcache_b64[s[i] >> 2];
		out[o++] = pcache_b64[(s[i] & 3) << 4];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		out[o++] = pcache_b64[s[i] >> 2];
		out[o++] = pcache_b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		out[o++] = pcache_b64[(s[i + 1] & 15) << 2];
		out[o++] = '=';
	}
	return o;
}

static int
pcache_b64_val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Strict: padded, no white space; out holds len / 4 * 3 bytes. -1 if bad. */
static long
pcache_b64_decode(const char *in, size_t len, char *out)
{
	size_t i, o = 0;
	int k, v[4], pad;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = pcache_b64_val(in[i + k])) < 0)
				return -1;
		}
		out[o++] = (char)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (char)(((v[1] & 15) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (char)(((v[2] & 3) << 6) | v[3]);
	}
	return (long)o;
}

static bool
pcache_err_safe(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("._:/()=+,'!?@[]<>;", ch) != NULL);
}

/* Percent-encode; "-" alone means "no error" in the file. */
static size_t
pcache_err_encode(const char *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (*s == '\0') {
		out[o++] = '-';
		return o;
	}
	for (; *s != '\0'; s++) {
		if (pcache_err_safe(*s)) {
			out[o++] = *s;
		} else {
			out[o++] = '%';
			out[o++] = hex[(unsigned char)*s >> 4];
			out[o++] = hex[(unsigned char)*s & 15];
		}
	}
	return o;
}

static int
pcache_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode into out (PCACHE_ERRMAX); returns the length or -1. */
static long
pcache_err_decode(const char *s, size_t len, char *out)
{
	size_t i, o = 0;
	int hi, lo;

	if (len == 1 && s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if (o >= PCACHE_ERRMAX - 1)
			return -1;
		if (s[i] == '%') {
			if (i + 2 >= len || (hi = pcache_hexval(s[i + 1])) < 0 ||
			    (lo = pcache_hexval(s[i + 2])) < 0)
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (pcache_err_safe(s[i])) {
			out[o++] = s[i];
		} else {
			return -1;
		}
	}
	return (long)o;
}

static int
pcache_parse_time(const char *s, size_t len, time_t *out)
{
	long long v = 0;
	size_t i;

	if (len == 0 || len > PCACHE_TIME_DIGITS)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > PCACHE_TIME_MAX)
		return -1;
	*out = (time_t)v;
	return 0;
}

/* --- file: load ------------------------------------------------------- */

struct pcache_loader {
	struct pcache *c;
	pcache_warn_cb *warn;
	void *arg;
	unsigned long line;
	char *polbuf; /* decoded policy text */
	bool damaged;
};

static void pcache_warn(struct pcache_loader *ld, unsigned long line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
pcache_warn(struct pcache_loader *ld, unsigned long line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ld->warn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ld->warn(ld->arg, line, msg);
}

/* Exactly 8 lower-case hex digits, as written. */
static int
pcache_parse_crc(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (len != 8)
		return -1;
	for (i = 0; i < len; i++) {
		if ((s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f'))
			return -1;
		v = (v << 4) | (uint32_t)pcache_hexval(s[i]);
	}
	*out = v;
	return 0;
}

/* One entry line (no newline). Skips with a warning on any damage. */
static void
pcache_load_line(struct pcache_loader *ld, const char *s, size_t len)
{
	const char *f[7];
	size_t flen[7], i, k = 0, start = 0;
	char domain[PCACHE_DOMAIN_MAX + 1], id[STS_ID_MAXLEN + 1], error[PCACHE_ERRMAX];
	char err[STS_POLICY_ERRSZ + 16];
	time_t fetched, checked;
	long errlen, tlen;
	struct pcache_node *n, **pp;
	uint32_t crc;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == ' ') {
			if (k == 7) {
				k++;
				break;
			}
			f[k] = s + start;
			flen[k++] = i - start;
			start = i + 1;
		}
	}
	if (k != 7) {
		pcache_warn(ld, ld->line, "expected 7 fields, entry skipped");
		goto bad;
	}
	/* The CRC first: a line damaged anywhere is dropped as a whole, not
	 * half-trusted because its damaged field still looks well-formed. */
	if (pcache_parse_crc(f[6], flen[6], &crc) < 0 ||
	    crc != pcache_crc32(s, (size_t)(f[6] - s) - 1)) {
		pcache_warn(ld, ld->line, "checksum mismatch, entry skipped");
		goto bad;
	}
	if (flen[0] > PCACHE_DOMAIN_MAX + 1 || pcache_norm(f[0], flen[0], domain) < 0) {
		pcache_warn(ld, ld->line, "invalid domain, entry skipped");
		goto bad;
	}
	if (!pcache_id_valid(f[1], flen[1])) {
		pcache_warn(ld, ld->line, "%s: invalid id, entry skipped", domain);
		goto bad;
	}
	memcpy(id, f[1], flen[1]);
	id[flen[1]] = '\0';
	if (pcache_parse_time(f[2], flen[2], &fetched) < 0 ||
	    pcache_parse_time(f[3], flen[3], &checked) < 0) {
		pcache_warn(ld, ld->line, "%s: invalid time, entry skipped", domain);
		goto bad;
	}
	if ((errlen = pcache_err_decode(f[4], flen[4], error)) < 0) {
		pcache_warn(ld, ld->line, "%s: invalid error field, entry skipped", domain);
		goto bad;
	}
	if (flen[5] > PCACHE_B64MAX || (tlen = pcache_b64_decode(f[5], flen[5], ld->polbuf)) <= 0) {
		pcache_warn(ld, ld->line, "%s: invalid policy encoding, entry skipped", domain);
		goto bad;
	}
	/* Re-parse: an entry is only as good as the current parser says. */
	n = pcache_node_build(domain, id, ld->polbuf, (size_t)tlen, fetched, checked, error,
	                      (size_t)errlen, err, sizeof err);
	if (n == NULL) {
		pcache_warn(ld, ld->line, "%s: %s, entry skipped", domain, err);
		goto bad;
	}
	n->hash = pcache_hash(ld->c, n->e.domain, strlen(n->e.domain));
	pp = pcache_find(ld->c, n->e.domain, n->hash);
	if (*pp != NULL) {
		/* Never written by us; keep the newer fetch. */
		pcache_warn(ld, ld->line, "%s: duplicate domain, newer fetch kept", domain);
		ld->damaged = true;
		if ((*pp)->e.fetched_at >= n->e.fetched_at) {
			pcache_node_free(n);
			return;
		}
	} else if (ld->c->count >= PCACHE_MAXENTRIES) {
		pcache_warn(ld, ld->line, "more than %d entries, entry skipped", PCACHE_MAXENTRIES);
		pcache_node_free(n);
		goto bad;
	}
	pcache_insert(ld->c, n);
	return;
bad:
	ld->damaged = true;
}

/*
 * Read one line into buf (at most max bytes kept). Returns 1 and sets
 * *len / *nl, or 0 at end of file. *toolong when bytes were dropped.
 */
static int
pcache_getline(FILE *fp, char *buf, size_t max, size_t *len, bool *nl, bool *toolong)
{
	size_t n = 0;
	int ch;

	*nl = false;
	*toolong = false;
	while ((ch = getc(fp)) != EOF) {
		if (ch == '\n') {
			*nl = true;
			break;
		}
		if (n < max)
			buf[n++] = (char)ch;
		else
			*toolong = true;
	}
	*len = n;
	return (n > 0 || *nl || *toolong) ? 1 : 0;
}

int
pcache_load_file(struct pcache *c, FILE *fp, pcache_warn_cb *warn, void *arg)
{
	struct pcache_loader ld;
	char *buf;
	size_t len, hl = strlen(PCACHE_MAGIC);
	bool nl, toolong, header = false;

	if (c == NULL || fp == NULL) {
		errno = EINVAL;
		return -1;
	}
	memset(&ld, 0, sizeof ld);
	ld.c = c;
	ld.warn = warn;
	ld.arg = arg;
	buf = malloc(PCACHE_LINEMAX);
	ld.polbuf = malloc(PCACHE_B64MAX / 4 * 3);
	if (buf == NULL || ld.polbuf == NULL) {
		free(buf);
		free(ld.polbuf);
		errno = ENOMEM;
		return -1;
	}
	pcache_clear(c);

	while (pcache_getline(fp, buf, PCACHE_LINEMAX, &len, &nl, &toolong)) {
		ld.line++;
		if (toolong) {
			pcache_warn(&ld, ld.line, "line too long, skipped");
			ld.damaged = true;
			continue;
		}
		if (len == 0 || buf[0] == '#')
			continue;
		if (!nl) {
			/* Every line we write ends in LF: this one was cut
			 * short, e.g. by a crash of a non-atomic copy. */
			pcache_warn(&ld, ld.line, "truncated last line, skipped");
			ld.damaged = true;
			break;
		}
		if (!header) {
			if (len > hl + 1 && memcmp(buf, PCACHE_MAGIC, hl) == 0 && buf[hl] == ' ') {
				if (len - hl - 1 == strlen(PCACHE_VERSION_STR) &&
				    memcmp(buf + hl + 1, PCACHE_VERSION_STR, len - hl - 1) == 0) {
					header = true;
					continue;
				}
				/* A newer stsproxy wrote it: load nothing, and do
				 * not mark the cache dirty over it. */
				pcache_warn(&ld, ld.line,
				            "unsupported format version, file ignored");
				break;
			}
			pcache_warn(&ld, ld.line, "not a policy cache file, ignored");
			ld.damaged = true;
			break;
		}
		pcache_load_line(&ld, buf, len);
	}
	if (ferror(fp)) {
		pcache_warn(&ld, 0, "read error, rest of file ignored");
		ld.damaged = true;
	}
	free(buf);
	free(ld.polbuf);
	/* Rewrite a damaged file on the next save; a clean one is in sync. */
	c->dirty = ld.damaged;
	return (int)c->count;
}

int
pcache_load(struct pcache *c, pcache_warn_cb *warn, void *arg)
{
	FILE *fp;
	int n, saved;

	if (c == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (c->path == NULL)
		return 0;
	fp = fopen(c->path, "re");
	if (fp == NULL) {
		if (errno != ENOENT)
			return -1;
		pcache_clear(c);
		c->dirty = false;
		return 0;
	}
	n = pcache_load_file(c, fp, warn, arg);
	saved = errno;
	fclose(fp);
	errno = saved;
	return n;
}

/* --- file: save ------------------------------------------------------- */

static int
pcache_cmp(const void *a, const void *b)
{
	const struct pcache_node *x = *(const struct pcache_node *const *)a;
	const struct pcache_node *y = *(const struct pcache_node *const *)b;

	return strcmp(x->e.domain, y->e.domain);
}

int
pcache_save_file(const struct pcache *c, FILE *fp)
{
	struct pcache_node **v = NULL, *n;
	char *line;
	size_t i, k = 0, o;
	int rc = 0;

	if (c == NULL || fp == NULL) {
		errno = EINVAL;
		return -1;
	}
	line = malloc(PCACHE_LINEMAX);
	if (c->count > 0)
		v = malloc(c->count * sizeof *v);
	if (line == NULL || (c->count > 0 && v == NULL)) {
		free(line);
		free(v);
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < c->nbuckets; i++)
		for (n = c->buckets[i]; n != NULL; n = n->next)
			v[k++] = n;
	if (k > 0)
		qsort(v, k, sizeof *v, pcache_cmp);

	if (fprintf(fp,
	            "# stsproxy MTA-STS policy cache (RFC 8461). Written by stsproxy;\n"
	            "# deleting a line is fine, other edits void its checksum.\n"
	            "# domain id fetched_at last_checked last_error policy-base64 crc32\n"
	            "%s %d\n",
	            PCACHE_MAGIC, PCACHE_VERSION) < 0)
		rc = -1;
	for (i = 0; rc == 0 && i < k; i++) {
		const struct pcache_entry *e = &v[i]->e;
		int m;

		m = snprintf(line, PCACHE_LINEMAX, "%s %s %lld %lld ", e->domain, e->id,
		             (long long)e->fetched_at, (long long)e->last_checked);
		if (m < 0)
			break;
		o = (size_t)m;
		o += pcache_err_encode(e->last_error, line + o);
		line[o++] = ' ';
		o += pcache_b64_encode(e->text, e->textlen, line + o);
		o += (size_t)snprintf(line + o, PCACHE_LINEMAX - o, " %08lx\n",
		                      (unsigned long)pcache_crc32(line, o));
		if (fwrite(line, 1, o, fp) != o)
			rc = -1;
	}
	free(line);
	free(v);
	if (rc == 0 && ferror(fp))
		rc = -1;
	if (rc < 0 && errno == 0)
		errno = EIO;
	return rc;
}

int
pcache_save(struct pcache *c)
{
	char *tmp = NULL, *dir = NULL, *slash;
	FILE *fp = NULL;
	int fd = -1, dfd, saved;
	bool created = false;

	if (c == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (c->path == NULL)
		return 0;
	/* Write a temporary file beside the real one, make it durable, then
	 * rename over: a crash or a full disk leaves the old file or the new
	 * one, never a mix (rename is atomic within one file system). */
	if (asprintf(&tmp, "%s.tmpXXXXXX", c->path) < 0) {
		tmp = NULL;
		goto fail;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto fail;
	created = true;
	/* Policies and errors reveal whom we send mail to: owner only. */
	if (fchmod(fd, 0600) < 0)
		goto fail;
	fp = fdopen(fd, "w");
	if (fp == NULL)
		goto fail;
	fd = -1;
	if (pcache_save_file(c, fp) < 0 || fflush(fp) != 0 || fsync(fileno(fp)) < 0)
		goto fail;
	if (fclose(fp) != 0) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, c->path) < 0)
		goto fail;
	created = false;
	free(tmp);
	tmp = NULL;
	/* Make the rename itself durable. */
	dir = strdup(c->path);
	if (dir == NULL)
		goto fail;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		saved = errno;
		if (dfd >= 0)
			close(dfd);
		free(dir);
		errno = saved;
		return -1; /* the new file is in place, durability unknown */
	}
	close(dfd);
	free(dir);
	c->dirty = false;
	return 0;
fail:
	saved = errno;
	if (fp != NULL)
		fclose(fp);
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	errno = saved != 0 ? saved : EIO;
	return -1;
}
