/*
 * smtp_reply: assemble SMTP replies line by line (RFC 5321 §4.2) and read
 * their parts back: code, lines, texts, the RFC 3463 enhanced status code.
 *
 * Owns nothing but the caller's struct smtp_reply; every line is copied into
 * its fixed buffer, so the caller's line buffer can be reused at once.
 * Contracts: no allocation, no I/O; every input (any bytes, any length) ends
 * in a status, never in a write past r->buf, r->off or r->len. The first
 * error is sticky: later feeds return it again until smtp_reply_init().
 */
#include "smtp_reply.h"

#include <string.h>

void
smtp_reply_init(struct smtp_reply *r, int maxlines)
{
	if (maxlines <= 0 || maxlines > SMTP_REPLY_MAXLINES)
		maxlines = SMTP_REPLY_MAXLINES;
	r->code = 0;
	r->nlines = 0;
	r->maxlines = maxlines;
	r->done = 0;
	r->err = 0;
	r->used = 0;
	r->buf[0] = '\0';
}

static int
smtp_reply_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The reply code at the start of a line, or -1. RFC 5321 §4.2:
 * Reply-code = %x32-35 %x30-35 %x30-39. A 1xx or 6xx..9xx code, or a
 * second digit above 5, is not SMTP: treating it as one would let a
 * non-SMTP peer (or an on-path garbler) steer the relay's state machine.
 */
static int
smtp_reply_code(const char *line, size_t len)
{
	if (len < 3)
		return -1;
	if (line[0] < '2' || line[0] > '5')
		return -1;
	if (line[1] < '0' || line[1] > '5')
		return -1;
	if (!smtp_reply_isdigit(line[2]))
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

static enum smtp_reply_status
smtp_reply_fail(struct smtp_reply *r, enum smtp_reply_status st)
{
	r->err = (int)st;
	return st;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	int code, last;
	size_t i;

	if (r->err != 0)
		return (enum smtp_reply_status)r->err;
	/* A line after the last one is the caller's mistake, not the peer's:
	 * report it but keep the complete reply usable. */
	if (r->done)
		return SMTP_REPLY_ERR_SYNTAX;
	if (len > SMTP_REPLY_MAXLINE)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_TOOLONG);
	if (line == NULL)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);
	if ((code = smtp_reply_code(line, len)) < 0)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);

	/* RFC 5321 §4.2: Reply-code [ SP textstring ] ends a reply (so a
	 * bare "DDD" is a last line), Reply-code "-" [ textstring ]
	 * continues it. "DDD " with no text is tolerated as a last line. */
	if (len == 3 || line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else
		return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);

	/* NUL, CR and LF inside a line: the caller split on line ends, so any
	 * left over are smuggled. Passing them on would let a server's text
	 * end a line early on the client side (reply injection) or cut the
	 * C strings made of the stored lines. */
	for (i = 3; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);

	/* RFC 5321 §4.2.1: every line of a multiline reply carries the same
	 * code; a change mid-reply means we lost sync with the server. */
	if (r->nlines > 0 && code != r->code)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_CODE);

	/* A continuation that takes the last slot can never complete. */
	if (r->nlines >= r->maxlines || (!last && r->nlines + 1 >= r->maxlines))
		return smtp_reply_fail(r, SMTP_REPLY_ERR_TOOMANY);
	if (len + 1 > sizeof(r->buf) - r->used)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_TOOLONG);

	memcpy(r->buf + r->used, line, len);
	r->buf[r->used + len] = '\0';
	r->off[r->nlines] = r->used;
	r->len[r->nlines] = len;
	r->used += len + 1;
	r->nlines++;
	r->code = code;
	if (last) {
		r->done = 1;
		return SMTP_REPLY_DONE;
	}
	return SMTP_REPLY_MORE;
}

const char *
smtp_reply_line(const struct smtp_reply *r, int i, size_t *len)
{
	if (i < 0 || i >= r->nlines)
		return NULL;
	if (len != NULL)
		*len = r->len[i];
	return r->buf + r->off[i];
}

const char *
smtp_reply_text(const struct smtp_reply *r, int i, size_t *len)
{
	size_t l;
	const char *s;

	if ((s = smtp_reply_line(r, i, &l)) == NULL)
		return NULL;
	/* Stored lines are at least "DDD"; a bare code has empty text and
	 * s + 3 is its NUL. */
	if (l <= 4) {
		if (len != NULL)
			*len = 0;
		return s + l;
	}
	if (len != NULL)
		*len = l - 4;
	return s + 4;
}

/* 1 to 3 digits at s[*i], advancing *i; 0 if there are none. */
static int
smtp_reply_digits(const char *s, size_t len, size_t *i)
{
	size_t n = 0;

	while (*i < len && n < 3 && smtp_reply_isdigit(s[*i])) {
		(*i)++;
		n++;
	}
	return n > 0;
}

int
smtp_reply_enhanced(const struct smtp_reply *r, char *out, size_t outsz)
{
	const char *t;
	size_t len, i = 0;

	if ((t = smtp_reply_text(r, 0, &len)) == NULL)
		return -1;
	/* RFC 3463 §2: status-code = class "." subject "." detail,
	 * class = "2" / "4" / "5", subject = 1*3digit, detail = 1*3digit;
	 * RFC 2034 §4 puts it before the text, separated by SP. A fourth
	 * digit or any other trailing character means it is not one. */
	if (len < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return -1;
	i = 2;
	if (!smtp_reply_digits(t, len, &i) || i >= len || t[i] != '.')
		return -1;
	i++;
	if (!smtp_reply_digits(t, len, &i))
		return -1;
	if (i < len && t[i] != ' ')
		return -1;
	if (out == NULL || outsz < i + 1)
		return -1;
	memcpy(out, t, i);
	out[i] = '\0';
	return 0;
}

long
smtp_reply_serialize(const struct smtp_reply *r, char *out, size_t outsz)
{
	size_t total = 0;
	int i;

	for (i = 0; i < r->nlines; i++)
		total += r->len[i] + 2;
	/* total is bounded by sizeof(r->buf) + 2 * SMTP_REPLY_MAXLINES. */
	if (total > outsz)
		return -1;
	total = 0;
	for (i = 0; i < r->nlines; i++) {
		memcpy(out + total, r->buf + r->off[i], r->len[i]);
		total += r->len[i];
		out[total++] = '\r';
		out[total++] = '\n';
	}
	/* NUL-terminate as a courtesy when there is room; not counted. */
	if (total < outsz)
		out[total] = '\0';
	return (long)total;
}

const char *
smtp_reply_strstatus(enum smtp_reply_status st)
{
	switch (st) {
	case SMTP_REPLY_MORE:
		return "more";
	case SMTP_REPLY_DONE:
		return "done";
	case SMTP_REPLY_ERR_SYNTAX:
		return "syntax error";
	case SMTP_REPLY_ERR_CODE:
		return "code changed within reply";
	case SMTP_REPLY_ERR_TOOMANY:
		return "too many lines";
	case SMTP_REPLY_ERR_TOOLONG:
		return "line too long";
	}
	return "unknown status";
}
