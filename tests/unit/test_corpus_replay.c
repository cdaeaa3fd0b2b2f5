/*
 * test_corpus_replay: run every committed fuzz corpus file
 * (tests/fuzz/corpus/<parser>/) through its fuzz driver, so that CI
 * exercises the corpus and the drivers' invariant checks under ASan and
 * UBSan without libFuzzer. A driver's failed invariant aborts the test.
 *
 * The drivers are compiled in here with LLVMFuzzerTestOneInput renamed;
 * their helpers carry per-driver prefixes so that they do not collide.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#define LLVMFuzzerTestOneInput replay_smtp_reply
#include "../fuzz/fuzz_smtp_reply.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_ehlo
#include "../fuzz/fuzz_ehlo.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_smtp_cmd
#include "../fuzz/fuzz_smtp_cmd.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_mxpattern
#include "../fuzz/fuzz_mxpattern.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_sts_record
#include "../fuzz/fuzz_sts_record.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_sts_policy
#include "../fuzz/fuzz_sts_policy.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_pcache
#include "../fuzz/fuzz_pcache.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_detect
#include "../fuzz/fuzz_detect.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_smtp_body
#include "../fuzz/fuzz_smtp_body.c"
#undef LLVMFuzzerTestOneInput

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/data"
#endif

/* TEST_DATA_DIR "/../fuzz/corpus", worked out lexically: a fresh clone may
 * have no tests/data directory for ".." to walk through. */
static const char *
corpus_dir(void)
{
	static char dir[4096];
	const char *data = TEST_DATA_DIR;
	size_t n = strlen(data);

	if (n >= 5 && strcmp(data + n - 5, "/data") == 0)
		snprintf(dir, sizeof(dir), "%.*s/fuzz/corpus", (int)(n - 5), data);
	else
		snprintf(dir, sizeof(dir), "%s/../fuzz/corpus", data);
	return dir;
}

typedef int replay_fn(const uint8_t *data, size_t size);

#define REPLAY_MAXFILE (1 << 20)

/* Replay every regular file of corpus_dir()/name; returns how many. */
static int
replay_dir(const char *name, replay_fn *fn)
{
	char path[4096];
	DIR *d;
	struct dirent *de;
	int n = 0;
	static uint8_t buf[REPLAY_MAXFILE];

	snprintf(path, sizeof(path), "%s/%s", corpus_dir(), name);
	d = opendir(path);
	if (d == NULL)
		fail_msg("cannot open corpus %s", path);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		FILE *f;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", corpus_dir(), name, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if ((f = fopen(path, "rb")) == NULL) {
			closedir(d);
			fail_msg("cannot read %s", path);
		}
		len = fread(buf, 1, REPLAY_MAXFILE, f);
		assert_int_equal(ferror(f), 0);
		fclose(f);
		assert_int_equal(fn(buf, len), 0);
		/* every prefix too: cut-off replies, lines and patterns */
		if (len < 4096) {
			size_t k;

			for (k = 0; k < len; k++)
				assert_int_equal(fn(buf, k), 0);
		}
		n++;
	}
	closedir(d);
	return n;
}

static void
test_replay_smtp_reply(void **state)
{
	(void)state;
	assert_true(replay_dir("smtp_reply", replay_smtp_reply) > 0);
}

static void
test_replay_ehlo(void **state)
{
	(void)state;
	assert_true(replay_dir("ehlo", replay_ehlo) > 0);
}

static void
test_replay_smtp_cmd(void **state)
{
	(void)state;
	assert_true(replay_dir("smtp_cmd", replay_smtp_cmd) > 0);
}

static void
test_replay_mxpattern(void **state)
{
	(void)state;
	assert_true(replay_dir("mxpattern", replay_mxpattern) > 0);
}

static void
test_replay_sts_record(void **state)
{
	(void)state;
	assert_true(replay_dir("sts_record", replay_sts_record) > 0);
}

static void
test_replay_sts_policy(void **state)
{
	(void)state;
	assert_true(replay_dir("sts_policy", replay_sts_policy) > 0);
}

static void
test_replay_pcache(void **state)
{
	(void)state;
	assert_true(replay_dir("pcache", replay_pcache) > 0);
}

static void
test_replay_detect(void **state)
{
	(void)state;
	assert_true(replay_dir("detect", replay_detect) > 0);
}

static void
test_replay_smtp_body(void **state)
{
	(void)state;
	assert_true(replay_dir("smtp_body", replay_smtp_body) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_replay_smtp_reply), cmocka_unit_test(test_replay_ehlo),
	        cmocka_unit_test(test_replay_smtp_cmd),   cmocka_unit_test(test_replay_mxpattern),
	        cmocka_unit_test(test_replay_sts_record), cmocka_unit_test(test_replay_sts_policy),
	        cmocka_unit_test(test_replay_pcache),     cmocka_unit_test(test_replay_detect),
	        cmocka_unit_test(test_replay_smtp_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
