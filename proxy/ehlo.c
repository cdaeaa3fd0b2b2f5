/*
 * ehlo: read the capabilities out of an EHLO reply (RFC 5321 §4.1.1.1) and
 * write the filtered reply that stsproxy passes on to its client.
 *
 * Owns nothing; works on a complete struct smtp_reply. Contracts: the first
 * line is the greeting, never a capability; a keyword is the line's text up
 * to the first SP, matched case-insensitively in ASCII; the same keyword
 * rules decide what ehlo_parse reports and what ehlo_filter drops, so a
 * dropped capability can never reach the client under another spelling.
 */
#include "ehlo.h"

#include <limits.h>
#include <string.h>

struct ehlo_kw {
	const char *name;
	uint32_t cap;
};

static const struct ehlo_kw ehlo_kws[] = {
        {"STARTTLS", EHLO_STARTTLS},
        {"PIPELINING", EHLO_PIPELINING},
        {"SIZE", EHLO_SIZE},
        {"8BITMIME", EHLO_8BITMIME},
        {"SMTPUTF8", EHLO_SMTPUTF8},
        {"DSN", EHLO_DSN},
        {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDSTATUSCODES},
        {"CHUNKING", EHLO_CHUNKING},
        {"BINARYMIME", EHLO_BINARYMIME},
        {"AUTH", EHLO_AUTH},
        {"REQUIRETLS", EHLO_REQUIRETLS},
        {"XCLIENT", EHLO_XCLIENT},
        {"XFORWARD", EHLO_XFORWARD},
        {"ETRN", EHLO_ETRN},
        {"VRFY", EHLO_VRFY},
        {"DELIVERBY", EHLO_DELIVERBY},
        {"MTRK", EHLO_MTRK},
};

static char
ehlo_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static int
ehlo_isalnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Does kw[0..len) equal the upper-case name, ignoring ASCII case? */
static int
ehlo_kweq(const char *kw, size_t len, const char *name)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (name[i] == '\0' || ehlo_upper(kw[i]) != name[i])
			return 0;
	return name[len] == '\0';
}

/* RFC 5321 §4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int
ehlo_keyword_ok(const char *kw, size_t len)
{
	size_t i;

	if (len == 0 || !ehlo_isalnum(kw[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!ehlo_isalnum(kw[i]) && kw[i] != '-')
			return 0;
	return 1;
}

uint32_t
ehlo_keyword_cap(const char *kw, size_t len)
{
	size_t i;

	if (kw == NULL)
		return EHLO_UNKNOWN;
	/* "AUTH=LOGIN PLAIN" is the pre-RFC 2554 draft syntax that old
	 * Microsoft clients and servers still send next to "AUTH". */
	if (len >= 5 && ehlo_kweq(kw, 4, "AUTH") && kw[4] == '=')
		return EHLO_AUTH;
	if (!ehlo_keyword_ok(kw, len))
		return EHLO_UNKNOWN;
	for (i = 0; i < sizeof(ehlo_kws) / sizeof(ehlo_kws[0]); i++)
		if (ehlo_kweq(kw, len, ehlo_kws[i].name))
			return ehlo_kws[i].cap;
	/* RFC 5321 §4.1.5: keywords starting with X are local, site-internal
	 * extensions (XCLIENT lets a client claim another address); they all
	 * share EHLO_XCLIENT so that one bit drops them all. */
	if (kw[0] == 'X' || kw[0] == 'x')
		return EHLO_XCLIENT;
	return EHLO_UNKNOWN;
}

/* Length of the keyword at the start of a capability line's text. */
static size_t
ehlo_kwlen(const char *t, size_t len)
{
	size_t n = 0;

	while (n < len && t[n] != ' ')
		n++;
	return n;
}

/*
 * RFC 1870 §4: size-param = [1*DIGIT]; no parameter or 0 means no fixed
 * limit. A value past ULONG_MAX is clamped (it is "no practical limit"),
 * anything but digits counts as no limit.
 */
static unsigned long
ehlo_size_param(const char *p, size_t len)
{
	unsigned long v = 0;
	size_t i = 0;

	while (i < len && p[i] == ' ')
		i++;
	if (i == len || p[i] < '0' || p[i] > '9')
		return 0;
	for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (v > (ULONG_MAX - d) / 10)
			v = ULONG_MAX;
		else
			v = v * 10 + d;
	}
	if (i < len && p[i] != ' ')
		return 0;
	return v;
}

