/*
 * test_pcache: the MTA-STS policy cache data layer (policy/pcache.c).
 *
 * - the committed golden file tests/data/sts/pcache-v1.cache (written by
 *   an independent encoder) loads to known entries and saves back byte
 *   for byte;
 * - save/load round trip, file mode 0600, no temporary file left;
 * - a table of damaged lines: each is skipped with a warning naming its
 *   line, the good entries around it are kept;
 * - every truncation of a saved file loads the complete lines only;
 * - a failing save (file size limit, missing or unwritable directory)
 *   leaves the previous file byte for byte;
 * - expiry, lookup normalisation, touch/remove/expire/iter;
 * - the rules: should_replace, needs_fetch (incl. a changed TXT id after a
 *   failed fetch), needs_refresh;
 * - the entry bound with eviction of the first-expiring entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pcache.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/data"
#endif
#define GOLDEN TEST_DATA_DIR "/sts/pcache-v1.cache"

#define POL_A                                                                                      \
	"version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: "        \
	"604800\n"
#define POL_B "version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\nmax_age: 86400\r\n"
#define POL_N "version: STSv1\nmode: none\nmax_age: 86400\n"
#define T0    1700000000

static char tmpdir[] = "/tmp/test_pcache.XXXXXX";

/* --- helpers ------------------------------------------------------------ */

struct warns {
	int n;
	unsigned long line[16];
	char msg[16][256];
};

static void
collect_warn(void *arg, unsigned long line, const char *msg)
{
	struct warns *w = arg;

	if (w->n < 16) {
		w->line[w->n] = line;
		snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
	}
	w->n++;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

static void
spew(const char *path, const char *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
tmppath(char *buf, size_t bufsz, const char *name)
{
	snprintf(buf, bufsz, "%s/%s", tmpdir, name);
}

/* Files in dir other than "." and ".."; the name of one in *other. */
static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
put_ok(struct pcache *c, const char *domain, const char *id, const char *text, time_t now)
{
	char err[256];

	if (pcache_put(c, domain, id, text, strlen(text), now, err, sizeof err) != 0)
		fail_msg("put %s: %s", domain, err);
}

/* Three entries: enforce, testing (CRLF, with an error), none. */
static struct pcache *
make_three(const char *path)
{
	struct pcache *c = pcache_new(path);

	assert_non_null(c);
	put_ok(c, "example.com", "20240101T000000", POL_A, T0);
	put_ok(c, "Example.ORG.", "abc123", POL_B, T0);
	put_ok(c, "retired.example", "r1", POL_N, T0);
	assert_int_equal(pcache_touch(c, "example.com", T0 + 50000, NULL), 0);
	assert_int_equal(pcache_touch(c, "example.org", T0 + 100000, "fetch: HTTP 404 - not found"),
	                 0);
	return c;
}

static void
assert_entry_equal(const struct pcache_entry *a, const struct pcache_entry *b)
{
	int i;

	assert_string_equal(a->domain, b->domain);
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->textlen, b->textlen);
	assert_memory_equal(a->text, b->text, a->textlen);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->max_age, b->max_age);
	assert_int_equal(a->nmx, b->nmx);
	for (i = 0; i < a->nmx; i++)
		assert_string_equal(a->mx[i], b->mx[i]);
	assert_int_equal(a->fetched_at, b->fetched_at);
	assert_int_equal(a->expires_at, b->expires_at);
	assert_int_equal(a->last_checked, b->last_checked);
	assert_string_equal(a->last_error, b->last_error);
}

struct cmp_ctx {
	const struct pcache *other;
	int n;
};

static int
cmp_one(void *arg, const struct pcache_entry *e)
{
	struct cmp_ctx *ctx = arg;
	const struct pcache_entry *o;

	assert_int_not_equal(pcache_lookup(ctx->other, e->domain, T0, &o), PCACHE_MISSING);
	assert_entry_equal(e, o);
	ctx->n++;
	return 0;
}

static void
assert_cache_equal(const struct pcache *a, const struct pcache *b)
{
	struct cmp_ctx ctx = {b, 0};

	assert_int_equal(pcache_count(a), pcache_count(b));
	pcache_iter(a, cmp_one, &ctx);
	assert_int_equal((size_t)ctx.n, pcache_count(a));
}

/* Independent CRC-32 (IEEE) and base64 to build test lines. */
static uint32_t
t_crc32(const char *s, size_t n)
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

static void
t_b64(const char *in, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), i, o = 0;
	const unsigned char *s = (const unsigned char *)in;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
		             (i + 2 < n ? s[i + 2] : 0);

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o] = '\0';
}

