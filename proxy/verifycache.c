/*
 * verifycache: see verifycache.h. A small array searched linearly: it is
 * consulted once per full TLS handshake (a millisecond of public-key
 * work), so a few hundred 32-byte comparisons are noise and need no hash
 * table.
 */
#include <stdlib.h>
#include <string.h>

#include "verifycache.h"

struct verifycache_entry {
	unsigned char key[VERIFYCACHE_KEYLEN];
	time_t not_before, not_after;
	time_t stored;
	unsigned long used; /* LRU clock; 0 = free slot */
};

struct verifycache {
	struct verifycache_entry *e;
	int n;
	unsigned long clock;
};

struct verifycache *
verifycache_new(int size)
{
	struct verifycache *vc = calloc(1, sizeof(*vc));

	if (vc == NULL)
		return NULL;
	if (size > 0 && (vc->e = calloc((size_t)size, sizeof(*vc->e))) == NULL) {
		free(vc);
		return NULL;
	}
	vc->n = size > 0 ? size : 0;
	return vc;
}

void
verifycache_free(struct verifycache *vc)
{
	if (vc == NULL)
		return;
	free(vc->e);
	free(vc);
}

void
verifycache_clear(struct verifycache *vc)
{
	if (vc != NULL && vc->n > 0)
		memset(vc->e, 0, (size_t)vc->n * sizeof(*vc->e));
}

static struct verifycache_entry *
find(struct verifycache *vc, const unsigned char *key)
{
	for (int i = 0; i < vc->n; i++)
		if (vc->e[i].used != 0 && memcmp(vc->e[i].key, key, VERIFYCACHE_KEYLEN) == 0)
			return &vc->e[i];
	return NULL;
}

int
verifycache_hit(struct verifycache *vc, const unsigned char key[VERIFYCACHE_KEYLEN], time_t now)
{
	struct verifycache_entry *e;

	if (vc == NULL || (e = find(vc, key)) == NULL)
		return 0;
	if (now < e->not_before || now > e->not_after || now - e->stored >= VERIFYCACHE_TTL ||
	    now < e->stored) {
		e->used = 0;
		return 0;
	}
	e->used = ++vc->clock;
	return 1;
}

void
verifycache_put(struct verifycache *vc, const unsigned char key[VERIFYCACHE_KEYLEN],
                time_t not_before, time_t not_after, time_t now)
{
	struct verifycache_entry *e;

	if (vc == NULL || vc->n == 0)
		return;
	if ((e = find(vc, key)) == NULL) {
		e = &vc->e[0];
		for (int i = 1; i < vc->n && e->used != 0; i++)
			if (vc->e[i].used < e->used)
				e = &vc->e[i];
		memcpy(e->key, key, VERIFYCACHE_KEYLEN);
	}
	e->not_before = not_before;
	e->not_after = not_after;
	e->stored = now;
	e->used = ++vc->clock;
}
