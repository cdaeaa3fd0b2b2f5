/*
 * fuzz_smtp_body: libFuzzer driver for the end-of-DATA matcher.
 *
 * Input: raw body bytes, possibly several bodies in a row (after an end,
 * the rest is scanned as the next body, as on a connection that sends
 * more than one message). Invariants, for each body:
 *  - the end found when the bytes are fed whole is the first CRLF "." CRLF
 *    of CRLF + body (a plain substring search; the DATA line's CRLF
 *    counts), and bare_lf says whether a LF without CR came before it;
 *  - feeding the same bytes in pieces (one byte at a time, and cut at
 *    pseudo-random places chosen from the input, empty pieces included)
 *    gives the same end offset, byte count and bare_lf;
 *  - bytes is the end offset, or everything when there is no end.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput (helpers carry the fzb_ prefix).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_body.h"

#define FZB_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fzb_fail(#c, __LINE__);                                                    \
	} while (0)

static void
fzb_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_smtp_body.c:%d: invariant failed: %s\n", line, what);
	abort();
}

struct fzb_result {
	long end; /* offset past the terminator, -1 = none */
	unsigned long long bytes;
	int bare_lf;
};

/* Byte k of "\r\n" + p. */
static char
fzb_at(const uint8_t *p, size_t k)
{
	return k < 2 ? "\r\n"[k] : (char)p[k - 2];
}

/* The reference: first CRLF.CRLF by plain search, bare LF before it. */
static struct fzb_result
fzb_reference(const uint8_t *p, size_t n)
{
	struct fzb_result r = {-1, n, 0};

	for (size_t e = 3; e <= n; e++) {
		size_t k = e + 2 - 5;

		if (fzb_at(p, k) == '\r' && fzb_at(p, k + 1) == '\n' && fzb_at(p, k + 2) == '.' &&
		    fzb_at(p, k + 3) == '\r' && fzb_at(p, k + 4) == '\n') {
			r.end = (long)e;
			r.bytes = e;
			break;
		}
	}
	for (size_t k = 0; k < r.bytes; k++)
		if (p[k] == '\n' && (k == 0 || p[k - 1] != '\r'))
			r.bare_lf = 1;
	return r;
}

static uint32_t
fzb_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/*
 * Feed p[0..n) in pieces: mode 0 whole, 1 one byte at a time, 2+ pieces
 * of pseudo-random length (0 .. about 2^(mode-1) bytes).
 */
static struct fzb_result
fzb_feed(const uint8_t *p, size_t n, int mode, uint32_t seed)
{
	struct smtp_body b;
	struct fzb_result r = {-1, 0, 0};
	size_t at = 0;

	smtp_body_init(&b);
	FZB_CHECK(b.bytes == 0 && b.bare_lf == 0);
	for (;;) {
		size_t len;
		long e;

		if (mode == 0)
			len = n;
		else if (mode == 1)
			len = 1;
		else
			len = fzb_next(&seed) % ((1u << (mode - 1)) + 1);
		if (len > n - at)
			len = n - at;
		e = smtp_body_scan(&b, (const char *)p + at, len);
		FZB_CHECK(e == -1 || (e >= 1 && (size_t)e <= len));
		if (e >= 0) {
			r.end = (long)(at + (size_t)e);
			FZB_CHECK(b.bytes == at + (size_t)e);
			break;
		}
		at += len;
		FZB_CHECK(b.bytes == at);
		if (at == n && (mode < 2 || len == 0 || (fzb_next(&seed) & 1)))
			break;
	}
	r.bytes = b.bytes;
	r.bare_lf = b.bare_lf;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 2166136261u;

	/* the cuts depend on the input only: a crash reproduces */
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	seed |= 1;

	while (size > 0) {
		struct fzb_result ref = fzb_reference(data, size);
		struct fzb_result whole = fzb_feed(data, size, 0, 0);

		FZB_CHECK(whole.end == ref.end);
		FZB_CHECK(whole.bytes == ref.bytes);
		FZB_CHECK(whole.bare_lf == ref.bare_lf);
		for (int mode = 1; mode <= 12; mode++) {
			struct fzb_result cut = fzb_feed(data, size, mode, fzb_next(&seed));

			FZB_CHECK(cut.end == whole.end);
			FZB_CHECK(cut.bytes == whole.bytes);
			FZB_CHECK(cut.bare_lf == whole.bare_lf);
		}
		if (whole.end < 0)
			break;
		/* the rest of the input is the next body */
		data += whole.end;
		size -= (size_t)whole.end;
	}
	return 0;
}