/* "<fields> <crc>\n" with a correct CRC over fields. */
static void
t_line(char *out, size_t outsz, const char *fields)
{
	snprintf(out, outsz, "%s %08x\n", fields, (unsigned)t_crc32(fields, strlen(fields)));
}

/* --- golden file and round trip ------------------------------------------ */

static void
test_golden_file(void **state)
{
	struct pcache *c, *d;
	const struct pcache_entry *e;
	struct warns w = {0};
	char path[512], *want, *got;
	size_t wlen, glen;

	(void)state;
	c = pcache_new(GOLDEN);
	assert_non_null(c);
	assert_int_equal(pcache_load(c, collect_warn, &w), 3);
	assert_int_equal(w.n, 0);
	assert_false(pcache_dirty(c));

	assert_int_equal(pcache_lookup(c, "example.com", T0, &e), PCACHE_FRESH);
	assert_string_equal(e->id, "20240101T000000");
	assert_int_equal(e->mode, STS_MODE_ENFORCE);
	assert_int_equal(e->max_age, 604800);
	assert_int_equal(e->expires_at, T0 + 604800);
	assert_int_equal(e->last_checked, 1700050000);
	assert_int_equal(e->nmx, 2);
	assert_string_equal(e->mx[1], "*.example.net");
	assert_string_equal(e->last_error, "");
	assert_int_equal(pcache_lookup(c, "example.org", T0, &e), PCACHE_FRESH);
	assert_string_equal(e->last_error, "fetch: HTTP 404 - not found");
	assert_string_equal(e->text, POL_B);
	assert_int_equal(pcache_lookup(c, "retired.example", T0, &e), PCACHE_FRESH);
	assert_int_equal(e->mode, STS_MODE_NONE);
	assert_int_equal(e->nmx, 0);

	/* our own writer produces the same bytes from the same entries */
	tmppath(path, sizeof path, "golden.cache");
	d = make_three(path);
	assert_int_equal(pcache_save(d), 0);
	want = slurp(GOLDEN, &wlen);
	got = slurp(path, &glen);
	assert_non_null(got);
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, wlen);
	assert_cache_equal(c, d);
	free(want);
	free(got);
	pcache_free(c);
	pcache_free(d);
	unlink(path);
}

static void
test_round_trip(void **state)
{
	struct pcache *c, *d;
	struct stat st;
	char path[512];

	(void)state;
	tmppath(path, sizeof path, "rt.cache");
	c = make_three(path);
	assert_true(pcache_dirty(c));
	assert_int_equal(pcache_save(c), 0);
	assert_false(pcache_dirty(c));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_files(tmpdir), 1); /* no temporary left */

	d = pcache_new(path);
	assert_int_equal(pcache_load(d, NULL, NULL), 3);
	assert_cache_equal(c, d);
	assert_cache_equal(d, c);

	/* saving over an existing file replaces it */
	assert_int_equal(pcache_remove(c, "example.com"), 0);
	assert_int_equal(pcache_save(c), 0);
	assert_int_equal(pcache_load(d, NULL, NULL), 2);
	assert_cache_equal(c, d);
	assert_int_equal(count_files(tmpdir), 1);

	/* an empty cache saves and loads as empty */
	pcache_free(c);
	c = pcache_new(path);
	assert_int_equal(pcache_save(c), 0);
	assert_int_equal(pcache_load(d, NULL, NULL), 0);
	/* a missing file is an empty cache, not an error */
	unlink(path);
	assert_int_equal(pcache_load(d, NULL, NULL), 0);
	pcache_free(c);
	pcache_free(d);

	/* memory-only */
	c = pcache_new(NULL);
	put_ok(c, "example.com", "x", POL_A, T0);
	assert_int_equal(pcache_save(c), 0);
	assert_int_equal(pcache_load(c, NULL, NULL), 0);
	pcache_free(c);
}

/* --- damage ------------------------------------------------------------- */

struct damage_case {
	const char *name;
	const char *fields; /* NULL: use raw */
	const char *raw;
	const char *warn; /* substring of the warning */
};

