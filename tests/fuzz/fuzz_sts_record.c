/*
 * fuzz_sts_record: libFuzzer driver for the "_mta-sts" TXT record parser
 * and selector (policy/sts_record.c, RFC 8461 §3.1).
 *
 * Input: the whole input is one record; split on LF it is also the set of
 * records of one name (at most FSR_MAXRECS). Invariants: an accepted
 * record has a 1..32 ALPHA/DIGIT id and begins with the STSv1 version (a
 * record that parses is never discarded by the selection filter); a
 * refused one leaves out zeroed; the selector agrees with counting
 * sts_record_is_sts by hand and with sts_record_parse on the one record;
 * "v=STSv1; id=<id>" built from an accepted id gives the same id.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sts_record.h"

#define FSR_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fsr_fail(#c, __LINE__);                                                    \
	} while (0)

#define FSR_MAXRECS 8

static void
fsr_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_sts_record.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static void
fsr_check_id(const struct sts_record *r)
{
	size_t i, n = strnlen(r->id, sizeof r->id);

	FSR_CHECK(n >= 1 && n <= STS_ID_MAXLEN);
	for (i = 0; i < n; i++)
		FSR_CHECK((r->id[i] >= '0' && r->id[i] <= '9') ||
		          (r->id[i] >= 'A' && r->id[i] <= 'Z') ||
		          (r->id[i] >= 'a' && r->id[i] <= 'z'));
}

static int
fsr_zeroed(const struct sts_record *r)
{
	static const struct sts_record zero;

	return memcmp(r, &zero, sizeof zero) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *recs[FSR_MAXRECS];
	size_t lens[FSR_MAXRECS], pos = 0;
	struct sts_record r, r2;
	enum sts_rec_status st;
	int n = 0, i, nsts = 0, which = -1;

	st = sts_record_parse(s, size, &r);
	FSR_CHECK(st == STS_REC_OK || st == STS_REC_INVALID);
	if (st == STS_REC_OK) {
		char buf[64];
		int m;

		fsr_check_id(&r);
		/* §3.1: a record that parses begins with the STSv1 version */
		FSR_CHECK(sts_record_is_sts(s, size));
		m = snprintf(buf, sizeof buf, "v=STSv1; id=%s", r.id);
		FSR_CHECK(sts_record_parse(buf, (size_t)m, &r2) == STS_REC_OK);
		FSR_CHECK(strcmp(r.id, r2.id) == 0);
	} else {
		FSR_CHECK(fsr_zeroed(&r));
	}

	/* the same bytes as a set of records */
	while (n < FSR_MAXRECS) {
		const char *nl = memchr(s + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - s) : size;

		recs[n] = s + pos;
		lens[n] = end - pos;
		n++;
		if (nl == NULL)
			break;
		pos = end + 1;
	}
	for (i = 0; i < n; i++) {
		if (sts_record_is_sts(recs[i], lens[i])) {
			nsts++;
			which = i;
		}
	}
	st = sts_record_select(recs, lens, n, &r);
	if (nsts == 0) {
		FSR_CHECK(st == STS_REC_NONE);
	} else if (nsts > 1) {
		FSR_CHECK(st == STS_REC_MULTIPLE);
	} else {
		FSR_CHECK(st == sts_record_parse(recs[which], lens[which], &r2));
		FSR_CHECK(memcmp(&r, &r2, sizeof r) == 0);
	}
	if (st == STS_REC_OK)
		fsr_check_id(&r);
	else
		FSR_CHECK(fsr_zeroed(&r));
	FSR_CHECK(strcmp(sts_rec_strstatus(st), "unknown") != 0);
	return 0;
}
