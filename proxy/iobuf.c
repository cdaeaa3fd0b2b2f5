/*
 * iobuf: bounded byte buffer (see iobuf.h). Growth doubles up to max;
 * consumed space is reclaimed by moving the tail down only when needed, and
 * an emptied buffer larger than IOBUF_KEEP is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"

#define IOBUF_MIN  1024
#define IOBUF_KEEP 4096 /* an empty buffer keeps at most this much memory */

void
iobuf_init(struct iobuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
iobuf_free(struct iobuf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
iobuf_reset(struct iobuf *b)
{
	b->off = b->len = 0;
	if (b->cap > IOBUF_KEEP)
		iobuf_free(b);
}

char *
iobuf_reserve(struct iobuf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (n > b->max || b->len > b->max - n) {
		errno = ENOBUFS;
		return NULL;
	}
	if (b->off + b->len + n <= b->cap)
		return b->data + b->off + b->len;
	need = b->len + n;
	if (need <= b->cap) {
		/* Enough room once the consumed head is reclaimed. */
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return b->data + b->len;
	}
	ncap = b->cap ? b->cap : IOBUF_MIN;
	while (ncap < need)
		ncap *= 2;
	if (ncap > b->max + IOBUF_MIN)
		ncap = b->max + IOBUF_MIN;
	if (b->off > 0 && b->len > 0)
		memmove(b->data, b->data + b->off, b->len);
	b->off = 0;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return NULL;
	b->data = p;
	b->cap = ncap;
	return b->data + b->len;
}

void
iobuf_commit(struct iobuf *b, size_t n)
{
	b->len += n;
}

int
iobuf_append(struct iobuf *b, const void *p, size_t n)
{
	char *w;

	if (n == 0)
		return 0;
	if ((w = iobuf_reserve(b, n)) == NULL)
		return -1;
	memcpy(w, p, n);
	b->len += n;
	return 0;
}

void
iobuf_consume(struct iobuf *b, size_t n)
{
	if (n >= b->len) {
		iobuf_reset(b);
		return;
	}
	b->off += n;
	b->len -= n;
}

int
iobuf_getline(const struct iobuf *b, size_t maxline, const char **line, size_t *len, size_t *adv)
{
	const char *s = iobuf_data(b);
	size_t scan = b->len < maxline + 2 ? b->len : maxline + 2;
	const char *nl = scan ? memchr(s, '\n', scan) : NULL;
	size_t n;

	if (nl == NULL)
		return b->len > maxline + 1 ? -1 : 0;
	n = (size_t)(nl - s);
	*adv = n + 1;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > maxline)
		return -1;
	*line = s;
	*len = n;
	return 1;
}