int
ehlo_parse(const struct smtp_reply *r, struct ehlo_caps *caps)
{
	int i, seen_size = 0;

	memset(caps, 0, sizeof(*caps));
	if (r->nlines < 1 || !r->done || r->code / 100 != 2)
		return -1;
	/* Line 0 is the greeting (RFC 5321 §4.1.1.1 ehlo-ok-rsp): whatever it
	 * says, it advertises nothing. */
	for (i = 1; i < r->nlines; i++) {
		size_t len, kwlen;
		const char *t = smtp_reply_text(r, i, &len);
		uint32_t cap;

		if (len == 0) {
			caps->nempty++;
			continue;
		}
		kwlen = ehlo_kwlen(t, len);
		cap = ehlo_keyword_cap(t, kwlen);
		if (cap == EHLO_AUTH || ehlo_keyword_ok(t, kwlen))
			caps->nkeywords++;
		else
			caps->nmalformed++;
		caps->caps |= cap;
		if (cap == EHLO_SIZE && !seen_size) {
			seen_size = 1;
			caps->size_max = ehlo_size_param(t + kwlen, len - kwlen);
		}
	}
	return 0;
}

/* Append n bytes at *pos; -1 if they do not fit. */
static int
ehlo_put(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
	if (n > outsz - *pos)
		return -1;
	memcpy(out + *pos, s, n);
	*pos += n;
	return 0;
}

/* Line i (0-based) as the client gets it: its code, "-" or " ", text. */
static int
ehlo_put_line(char *out, size_t outsz, size_t *pos, const char *code, const char *t, size_t len,
              int last)
{
	if (ehlo_put(out, outsz, pos, code, 3) < 0)
		return -1;
	/* RFC 5321 §4.2: the last line is "DDD SP text" or, with no text,
	 * a bare code; every other line is "DDD-" [text]. */
	if (!last || len > 0)
		if (ehlo_put(out, outsz, pos, last ? " " : "-", 1) < 0)
			return -1;
	if (ehlo_put(out, outsz, pos, t, len) < 0)
		return -1;
	return ehlo_put(out, outsz, pos, "\r\n", 2);
}

/* Does capability line i survive the filter? */
static int
ehlo_keep(const struct smtp_reply *r, int i, uint32_t drop)
{
	size_t len;
	const char *t;

	if (i == 0)
		return 1;
	t = smtp_reply_text(r, i, &len);
	/* An empty "250-" capability line advertises nothing and some
	 * clients stumble on it: never pass it on. */
	if (len == 0)
		return 0;
	return (ehlo_keyword_cap(t, ehlo_kwlen(t, len)) & drop) == 0;
}

long
ehlo_filter(const struct smtp_reply *r, uint32_t drop, int add_starttls, char *out, size_t outsz)
{
	static const char starttls[] = "STARTTLS";
	const char *code;
	size_t pos = 0;
	int i, lastkept = 0;

	if (r->nlines < 1 || !r->done || r->code / 100 != 2 || out == NULL)
		return -1;
	/* When we offer STARTTLS ourselves, the server's own line (if any)
	 * goes: the client must see exactly one, and it is ours. */
	if (add_starttls)
		drop |= EHLO_STARTTLS;
	for (i = 1; i < r->nlines; i++)
		if (ehlo_keep(r, i, drop))
			lastkept = i;
	code = smtp_reply_line(r, 0, NULL);
	for (i = 0; i < r->nlines; i++) {
		size_t len;
		const char *t;

		if (!ehlo_keep(r, i, drop))
			continue;
		t = smtp_reply_text(r, i, &len);
		if (ehlo_put_line(out, outsz, &pos, code, t, len, i == lastkept && !add_starttls) <
		    0)
			return -1;
	}
	if (add_starttls &&
	    ehlo_put_line(out, outsz, &pos, code, starttls, sizeof(starttls) - 1, 1) < 0)
		return -1;
	if (pos < outsz)
		out[pos] = '\0';
	return (long)pos;
}
