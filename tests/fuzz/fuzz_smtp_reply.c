/*
 * fuzz_smtp_reply: libFuzzer driver for the SMTP reply assembler.
 *
 * Input: one byte that picks the line limit, then lines split at LF (a CR
 * before the LF is dropped, as the transport does). Lines are fed until a
 * reply completes or fails, then a new reply starts. Invariants: accepted
 * lines are stored byte for byte; errors store nothing and are sticky; a
 * complete reply serialises and re-parses to the same code, lines and
 * enhanced status code; a too small output buffer is refused.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

#define FZR_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fzr_fail(#c, __LINE__);                                                    \
	} while (0)

static void
fzr_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_smtp_reply.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static struct smtp_reply fzr_r, fzr_r2;
static char fzr_wire[sizeof(fzr_r.buf) + 2 * SMTP_REPLY_MAXLINES + 1];

/* Serialise a complete reply, feed the wire form back, compare. */
static void
fzr_roundtrip(const struct smtp_reply *r)
{
	char e1[32], e2[32];
	long n;
	size_t s = 0, i;
	enum smtp_reply_status st = SMTP_REPLY_MORE;
	int k;

	n = smtp_reply_serialize(r, fzr_wire, sizeof(fzr_wire));
	FZR_CHECK(n > 0);
	FZR_CHECK(smtp_reply_serialize(r, fzr_wire, (size_t)n - 1) == -1);
	FZR_CHECK(smtp_reply_serialize(r, fzr_wire, (size_t)n) == n);
	smtp_reply_init(&fzr_r2, r->maxlines);
	for (i = 0; i + 1 < (size_t)n; i++) {
		if (fzr_wire[i] == '\r' && fzr_wire[i + 1] == '\n') {
			FZR_CHECK(st == SMTP_REPLY_MORE);
			st = smtp_reply_feed(&fzr_r2, fzr_wire + s, i - s);
			s = i + 2;
			i++;
		}
	}
	FZR_CHECK(s == (size_t)n);
	FZR_CHECK(st == SMTP_REPLY_DONE);
	FZR_CHECK(fzr_r2.code == r->code);
	FZR_CHECK(fzr_r2.nlines == r->nlines);
	for (k = 0; k < r->nlines; k++) {
		size_t l1, l2;
		const char *a = smtp_reply_line(r, k, &l1), *b = smtp_reply_line(&fzr_r2, k, &l2);

		FZR_CHECK(a != NULL && b != NULL && l1 == l2 && memcmp(a, b, l1) == 0);
	}
	k = smtp_reply_enhanced(r, e1, sizeof(e1));
	FZR_CHECK(k == smtp_reply_enhanced(&fzr_r2, e2, sizeof(e2)));
	if (k == 0) {
		size_t el = strlen(e1);

		FZR_CHECK(strcmp(e1, e2) == 0);
		FZR_CHECK(el >= 5 && el <= 9);
		FZR_CHECK(e1[0] == '2' || e1[0] == '4' || e1[0] == '5');
		FZR_CHECK(e1[1] == '.');
		for (i = 2; i < el; i++)
			FZR_CHECK(e1[i] == '.' || (e1[i] >= '0' && e1[i] <= '9'));
		FZR_CHECK(smtp_reply_enhanced(r, e2, el) == -1);
	}
}

/* One line: check what the assembler made of it. */
static enum smtp_reply_status
fzr_feed(const char *line, size_t len)
{
	int before = fzr_r.nlines;
	size_t used = fzr_r.used;
	enum smtp_reply_status st = smtp_reply_feed(&fzr_r, line, len);

	FZR_CHECK(smtp_reply_strstatus(st) != NULL);
	FZR_CHECK(fzr_r.used <= sizeof(fzr_r.buf));
	FZR_CHECK(fzr_r.nlines <= fzr_r.maxlines);
	if (st == SMTP_REPLY_MORE || st == SMTP_REPLY_DONE) {
		size_t l, tl;
		const char *s = smtp_reply_line(&fzr_r, before, &l);
		const char *t = smtp_reply_text(&fzr_r, before, &tl);

		FZR_CHECK(fzr_r.nlines == before + 1);
		FZR_CHECK(s != NULL && l == len && memcmp(s, line, len) == 0 && s[len] == '\0');
		FZR_CHECK(t != NULL && t + tl == s + l);
		FZR_CHECK(memchr(s, '\0', l) == NULL);
		FZR_CHECK(fzr_r.code >= 200 && fzr_r.code <= 559);
		FZR_CHECK(fzr_r.code ==
		          (line[0] - '0') * 100 + (line[1] - '0') * 10 + line[2] - '0');
		FZR_CHECK(fzr_r.done == (st == SMTP_REPLY_DONE));
		FZR_CHECK(smtp_reply_class(&fzr_r) == line[0] - '0');
	} else {
		FZR_CHECK(fzr_r.nlines == before && fzr_r.used == used);
		if (!fzr_r.done) {
			/* sticky until init */
			FZR_CHECK(smtp_reply_feed(&fzr_r, "250 ok", 6) == st);
			FZR_CHECK(fzr_r.nlines == before);
		}
	}
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *end;
	int maxlines;

	if (size == 0)
		return 0;
	/* -8 .. 247: covers "default", tiny limits and limits past the ceiling */
	maxlines = (int)data[0] - 8;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	smtp_reply_init(&fzr_r, maxlines);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		enum smtp_reply_status st;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		st = fzr_feed(p, len);
		if (st == SMTP_REPLY_DONE) {
			FZR_CHECK(smtp_reply_feed(&fzr_r, "250 x", 5) == SMTP_REPLY_ERR_SYNTAX);
			fzr_roundtrip(&fzr_r);
		}
		if (st != SMTP_REPLY_MORE)
			smtp_reply_init(&fzr_r, maxlines);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}
