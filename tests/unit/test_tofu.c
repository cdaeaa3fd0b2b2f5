/*
 * test_tofu: the per-MX memory. Round trip through the state file, record
 * semantics, key normalisation, damaged lines skipped, eviction of the
 * least recently seen, and an interrupted save (RLIMIT_FSIZE) that must
 * leave the previous file intact and no temporary file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tofu.h"

#define FP_A "3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550"
#define FP_B "9F2D0E1C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B78507"

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/tofu.XXXXXX",
	         tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/tofu.state", fx->dir);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(fx->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char p[512];

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", fx->dir, de->d_name);
			if (unlink(p) < 0)
				rmdir(p);
		}
		closedir(d);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Whole file into a malloc'd buffer; *len set. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

/* Files in dir other than the state file itself. */
static int
count_strays(const struct fixture *fx)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(fx->dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, "tofu.state") != 0)
			n++;
	closedir(d);
	return n;
}

static void
record(struct tofu *t, const char *key, time_t when, int offered, enum tofu_tls tls, const char *fp)
{
	struct tofu_observation o = {key, when, offered, tls, fp};

	assert_int_equal(tofu_record(t, &o), 0);
}

static void
test_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct tofu *t = tofu_new(fx->path, 0), *u;
	struct tofu_report rep;
	struct tofu_entry e;
	struct stat st;
	char *data;
	size_t len;
	mode_t old;

	assert_non_null(t);
	record(t, "mx1.example.com", 1732000000, 1, TOFU_TLS_OK, FP_A);
	record(t, "MX2.Example.NET.", 1732000100, 0, TOFU_TLS_NOT_TRIED, NULL);
	record(t, "192.0.2.25", 1732000200, 1, TOFU_TLS_FAILED, NULL);
	record(t, "[2001:db8::25]", 1732000300, 1, TOFU_TLS_OK, FP_B);
	assert_int_equal(tofu_count(t), 4);
	assert_true(tofu_dirty(t));

	/* 0600 whatever the umask says */
	old = umask(0);
	assert_int_equal(tofu_save(t), 0);
	umask(old);
	assert_false(tofu_dirty(t));
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_strays(fx), 0);
	data = read_file(fx->path, &len);
	assert_true(strncmp(data, "# stsproxy-tofu 1\n", 18) == 0);
	assert_non_null(strstr(data, "\nmx2.example.net 0 0 1732000100 1732000100 0 0 -\n"));
	free(data);

	u = tofu_new(fx->path, 0);
	assert_non_null(u);
	assert_int_equal(tofu_load(u, &rep), 0);
	assert_int_equal(rep.loaded, 4);
	assert_int_equal(rep.damaged, 0);
	assert_int_equal(rep.first_bad_line, 0);
	assert_false(tofu_dirty(u));
	assert_int_equal(tofu_count(u), 4);

	assert_int_equal(tofu_lookup(u, "mx1.example.com", &e), 0);
	assert_string_equal(e.key, "mx1.example.com");
	assert_int_equal(e.starttls_offered_ever, 1);
	assert_int_equal(e.tls_ok_last, 1);
	assert_string_equal(e.fingerprint, FP_A);
	assert_int_equal(e.first_seen, 1732000000);
	assert_int_equal(e.last_seen, 1732000000);
	assert_int_equal(e.last_offered, 1732000000);
	assert_int_equal(e.last_tls_ok, 1732000000);

	assert_int_equal(tofu_lookup(u, "mx2.example.net", &e), 0);
	assert_int_equal(e.starttls_offered_ever, 0);
	assert_string_equal(e.fingerprint, "");
	assert_int_equal(e.last_offered, 0);

	assert_int_equal(tofu_lookup(u, "192.0.2.25", &e), 0);
	assert_int_equal(e.starttls_offered_ever, 1);
	assert_int_equal(e.tls_ok_last, 0);
	assert_int_equal(e.last_tls_ok, 0);

	assert_int_equal(tofu_lookup(u, "[2001:DB8::25]", &e), 0);
	/* stored lower-case whatever case it came in */
	assert_string_equal(e.fingerprint,
	                    "9f2d0e1c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78507");

	/* saving what was loaded gives the same bytes */
	{
		char *a, *b;
		size_t la, lb;

		a = read_file(fx->path, &la);
		assert_int_equal(tofu_save(u), 0);
		b = read_file(fx->path, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		free(a);
		free(b);
	}
	tofu_free(t);
	tofu_free(u);
}

