/*
 * test_sts_record: the "_mta-sts" TXT record parser and selector
 * (policy/sts_record.c, RFC 8461 §3.1).
 *
 * - a table of single records with the expected result and id: grammar
 *   edges (white space, trailing ";", id length and characters, "v" first,
 *   "v=STSv12", duplicate id: first wins), NUL bytes;
 * - the §3.1 selection rules over several records of one name: discard
 *   records not beginning with the STSv1 version, none, multiple, invalid;
 * - a record published as several strings (already concatenated by DNS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sts_record.h"

struct rec_case {
	const char *txt;
	enum sts_rec_status want;
	const char *id; /* when STS_REC_OK */
};

static const struct rec_case rec_cases[] = {
        /* well-formed */
        {"v=STSv1; id=20160831085700Z;", STS_REC_OK, "20160831085700Z"},
        {"v=STSv1; id=20160831085700Z", STS_REC_OK, "20160831085700Z"},
        {"v=STSv1;id=abc", STS_REC_OK, "abc"},
        {"v=STSv1 ; id=abc ;", STS_REC_OK, "abc"},
        {"v = STSv1 ;\tid = abc;\t", STS_REC_OK, "abc"},
        {"v=STSv1; id=abc; ", STS_REC_OK, "abc"},
        {"v=STSv1; id=a", STS_REC_OK, "a"},
        {"v=STSv1; id=0123456789abcdefABCDEF0123456789", STS_REC_OK,
         "0123456789abcdefABCDEF0123456789"},
        /* extensions are ignored, in any position */
        {"v=STSv1; ext=foo; id=abc", STS_REC_OK, "abc"},
        {"v=STSv1; id=abc; x_y-z.w=!#$%&'()*+,-./:<>?@[]^_`{|}~", STS_REC_OK, "abc"},
        {"v=STSv1; ID=xyz; id=abc", STS_REC_OK, "abc"},
        {"v=STSv1; id=abc; v=STSv2", STS_REC_OK, "abc"},
        /* duplicate id: first occurrence wins (§3.2), the second need only
	 * be a well-formed field */
        {"v=STSv1; id=first; id=second", STS_REC_OK, "first"},
        {"v=STSv1; id=first; id=not_alnum!", STS_REC_OK, "first"},
        {"v=STSv1; id=first; id=", STS_REC_INVALID, NULL},

        /* id required, and well-formed */
        {"v=STSv1;", STS_REC_INVALID, NULL},
        {"v=STSv1", STS_REC_INVALID, NULL},
        {"v=STSv1; ext=1", STS_REC_INVALID, NULL},
        {"v=STSv1; ID=abc", STS_REC_INVALID, NULL},
        {"v=STSv1; id=", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc-def", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc_def", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc.def", STS_REC_INVALID, NULL},
        {"v=STSv1; id=\"abc\"", STS_REC_INVALID, NULL},
        {"v=STSv1; id=ab\xc3\xa9", STS_REC_INVALID, NULL},
        {"v=STSv1; id=0123456789abcdefABCDEF0123456789X", STS_REC_INVALID, NULL}, /* 33 */
        {"v=STSv1; id=abc def", STS_REC_INVALID, NULL},

        /* v first, exactly STSv1, case-sensitive */
        {"id=abc; v=STSv1", STS_REC_INVALID, NULL},
        {"v=STSv12; id=abc", STS_REC_INVALID, NULL},
        {"v=STSv2; id=abc", STS_REC_INVALID, NULL},
        {"v=stsv1; id=abc", STS_REC_INVALID, NULL},
        {"V=STSv1; id=abc", STS_REC_INVALID, NULL},
        {" v=STSv1; id=abc", STS_REC_INVALID, NULL},
        {"v=STSv1, id=abc", STS_REC_INVALID, NULL},
        {"v=spf1 -all", STS_REC_INVALID, NULL},
        {"", STS_REC_INVALID, NULL},

        /* separators and white space */
        {"v=STSv1; id=abc;;", STS_REC_INVALID, NULL},
        {"v=STSv1;; id=abc", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc ", STS_REC_INVALID, NULL}, /* WSP without ";" */
        {"v=STSv1; id=abc\n", STS_REC_INVALID, NULL},
        {"v=STSv1 id=abc", STS_REC_INVALID, NULL},
        {"v=STSv1; =abc", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc; _x=1", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc; x=", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc; x=a=b", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc; abcdefghijabcdefghijabcdefghijabc=1", STS_REC_INVALID, NULL},
        {"v=STSv1; id=abc; abcdefghijabcdefghijabcdefghijab=1", STS_REC_OK, "abc"},
};

static void
test_record_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof rec_cases / sizeof rec_cases[0]; i++) {
		const struct rec_case *tc = &rec_cases[i];
		struct sts_record r;
		enum sts_rec_status st;

		memset(&r, 0x55, sizeof r);
		st = sts_record_parse(tc->txt, strlen(tc->txt), &r);
		if (st != tc->want)
			fail_msg("case %zu \"%s\": got %s, want %s", i, tc->txt,
			         sts_rec_strstatus(st), sts_rec_strstatus(tc->want));
		if (tc->want == STS_REC_OK)
			assert_string_equal(r.id, tc->id);
		else
			assert_string_equal(r.id, ""); /* zeroed, no half-parsed id */
	}
}

static void
test_record_nul_and_len(void **state)
{
	static const char withnul[] = "v=STSv1; id=ab\0cd";
	struct sts_record r;

	(void)state;
	/* a NUL inside is an invalid character, not an end */
	assert_int_equal(sts_record_parse(withnul, sizeof withnul - 1, &r), STS_REC_INVALID);
	/* len is honoured: the prefix is a complete record */
	assert_int_equal(sts_record_parse(withnul, 14, &r), STS_REC_OK);
	assert_string_equal(r.id, "ab");
	assert_int_equal(sts_record_parse(NULL, 0, &r), STS_REC_INVALID);
	assert_int_equal(sts_record_parse("v=STSv1; id=x", 13, NULL), STS_REC_OK);
}

