/*
 * tls: shared mbed TLS state (see tls.h).
 *
 * The handshake completes even with a bad certificate and the relay
 * decides with the policy whether that is acceptable (RFC 8461 §4.2: with
 * MTA-STS "testing" or opportunistic TLS an invalid certificate is still
 * better than plaintext; with "enforce" it fails the MX). So mbed TLS is
 * told not to check the chain at all (MBEDTLS_SSL_VERIFY_NONE: it still
 * checks the handshake signature made with the leaf's key) and the owner
 * calls tls_verify_peer() once the handshake is done, before anything is
 * relayed. Doing the chain check ourselves lets us skip the CA signature
 * checks for a chain already verified for that name (verifycache.h),
 * which is a third of a full handshake's CPU with mbed TLS.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ecp.h>
#include <mbedtls/ssl_ticket.h>
#include <psa/crypto.h>

#include "cfg.h"
#include "detect.h"
#include "log.h"
#include "tls.h"
#include "verifycache.h"

#define TLS_CACHE_KEYMAX 320

struct tls_cached {
	char key[TLS_CACHE_KEYMAX];
	mbedtls_ssl_session session;
	time_t stored;
	int used; /* slot holds a session */
};

struct tls_ctx {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_ssl_config client;
	int resumption;

	struct tls_cached *cache;
	int ncache;
	struct verifycache *verified; /* chains verified for a name */

	int server_on;
	mbedtls_ssl_config server;
	mbedtls_x509_crt srv_cert;
	mbedtls_pk_context srv_key;
	mbedtls_ssl_cache_context srv_cache;
	mbedtls_ssl_ticket_context srv_ticket;

	struct tls_stats stats;
};

/* Upstream sessions are remembered for at most this long (tickets usually
 * live 2-12 h; a stale one only costs a full handshake). */
#define TLS_CACHE_TTL (4 * 3600)

/* Chains longer than this are not cached (mbed TLS itself stops at
 * MBEDTLS_X509_MAX_INTERMEDIATE_CA + 2). */
#define TLS_CHAIN_MAX 10

const char *
tls_strerror(int err, char *buf, size_t len)
{
	mbedtls_strerror(err, buf, len);
	return buf;
}

static int
load_ca(struct tls_ctx *t, const struct cfg *cfg, char *err, size_t errsz)
{
	int rc, loaded = 0;
	char eb[128];

	if (cfg->ca_file != NULL) {
		rc = mbedtls_x509_crt_parse_file(&t->ca, cfg->ca_file);
		/* rc > 0 = some certificates in the bundle failed to parse:
		 * system bundles carry a few exotic ones; keep the rest. */
		if (rc < 0) {
			snprintf(err, errsz, "tls.ca_file %s: %s", cfg->ca_file,
			         tls_strerror(rc, eb, sizeof(eb)));
			return -1;
		}
		loaded = 1;
	}
	if (cfg->ca_path != NULL) {
		rc = mbedtls_x509_crt_parse_path(&t->ca, cfg->ca_path);
		if (rc < 0) {
			snprintf(err, errsz, "tls.ca_path %s: %s", cfg->ca_path,
			         tls_strerror(rc, eb, sizeof(eb)));
			return -1;
		}
		loaded = 1;
	}
	if (!loaded) {
		snprintf(err, errsz, "tls: no CA bundle configured");
		return -1;
	}
	return 0;
}

