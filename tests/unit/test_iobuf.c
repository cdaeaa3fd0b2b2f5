/*
 * test_iobuf: the bounded byte buffer (proxy/iobuf.c): the line reader's
 * limits (CRLF, LF, incomplete, exactly maxline, maxline + 1, NUL bytes),
 * reserve/commit growth up to max and refusal beyond it, consume and
 * compaction checked against a flat reference model, and memory released
 * once a buffer drains.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "iobuf.h"

/* A string literal with its length, so that tables can hold NUL bytes. */
#define S(lit)                                                                                     \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

struct bytes {
	const char *s;
	size_t len;
};

/* ---- getline: short literal cases ---------------------------------------- */

static const struct {
	struct bytes in;
	size_t maxline;
	int rc;
	struct bytes line; /* rc == 1 */
	size_t adv;        /* rc == 1 */
} gl[] = {
        {S("MAIL FROM:<a@b>\r\n"), 64, 1, S("MAIL FROM:<a@b>"), 17},
        {S("MAIL FROM:<a@b>\n"), 64, 1, S("MAIL FROM:<a@b>"), 16},
        {S("250 ok\r\n250 next\r\n"), 64, 1, S("250 ok"), 8}, /* first line only */
        {S("\r\n"), 64, 1, S(""), 2},
        {S("\n"), 64, 1, S(""), 1},
        {S("\r\r\n"), 64, 1, S("\r"), 3}, /* only the CR right before LF goes */
        {S("a\rb\n"), 64, 1, S("a\rb"), 4},
        {S("a\0b\r\n"), 64, 1, S("a\0b"), 5}, /* embedded NUL is data */
        {S("\0\n"), 64, 1, S("\0"), 2},
        {S(""), 64, 0, S(""), 0},
        {S("QUIT"), 64, 0, S(""), 0},
        {S("QUIT\r"), 64, 0, S(""), 0}, /* CR without LF yet */
        /* maxline = 4 */
        {S("abcd\r\n"), 4, 1, S("abcd"), 6}, /* exactly maxline */
        {S("abcd\n"), 4, 1, S("abcd"), 5},
        {S("abcd"), 4, 0, S(""), 0},       /* may still be a good line */
        {S("abcd\r"), 4, 0, S(""), 0},     /* ... whose LF is in flight */
        {S("abcde\r\n"), 4, -1, S(""), 0}, /* maxline + 1 */
        {S("abcde\n"), 4, -1, S(""), 0},
        {S("abcde\r"), 4, -1, S(""), 0},
        {S("abcdef"), 4, -1, S(""), 0},
        {S("abcdefghijklmnop\n"), 4, -1, S(""), 0},
        {S("abc\0e\r\n"), 4, -1, S(""), 0}, /* a NUL counts like any byte */
        /* maxline = 0: only empty lines */
        {S("\r\n"), 0, 1, S(""), 2},
        {S("\n"), 0, 1, S(""), 1},
        {S("x\n"), 0, -1, S(""), 0},
        {S("x\r\n"), 0, -1, S(""), 0},
};

static void
test_getline_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(gl) / sizeof(gl[0]); i++) {
		struct iobuf b;
		const char *line = NULL;
		size_t len = 12345, adv = 12345;
		int rc;

		iobuf_init(&b, 1 << 16);
		assert_int_equal(iobuf_append(&b, gl[i].in.s, gl[i].in.len), 0);
		rc = iobuf_getline(&b, gl[i].maxline, &line, &len, &adv);
		if (rc != gl[i].rc)
			fail_msg("case %zu: rc %d, want %d", i, rc, gl[i].rc);
		if (rc == 1) {
			if (len != gl[i].line.len || adv != gl[i].adv)
				fail_msg("case %zu: len %zu adv %zu, want %zu %zu", i, len, adv,
				         gl[i].line.len, gl[i].adv);
			assert_ptr_equal(line, iobuf_data(&b));
			assert_memory_equal(line, gl[i].line.s, len);
		}
		/* getline never consumes */
		assert_int_equal(iobuf_used(&b), gl[i].in.len);
		iobuf_free(&b);
	}
}