static void
test_record_semantics(void **state)
{
	struct tofu *t = tofu_new(NULL, 0);
	struct tofu_observation bad = {"mx.example.com", 5, 1, TOFU_TLS_OK, "zz"};
	struct tofu_entry e;

	(void)state;
	assert_non_null(t);
	record(t, "mx.example.com", 100, 1, TOFU_TLS_OK, FP_A);
	record(t, "mx.example.com", 200, 0, TOFU_TLS_NOT_TRIED, NULL);
	assert_int_equal(tofu_lookup(t, "mx.example.com.", &e), 0);
	assert_int_equal(e.starttls_offered_ever, 1); /* sticky */
	assert_int_equal(e.tls_ok_last, 1);           /* not tried: unchanged */
	assert_int_equal(e.last_offered, 100);
	assert_int_equal(e.last_seen, 200);

	record(t, "mx.example.com", 300, 1, TOFU_TLS_FAILED, "not-a-fingerprint-but-ignored");
	assert_int_equal(tofu_lookup(t, "mx.example.com", &e), 0);
	assert_int_equal(e.tls_ok_last, 0);
	assert_string_equal(e.fingerprint, FP_A);
	assert_int_equal(e.last_tls_ok, 100);
	assert_int_equal(e.last_offered, 300);
	assert_true(tofu_cert_changed(&e, FP_B));
	assert_false(tofu_cert_changed(&e, FP_A));
	assert_false(tofu_cert_changed(&e, NULL));
	assert_false(tofu_cert_changed(&e, ""));

	record(t, "mx.example.com", 400, 1, TOFU_TLS_OK, FP_B);
	record(t, "mx.example.com", 50, 0, TOFU_TLS_NOT_TRIED, NULL); /* clock went back */
	assert_int_equal(tofu_lookup(t, "mx.example.com", &e), 0);
	assert_int_equal(e.tls_ok_last, 1);
	assert_int_equal(e.last_tls_ok, 400);
	assert_int_equal(e.first_seen, 50);
	assert_int_equal(e.last_seen, 400);
	assert_string_equal(e.fingerprint,
	                    "9f2d0e1c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78507");

	/* a bad fingerprint changes nothing */
	assert_int_equal(tofu_record(t, &bad), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(tofu_lookup(t, "mx.example.com", &e), 0);
	assert_int_equal(e.last_seen, 400);

	assert_true(tofu_offered_within(&e, 500, 0));
	assert_true(tofu_offered_within(&e, 500, 100));
	assert_false(tofu_offered_within(&e, 501, 100));
	assert_false(tofu_offered_within(NULL, 500, 0));

	/* memory-only instance: load and save do nothing */
	assert_int_equal(tofu_load(t, NULL), 0);
	assert_int_equal(tofu_save(t), 0);
	tofu_free(t);
	tofu_free(NULL);
}

static void
test_bad_keys(void **state)
{
	static const char *const bad[] = {"",
	                                  ".",
	                                  "mx example.com",
	                                  "mx.example.com\n",
	                                  "mx\texample.com",
	                                  "mx.example.com#x",
	                                  "m%x.example.com",
	                                  "mx.exa\xc3\xa9mple.com",
	                                  NULL};
	struct tofu *t = tofu_new(NULL, 0);
	struct tofu_entry e;
	char longkey[300];
	size_t i;

	(void)state;
	assert_non_null(t);
	for (i = 0; bad[i] != NULL; i++) {
		struct tofu_observation o = {bad[i], 1, 1, TOFU_TLS_NOT_TRIED, NULL};

		if (strcmp(bad[i], ".") == 0)
			continue; /* a lone dot is a (useless) name, not a hazard */
		if (tofu_record(t, &o) != -1 || errno != EINVAL)
			fail_msg("key '%s' accepted", bad[i]);
	}
	{
		struct tofu_observation o = {NULL, 1, 1, TOFU_TLS_NOT_TRIED, NULL};

		assert_int_equal(tofu_record(t, &o), -1);
		assert_int_equal(tofu_record(t, NULL), -1);
	}
	memset(longkey, 'a', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	{
		struct tofu_observation o = {longkey, 1, 1, TOFU_TLS_NOT_TRIED, NULL};

		assert_int_equal(tofu_record(t, &o), -1);
		longkey[TOFU_KEY_MAX] = '\0'; /* exactly the limit is fine */
		assert_int_equal(tofu_record(t, &o), 0);
		longkey[TOFU_KEY_MAX] = '.'; /* ... and so is the limit plus a root dot */
		longkey[TOFU_KEY_MAX + 1] = '\0';
		assert_int_equal(tofu_lookup(t, longkey, &e), 0);
	}
	assert_int_equal(tofu_count(t), 1);
	assert_int_equal(tofu_lookup(t, "nothere.example", &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(tofu_lookup(t, "bad key", &e), -1);
	assert_int_equal(errno, EINVAL);
	tofu_free(t);
}

static void
test_damaged_lines(void **state)
{
	struct fixture *fx = *state;
	static const char file[] =
	        "# stsproxy-tofu 1\n"
	        "good1.example.com 1 1 100 200 200 200 " FP_A "\n" /* 2 ok */
	        "\n"                                               /* 3 empty: fine */
	        "too.few.example 1 1 100 200 200\n"                /* 4 */
	        "flag.example 2 1 100 200 200 200 -\n"             /* 5 */
	        "time.example 1 1 -100 200 200 200 -\n"            /* 6 */
	        "order.example 1 1 300 200 200 200 -\n"            /* 7 */
	        "fp.example 1 1 100 200 200 200 abcd\n"            /* 8 */
	        "bad*key 1 1 100 200 200 200 -\n"                  /* 9 */
	        "tab.example\t1 1 100 200 200 200 -\n"             /* 10 */
	        "two..spaces.example 1  1 100 200 200 200 -\n"     /* 11 */
	        "nul.example 1 1 100 200 200 200 -\0garbage\n"     /* 12 */
	        "offered.example 0 0 100 200 150 0 -\n"            /* 13 */
	        "huge.example 1 1 100 200 200 9999999999999 -\n"   /* 14 */
	        "good2.example.net 0 0 100 300 0 0 -\n"            /* 15 ok */
	        "GOOD1.example.com. 0 0 50 150 0 0 -\n"            /* 16 ok, older: ignored */
	        "good3.example.org 1 0 100 400 400 0 -\n"          /* 17 ok */
	        "cut.example 1 1 100 200 200 200 3b0c44298fc1c149afbf4c89"; /* 18 no LF */
	struct tofu *t = tofu_new(fx->path, 0);
	struct tofu_report rep;
	struct tofu_entry e;
	char longline[2100];

	assert_non_null(t);
	write_file(fx->path, file, sizeof(file) - 1);
	assert_int_equal(tofu_load(t, &rep), 0);
	assert_int_equal(rep.loaded, 4);
	assert_int_equal(rep.damaged, 12);
	assert_int_equal(rep.first_bad_line, 4);
	assert_string_equal(rep.first_bad_reason, "too few fields");
	assert_int_equal(tofu_count(t), 3);
	assert_true(tofu_dirty(t)); /* so the next save writes a clean file */

	assert_int_equal(tofu_lookup(t, "good1.example.com", &e), 0);
	assert_int_equal(e.starttls_offered_ever, 1); /* the fresher line won */
	assert_int_equal(e.last_seen, 200);
	assert_int_equal(tofu_lookup(t, "good3.example.org", &e), 0);
	assert_int_equal(tofu_lookup(t, "cut.example", &e), -1);
	assert_int_equal(tofu_lookup(t, "nul.example", &e), -1);

	/* a clean rewrite loads without complaint */
	assert_int_equal(tofu_save(t), 0);
	tofu_free(t);
	t = tofu_new(fx->path, 0);
	assert_non_null(t);
	assert_int_equal(tofu_load(t, &rep), 0);
	assert_int_equal(rep.loaded, 3);
	assert_int_equal(rep.damaged, 0);
	tofu_free(t);

	/* an over-long line, and binary junk */
	memset(longline, 'a', sizeof(longline));
	longline[sizeof(longline) - 1] = '\n';
	write_file(fx->path, longline, sizeof(longline));
	t = tofu_new(fx->path, 0);
	assert_non_null(t);
	assert_int_equal(tofu_load(t, &rep), 0);
	assert_int_equal(rep.damaged, 1);
	assert_string_equal(rep.first_bad_reason, "line too long");
	assert_int_equal(tofu_count(t), 0);
	tofu_free(t);

	write_file(fx->path, "\x89PNG\r\n\x1a\n\xff\xfe\x00\x01", 12);
	t = tofu_new(fx->path, 0);
	assert_non_null(t);
	assert_int_equal(tofu_load(t, &rep), 0);
	assert_int_equal(rep.loaded, 0);
	assert_int_equal(rep.damaged, 3);
	tofu_free(t);
}

static void
test_load_errors(void **state)
{
	struct fixture *fx = *state;
	struct tofu_report rep;
	struct tofu *t;
	char sub[160];

	/* missing file: empty memory, no error */
	t = tofu_new(fx->path, 0);
	assert_non_null(t);
	assert_int_equal(tofu_load(t, &rep), 0);
	assert_int_equal(rep.loaded, 0);
	assert_int_equal(tofu_count(t), 0);
	tofu_free(t);

	/* a directory where the file should be: an error, not a crash */
	assert_int_equal(mkdir(fx->path, 0700), 0);
	t = tofu_new(fx->path, 0);
	assert_non_null(t);
	assert_int_equal(tofu_load(t, &rep), -1);
	assert_int_equal(errno, EISDIR);
	/* ... and saving over it fails cleanly, leaving nothing behind */
	record(t, "mx.example.com", 1, 1, TOFU_TLS_NOT_TRIED, NULL);
	assert_int_equal(tofu_save(t), -1);
	assert_int_equal(count_strays(fx), 0);
	tofu_free(t);
	assert_int_equal(rmdir(fx->path), 0);

	/* a directory that does not exist */
	snprintf(sub, sizeof(sub), "%s/nonexistent/tofu.state", fx->dir);
	t = tofu_new(sub, 0);
	assert_non_null(t);
	record(t, "mx.example.com", 1, 1, TOFU_TLS_NOT_TRIED, NULL);
	assert_int_equal(tofu_save(t), -1);
	assert_int_equal(errno, ENOENT);
	assert_true(tofu_dirty(t));
	tofu_free(t);
}

static void
test_eviction(void **state)
{
	struct fixture *fx = *state;
	struct tofu *t = tofu_new(fx->path, 4), *u;
	struct tofu_report rep;
	struct tofu_entry e;
	char key[64];
	int i, present;

	assert_non_null(t);
	record(t, "a.example", 1, 1, TOFU_TLS_NOT_TRIED, NULL);
	record(t, "b.example", 2, 1, TOFU_TLS_NOT_TRIED, NULL);
	record(t, "c.example", 3, 1, TOFU_TLS_NOT_TRIED, NULL);
	record(t, "d.example", 4, 1, TOFU_TLS_NOT_TRIED, NULL);
	record(t, "a.example", 10, 1, TOFU_TLS_NOT_TRIED, NULL); /* a is fresh again */
	record(t, "e.example", 11, 1, TOFU_TLS_NOT_TRIED, NULL); /* b goes */
	assert_int_equal(tofu_count(t), 4);
	assert_int_equal(tofu_lookup(t, "b.example", &e), -1);
	assert_int_equal(tofu_lookup(t, "a.example", &e), 0);
	assert_int_equal(tofu_lookup(t, "e.example", &e), 0);
	record(t, "f.example", 12, 1, TOFU_TLS_NOT_TRIED, NULL); /* c goes */
	assert_int_equal(tofu_lookup(t, "c.example", &e), -1);
	assert_int_equal(tofu_lookup(t, "d.example", &e), 0);
	assert_int_equal(tofu_save(t), 0);
	tofu_free(t);

	/* many: the bound holds and the recent survive */
	t = tofu_new(NULL, 1000);
	assert_non_null(t);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "mx%d.example.com", i);
		record(t, key, 1000 + i, i & 1, TOFU_TLS_NOT_TRIED, NULL);
		assert_true(tofu_count(t) <= 1000);
	}
	assert_true(tofu_count(t) >= 1000 - 1000 / 64);
	for (i = 4990, present = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "mx%d.example.com", i);
		present += tofu_lookup(t, key, &e) == 0;
	}
	assert_int_equal(present, 10);
	assert_int_equal(tofu_lookup(t, "mx0.example.com", &e), -1);
	tofu_free(t);

	/* loading a file bigger than the bound keeps the most recent */
	u = tofu_new(fx->path, 2);
	assert_non_null(u);
	assert_int_equal(tofu_load(u, &rep), 0);
	assert_int_equal(rep.loaded, 4);
	assert_true(rep.evicted >= 2);
	assert_int_equal(tofu_count(u), 2);
	assert_int_equal(tofu_lookup(u, "f.example", &e), 0);
	assert_int_equal(tofu_lookup(u, "e.example", &e), 0);
	tofu_free(u);
}

/*
 * An interrupted save: the file-size limit makes the write fail half way
 * (EFBIG) as a full disk would. The previous file must be untouched and no
 * temporary file left behind.
 */
static void
test_atomic_failure(void **state)
{
	struct fixture *fx = *state;
	struct tofu *t = tofu_new(fx->path, 0);
	struct rlimit old, lim;
	char *before, *after, key[64];
	size_t lb, la;
	int i, rc, err;
	void (*oldsig)(int);

	assert_non_null(t);
	record(t, "mx1.example.com", 100, 1, TOFU_TLS_OK, FP_A);
	assert_int_equal(tofu_save(t), 0);
	before = read_file(fx->path, &lb);

	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "mx%d.example.org", i);
		record(t, key, 200 + i, 1, TOFU_TLS_OK, FP_B);
	}
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = tofu_save(t);
	err = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);

	assert_int_equal(rc, -1);
	assert_int_equal(err, EFBIG);
	assert_true(tofu_dirty(t));
	after = read_file(fx->path, &la);
	assert_int_equal(la, lb);
	assert_memory_equal(before, after, lb);
	assert_int_equal(count_strays(fx), 0);
	free(after);

	/* with room again the same memory saves */
	assert_int_equal(tofu_save(t), 0);
	after = read_file(fx->path, &la);
	assert_true(la > lb);
	free(after);
	free(before);
	tofu_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test(test_record_semantics),
	        cmocka_unit_test(test_bad_keys),
	        cmocka_unit_test_setup_teardown(test_damaged_lines, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_atomic_failure, setup, teardown),
	};

	return cmocka_run_group_tests_name("tofu", tests, NULL, NULL);
}