static void
test_damaged_entries(void **state)
{
	char b64a[256], b64bad[256], b64x[256];
	char f_wrongid[512], f_domain[512], f_time[512], f_polbad[512], f_b64[512], f_err[512],
	        f_dup_old[512], f_neg[512], f_errlong[1024];
	struct damage_case cases[12];
	char path[512];
	size_t i, k = 0;

	(void)state;
	t_b64(POL_A, b64a);
	t_b64("version: STSv1\nmode: enforce\nmax_age: 86400\n", b64bad); /* no mx */
	t_b64("x", b64x);
	snprintf(f_wrongid, sizeof f_wrongid, "bad.example id_x 1700000000 1700000000 - %s", b64a);
	snprintf(f_domain, sizeof f_domain, "bad_domain.example id 1700000000 1700000000 - %s",
	         b64a);
	snprintf(f_time, sizeof f_time, "bad.example id 999999999999 1700000000 - %s", b64a);
	snprintf(f_neg, sizeof f_neg, "bad.example id -1 1700000000 - %s", b64a);
	snprintf(f_polbad, sizeof f_polbad, "bad.example id 1700000000 1700000000 - %s", b64bad);
	snprintf(f_b64, sizeof f_b64, "bad.example id 1700000000 1700000000 - %s", b64x + 1);
	snprintf(f_err, sizeof f_err, "bad.example id 1700000000 1700000000 a%%zz %s", b64a);
	snprintf(f_errlong, sizeof f_errlong, "bad.example id 1700000000 1700000000 %0300d %s", 0,
	         b64a);
	/* an older duplicate of a good domain: the newer one is kept */
	snprintf(f_dup_old, sizeof f_dup_old, "example.com old 1600000000 1600000000 - %s", b64a);

	cases[k++] = (struct damage_case){"bad crc", NULL,
	                                  "bad.example id 1700000000 1700000000 - eA== 00000000\n",
	                                  "checksum mismatch"};
	cases[k++] = (struct damage_case){"few fields", NULL, "bad.example id 1700000000\n",
	                                  "expected 7 fields"};
	cases[k++] = (struct damage_case){"binary junk", NULL, "\x01\x02\xff junk \x7f\n",
	                                  "expected 7 fields"};
	cases[k++] = (struct damage_case){"invalid id", f_wrongid, NULL, "invalid id"};
	cases[k++] = (struct damage_case){"invalid domain", f_domain, NULL, "invalid domain"};
	cases[k++] = (struct damage_case){"time out of range", f_time, NULL, "invalid time"};
	cases[k++] = (struct damage_case){"negative time", f_neg, NULL, "invalid time"};
	cases[k++] = (struct damage_case){"policy no longer valid", f_polbad, NULL,
	                                  "policy: mx: missing with mode enforce"};
	cases[k++] = (struct damage_case){"bad base64", f_b64, NULL, "invalid policy encoding"};
	cases[k++] = (struct damage_case){"bad error field", f_err, NULL, "invalid error field"};
	cases[k++] = (struct damage_case){"error too long", f_errlong, NULL, "invalid error field"};
	cases[k++] = (struct damage_case){"older duplicate", f_dup_old, NULL, "duplicate domain"};

	tmppath(path, sizeof path, "damaged.cache");
	for (i = 0; i < k; i++) {
		char *golden, *buf, bad[2048], *nl;
		size_t glen, blen, hlen;
		struct pcache *c;
		struct warns w = {0};
		const struct pcache_entry *e;

		if (cases[i].fields != NULL)
			t_line(bad, sizeof bad, cases[i].fields);
		else
			snprintf(bad, sizeof bad, "%s", cases[i].raw);
		/* insert the bad line after the first entry (line 6) */
		golden = slurp(GOLDEN, &glen);
		nl = strstr(golden, "\nexample.org ");
		assert_non_null(nl);
		hlen = (size_t)(nl - golden) + 1;
		blen = glen + strlen(bad);
		buf = malloc(blen);
		memcpy(buf, golden, hlen);
		memcpy(buf + hlen, bad, strlen(bad));
		memcpy(buf + hlen + strlen(bad), golden + hlen, glen - hlen);
		spew(path, buf, blen);

		c = pcache_new(path);
		if (pcache_load(c, collect_warn, &w) != 3)
			fail_msg("case \"%s\": %zu entries", cases[i].name, pcache_count(c));
		if (w.n != 1 || w.line[0] != 6 || strstr(w.msg[0], cases[i].warn) == NULL)
			fail_msg("case \"%s\": %d warnings, first line %lu \"%s\"", cases[i].name,
			         w.n, w.line[0], w.msg[0]);
		assert_true(pcache_dirty(c)); /* the next save repairs the file */
		assert_int_equal(pcache_lookup(c, "example.com", T0, &e), PCACHE_FRESH);
		assert_string_equal(e->id, "20240101T000000");
		assert_int_equal(pcache_lookup(c, "example.org", T0, NULL), PCACHE_FRESH);
		assert_int_equal(pcache_lookup(c, "retired.example", T0, NULL), PCACHE_FRESH);
		assert_int_equal(pcache_lookup(c, "bad.example", T0, NULL), PCACHE_MISSING);
		pcache_free(c);
		free(golden);
		free(buf);
	}
	unlink(path);
}