/* Around a realistic limit, built rather than spelt out. */
static void
test_getline_limits(void **state)
{
	enum { MAXL = 1000 };
	static char big[MAXL + 16];
	static const struct {
		size_t body; /* bytes before the terminator */
		const char *term;
		int rc;
	} t[] = {
	        {MAXL - 1, "\r\n", 1},  {MAXL, "\r\n", 1},    {MAXL, "\n", 1},
	        {MAXL + 1, "\r\n", -1}, {MAXL + 1, "\n", -1}, {MAXL + 2, "\n", -1},
	        {MAXL, "", 0},          {MAXL, "\r", 0},      {MAXL + 1, "\r", -1},
	        {MAXL + 2, "", -1},     {MAXL + 10, "", -1},
	};

	(void)state;
	memset(big, 'x', sizeof(big));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct iobuf b;
		const char *line;
		size_t len = 0, adv = 0, tl = strlen(t[i].term);
		int rc;

		iobuf_init(&b, 4 * MAXL);
		assert_int_equal(iobuf_append(&b, big, t[i].body), 0);
		assert_int_equal(iobuf_append(&b, t[i].term, tl), 0);
		rc = iobuf_getline(&b, MAXL, &line, &len, &adv);
		if (rc != t[i].rc)
			fail_msg("case %zu (%zu + %zu): rc %d, want %d", i, t[i].body, tl, rc,
			         t[i].rc);
		if (rc == 1) {
			assert_int_equal(len, t[i].body);
			assert_int_equal(adv, t[i].body + tl);
		}
		iobuf_free(&b);
	}
}

/* Lines read one after another, consuming adv each time. */
static void
test_getline_sequence(void **state)
{
	static const char in[] = "EHLO a\r\n\r\nMAIL\nRCPT\r\nDA";
	static const char *const want[] = {"EHLO a", "", "MAIL", "RCPT"};
	struct iobuf b;
	const char *line;
	size_t len, adv;

	(void)state;
	iobuf_init(&b, 4096);
	assert_int_equal(iobuf_append(&b, in, sizeof(in) - 1), 0);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(iobuf_getline(&b, 64, &line, &len, &adv), 1);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(line, want[i], len);
		iobuf_consume(&b, adv);
	}
	assert_int_equal(iobuf_getline(&b, 64, &line, &len, &adv), 0);
	assert_int_equal(iobuf_used(&b), 2);
	assert_int_equal(iobuf_append(&b, "TA\r\n", 4), 0);
	assert_int_equal(iobuf_getline(&b, 64, &line, &len, &adv), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(line, "DATA", 4);
	iobuf_consume(&b, adv);
	assert_int_equal(iobuf_used(&b), 0);
	iobuf_free(&b);
}

/* ---- reserve / commit / append limits ----------------------------------- */

