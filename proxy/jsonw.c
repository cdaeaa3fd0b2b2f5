/*
 * jsonw: bounded JSON object writer for log records (see jsonw.h).
 * Never writes past buf; on overflow the record is cut and closed so the
 * line stays parseable as long as possible, and j->overflow is set.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonw.h"

/* Room kept for closing brackets so a truncated record still ends well. */
#define JSONW_RESERVE 16

static void
put(struct jsonw *j, const char *s, size_t n)
{
	if (j->overflow || j->len + n + JSONW_RESERVE >= sizeof(j->buf)) {
		j->overflow = 1;
		return;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void
puts_(struct jsonw *j, const char *s)
{
	put(j, s, strlen(s));
}

/* Length of a valid UTF-8 sequence starting at s (max n bytes), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned int c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return 0;
	if (need > n)
		return 0;
	for (size_t i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong 3/4-byte forms and surrogates */
	if (c == 0xe0 && s[1] < 0xa0)
		return 0;
	if (c == 0xed && s[1] >= 0xa0)
		return 0;
	if (c == 0xf0 && s[1] < 0x90)
		return 0;
	if (c == 0xf4 && s[1] >= 0x90)
		return 0;
	return need;
}

size_t
jsonw_escape(char *out, size_t outsz, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0;

	if (outsz == 0)
		return 0;
	while (i < len) {
		char tmp[8];
		const char *rep = NULL;
		size_t rlen, u = utf8_len(p + i, len - i);

		switch (p[i]) {
		case '"':
			rep = "\\\"";
			break;
		case '\\':
			rep = "\\\\";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\t':
			rep = "\\t";
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f || u == 0) {
				snprintf(tmp, sizeof(tmp), "\\u%04x", p[i]);
				rep = tmp;
			}
		}
		if (rep != NULL) {
			rlen = strlen(rep);
			u = 1;
		} else {
			rep = (const char *)p + i;
			rlen = u;
		}
		if (o + rlen >= outsz)
			break;
		memcpy(out + o, rep, rlen);
		o += rlen;
		i += u;
	}
	out[o] = '\0';
	return o;
}

/* A member is written whole or not at all: remember where it started. */
struct member {
	size_t len;
	int first;
};

static struct member
member_begin(const struct jsonw *j)
{
	struct member m = {j->len, j->first};
	return m;
}

static void
member_end(struct jsonw *j, struct member m)
{
	if (!j->overflow)
		return;
	j->len = m.len;
	j->first = m.first;
	j->buf[j->len] = '\0';
}

static void
key(struct jsonw *j, const char *k)
{
	if (!j->first)
		put(j, ",", 1);
	j->first = 0;
	if (k != NULL) {
		put(j, "\"", 1);
		puts_(j, k);
		put(j, "\":", 2);
	}
}

void
jsonw_begin(struct jsonw *j)
{
	j->len = 0;
	j->depth = 1;
	j->first = 1;
	j->overflow = 0;
	j->skipped = 0;
	j->buf[0] = '\0';
	put(j, "{", 1);
}

void
jsonw_strn(struct jsonw *j, const char *k, const char *val, size_t len)
{
	char esc[JSONW_MAX];
	size_t n;
	struct member m = member_begin(j);

	key(j, k);
	if (val == NULL) {
		put(j, "null", 4);
	} else {
		n = jsonw_escape(esc, sizeof(esc), val, len);
		put(j, "\"", 1);
		put(j, esc, n);
		put(j, "\"", 1);
	}
	member_end(j, m);
}

void
jsonw_str(struct jsonw *j, const char *k, const char *val)
{
	jsonw_strn(j, k, val, val ? strlen(val) : 0);
}

void
jsonw_int(struct jsonw *j, const char *k, long long v)
{
	char tmp[32];
	struct member m = member_begin(j);

	key(j, k);
	snprintf(tmp, sizeof(tmp), "%lld", v);
	puts_(j, tmp);
	member_end(j, m);
}

void
jsonw_uint(struct jsonw *j, const char *k, unsigned long long v)
{
	char tmp[32];
	struct member m = member_begin(j);

	key(j, k);
	snprintf(tmp, sizeof(tmp), "%llu", v);
	puts_(j, tmp);
	member_end(j, m);
}

void
jsonw_double(struct jsonw *j, const char *k, double v)
{
	char tmp[64];
	struct member m = member_begin(j);

	key(j, k);
	/* JSON has no NaN or infinity; huge values keep their exponent. */
	if (!isfinite(v))
		snprintf(tmp, sizeof(tmp), "null");
	else if (fabs(v) < 1e15)
		snprintf(tmp, sizeof(tmp), "%.3f", v);
	else
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	puts_(j, tmp);
	member_end(j, m);
}

void
jsonw_bool(struct jsonw *j, const char *k, int v)
{
	struct member m = member_begin(j);

	key(j, k);
	puts_(j, v ? "true" : "false");
	member_end(j, m);
}

void
jsonw_array_begin(struct jsonw *j, const char *k)
{
	struct member m = member_begin(j);

	key(j, k);
	put(j, "[", 1);
	member_end(j, m);
	if (j->overflow) {
		j->skipped++;
		return;
	}
	j->first = 1;
	j->depth++;
}

void
jsonw_array_str(struct jsonw *j, const char *val)
{
	jsonw_str(j, NULL, val);
}

void
jsonw_array_end(struct jsonw *j)
{
	if (j->skipped > 0) {
		j->skipped--;
		return;
	}
	/* The reserve guarantees closing brackets fit even after overflow. */
	if (j->len + 1 < sizeof(j->buf)) {
		j->buf[j->len++] = ']';
		j->buf[j->len] = '\0';
	}
	j->first = 0;
	j->depth--;
}

void
jsonw_end(struct jsonw *j)
{
	while (j->depth > 1)
		jsonw_array_end(j);
	if (j->len + 1 < sizeof(j->buf)) {
		j->buf[j->len++] = '}';
		j->buf[j->len] = '\0';
	}
	j->depth = 0;
}
