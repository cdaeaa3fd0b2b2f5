/*
 * Certificate checks done after the handshake (tls_verify_chain) and the
 * cache of verified chains behind them (verifycache). The PKI is in
 * tests/data/tls (gen.sh says what each file is).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "cfg.h"
#include "tls.h"
#include "verifycache.h"

static struct cfg *tcfg;
static struct tls_ctx *tctx;

static char *
data_path(const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/tls/%s", TEST_DATA_DIR, rel);
	return strdup(path);
}

static int
setup(void **state)
{
	char err[256] = "";

	(void)state;
	if ((tcfg = cfg_defaults()) == NULL)
		return -1;
	free(tcfg->ca_file);
	tcfg->ca_file = data_path("ca.pem");
	if ((tctx = tls_new(tcfg, err, sizeof(err))) == NULL) {
		print_error("tls_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tls_free(tctx);
	cfg_unref(tcfg);
	return 0;
}

static void
load(mbedtls_x509_crt *crt, const char *rel)
{
	char *p = data_path(rel);

	mbedtls_x509_crt_init(crt);
	assert_int_equal(mbedtls_x509_crt_parse_file(crt, p), 0);
	free(p);
}

#define DS MBEDTLS_X509_KU_DIGITAL_SIGNATURE

/* One verification, and whether it took the CA signatures or the cache. */
static uint32_t
check(const mbedtls_x509_crt *crt, const char *name, unsigned usage, int *cached)
{
	unsigned long full = tls_stats(tctx)->verify_full;
	unsigned long hit = tls_stats(tctx)->verify_cached;
	uint32_t flags = tls_verify_chain(tctx, crt, name, usage);

	assert_int_equal(tls_stats(tctx)->verify_full + tls_stats(tctx)->verify_cached,
	                 full + hit + 1);
	*cached = tls_stats(tctx)->verify_cached > hit;
	return flags;
}

static void
test_repeat_chain_is_cached(void **state)
{
	mbedtls_x509_crt leaf, chain, alone;
	int cached;

	(void)state;
	load(&leaf, "server.pem");
	load(&chain, "inter.pem");
	assert_int_equal(check(&leaf, "mx.test", DS, &cached), 0);
	assert_false(cached);
	assert_int_equal(check(&leaf, "mx.test", DS, &cached), 0);
	assert_true(cached);
	assert_int_equal(check(&leaf, "MX.Test", DS, &cached), 0); /* names are case-blind */
	assert_true(cached);
	/* another name covered by the same certificate is its own verdict */
	assert_int_equal(check(&leaf, "a.mx.test", DS, &cached), 0);
	assert_false(cached);
	/* leaf + intermediate: two CA signatures, then none */
	assert_int_equal(check(&chain, "b.mx.test", DS, &cached), 0);
	assert_false(cached);
	assert_int_equal(check(&chain, "b.mx.test", DS, &cached), 0);
	assert_true(cached);
	/* the leaf alone, without its intermediate, is not the cached chain */
	mbedtls_x509_crt_init(&alone);
	assert_int_equal(mbedtls_x509_crt_parse_der(&alone, chain.raw.p, chain.raw.len), 0);
	assert_true(check(&alone, "b.mx.test", DS, &cached) & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
	assert_false(cached);
	mbedtls_x509_crt_free(&alone);
	mbedtls_x509_crt_free(&leaf);
	mbedtls_x509_crt_free(&chain);
}

static void
test_failures_are_never_cached(void **state)
{
	static const struct {
		const char *file, *name;
		uint32_t flag;
	} cases[] = {
	        {"server.pem", "mx.example.com", MBEDTLS_X509_BADCERT_CN_MISMATCH},
	        {"server.pem", "a.b.mx.test", MBEDTLS_X509_BADCERT_CN_MISMATCH},
	        {"expired.pem", "mx.test", MBEDTLS_X509_BADCERT_EXPIRED},
	        {"stranger.pem", "mx.test", MBEDTLS_X509_BADCERT_NOT_TRUSTED},
	};
	mbedtls_x509_crt crt;
	int cached;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		load(&crt, cases[i].file);
		for (int round = 0; round < 2; round++) {
			assert_true(check(&crt, cases[i].name, DS, &cached) & cases[i].flag);
			assert_false(cached);
		}
		mbedtls_x509_crt_free(&crt);
	}
}

