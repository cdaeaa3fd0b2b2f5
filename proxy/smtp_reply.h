/*
 * smtp_reply: assemble and inspect SMTP replies (RFC 5321 §4.2).
 *
 * A reply is one or more lines "CCC-text" ... "CCC text" sharing one code.
 * smtp_reply_feed() takes one line at a time (without its CRLF/LF) and says
 * whether the reply is complete. Everything is bounded: at most
 * SMTP_REPLY_MAXLINES lines (or the smaller limit given to smtp_reply_init)
 * of at most SMTP_REPLY_MAXLINE bytes each.
 * Pure code: no I/O, no allocation after smtp_reply_init().
 */
#ifndef STSPROXY_SMTP_REPLY_H
#define STSPROXY_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_REPLY_MAXLINES 256  /* hard ceiling for any configured limit */
#define SMTP_REPLY_MAXLINE  2048 /* bytes per line, without CRLF */

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,    /* line accepted, more lines follow */
	SMTP_REPLY_DONE,        /* line accepted, reply complete */
	SMTP_REPLY_ERR_SYNTAX,  /* not "DDD", "DDD-..." or "DDD ..." */
	SMTP_REPLY_ERR_CODE,    /* continuation line with another code */
	SMTP_REPLY_ERR_TOOMANY, /* more lines than the limit */
	SMTP_REPLY_ERR_TOOLONG, /* a line over SMTP_REPLY_MAXLINE */
};

struct smtp_reply {
	int code;     /* 200..559 once the first line was fed, else 0 */
	int nlines;   /* lines fed so far */
	int maxlines; /* limit, <= SMTP_REPLY_MAXLINES */
	int done;     /* last line seen */
	int err;      /* first error status returned (sticky), 0 if none */
	/* Lines are stored NUL-terminated back to back in buf, without CRLF,
	 * each including its "DDD-" / "DDD " prefix as received. */
	size_t off[SMTP_REPLY_MAXLINES];
	size_t len[SMTP_REPLY_MAXLINES];
	size_t used;
	char buf[SMTP_REPLY_MAXLINES * 64 + SMTP_REPLY_MAXLINE + 1];
};

/* Reset r for a new reply; maxlines <= 0 or too big means SMTP_REPLY_MAXLINES. */
void smtp_reply_init(struct smtp_reply *r, int maxlines);

/*
 * Feed one line (no line terminator). Returns the status above. A line
 * whose text does not fit in r->buf is SMTP_REPLY_ERR_TOOLONG. After an
 * error the reply is unusable until smtp_reply_init(): every later feed
 * returns the same error. A feed after SMTP_REPLY_DONE returns
 * SMTP_REPLY_ERR_SYNTAX and leaves the complete reply intact.
 * Codes follow RFC 5321 §4.2 (%x32-35 %x30-35 %x30-39); NUL, CR or LF
 * inside a line is SMTP_REPLY_ERR_SYNTAX.
 * Lenient where real servers are: a bare "DDD" line is a last line.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);

/* Line i (0-based) as received, with its code prefix; NULL if out of range. */
const char *smtp_reply_line(const struct smtp_reply *r, int i, size_t *len);

/* Text of line i after "DDD-"/"DDD " (may be empty); NULL if out of range. */
const char *smtp_reply_text(const struct smtp_reply *r, int i, size_t *len);

/*
 * The enhanced status code (RFC 3463, "c.s.d") at the start of the first
 * line's text, copied to out (NUL-terminated); 0 if present, -1 if not.
 */
int smtp_reply_enhanced(const struct smtp_reply *r, char *out, size_t outsz);

/* Serialise the whole reply with CRLFs into out; returns bytes or -1 if too small.
 * out is NUL-terminated too when there is room for it (not counted). */
long smtp_reply_serialize(const struct smtp_reply *r, char *out, size_t outsz);

/* Human-readable name of a status, for logs. */
const char *smtp_reply_strstatus(enum smtp_reply_status st);

/* Code class helpers: 2 for 2xx, ... */
static inline int
smtp_reply_class(const struct smtp_reply *r)
{
	return r->code / 100;
}

#endif