static void
conf_versions(mbedtls_ssl_config *c, const struct cfg *cfg)
{
	/* RFC 8461 §4.2 / RFC 8996: nothing below TLS 1.2. */
	mbedtls_ssl_conf_min_tls_version(c, cfg->tls_min_version >= 13
	                                            ? MBEDTLS_SSL_VERSION_TLS1_3
	                                            : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(c, MBEDTLS_SSL_VERSION_TLS1_3);
}

/*
 * Key exchange groups, P-256 first: the TLS 1.3 ClientHello carries a key
 * share for the first one only. mbed TLS's own order starts with X25519,
 * but its P-256 has a precomputed table for key generation and costs about
 * a quarter less CPU per exchange (measured: 11.4 M instructions against
 * 15.5 M). Both are what servers expect; X25519 stays offered second, so
 * a server that insists on it answers with a HelloRetryRequest.
 */
static const uint16_t client_groups[] = {
#if defined(MBEDTLS_ECP_HAVE_SECP256R1)
        MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_HAVE_CURVE25519)
        MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
#endif
#if defined(MBEDTLS_ECP_HAVE_SECP384R1)
        MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
#endif
#if defined(MBEDTLS_ECP_HAVE_CURVE448)
        MBEDTLS_SSL_IANA_TLS_GROUP_X448,
#endif
#if defined(MBEDTLS_ECP_HAVE_SECP521R1)
        MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
#endif
#if defined(PSA_WANT_ALG_FFDH)
        MBEDTLS_SSL_IANA_TLS_GROUP_FFDHE2048, MBEDTLS_SSL_IANA_TLS_GROUP_FFDHE3072,
#endif
        MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};

/*
 * No certificate configured for the client-facing STARTTLS: make a
 * self-signed P-256 one for this process. Legacy clients that encrypt
 * opportunistically don't verify it; it protects the local leg from
 * passive capture only, which is all it claims.
 */
static int
self_signed(struct tls_ctx *t, char *err, size_t errsz)
{
	mbedtls_x509write_cert w;
	unsigned char serial[16], pem[4096];
	char eb[128];
	int rc;

	mbedtls_x509write_crt_init(&w);
	if ((rc = mbedtls_pk_setup(&t->srv_key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) !=
	            0 ||
	    (rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(t->srv_key),
	                              mbedtls_ctr_drbg_random, &t->drbg)) != 0 ||
	    (rc = mbedtls_ctr_drbg_random(&t->drbg, serial, sizeof(serial))) != 0)
		goto fail;
	serial[0] &= 0x7f; /* a positive INTEGER */
	serial[0] |= 0x01;
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &t->srv_key);
	mbedtls_x509write_crt_set_issuer_key(&w, &t->srv_key);
	if ((rc = mbedtls_x509write_crt_set_subject_name(&w, "CN=stsproxy")) != 0 ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&w, "CN=stsproxy")) != 0 ||
	    (rc = mbedtls_x509write_crt_set_serial_raw(&w, serial, sizeof(serial))) != 0 ||
	    (rc = mbedtls_x509write_crt_set_validity(&w, "20250101000000", "20450101000000")) !=
	            0 ||
	    (rc = mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), mbedtls_ctr_drbg_random,
	                                    &t->drbg)) != 0 ||
	    (rc = mbedtls_x509_crt_parse(&t->srv_cert, pem, strlen((char *)pem) + 1)) != 0)
		goto fail;
	mbedtls_x509write_crt_free(&w);
	log_notice("tls: no client_cert configured, using a self-signed certificate for the "
	           "client side");
	return 0;
fail:
	mbedtls_x509write_crt_free(&w);
	snprintf(err, errsz, "tls: self-signed certificate: %s", tls_strerror(rc, eb, sizeof(eb)));
	return -1;
}