static void
test_key_usage_checked_every_time(void **state)
{
	mbedtls_x509_crt crt;
	int cached;

	(void)state;
	/* keyEncipherment only: fine for RSA key transport, not for a key that signs */
	load(&crt, "kexonly.pem");
	assert_int_equal(check(&crt, "mx.test", MBEDTLS_X509_KU_KEY_ENCIPHERMENT, &cached), 0);
	assert_false(cached);
	assert_int_equal(check(&crt, "mx.test", DS, &cached), MBEDTLS_X509_BADCERT_KEY_USAGE);
	assert_true(cached); /* the chain is fine; the usage is not, on every call */
	mbedtls_x509_crt_free(&crt);

	/* a client-only certificate is no server certificate */
	load(&crt, "clientonly.pem");
	assert_int_equal(check(&crt, "mx.test", DS, &cached), MBEDTLS_X509_BADCERT_EXT_KEY_USAGE);
	assert_int_equal(check(&crt, "mx.test", DS, &cached), MBEDTLS_X509_BADCERT_EXT_KEY_USAGE);
	assert_true(cached);
	mbedtls_x509_crt_free(&crt);

	assert_int_equal(tls_verify_chain(tctx, NULL, "mx.test", DS), MBEDTLS_X509_BADCERT_MISSING);
}

/* tls.verified_chains = 0: every chain is checked in full. */
static void
test_cache_off(void **state)
{
	struct cfg *cfg = cfg_defaults();
	struct tls_ctx *t;
	mbedtls_x509_crt crt;
	char err[256] = "";

	(void)state;
	assert_non_null(cfg);
	free(cfg->ca_file);
	cfg->ca_file = data_path("ca.pem");
	cfg->tls_verified_chains = 0;
	t = tls_new(cfg, err, sizeof(err));
	assert_non_null(t);
	load(&crt, "server.pem");
	for (int i = 0; i < 3; i++)
		assert_int_equal(tls_verify_chain(t, &crt, "mx.test", DS), 0);
	assert_int_equal(tls_stats(t)->verify_full, 3);
	assert_int_equal(tls_stats(t)->verify_cached, 0);
	mbedtls_x509_crt_free(&crt);
	tls_free(t);
	cfg_unref(cfg);
}

static void
test_verifycache_table(void **state)
{
	struct verifycache *vc = verifycache_new(2);
	unsigned char a[VERIFYCACHE_KEYLEN] = {1}, b[VERIFYCACHE_KEYLEN] = {2},
	              c[VERIFYCACHE_KEYLEN] = {3};
	time_t now = 1700000000;

	(void)state;
	assert_non_null(vc);
	assert_false(verifycache_hit(vc, a, now));
	verifycache_put(vc, a, now - 10, now + 10, now);
	assert_true(verifycache_hit(vc, a, now));
	assert_false(verifycache_hit(vc, a, now + 11)); /* past not_after: dropped */
	assert_false(verifycache_hit(vc, a, now));
	verifycache_put(vc, a, now + 5, now + 100, now);
	assert_false(verifycache_hit(vc, a, now)); /* not yet valid */
	verifycache_put(vc, a, now - 10, now + 100000, now);
	assert_false(verifycache_hit(vc, a, now + VERIFYCACHE_TTL)); /* too old */

	/* least recently used goes first */
	verifycache_put(vc, a, 0, now + 100, now);
	verifycache_put(vc, b, 0, now + 100, now);
	assert_true(verifycache_hit(vc, a, now));
	verifycache_put(vc, c, 0, now + 100, now);
	assert_true(verifycache_hit(vc, a, now));
	assert_false(verifycache_hit(vc, b, now));
	assert_true(verifycache_hit(vc, c, now));
	verifycache_clear(vc);
	assert_false(verifycache_hit(vc, a, now));
	verifycache_free(vc);

	/* size 0: caching off, NULL-safe */
	vc = verifycache_new(0);
	verifycache_put(vc, a, 0, now + 100, now);
	assert_false(verifycache_hit(vc, a, now));
	verifycache_free(vc);
	assert_false(verifycache_hit(NULL, a, now));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_repeat_chain_is_cached),
	        cmocka_unit_test(test_failures_are_never_cached),
	        cmocka_unit_test(test_key_usage_checked_every_time),
	        cmocka_unit_test(test_cache_off),
	        cmocka_unit_test(test_verifycache_table),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