static void
test_reserve_commit(void **state)
{
	struct iobuf b;
	char *w;

	(void)state;
	iobuf_init(&b, 10000);
	assert_null(b.data); /* nothing allocated until used */
	assert_int_equal(iobuf_append(&b, "", 0), 0);
	assert_null(b.data);

	w = iobuf_reserve(&b, 100);
	assert_non_null(w);
	assert_true(b.cap >= 100);
	memcpy(w, "hello world", 11);
	iobuf_commit(&b, 5); /* commit less than reserved */
	assert_int_equal(iobuf_used(&b), 5);
	assert_memory_equal(iobuf_data(&b), "hello", 5);

	/* Grow past the first allocation: earlier bytes survive the move. */
	w = iobuf_reserve(&b, 5000);
	assert_non_null(w);
	assert_true(b.cap >= 5005);
	memset(w, 'z', 5000);
	iobuf_commit(&b, 5000);
	assert_int_equal(iobuf_used(&b), 5005);
	assert_memory_equal(iobuf_data(&b), "hello", 5);
	assert_int_equal(iobuf_data(&b)[5004], 'z');

	/* Up to max exactly, not one byte more. */
	w = iobuf_reserve(&b, 10000 - 5005);
	assert_non_null(w);
	memset(w, 'y', 10000 - 5005);
	iobuf_commit(&b, 10000 - 5005);
	assert_int_equal(iobuf_used(&b), 10000);
	errno = 0;
	assert_null(iobuf_reserve(&b, 1));
	assert_int_equal(errno, ENOBUFS);
	errno = 0;
	assert_int_equal(iobuf_append(&b, "x", 1), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(iobuf_used(&b), 10000);
	assert_memory_equal(iobuf_data(&b), "hello", 5);
	assert_int_equal(iobuf_data(&b)[9999], 'y');

	/* Consuming makes room again. */
	iobuf_consume(&b, 1);
	assert_int_equal(iobuf_append(&b, "x", 1), 0);
	assert_int_equal(iobuf_used(&b), 10000);
	assert_memory_equal(iobuf_data(&b), "ello", 4);
	assert_int_equal(iobuf_data(&b)[9999], 'x');
	iobuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(iobuf_used(&b), 0);
}

static const struct {
	size_t max, have, ask;
	int ok;
} refuse[] = {
        {0, 0, 1, 0},
        {1, 0, 1, 1},
        {1, 0, 2, 0},
        {100, 0, 101, 0},
        {100, 50, 50, 1},
        {100, 50, 51, 0},
        {100, 0, SIZE_MAX, 0}, /* no overflow in len + n */
        {100, 1, SIZE_MAX, 0},
        {100, 50, SIZE_MAX - 49, 0},
        {1 << 20, 0, 1 << 20, 1},
        {(1 << 20) + 7, 3, 1 << 20, 1}, /* max not a power of two */
};

static void
test_reserve_refusal(void **state)
{
	static char fill[(1 << 20) + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(refuse) / sizeof(refuse[0]); i++) {
		struct iobuf b;
		char *w;

		iobuf_init(&b, refuse[i].max);
		assert_int_equal(iobuf_append(&b, fill, refuse[i].have), 0);
		errno = 0;
		w = iobuf_reserve(&b, refuse[i].ask);
		if ((w != NULL) != refuse[i].ok)
			fail_msg("case %zu: reserve(%zu) with %zu of %zu: %s", i, refuse[i].ask,
			         refuse[i].have, refuse[i].max, w ? "granted" : "refused");
		if (w == NULL) {
			assert_int_equal(errno, ENOBUFS);
		} else if (refuse[i].ask > 0) {
			/* the whole reservation is writable (ASan checks) */
			memset(w, 'r', refuse[i].ask);
			iobuf_commit(&b, refuse[i].ask);
			assert_true(b.cap >= iobuf_used(&b));
		}
		assert_true(iobuf_used(&b) <= refuse[i].max);
		iobuf_free(&b);
	}
}

/* ---- consume / compaction against a reference model ---------------------- */

static uint32_t
xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
test_consume_model(void **state)
{
	enum { MAX = 50000, OPS = 20000 };
	static char ref[MAX], tmp[MAX];
	size_t rlen = 0;
	uint32_t seed = 0x1badb002;
	unsigned char next = 0;
	struct iobuf b;
	int compacted = 0, refused = 0;

	(void)state;
	iobuf_init(&b, MAX);
	for (int op = 0; op < OPS; op++) {
		uint32_t r = xorshift(&seed);
		size_t n = (r >> 8) % ((r & 3) == 0 ? 9000 : 300);

		switch (r % 4) {
		case 0:
		case 1: { /* append n fresh bytes via append or reserve+commit */
			int ok = rlen + n <= MAX;
			int rc;

			for (size_t k = 0; k < n; k++)
				tmp[k] = (char)next++;
			if (r & 0x100) {
				rc = iobuf_append(&b, tmp, n);
			} else {
				size_t off = b.off;
				char *w = iobuf_reserve(&b, n);

				if (w != NULL && b.off < off)
					compacted = 1;
				if (w != NULL) {
					memcpy(w, tmp, n);
					iobuf_commit(&b, n);
				}
				rc = w != NULL ? 0 : -1;
			}
			if (ok) {
				assert_int_equal(rc, 0);
				memcpy(ref + rlen, tmp, n);
				rlen += n;
			} else {
				assert_int_equal(rc, -1);
				next = (unsigned char)(next - n);
				refused++;
			}
			break;
		}
		default: /* consume, sometimes more than buffered */
			iobuf_consume(&b, n);
			n = n > rlen ? rlen : n;
			memmove(ref, ref + n, rlen - n);
			rlen -= n;
			break;
		}
		assert_int_equal(iobuf_used(&b), rlen);
		if (rlen > 0)
			assert_memory_equal(iobuf_data(&b), ref, rlen);
		assert_true(b.off + b.len <= b.cap || b.data == NULL);
	}
	/* the walk went through both interesting paths */
	assert_true(compacted);
	assert_true(refused > 0);
	iobuf_free(&b);
}

/* Compaction without growth: the consumed head is reused in place. */
static void
test_compaction_in_place(void **state)
{
	struct iobuf b;
	size_t cap;
	char *base;

	(void)state;
	iobuf_init(&b, 1 << 20);
	assert_non_null(iobuf_reserve(&b, 1));
	cap = b.cap;
	base = b.data;
	for (size_t k = 0; k < cap; k++)
		assert_int_equal(iobuf_append(&b, (char[]){(char)('a' + k % 26)}, 1), 0);
	assert_int_equal(iobuf_used(&b), cap);
	iobuf_consume(&b, cap - 10);
	assert_int_equal(b.off, cap - 10);
	/* cap - 10 more bytes fit after moving the 10 left down */
	assert_non_null(iobuf_reserve(&b, cap - 10));
	assert_ptr_equal(b.data, base);
	assert_int_equal(b.cap, cap);
	assert_int_equal(b.off, 0);
	for (size_t k = 0; k < 10; k++)
		assert_int_equal(iobuf_data(&b)[k], 'a' + (cap - 10 + k) % 26);
	iobuf_free(&b);
}

/* ---- memory released when drained --------------------------------------- */

static void
test_release(void **state)
{
	static char big[64 * 1024];
	struct iobuf b;

	(void)state;
	iobuf_init(&b, sizeof(big));

	/* A small buffer is kept across drains (no malloc churn per line)... */
	assert_int_equal(iobuf_append(&b, "250 ok\r\n", 8), 0);
	assert_non_null(b.data);
	iobuf_consume(&b, 8);
	assert_int_equal(iobuf_used(&b), 0);
	assert_int_equal(b.off, 0);
	assert_true(b.data == NULL || b.cap <= 4096);

	/* ... a large one is returned once empty, consumed in pieces or reset. */
	assert_int_equal(iobuf_append(&b, big, sizeof(big)), 0);
	assert_true(b.cap >= sizeof(big));
	iobuf_consume(&b, 1000);
	assert_non_null(b.data);
	iobuf_consume(&b, sizeof(big) - 1000);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(iobuf_used(&b), 0);

	assert_int_equal(iobuf_append(&b, big, sizeof(big)), 0);
	iobuf_consume(&b, sizeof(big) + 5); /* over-consume = drain */
	assert_null(b.data);
	assert_int_equal(iobuf_used(&b), 0);

	assert_int_equal(iobuf_append(&b, big, sizeof(big)), 0);
	iobuf_reset(&b);
	assert_null(b.data);
	assert_int_equal(iobuf_used(&b), 0);

	/* Still usable afterwards. */
	assert_int_equal(iobuf_append(&b, "x", 1), 0);
	assert_int_equal(iobuf_data(&b)[0], 'x');
	iobuf_free(&b);
	iobuf_free(&b); /* idempotent */
	assert_null(b.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_getline_table),       cmocka_unit_test(test_getline_limits),
	        cmocka_unit_test(test_getline_sequence),    cmocka_unit_test(test_reserve_commit),
	        cmocka_unit_test(test_reserve_refusal),     cmocka_unit_test(test_consume_model),
	        cmocka_unit_test(test_compaction_in_place), cmocka_unit_test(test_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