static void
test_record_is_sts(void **state)
{
	(void)state;
	assert_true(sts_record_is_sts("v=STSv1", 7));
	assert_true(sts_record_is_sts("v=STSv1;", 8));
	assert_true(sts_record_is_sts("v=STSv1 ; id=1", 14));
	assert_true(sts_record_is_sts("v = STSv1;id=1", 14));
	assert_true(sts_record_is_sts("v=STSv1\tjunk", 12)); /* kept, then invalid */
	assert_false(sts_record_is_sts("v=STSv12; id=1", 14));
	assert_false(sts_record_is_sts("v=STSv1x", 8));
	assert_false(sts_record_is_sts("v=STSv", 6));
	assert_false(sts_record_is_sts("v=spf1 -all", 11));
	assert_false(sts_record_is_sts(" v=STSv1;", 9));
	assert_false(sts_record_is_sts("", 0));
	assert_false(sts_record_is_sts(NULL, 0));
}

struct sel_case {
	const char *name;
	const char *recs[4];
	enum sts_rec_status want;
	const char *id;
};

static const struct sel_case sel_cases[] = {
        {"one", {"v=STSv1; id=one"}, STS_REC_OK, "one"},
        {"none at all", {NULL}, STS_REC_NONE, NULL},
        {"only others", {"v=spf1 -all", "google-site-verification=xyz"}, STS_REC_NONE, NULL},
        {"one among others", {"v=spf1 -all", "v=STSv1; id=mine;", "x"}, STS_REC_OK, "mine"},
        {"two STSv1", {"v=STSv1; id=a", "v=STSv1; id=b"}, STS_REC_MULTIPLE, NULL},
        {"two identical", {"v=STSv1; id=a", "v=STSv1; id=a"}, STS_REC_MULTIPLE, NULL},
        {"two, one invalid", {"v=STSv1; id=a", "v=STSv1; id=bad_id"}, STS_REC_MULTIPLE, NULL},
        {"STSv12 discarded", {"v=STSv12; id=new", "v=STSv1; id=old"}, STS_REC_OK, "old"},
        {"only STSv12", {"v=STSv12; id=new"}, STS_REC_NONE, NULL},
        {"one invalid", {"v=STSv1; id=toolong0123456789012345678901234567"}, STS_REC_INVALID, NULL},
        {"one without id", {"v=STSv1;", "v=spf1"}, STS_REC_INVALID, NULL},
        {"id before v", {"id=abc; v=STSv1"}, STS_REC_NONE, NULL},
};

static void
test_record_select(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof sel_cases / sizeof sel_cases[0]; i++) {
		const struct sel_case *tc = &sel_cases[i];
		size_t lens[4];
		struct sts_record r;
		enum sts_rec_status st;
		int n;

		for (n = 0; n < 4 && tc->recs[n] != NULL; n++)
			lens[n] = strlen(tc->recs[n]);
		memset(&r, 0x55, sizeof r);
		st = sts_record_select(tc->recs, lens, n, &r);
		if (st != tc->want)
			fail_msg("case \"%s\": got %s, want %s", tc->name, sts_rec_strstatus(st),
			         sts_rec_strstatus(tc->want));
		assert_string_equal(r.id, tc->want == STS_REC_OK ? tc->id : "");
	}
	/* NULL entries are skipped, NULL arrays are "none" */
	{
		const char *recs[] = {NULL, "v=STSv1; id=z"};
		size_t lens[] = {0, 13};
		struct sts_record r;

		assert_int_equal(sts_record_select(recs, lens, 2, &r), STS_REC_OK);
		assert_string_equal(r.id, "z");
		assert_int_equal(sts_record_select(NULL, NULL, 3, &r), STS_REC_NONE);
	}
}

/*
 * §3.1: a record may be published as several character-strings; the DNS
 * layer concatenates them without separator before we see it. The split
 * may fall anywhere, even inside "STSv1" or the id.
 */
static void
test_record_split_strings(void **state)
{
	static const char *parts[][3] = {
	        {"v=STSv1; ", "id=20190429T010101;", NULL},
	        {"v=ST", "Sv1; id=abc", "123"},
	        {"v=STSv1; id=abc", "123", ";"},
	};
	static const char *ids[] = {"20190429T010101", "abc123", "abc123"};
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		char buf[128] = "";
		const char *recs[1];
		size_t lens[1];
		struct sts_record r;

		for (k = 0; k < 3 && parts[i][k] != NULL; k++)
			strcat(buf, parts[i][k]);
		recs[0] = buf;
		lens[0] = strlen(buf);
		assert_int_equal(sts_record_select(recs, lens, 1, &r), STS_REC_OK);
		assert_string_equal(r.id, ids[i]);
	}
}

static void
test_record_strstatus(void **state)
{
	(void)state;
	assert_string_equal(sts_rec_strstatus(STS_REC_OK), "ok");
	assert_string_equal(sts_rec_strstatus(STS_REC_NONE), "none");
	assert_string_equal(sts_rec_strstatus(STS_REC_MULTIPLE), "multiple");
	assert_string_equal(sts_rec_strstatus(STS_REC_INVALID), "invalid");
	assert_string_equal(sts_rec_strstatus((enum sts_rec_status)99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_record_table),
	        cmocka_unit_test(test_record_nul_and_len),
	        cmocka_unit_test(test_record_is_sts),
	        cmocka_unit_test(test_record_select),
	        cmocka_unit_test(test_record_split_strings),
	        cmocka_unit_test(test_record_strstatus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
