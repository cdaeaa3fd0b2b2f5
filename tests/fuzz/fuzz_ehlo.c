/*
 * fuzz_ehlo: libFuzzer driver for EHLO capability parsing and filtering.
 *
 * Input: 4 bytes of drop mask, 1 byte whose low bit asks for an added
 * STARTTLS line, then reply lines split at LF (CR before LF dropped).
 * Every complete reply goes through ehlo_parse and ehlo_filter.
 * Invariants: the line counters add up; the filtered reply re-parses as
 * one valid reply with the same code, only its last line "DDD " or bare,
 * no empty capability line, none of the dropped capabilities (STARTTLS
 * present exactly when added); with nothing dropped the capabilities are
 * unchanged; a too small output buffer is refused.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ehlo.h"

#define FZE_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fze_fail(#c, __LINE__);                                                    \
	} while (0)

static void
fze_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_ehlo.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static struct smtp_reply fze_r, fze_r2;
/* every line may gain one byte ("250" -> "250-"), plus CRLFs and STARTTLS */
static char fze_out[sizeof(fze_r.buf) + 3 * SMTP_REPLY_MAXLINES + 32];

static void
fze_check_filtered(const struct smtp_reply *r, const struct ehlo_caps *c, uint32_t drop, int add)
{
	struct ehlo_caps c2;
	size_t s = 0, i;
	int nout = 0;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	long n = ehlo_filter(r, drop, add, fze_out, sizeof(fze_out));

	FZE_CHECK(n > 0 && (size_t)n < sizeof(fze_out));
	FZE_CHECK(ehlo_filter(r, drop, add, fze_out, (size_t)n - 1) == -1);
	FZE_CHECK(ehlo_filter(r, drop, add, fze_out, (size_t)n) == n);
	FZE_CHECK(fze_out[n - 2] == '\r' && fze_out[n - 1] == '\n');

	smtp_reply_init(&fze_r2, 0);
	for (i = 0; i + 1 < (size_t)n; i++) {
		if (fze_out[i] == '\r' && fze_out[i + 1] == '\n') {
			if (st == SMTP_REPLY_MORE)
				st = smtp_reply_feed(&fze_r2, fze_out + s, i - s);
			else
				FZE_CHECK(st != SMTP_REPLY_DONE); /* DONE only at the end */
			nout++;
			s = i + 2;
			i++;
		}
	}
	FZE_CHECK(s == (size_t)n);
	FZE_CHECK(nout >= 1 && nout <= r->nlines + 1);
	if (nout > SMTP_REPLY_MAXLINES) {
		/* the appended STARTTLS made a 257th line */
		FZE_CHECK(add && st == SMTP_REPLY_ERR_TOOMANY);
		return;
	}
	if (st == SMTP_REPLY_ERR_TOOLONG) {
		/* the buffer was nearly full and lines grew by a byte or two */
		FZE_CHECK(r->used + 3 * SMTP_REPLY_MAXLINES + 16 > sizeof(fze_r.buf));
		return;
	}
	FZE_CHECK(st == SMTP_REPLY_DONE);
	FZE_CHECK(fze_r2.code == r->code);
	FZE_CHECK(ehlo_parse(&fze_r2, &c2) == 0);
	FZE_CHECK(c2.nempty == 0);
	FZE_CHECK(c2.nkeywords + c2.nmalformed == fze_r2.nlines - 1);
	if (add) {
		FZE_CHECK(c2.caps & EHLO_STARTTLS);
		FZE_CHECK((c2.caps & drop & ~(uint32_t)EHLO_STARTTLS) == 0);
	} else {
		FZE_CHECK((c2.caps & drop) == 0);
	}
	if (drop == 0 && !add) {
		FZE_CHECK(c2.caps == c->caps);
		FZE_CHECK(c2.size_max == c->size_max);
		FZE_CHECK(c2.nkeywords == c->nkeywords && c2.nmalformed == c->nmalformed);
		FZE_CHECK(nout == r->nlines - c->nempty);
	}
	/* greeting first and unchanged */
	{
		size_t l1, l2;
		const char *t1 = smtp_reply_text(r, 0, &l1), *t2 = smtp_reply_text(&fze_r2, 0, &l2);

		FZE_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
	}
}

static void
fze_check_reply(const struct smtp_reply *r, uint32_t drop, int add)
{
	struct ehlo_caps c;
	int rc = ehlo_parse(r, &c);
	int i;

	if (r->code / 100 != 2) {
		FZE_CHECK(rc == -1 && c.caps == 0 && c.nkeywords == 0);
		FZE_CHECK(ehlo_filter(r, drop, add, fze_out, sizeof(fze_out)) == -1);
		return;
	}
	FZE_CHECK(rc == 0);
	FZE_CHECK(c.nkeywords + c.nmalformed + c.nempty == r->nlines - 1);
	FZE_CHECK(c.size_max == 0 || (c.caps & EHLO_SIZE));
	/* the caps are exactly the union of the capability lines' keywords */
	{
		uint32_t u = 0;

		for (i = 1; i < r->nlines; i++) {
			size_t l, k = 0;
			const char *t = smtp_reply_text(r, i, &l);

			if (l == 0)
				continue;
			while (k < l && t[k] != ' ')
				k++;
			u |= ehlo_keyword_cap(t, k);
		}
		FZE_CHECK(u == c.caps);
	}
	fze_check_filtered(r, &c, drop, add);
	fze_check_filtered(r, &c, 0, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *end;
	uint32_t drop;
	int add;

	if (size < 5)
		return 0;
	drop = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
	       (uint32_t)data[3] << 24;
	add = data[4] & 1;
	p = (const char *)data + 5;
	end = (const char *)data + size;

	/* the keyword classifier on raw bytes */
	{
		size_t kl = (size_t)(end - p) < 64 ? (size_t)(end - p) : 64;
		uint32_t cap = ehlo_keyword_cap(p, kl);

		FZE_CHECK(cap != 0 && (cap & (cap - 1)) == 0);
	}

	smtp_reply_init(&fze_r, 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		enum smtp_reply_status st;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		st = smtp_reply_feed(&fze_r, p, len);
		if (st == SMTP_REPLY_DONE)
			fze_check_reply(&fze_r, drop, add);
		else if (st == SMTP_REPLY_MORE)
			FZE_CHECK(ehlo_filter(&fze_r, drop, add, fze_out, sizeof(fze_out)) == -1);
		if (st != SMTP_REPLY_MORE)
			smtp_reply_init(&fze_r, 0);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}