static int
setup_server(struct tls_ctx *t, const struct cfg *cfg, char *err, size_t errsz)
{
	char eb[128];
	int rc;

	mbedtls_x509_crt_init(&t->srv_cert);
	mbedtls_pk_init(&t->srv_key);
	mbedtls_ssl_cache_init(&t->srv_cache);
	mbedtls_ssl_ticket_init(&t->srv_ticket);
	mbedtls_ssl_config_init(&t->server);
	t->server_on = 1;
	if (!cfg->client_tls)
		return 0;
	if (cfg->client_cert == NULL || cfg->client_key == NULL) {
		if (self_signed(t, err, errsz) == -1)
			return -1;
	} else {
		if ((rc = mbedtls_x509_crt_parse_file(&t->srv_cert, cfg->client_cert)) != 0) {
			snprintf(err, errsz, "tls.client_cert %s: %s", cfg->client_cert,
			         tls_strerror(rc, eb, sizeof(eb)));
			return -1;
		}
		if ((rc = mbedtls_pk_parse_keyfile(&t->srv_key, cfg->client_key, NULL,
		                                   mbedtls_ctr_drbg_random, &t->drbg)) != 0) {
			snprintf(err, errsz, "tls.client_key %s: %s", cfg->client_key,
			         tls_strerror(rc, eb, sizeof(eb)));
			return -1;
		}
	}
	if ((rc = mbedtls_ssl_config_defaults(&t->server, MBEDTLS_SSL_IS_SERVER,
	                                      MBEDTLS_SSL_TRANSPORT_STREAM,
	                                      MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		goto fail;
	conf_versions(&t->server, cfg);
	mbedtls_ssl_conf_rng(&t->server, mbedtls_ctr_drbg_random, &t->drbg);
	mbedtls_ssl_conf_authmode(&t->server, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_session_cache(&t->server, &t->srv_cache, mbedtls_ssl_cache_get,
	                               mbedtls_ssl_cache_set);
	if ((rc = mbedtls_ssl_ticket_setup(&t->srv_ticket, mbedtls_ctr_drbg_random, &t->drbg,
	                                   MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0)
		goto fail;
	mbedtls_ssl_conf_session_tickets_cb(&t->server, mbedtls_ssl_ticket_write,
	                                    mbedtls_ssl_ticket_parse, &t->srv_ticket);
	if ((rc = mbedtls_ssl_conf_own_cert(&t->server, &t->srv_cert, &t->srv_key)) != 0)
		goto fail;
	t->server_on = 2;
	return 0;
fail:
	snprintf(err, errsz, "tls: server setup: %s", tls_strerror(rc, eb, sizeof(eb)));
	return -1;
}

struct tls_ctx *
tls_new(const struct cfg *cfg, char *err, size_t errsz)
{
	static const char pers[] = "stsproxy";
	struct tls_ctx *t;
	char eb[128];
	int rc;
	psa_status_t ps;

	/* TLS 1.3 in mbed TLS 3.6 runs on PSA crypto, which must be initialised first. */
	if ((ps = psa_crypto_init()) != PSA_SUCCESS) {
		snprintf(err, errsz, "tls: psa_crypto_init failed (%d)", (int)ps);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errsz, "tls: %s", strerror(errno));
		return NULL;
	}
	mbedtls_entropy_init(&t->entropy);
	mbedtls_ctr_drbg_init(&t->drbg);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_ssl_config_init(&t->client);
	if ((rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
	                                (const unsigned char *)pers, sizeof(pers) - 1)) != 0) {
		snprintf(err, errsz, "tls: rng: %s", tls_strerror(rc, eb, sizeof(eb)));
		goto fail;
	}
	if (load_ca(t, cfg, err, errsz) == -1)
		goto fail;
	if ((rc = mbedtls_ssl_config_defaults(&t->client, MBEDTLS_SSL_IS_CLIENT,
	                                      MBEDTLS_SSL_TRANSPORT_STREAM,
	                                      MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		snprintf(err, errsz, "tls: client config: %s", tls_strerror(rc, eb, sizeof(eb)));
		goto fail;
	}
	conf_versions(&t->client, cfg);
	mbedtls_ssl_conf_rng(&t->client, mbedtls_ctr_drbg_random, &t->drbg);
	mbedtls_ssl_conf_ca_chain(&t->client, &t->ca, NULL);
	/* The chain is checked by tls_verify_peer() (see the top of this file). */
	mbedtls_ssl_conf_authmode(&t->client, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_groups(&t->client, client_groups);
	/* tls.verified_chains (default 512: a gateway talks to a few hundred
	 * MX hosts that matter; a miss costs one chain check) */
	if ((t->verified = verifycache_new(cfg->tls_verified_chains)) == NULL) {
		snprintf(err, errsz, "tls: verification cache: %s", strerror(errno));
		goto fail;
	}
	t->resumption = cfg->tls_resumption;
	mbedtls_ssl_conf_session_tickets(&t->client,
	                                 t->resumption ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
	                                               : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	/* Without this, TLS 1.3 tickets are dropped silently and every
	 * connection pays a full handshake. */
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
	        &t->client, t->resumption ? MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED
	                                  : MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_DISABLED);
	if (t->resumption) {
		t->ncache = cfg->tls_cache_size > 0 ? cfg->tls_cache_size : 1000;
		if ((t->cache = calloc((size_t)t->ncache, sizeof(*t->cache))) == NULL) {
			snprintf(err, errsz, "tls: session cache: %s", strerror(errno));
			goto fail;
		}
	}
	if (setup_server(t, cfg, err, errsz) == -1)
		goto fail;
	return t;
fail:
	tls_free(t);
	return NULL;
}

void
tls_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->ncache; i++)
		if (t->cache[i].used)
			mbedtls_ssl_session_free(&t->cache[i].session);
	free(t->cache);
	verifycache_free(t->verified);
	if (t->server_on) {
		mbedtls_ssl_config_free(&t->server);
		mbedtls_ssl_ticket_free(&t->srv_ticket);
		mbedtls_ssl_cache_free(&t->srv_cache);
		mbedtls_pk_free(&t->srv_key);
		mbedtls_x509_crt_free(&t->srv_cert);
	}
	mbedtls_ssl_config_free(&t->client);
	mbedtls_x509_crt_free(&t->ca);
	mbedtls_ctr_drbg_free(&t->drbg);
	mbedtls_entropy_free(&t->entropy);
	free(t);
}

static struct tls_cached *
cache_find(struct tls_ctx *t, const char *key)
{
	for (int i = 0; i < t->ncache; i++)
		if (t->cache[i].used && strcmp(t->cache[i].key, key) == 0)
			return &t->cache[i];
	return NULL;
}

int
tls_client_setup(struct tls_ctx *t, mbedtls_ssl_context *ssl, const char *name,
                 const char *cache_key)
{
	struct tls_cached *c;

	if (mbedtls_ssl_setup(ssl, &t->client) != 0)
		return -1;
	/* RFC 8461 §7.1: SNI is required; the same name is the one the
	 * certificate is checked against. NULL explicitly opts out of the
	 * name check (mbed TLS 3.6 refuses to verify without a decision). */
	if (mbedtls_ssl_set_hostname(ssl, name) != 0)
		return -1;
	if (t->resumption && cache_key != NULL && (c = cache_find(t, cache_key)) != NULL) {
		if (time(NULL) - c->stored < TLS_CACHE_TTL &&
		    mbedtls_ssl_set_session(ssl, &c->session) == 0)
			return 1;
	}
	return 0;
}

void
tls_client_save(struct tls_ctx *t, mbedtls_ssl_context *ssl, const char *cache_key)
{
	struct tls_cached *c, *oldest = NULL;
	mbedtls_ssl_session fresh;

	if (!t->resumption || cache_key == NULL || t->ncache == 0)
		return;
	/* Export first: under TLS 1.3 there is nothing to export until the
	 * server's ticket arrives, and a failed export must not throw away
	 * the entry we already have. */
	mbedtls_ssl_session_init(&fresh);
	if (mbedtls_ssl_get_session(ssl, &fresh) != 0) {
		mbedtls_ssl_session_free(&fresh);
		return;
	}
	if ((c = cache_find(t, cache_key)) == NULL) {
		for (int i = 0; i < t->ncache; i++) {
			if (!t->cache[i].used) {
				c = &t->cache[i];
				break;
			}
			if (oldest == NULL || t->cache[i].stored < oldest->stored)
				oldest = &t->cache[i];
		}
		if (c == NULL)
			c = oldest;
	}
	if (c->used)
		mbedtls_ssl_session_free(&c->session);
	c->session = fresh; /* ownership moves into the cache */
	snprintf(c->key, sizeof(c->key), "%s", cache_key);
	c->stored = time(NULL);
	c->used = 1;
}

int
tls_server_enabled(const struct tls_ctx *t)
{
	return t->server_on == 2;
}

int
tls_server_setup(struct tls_ctx *t, mbedtls_ssl_context *ssl)
{
	if (!tls_server_enabled(t))
		return -1;
	return mbedtls_ssl_setup(ssl, &t->server) == 0 ? 0 : -1;
}

/* Where every certificate of the verified path is valid (x509 times are UTC). */
struct tls_window {
	time_t not_before, not_after;
};

static time_t
x509_time(const mbedtls_x509_time *x)
{
	struct tm tm = {
	        .tm_year = x->year - 1900,
	        .tm_mon = x->mon - 1,
	        .tm_mday = x->day,
	        .tm_hour = x->hour,
	        .tm_min = x->min,
	        .tm_sec = x->sec,
	};

	return timegm(&tm);
}

/* mbed TLS calls this for each certificate of the path it built, trust
 * anchor included. */
static int
note_window(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct tls_window *w = arg;
	time_t from = x509_time(&crt->valid_from), to = x509_time(&crt->valid_to);

	(void)depth;
	(void)flags;
	if (from > w->not_before)
		w->not_before = from;
	if (to < w->not_after)
		w->not_after = to;
	return 0;
}

/* Digest of what a verdict depends on: the name and the chain as sent. */
static int
chain_key(const mbedtls_x509_crt *chain, const char *name, unsigned char key[VERIFYCACHE_KEYLEN])
{
	mbedtls_sha256_context h;
	unsigned char len[4];
	int n = 0, rc = 0;

	mbedtls_sha256_init(&h);
	rc |= mbedtls_sha256_starts(&h, 0);
	for (const char *p = name != NULL ? name : ""; *p != '\0'; p++) {
		unsigned char c = (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		rc |= mbedtls_sha256_update(&h, &c, 1);
	}
	rc |= mbedtls_sha256_update(&h, (const unsigned char *)"", 1); /* name ends */
	for (const mbedtls_x509_crt *c = chain; c != NULL && c->raw.len > 0; c = c->next) {
		if (++n > TLS_CHAIN_MAX) {
			rc = -1;
			break;
		}
		len[0] = (unsigned char)(c->raw.len >> 24);
		len[1] = (unsigned char)(c->raw.len >> 16);
		len[2] = (unsigned char)(c->raw.len >> 8);
		len[3] = (unsigned char)c->raw.len;
		rc |= mbedtls_sha256_update(&h, len, sizeof(len));
		rc |= mbedtls_sha256_update(&h, c->raw.p, c->raw.len);
	}
	rc |= mbedtls_sha256_finish(&h, key);
	mbedtls_sha256_free(&h);
	return rc == 0 ? 0 : -1;
}

uint32_t
tls_verify_chain(struct tls_ctx *t, const mbedtls_x509_crt *chain, const char *name,
                 unsigned int key_usage)
{
	unsigned char key[VERIFYCACHE_KEYLEN];
	struct tls_window w = {.not_before = 0,
	                       .not_after = (time_t)(sizeof(time_t) == 8 ? INT64_MAX : INT32_MAX)};
	time_t now = time(NULL);
	uint32_t flags = 0, usage = 0;
	int cacheable;

	if (chain == NULL || chain->raw.len == 0)
		return MBEDTLS_X509_BADCERT_MISSING;
	/* What mbed TLS checks after the chain in its own verification: the
	 * leaf may be used by a TLS server for this key exchange. Depends on
	 * the connection, so it is not part of the cached verdict. */
	if (key_usage != 0 && mbedtls_x509_crt_check_key_usage(chain, key_usage) != 0)
		usage |= MBEDTLS_X509_BADCERT_KEY_USAGE;
	if (mbedtls_x509_crt_check_extended_key_usage(
	            chain, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0)
		usage |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;

	cacheable = chain_key(chain, name, key) == 0;
	if (cacheable && verifycache_hit(t->verified, key, now)) {
		t->stats.verify_cached++;
		return usage;
	}
	t->stats.verify_full++;
	if (mbedtls_x509_crt_verify((mbedtls_x509_crt *)chain, &t->ca, NULL, name, &flags,
	                            note_window, &w) != 0 &&
	    flags == 0)
		flags = MBEDTLS_X509_BADCERT_OTHER;
	if (flags == 0 && cacheable)
		verifycache_put(t->verified, key, w.not_before, w.not_after, now);
	return flags | usage;
}

/* Key usage the server's certificate needs for the negotiated key
 * exchange (RFC 5246 §7.4.2, RFC 8446 §4.4.2.2). */
static unsigned int
server_key_usage(const mbedtls_ssl_context *ssl)
{
	const char *suite = mbedtls_ssl_get_ciphersuite(ssl);

	if (mbedtls_ssl_get_version_number(ssl) == MBEDTLS_SSL_VERSION_TLS1_3 || suite == NULL)
		return MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
	if (strncmp(suite, "TLS-RSA-", 8) == 0) /* RSA key transport */
		return MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
	if (strncmp(suite, "TLS-ECDH-", 9) == 0) /* static ECDH */
		return MBEDTLS_X509_KU_KEY_AGREEMENT;
	return MBEDTLS_X509_KU_DIGITAL_SIGNATURE; /* (EC)DHE: the key signs */
}

uint32_t
tls_verify_peer(struct tls_ctx *t, const mbedtls_ssl_context *ssl, const char *name)
{
	return tls_verify_chain(t, mbedtls_ssl_get_peer_cert(ssl), name, server_key_usage(ssl));
}

int
tls_peer_fingerprint(const mbedtls_ssl_context *ssl, char *out, size_t outsz)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(ssl);
	unsigned char md[32];

	if (peer == NULL || outsz < 65)
		return -1;
	if (mbedtls_sha256(peer->raw.p, peer->raw.len, md, 0) != 0)
		return -1;
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

void
tls_verify_findings(uint32_t flags, int named, struct detect_findings *out)
{
	enum detect_tls_kind kind;

	if (flags == 0)
		return;
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		kind = DETECT_TLS_UNTRUSTED;
	else if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
		kind = DETECT_TLS_EXPIRED;
	else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
		kind = DETECT_TLS_NAME;
	else
		kind = DETECT_TLS_INVALID;
	if (kind != DETECT_TLS_NAME || named)
		detect_tls_failure(kind, tls_verify_reason(flags), out);
}

void
tls_handshake_findings(int tls_err, int alert, const char *detail, struct detect_findings *out)
{
	/* RFC 8446 §6.2 protocol_version (70): the server refused every
	 * version we offer (1.2 and 1.3; RFC 8996 retired the older ones). */
	int version = tls_err == MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION ||
	              (tls_err == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE &&
	               alert == MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION);

	detect_tls_failure(version ? DETECT_TLS_VERSION : DETECT_TLS_HANDSHAKE, detail, out);
}

const char *
tls_verify_reason(uint32_t flags)
{
	if (flags == 0)
		return "ok";
	if (flags & MBEDTLS_X509_BADCERT_MISSING)
		return "no-certificate";
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		return "untrusted";
	if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
		return "expired";
	if (flags & MBEDTLS_X509_BADCERT_FUTURE)
		return "not-yet-valid";
	if (flags & MBEDTLS_X509_BADCERT_REVOKED)
		return "revoked";
	if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
		return "name-mismatch";
	if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK |
	             MBEDTLS_X509_BADCERT_BAD_KEY))
		return "weak-certificate";
	return "invalid";
}

const struct tls_stats *
tls_stats(const struct tls_ctx *t)
{
	return &t->stats;
}

void
tls_count_handshake(struct tls_ctx *t, int resumed)
{
	t->stats.handshakes++;
	if (resumed)
		t->stats.resumed++;
}