static void
test_newer_duplicate_wins(void **state)
{
	char b64[256], fields[512], line[1024], path[512], *golden, *buf;
	size_t glen;
	struct pcache *c;
	const struct pcache_entry *e;
	struct warns w = {0};

	(void)state;
	t_b64(POL_N, b64);
	snprintf(fields, sizeof fields, "example.com newer 1800000000 1800000000 - %s", b64);
	t_line(line, sizeof line, fields);
	golden = slurp(GOLDEN, &glen);
	buf = malloc(glen + strlen(line) + 1);
	memcpy(buf, golden, glen);
	memcpy(buf + glen, line, strlen(line) + 1);
	tmppath(path, sizeof path, "dup.cache");
	spew(path, buf, strlen(buf));
	c = pcache_new(path);
	assert_int_equal(pcache_load(c, collect_warn, &w), 3);
	assert_int_equal(w.n, 1);
	assert_int_equal(pcache_lookup(c, "example.com", 1800000000, &e), PCACHE_FRESH);
	assert_string_equal(e->id, "newer");
	assert_int_equal(e->mode, STS_MODE_NONE);
	pcache_free(c);
	free(golden);
	free(buf);
	unlink(path);
}

static void
test_headers(void **state)
{
	static const struct {
		const char *text;
		int entries;
		const char *warn; /* NULL: none */
	} cases[] = {
	        {"", 0, NULL},
	        {"# only a comment\n", 0, NULL},
	        {"stsproxy-pcache 1\n", 0, NULL},
	        {"stsproxy-pcache 2\nexample.com x 1 1 - eA== 00000000\n", 0,
	         "unsupported format version"},
	        {"stsproxy-pcache 10\n", 0, "unsupported format version"},
	        {"stsproxy-pcache\n", 0, "not a policy cache file"},
	        {"version: STSv1\nmode: enforce\n", 0, "not a policy cache file"},
	        {"stsproxy-pcache 1", 0, "truncated last line"},
	        {"stsproxy-pcache 1\r\n", 0, "unsupported format version"},
	};
	char path[512];
	size_t i;

	(void)state;
	tmppath(path, sizeof path, "hdr.cache");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pcache *c = pcache_new(path);
		struct warns w = {0};

		put_ok(c, "stale.example", "x", POL_A, T0); /* load replaces it */
		spew(path, cases[i].text, strlen(cases[i].text));
		assert_int_equal(pcache_load(c, collect_warn, &w), cases[i].entries);
		assert_int_equal(pcache_count(c), (size_t)cases[i].entries);
		if (cases[i].warn == NULL)
			assert_int_equal(w.n, 0);
		else if (w.n != 1 || strstr(w.msg[0], cases[i].warn) == NULL)
			fail_msg("case %zu: %d warnings, \"%s\"", i, w.n, w.msg[0]);
		pcache_free(c);
	}
	unlink(path);
}

static void
test_truncated_file(void **state)
{
	struct pcache *c;
	char path[512], cut[512], *full;
	size_t len, k, i, lines_end[16], nends = 0;

	(void)state;
	tmppath(path, sizeof path, "full.cache");
	tmppath(cut, sizeof cut, "cut.cache");
	c = make_three(path);
	assert_int_equal(pcache_save(c), 0);
	pcache_free(c);
	full = slurp(path, &len);
	for (i = 0; i < len; i++)
		if (full[i] == '\n' && nends < 16)
			lines_end[nends++] = i + 1;
	assert_int_equal(nends, 7); /* 3 comments, header, 3 entries */

	/* every cut: the complete entry lines load, the cut one never does */
	for (k = 0; k <= len; k++) {
		struct warns w = {0};
		int want = 0, got;

		for (i = 4; i < nends; i++)
			if (lines_end[i] <= k)
				want++;
		spew(cut, full, k);
		c = pcache_new(cut);
		got = pcache_load(c, collect_warn, &w);
		if (got != want)
			fail_msg("cut at %zu: %d entries, want %d", k, got, want);
		pcache_free(c);
	}
	free(full);
	unlink(path);
	unlink(cut);
}

/* --- atomic save -------------------------------------------------------- */

