/*
 * iobuf: a bounded byte buffer with a read offset, used for each direction
 * of each connection. Memory is allocated on first use and released when
 * the buffer drains, so idle sessions cost almost nothing.
 */
#ifndef STSPROXY_IOBUF_H
#define STSPROXY_IOBUF_H

#include <stddef.h>

struct iobuf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* bytes after off */
	size_t cap;
	size_t max; /* hard ceiling on len: appends beyond it fail */
};

void iobuf_init(struct iobuf *b, size_t max);
void iobuf_free(struct iobuf *b);

static inline size_t
iobuf_used(const struct iobuf *b)
{
	return b->len;
}

static inline const char *
iobuf_data(const struct iobuf *b)
{
	return b->data + b->off;
}

/* Make room for at least n more bytes; returns the write pointer or NULL. */
char *iobuf_reserve(struct iobuf *b, size_t n);
/* Commit n bytes written at the pointer iobuf_reserve returned. */
void iobuf_commit(struct iobuf *b, size_t n);
/* Append; -1 (errno ENOBUFS) if it would exceed max or memory fails. */
int iobuf_append(struct iobuf *b, const void *p, size_t n);
void iobuf_consume(struct iobuf *b, size_t n);
void iobuf_reset(struct iobuf *b);

/*
 * Find a complete line (ending in LF, CR before it stripped). Returns 1
 * with line, len (without terminator) and adv (bytes to consume), 0 if
 * no complete line is buffered yet and fewer than maxline bytes are
 * waiting, -1 if more than maxline bytes come before any LF.
 */
int iobuf_getline(const struct iobuf *b, size_t maxline, const char **line, size_t *len,
                  size_t *adv);

#endif
