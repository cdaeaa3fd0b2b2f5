/*
 * fuzz_pcache: libFuzzer driver for loading the policy cache file
 * (policy/pcache.c).
 *
 * Input: one mode byte, then file content. With an even mode byte the
 * content is loaded as it is. With an odd one the driver first appends a
 * correct " <crc32>" to every line after the first (so the fuzzer gets
 * past the checksum and reaches the field and policy parsers).
 *
 * Invariants: loading never fails on content and never crashes; every
 * loaded entry is consistent (valid domain and id, expires_at = fetched_at
 * + max_age, nmx bounded, printable error, lookup finds it again under an
 * upper-case name with a trailing dot); saving what was loaded and loading
 * that again gives the same entries with no warning, and saving those
 * gives the same bytes (the format is a fixed point).
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcache.h"

#define FPC_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fpc_fail(#c, __LINE__);                                                    \
	} while (0)

#define FPC_NOW 1700000000

static void
fpc_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_pcache.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static uint32_t
fpc_crc32(const char *s, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= (unsigned char)s[i];
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return c ^ 0xffffffffu;
}

/* Append " <crc>" to every line but the first (the header). */
static char *
fpc_fixup(const char *s, size_t size, size_t *outlen)
{
	char *out = malloc(size + (size + 1) * 9 + 1);
	size_t pos = 0, o = 0;
	int first = 1;

	if (out == NULL)
		return NULL;
	while (pos < size) {
		const char *nl = memchr(s + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - s) : size;

		memcpy(out + o, s + pos, end - pos);
		if (!first)
			o += (size_t)sprintf(out + o + (end - pos), " %08x",
			                     (unsigned)fpc_crc32(s + pos, end - pos));
		o += end - pos;
		if (nl != NULL)
			out[o++] = '\n';
		first = 0;
		pos = end + 1;
	}
	*outlen = o;
	return out;
}

static void
fpc_warn_count(void *arg, unsigned long line, const char *msg)
{
	int *n = arg;
	size_t i;

	(void)line;
	for (i = 0; msg[i] != '\0'; i++)
		FPC_CHECK(msg[i] != '\n' && msg[i] != '\r');
	++*n;
}

struct fpc_cmp {
	const struct pcache *other;
	size_t n;
};

static int
fpc_check_entry(void *arg, const struct pcache_entry *e)
{
	struct fpc_cmp *ctx = arg;
	const struct pcache_entry *o;
	char upper[260];
	size_t i, n;
	int k;

	n = strnlen(e->domain, sizeof e->domain);
	FPC_CHECK(n < sizeof e->domain && pcache_domain_valid(e->domain, n));
	FPC_CHECK(strlen(e->id) >= 1 && strlen(e->id) <= STS_ID_MAXLEN);
	FPC_CHECK(e->expires_at == e->fetched_at + (time_t)e->max_age);
	FPC_CHECK(e->max_age <= STS_POLICY_MAXAGE);
	FPC_CHECK(e->nmx >= 0 && e->nmx <= STS_POLICY_MAXMX);
	FPC_CHECK(e->mode == STS_MODE_NONE || e->nmx > 0);
	FPC_CHECK(e->textlen >= 1 && e->textlen <= STS_POLICY_MAXLEN &&
	          e->text[e->textlen] == '\0');
	for (i = 0; e->last_error[i] != '\0'; i++)
		FPC_CHECK(e->last_error[i] >= 0x20 && e->last_error[i] < 0x7f);
	for (i = 0; i < n; i++)
		upper[i] = (e->domain[i] >= 'a' && e->domain[i] <= 'z') ? (char)(e->domain[i] - 32)
		                                                        : e->domain[i];
	upper[n] = '.';
	upper[n + 1] = '\0';

	if (ctx->other == NULL)
		return 0;
	FPC_CHECK(pcache_lookup(ctx->other, upper, FPC_NOW, &o) != PCACHE_MISSING);
	FPC_CHECK(strcmp(e->domain, o->domain) == 0);
	FPC_CHECK(strcmp(e->id, o->id) == 0);
	FPC_CHECK(e->textlen == o->textlen && memcmp(e->text, o->text, e->textlen) == 0);
	FPC_CHECK(e->mode == o->mode && e->max_age == o->max_age && e->nmx == o->nmx);
	for (k = 0; k < e->nmx; k++)
		FPC_CHECK(strcmp(e->mx[k], o->mx[k]) == 0);
	FPC_CHECK(e->fetched_at == o->fetched_at && e->expires_at == o->expires_at);
	FPC_CHECK(e->last_checked == o->last_checked);
	FPC_CHECK(strcmp(e->last_error, o->last_error) == 0);
	ctx->n++;
	return 0;
}

/* Serialise c into a malloc'd buffer. */
static char *
fpc_save(const struct pcache *c, size_t *len)
{
	char *buf = NULL;
	FILE *fp = open_memstream(&buf, len);

	FPC_CHECK(fp != NULL);
	FPC_CHECK(pcache_save_file(c, fp) == 0);
	FPC_CHECK(fclose(fp) == 0);
	return buf;
}

static struct pcache *
fpc_load(const char *buf, size_t len, int *warnings)
{
	struct pcache *c = pcache_new(NULL);
	FILE *fp;

	FPC_CHECK(c != NULL);
	if (len == 0)
		return c; /* fmemopen wants a non-empty buffer */
	fp = fmemopen((void *)(uintptr_t)buf, len, "r");
	FPC_CHECK(fp != NULL);
	FPC_CHECK(pcache_load_file(c, fp, fpc_warn_count, warnings) >= 0);
	fclose(fp);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pcache *c1, *c2;
	struct fpc_cmp ctx;
	char *fixed = NULL, *s1, *s2;
	const char *in;
	size_t inlen, l1, l2;
	int w1 = 0, w2 = 0;

	if (size == 0)
		return 0;
	in = (const char *)data + 1;
	inlen = size - 1;
	if (data[0] & 1) {
		fixed = fpc_fixup(in, inlen, &inlen);
		if (fixed == NULL)
			return 0;
		in = fixed;
	}

	c1 = fpc_load(in, inlen, &w1);
	ctx.other = NULL;
	ctx.n = 0;
	pcache_iter(c1, fpc_check_entry, &ctx);

	s1 = fpc_save(c1, &l1);
	c2 = fpc_load(s1, l1, &w2);
	FPC_CHECK(w2 == 0); /* our own output is never damaged */
	FPC_CHECK(pcache_count(c1) == pcache_count(c2));
	ctx.other = c2;
	ctx.n = 0;
	pcache_iter(c1, fpc_check_entry, &ctx);
	FPC_CHECK(ctx.n == pcache_count(c1));
	s2 = fpc_save(c2, &l2);
	FPC_CHECK(l1 == l2 && memcmp(s1, s2, l1) == 0);

	free(s1);
	free(s2);
	pcache_free(c1);
	pcache_free(c2);
	free(fixed);
	return 0;
}