static void
test_save_failure_keeps_old_file(void **state)
{
	char dir[256], path[512], *before, *after;
	size_t blen, alen;
	struct pcache *c;
	pid_t pid;
	int status, i;

	(void)state;
	tmppath(dir, sizeof dir, "atomic");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/policies.cache", dir);
	c = make_three(path);
	assert_int_equal(pcache_save(c), 0);
	before = slurp(path, &blen);
	for (i = 0; i < 200; i++) {
		char d[64];

		snprintf(d, sizeof d, "d%d.example", i);
		put_ok(c, d, "id2", POL_A, T0 + 1);
	}

	/* 1. the write itself fails (file size limit, as on a full disk):
	 * in a child, so the limit does not outlive the test */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {1024, 1024};

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(2);
		_exit(pcache_save(c) == -1 && errno == EFBIG ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	after = slurp(path, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	free(after);
	assert_int_equal(count_files(dir), 1); /* the temporary is gone */
	assert_true(pcache_dirty(c));

	/* 2. the directory is not writable (only meaningful without root) */
	if (geteuid() != 0) {
		assert_int_equal(chmod(dir, 0500), 0);
		assert_int_equal(pcache_save(c), -1);
		assert_int_equal(errno, EACCES);
		assert_int_equal(chmod(dir, 0700), 0);
		after = slurp(path, &alen);
		assert_int_equal(alen, blen);
		assert_memory_equal(after, before, blen);
		free(after);
	}
	pcache_free(c);

	/* 3. the directory does not exist */
	snprintf(path, sizeof path, "%s/missing/policies.cache", dir);
	c = pcache_new(path);
	put_ok(c, "example.com", "x", POL_A, T0);
	assert_int_equal(pcache_save(c), -1);
	assert_int_equal(errno, ENOENT);
	pcache_free(c);

	/* 4. the target is a directory: rename fails, temporary removed */
	snprintf(path, sizeof path, "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	c = pcache_new(path);
	put_ok(c, "example.com", "x", POL_A, T0);
	assert_int_equal(pcache_save(c), -1);
	assert_int_equal(count_files(dir), 2); /* policies.cache and sub */
	pcache_free(c);
	rmdir(path);

	snprintf(path, sizeof path, "%s/policies.cache", dir);
	unlink(path);
	rmdir(dir);
	free(before);
}

/* --- entries ------------------------------------------------------------ */

static void
test_expiry_and_lookup(void **state)
{
	struct pcache *c = pcache_new(NULL);
	const struct pcache_entry *e;
	char err[256];

	(void)state;
	put_ok(c, "example.com", "a", POL_B, T0); /* max_age 86400 */
	assert_int_equal(pcache_lookup(c, "example.com", T0, &e), PCACHE_FRESH);
	assert_int_equal(e->fetched_at, T0);
	assert_int_equal(e->expires_at, T0 + 86400);
	assert_int_equal(e->last_checked, T0);
	assert_int_equal(pcache_lookup(c, "example.com", T0 + 86399, NULL), PCACHE_FRESH);
	assert_int_equal(pcache_lookup(c, "example.com", T0 + 86400, &e), PCACHE_EXPIRED);
	assert_non_null(e); /* still there for refresh and logs */
	assert_int_equal(pcache_lookup(c, "example.com", T0 - 100, NULL), PCACHE_FRESH);

	/* normalisation */
	assert_int_equal(pcache_lookup(c, "EXAMPLE.com.", T0, &e), PCACHE_FRESH);
	assert_string_equal(e->domain, "example.com");
	assert_int_equal(pcache_lookup(c, "example.com..", T0, &e), PCACHE_MISSING);
	assert_null(e);
	assert_int_equal(pcache_lookup(c, "other.example", T0, NULL), PCACHE_MISSING);
	assert_int_equal(pcache_lookup(c, "", T0, NULL), PCACHE_MISSING);
	assert_int_equal(pcache_lookup(c, NULL, T0, NULL), PCACHE_MISSING);
	assert_int_equal(pcache_lookup(NULL, "example.com", T0, NULL), PCACHE_MISSING);

	/* max_age 0: expired at once; clamped max_age */
	put_ok(c, "zero.example", "z", "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 0\n", T0);
	assert_int_equal(pcache_lookup(c, "zero.example", T0, NULL), PCACHE_EXPIRED);
	put_ok(c, "long.example", "l",
	       "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 4000000000\n", T0);
	assert_int_equal(pcache_lookup(c, "long.example", T0, &e), PCACHE_FRESH);
	assert_int_equal(e->expires_at, T0 + STS_POLICY_MAXAGE);

	/* a refused put leaves the cached policy alone */
	assert_int_equal(pcache_put(c, "example.com", "b", "garbage", 7, T0 + 5, err, sizeof err),
	                 -1);
	assert_string_equal(err, "policy: line 1: missing ':' in 'garbage'");
	assert_int_equal(pcache_put(c, "example.com", "bad-id", POL_A, strlen(POL_A), T0 + 5, err,
	                            sizeof err),
	                 -1);
	assert_string_equal(err, "invalid id");
	assert_int_equal(
	        pcache_put(c, "exa mple.com", "b", POL_A, strlen(POL_A), T0, err, sizeof err), -1);
	assert_string_equal(err, "invalid domain");
	assert_int_equal(
	        pcache_put(c, "example.com", "b", POL_A, strlen(POL_A), -5, err, sizeof err), -1);
	assert_int_equal(pcache_lookup(c, "example.com", T0, &e), PCACHE_FRESH);
	assert_string_equal(e->id, "a");
	assert_int_equal(pcache_count(c), 3);
	pcache_free(c);
}

static void
test_touch_remove_expire(void **state)
{
	struct pcache *c = pcache_new(NULL);
	const struct pcache_entry *e, *e2;
	char longerr[600];
	struct sts_policy pol;

	(void)state;
	put_ok(c, "example.com", "a", POL_A, T0);
	assert_int_equal(pcache_lookup(c, "example.com", T0, &e), PCACHE_FRESH);
	/* touch records the attempt, nothing else */
	assert_int_equal(pcache_touch(c, "Example.com", T0 + 10, "tls: \x1b[1mbad\ncert"), 0);
	assert_int_equal(pcache_lookup(c, "example.com", T0, &e2), PCACHE_FRESH);
	assert_ptr_equal(e, e2); /* pointer kept */
	assert_int_equal(e->last_checked, T0 + 10);
	assert_string_equal(e->last_error, "tls: ?[1mbad?cert");
	assert_string_equal(e->id, "a");
	assert_int_equal(e->fetched_at, T0);
	assert_int_equal(e->expires_at, T0 + 604800);
	memset(longerr, 'e', sizeof longerr - 1);
	longerr[sizeof longerr - 1] = '\0';
	assert_int_equal(pcache_touch(c, "example.com", T0 + 11, longerr), 0);
	assert_int_equal(strlen(e->last_error), PCACHE_ERRMAX - 1);
	assert_int_equal(pcache_touch(c, "example.com", T0 + 12, NULL), 0);
	assert_string_equal(e->last_error, "");
	assert_int_equal(pcache_touch(c, "missing.example", T0, NULL), -1);

	/* entry accessors */
	assert_true(pcache_entry_mx_ok(e, "mail.example.com"));
	assert_true(pcache_entry_mx_ok(e, "x.example.net"));
	assert_false(pcache_entry_mx_ok(e, "x.y.example.net"));
	assert_false(pcache_entry_mx_ok(NULL, "mail.example.com"));
	assert_int_equal(pcache_entry_policy(e, &pol), 0);
	assert_int_equal(pol.mode, STS_MODE_ENFORCE);
	assert_int_equal(pol.nmx, 2);
	assert_string_equal(pol.id, "a");
	assert_int_equal(pcache_entry_policy(NULL, &pol), -1);

	/* remove */
	assert_int_equal(pcache_remove(c, "example.com."), 0);
	assert_int_equal(pcache_remove(c, "example.com"), -1);
	assert_int_equal(pcache_count(c), 0);

	/* expire: only entries expired for longer than grace */
	put_ok(c, "a.example", "a", POL_B, T0);         /* expires T0 + 86400 */
	put_ok(c, "b.example", "b", POL_B, T0 + 86400); /* expires T0 + 172800 */
	put_ok(c, "c.example", "c", POL_A, T0);         /* expires T0 + 604800 */
	assert_int_equal(pcache_expire(c, T0 + 86400 + 3600, 3600), 0);
	assert_int_equal(pcache_expire(c, T0 + 86400 + 3601, 3600), 1);
	assert_int_equal(pcache_lookup(c, "a.example", T0, NULL), PCACHE_MISSING);
	assert_int_equal(pcache_expire(c, T0 + 10000000, 0), 2);
	assert_int_equal(pcache_count(c), 0);
	pcache_free(c);
}

static int
count_cb(void *arg, const struct pcache_entry *e)
{
	int *n = arg;

	(void)e;
	return ++*n == 5; /* stop after five */
}

static void
test_iter(void **state)
{
	struct pcache *c = pcache_new(NULL);
	int i, n = 0;

	(void)state;
	for (i = 0; i < 20; i++) {
		char d[64];

		snprintf(d, sizeof d, "host%d.example", i);
		put_ok(c, d, "x", POL_B, T0);
	}
	pcache_iter(c, count_cb, &n);
	assert_int_equal(n, 5);
	pcache_iter(c, NULL, NULL);
	pcache_iter(NULL, count_cb, &n);
	pcache_free(c);
}

/* --- rules -------------------------------------------------------------- */

static void
test_should_replace(void **state)
{
	(void)state;
	assert_true(pcache_should_replace(PCACHE_FETCH_OK));
	assert_false(pcache_should_replace(PCACHE_FETCH_FAILED));
	assert_false(pcache_should_replace(PCACHE_FETCH_INVALID));
}

static void
test_needs_fetch(void **state)
{
	struct pcache *c = pcache_new(NULL);
	const struct pcache_entry *e;

	(void)state;
	assert_true(pcache_needs_fetch(NULL, "a", T0));
	assert_true(pcache_needs_fetch(NULL, NULL, T0));
	put_ok(c, "example.com", "a", POL_B, T0); /* max_age 86400 */
	pcache_lookup(c, "example.com", T0, &e);
	/* fresh, same id or no usable TXT record: keep using it */
	assert_false(pcache_needs_fetch(e, "a", T0 + 1));
	assert_false(pcache_needs_fetch(e, NULL, T0 + 1));
	/* the id changed: fetch, even though fresh */
	assert_true(pcache_needs_fetch(e, "b", T0 + 1));
	/* the fetch for "b" fails: the old policy stays and so does its id,
	 * so the change is still pending after the retry spacing */
	assert_int_equal(pcache_touch(c, "example.com", T0 + 2, "fetch: timeout"), 0);
	assert_string_equal(e->id, "a");
	assert_false(pcache_needs_fetch(e, "b", T0 + 2 + PCACHE_RETRY_SECS - 1));
	assert_true(pcache_needs_fetch(e, "b", T0 + 2 + PCACHE_RETRY_SECS));
	/* a successful fetch for "b" replaces */
	put_ok(c, "example.com", "b", POL_B, T0 + 3000);
	pcache_lookup(c, "example.com", T0, &e);
	assert_false(pcache_needs_fetch(e, "b", T0 + 3001));
	/* expiry */
	assert_false(pcache_needs_fetch(e, "b", T0 + 3000 + 86399));
	assert_true(pcache_needs_fetch(e, "b", T0 + 3000 + 86400));
	assert_true(pcache_needs_fetch(e, NULL, T0 + 3000 + 86400));
	/* expired and the last attempt failed a moment ago: wait */
	assert_int_equal(pcache_touch(c, "example.com", T0 + 3000 + 86400, "dns: SERVFAIL"), 0);
	assert_false(pcache_needs_fetch(e, "b", T0 + 3000 + 86401));
	assert_true(pcache_needs_fetch(e, "b", T0 + 3000 + 86400 + PCACHE_RETRY_SECS));
	pcache_free(c);
}

static void
test_needs_refresh(void **state)
{
	struct pcache *c = pcache_new(NULL);
	const struct pcache_entry *e;

	(void)state;
	assert_false(pcache_needs_refresh(NULL, T0));
	/* a week-long policy: daily */
	put_ok(c, "week.example", "w", POL_A, T0);
	pcache_lookup(c, "week.example", T0, &e);
	assert_false(pcache_needs_refresh(e, T0));
	assert_false(pcache_needs_refresh(e, T0 + PCACHE_REFRESH_SECS - 1));
	assert_true(pcache_needs_refresh(e, T0 + PCACHE_REFRESH_SECS));
	/* a successful check without a new policy resets the day */
	assert_int_equal(pcache_touch(c, "week.example", T0 + PCACHE_REFRESH_SECS, NULL), 0);
	assert_false(pcache_needs_refresh(e, T0 + PCACHE_REFRESH_SECS + 3600));
	/* a failed one is retried after the spacing, not a day */
	assert_int_equal(pcache_touch(c, "week.example", T0 + 2 * PCACHE_REFRESH_SECS, "x"), 0);
	assert_false(pcache_needs_refresh(e, T0 + 2 * PCACHE_REFRESH_SECS + PCACHE_RETRY_SECS - 1));
	assert_true(pcache_needs_refresh(e, T0 + 2 * PCACHE_REFRESH_SECS + PCACHE_RETRY_SECS));
	/* the clock went back */
	assert_true(pcache_needs_refresh(e, T0 - 1));

	/* a one-hour policy: in the second half of its life */
	put_ok(c, "hour.example", "h", "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 3600\n",
	       T0);
	pcache_lookup(c, "hour.example", T0, &e);
	assert_false(pcache_needs_refresh(e, T0 + PCACHE_RETRY_SECS));
	assert_false(pcache_needs_refresh(e, T0 + 1799));
	assert_true(pcache_needs_refresh(e, T0 + 1800));
	assert_true(pcache_needs_refresh(e, T0 + 7200)); /* expired */
	/* never within the spacing of an attempt */
	put_ok(c, "zero.example", "z", "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 0\n", T0);
	pcache_lookup(c, "zero.example", T0, &e);
	assert_false(pcache_needs_refresh(e, T0 + 1));
	assert_true(pcache_needs_refresh(e, T0 + PCACHE_RETRY_SECS));
	pcache_free(c);
}

static void
test_bound_and_eviction(void **state)
{
	struct pcache *c = pcache_new(NULL);
	const struct pcache_entry *e;
	int i;

	(void)state;
	/* entry i is fetched at T0 + i, so "d0" expires first */
	for (i = 0; i < PCACHE_MAXENTRIES; i++) {
		char d[64];

		snprintf(d, sizeof d, "d%d.example", i);
		put_ok(c, d, "x", POL_B, T0 + i);
	}
	assert_int_equal(pcache_count(c), PCACHE_MAXENTRIES);
	/* replacing an existing domain evicts nothing */
	put_ok(c, "d5.example", "y", POL_B, T0 + 5);
	assert_int_equal(pcache_count(c), PCACHE_MAXENTRIES);
	assert_int_equal(pcache_lookup(c, "d0.example", T0, NULL), PCACHE_FRESH);
	/* a new domain evicts the one expiring first */
	put_ok(c, "new.example", "n", POL_B, T0 + 200000);
	assert_int_equal(pcache_count(c), PCACHE_MAXENTRIES);
	assert_int_equal(pcache_lookup(c, "d0.example", T0, NULL), PCACHE_MISSING);
	assert_int_equal(pcache_lookup(c, "d1.example", T0, NULL), PCACHE_FRESH);
	assert_int_equal(pcache_lookup(c, "new.example", T0, &e), PCACHE_FRESH);
	assert_string_equal(e->id, "n");
	assert_int_equal(pcache_lookup(c, "d99999.example", T0, &e), PCACHE_FRESH);
	assert_int_equal(e->fetched_at, T0 + 99999);
	pcache_free(c);
}

static void
test_domain_valid(void **state)
{
	char longname[300];

	(void)state;
	assert_true(pcache_domain_valid("example.com", 11));
	assert_true(pcache_domain_valid("Example.COM.", 12));
	assert_true(pcache_domain_valid("xn--bcher-kva.example", 21));
	assert_true(pcache_domain_valid("localhost", 9));
	assert_false(pcache_domain_valid("", 0));
	assert_false(pcache_domain_valid(".", 1));
	assert_false(pcache_domain_valid("a..b", 4));
	assert_false(pcache_domain_valid("-a.b", 4));
	assert_false(pcache_domain_valid("a-.b", 4));
	assert_false(pcache_domain_valid("a_b.c", 5));
	assert_false(pcache_domain_valid("*.example.com", 13));
	assert_false(pcache_domain_valid("a b.c", 5));
	assert_false(pcache_domain_valid("a/b.c", 5));
	assert_false(pcache_domain_valid(NULL, 0));
	memset(longname, 'a', 63);
	longname[63] = '\0';
	assert_true(pcache_domain_valid(longname, 63));
	longname[63] = 'a';
	assert_false(pcache_domain_valid(longname, 64));
	/* 253 octets fit, 254 do not */
	memset(longname, 'a', sizeof longname);
	for (int i = 63; i < 253; i += 64)
		longname[i] = '.';
	assert_true(pcache_domain_valid(longname, 253));
	assert_false(pcache_domain_valid(longname, 254));
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_file),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_damaged_entries),
	        cmocka_unit_test(test_newer_duplicate_wins),
	        cmocka_unit_test(test_headers),
	        cmocka_unit_test(test_truncated_file),
	        cmocka_unit_test(test_save_failure_keeps_old_file),
	        cmocka_unit_test(test_expiry_and_lookup),
	        cmocka_unit_test(test_touch_remove_expire),
	        cmocka_unit_test(test_iter),
	        cmocka_unit_test(test_should_replace),
	        cmocka_unit_test(test_needs_fetch),
	        cmocka_unit_test(test_needs_refresh),
	        cmocka_unit_test(test_bound_and_eviction),
	        cmocka_unit_test(test_domain_valid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
