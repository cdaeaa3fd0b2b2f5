/*
 * sts_record: parse and select the "_mta-sts" TXT record (RFC 8461 §3.1).
 *
 * Owns nothing; every function is pure over (const char *, size_t) and
 * writes only to its out parameter. Contract: STS_REC_OK means the record
 * matched the §3.1 grammar exactly and carries a well-formed id; anything
 * else leaves out zeroed so a caller cannot pick up a half-parsed id.
 * See sts_record.h for the grammar and the documented choices.
 */
#include "sts_record.h"

#include <stdbool.h>
#include <string.h>

#define STS_EXT_NAME_MAX 32 /* §3.1: 1 + *31 */

static bool
sts_rec_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool
sts_rec_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* sts-ext-value characters: printable ASCII except "=", ";" and SP. */
static bool
sts_rec_extchar(char c)
{
	unsigned char u = (unsigned char)c;

	return u >= 0x21 && u <= 0x7e && c != '=' && c != ';';
}

static size_t
sts_rec_skipwsp(const char *s, size_t len, size_t i)
{
	while (i < len && sts_rec_wsp(s[i]))
		i++;
	return i;
}

/*
 * Match sts-version at the start; return the offset just after "STSv1" or
 * 0 when it does not match. Case-sensitive: §3.1 uses RFC 7405 "%s".
 */
static size_t
sts_rec_version(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || s[0] != 'v')
		return 0;
	i = sts_rec_skipwsp(s, len, 1);
	if (i >= len || s[i] != '=')
		return 0;
	i = sts_rec_skipwsp(s, len, i + 1);
	if (len - i < 5 || memcmp(s + i, "STSv1", 5) != 0)
		return 0;
	return i + 5;
}

int
sts_record_is_sts(const char *txt, size_t len)
{
	size_t i;

	if (txt == NULL)
		return 0;
	i = sts_rec_version(txt, len);
	if (i == 0)
		return 0;
	/* §3.1 discards records that do not begin with "v=STSv1;". The
	 * version must end at a delimiter, so "v=STSv12" (a future or bogus
	 * version) is discarded rather than read as STSv1. White space is
	 * allowed where the grammar allows it ("v = STSv1 ; id=..."), so a
	 * record that parses is never discarded by this filter. */
	return i == len || txt[i] == ';' || sts_rec_wsp(txt[i]);
}

enum sts_rec_status
sts_record_parse(const char *txt, size_t len, struct sts_record *out)
{
	struct sts_record r;
	bool have_id = false;
	size_t i, name, namelen, val, vallen;

	memset(&r, 0, sizeof r);
	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (txt == NULL)
		return STS_REC_INVALID;

	i = sts_rec_version(txt, len);
	if (i == 0)
		return STS_REC_INVALID;

	/* 1*(sts-sep sts-field) [sts-sep]: each round eats a separator and
	 * then a field, unless the separator ends the record. */
	for (;;) {
		if (i == len && (have_id || r.next > 0))
			break; /* the last field, no final sts-sep */
		i = sts_rec_skipwsp(txt, len, i);
		if (i >= len || txt[i] != ';')
			return STS_REC_INVALID; /* junk, or trailing WSP without ";" */
		i = sts_rec_skipwsp(txt, len, i + 1);
		if (i == len)
			break; /* the optional final sts-sep ("v=STSv1;" fails below) */

		/* sts-ext-name (which "id" also satisfies) */
		name = i;
		if (!sts_rec_alnum(txt[i]))
			return STS_REC_INVALID;
		for (i++; i < len && (sts_rec_alnum(txt[i]) || txt[i] == '_' || txt[i] == '-' ||
		                      txt[i] == '.');
		     i++)
			;
		namelen = i - name;
		if (namelen > STS_EXT_NAME_MAX)
			return STS_REC_INVALID;
		i = sts_rec_skipwsp(txt, len, i);
		if (i >= len || txt[i] != '=')
			return STS_REC_INVALID;
		i = sts_rec_skipwsp(txt, len, i + 1);
		val = i;
		while (i < len && sts_rec_extchar(txt[i]))
			i++;
		vallen = i - val;
		if (vallen == 0)
			return STS_REC_INVALID;

		if (namelen == 2 && memcmp(txt + name, "id", 2) == 0 && !have_id) {
			size_t k;

			/* §3.1: the id is what a sender compares to decide
			 * whether to fetch again; accept only the strict form
			 * so a cache key can never carry odd bytes. */
			if (vallen > STS_ID_MAXLEN)
				return STS_REC_INVALID;
			for (k = 0; k < vallen; k++)
				if (!sts_rec_alnum(txt[val + k]))
					return STS_REC_INVALID;
			memcpy(r.id, txt + val, vallen);
			r.id[vallen] = '\0';
			have_id = true;
		} else {
			/* Extensions, and any "id" after the first (§3.2:
			 * first occurrence wins), are ignored. */
			r.next++;
		}
	}

	/* §3.1: the id field is required. */
	if (!have_id)
		return STS_REC_INVALID;
	if (out != NULL)
		*out = r;
	return STS_REC_OK;
}

enum sts_rec_status
sts_record_select(const char *const *recs, const size_t *lens, int n, struct sts_record *out)
{
	int i, found = -1, count = 0;

	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (recs == NULL || lens == NULL)
		return STS_REC_NONE;
	for (i = 0; i < n; i++) {
		if (recs[i] == NULL || !sts_record_is_sts(recs[i], lens[i]))
			continue;
		if (count++ == 0)
			found = i;
	}
	if (count == 0)
		return STS_REC_NONE;
	/* §3.1: more than one STSv1 record means no usable policy; picking
	 * one would let whoever adds a record choose the id. */
	if (count > 1)
		return STS_REC_MULTIPLE;
	return sts_record_parse(recs[found], lens[found], out);
}

const char *
sts_rec_strstatus(enum sts_rec_status st)
{
	switch (st) {
	case STS_REC_OK:
		return "ok";
	case STS_REC_NONE:
		return "none";
	case STS_REC_MULTIPLE:
		return "multiple";
	case STS_REC_INVALID:
		return "invalid";
	}
	return "unknown";
}
