/*
 * tls: mbed TLS 3.6 configuration shared by all sessions.
 *
 * Owns the RNG, the CA chain, the client configuration toward servers
 * (TLS 1.2 and 1.3; the certificate is checked after the handshake by
 * tls_verify_peer() and the verdict left to the policy), the server
 * configuration for the optional STARTTLS offered to legacy clients, the
 * chains already verified (verifycache.h) and the cache of upstream
 * TLS sessions used for resumption toward repeat MX hosts (a full
 * handshake costs ~2 ms of CPU with mbed TLS; resumption avoids the
 * public-key operations).
 */
#ifndef STSPROXY_TLS_H
#define STSPROXY_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

struct cfg;
struct tls_ctx;

/* Create from cfg (ca_file/ca_path, tls_min_version, resumption, client TLS). */
struct tls_ctx *tls_new(const struct cfg *cfg, char *err, size_t errsz);
void tls_free(struct tls_ctx *t);

/* Set up ssl as a client toward a server. name may be NULL (no SNI, no
 * name check). cache_key identifies the server for resumption (name and
 * address); NULL disables resumption for this connection. Returns 1 when
 * a cached session is offered for resumption, 0 when not, -1 on error. */
int tls_client_setup(struct tls_ctx *t, mbedtls_ssl_context *ssl, const char *name,
                     const char *cache_key);
/* Remember ssl's session under cache_key (after handshake or a new ticket). */
void tls_client_save(struct tls_ctx *t, mbedtls_ssl_context *ssl, const char *cache_key);

/* Set up ssl as a server toward a legacy client; -1 if client TLS is off. */
int tls_server_setup(struct tls_ctx *t, mbedtls_ssl_context *ssl);
int tls_server_enabled(const struct tls_ctx *t);

/* Verify the peer chain of an established ssl against our CAs for name
 * (NULL = chain only), plus the key usage the negotiated key exchange
 * needs. Returns mbed TLS verify flags, 0 = valid. The handshake itself
 * does not check the chain: call this before trusting the connection.
 * A chain without certificate (a resumed session whose certificate was
 * not kept) gives MBEDTLS_X509_BADCERT_MISSING. */
uint32_t tls_verify_peer(struct tls_ctx *t, const mbedtls_ssl_context *ssl, const char *name);
/* The same for a chain (leaf first). key_usage: MBEDTLS_X509_KU_* bits
 * the leaf must allow, 0 = not checked; serverAuth is always required
 * when the leaf restricts its extended key usage. Chains verified
 * without any flag are remembered for name (verifycache.h). */
uint32_t tls_verify_chain(struct tls_ctx *t, const mbedtls_x509_crt *chain, const char *name,
                          unsigned int key_usage);

/* SHA-256 of the peer's leaf certificate as lower-case hex (65 bytes). */
int tls_peer_fingerprint(const mbedtls_ssl_context *ssl, char *out, size_t outsz);

struct detect_findings;
/* Record a failed certificate check (flags != 0) as a detect finding of
 * the matching kind. Without a checked name (named = 0) a name mismatch
 * means nothing and is not reported. */
void tls_verify_findings(uint32_t flags, int named, struct detect_findings *out);

/* Record a failed handshake as a detect finding: a version refusal (our
 * ClientHello offers 1.2+ and the peer wants less) is told apart from
 * other failures. tls_err/alert as kept in struct io. */
void tls_handshake_findings(int tls_err, int alert, const char *detail,
                            struct detect_findings *out);

/* Short text for verify flags: "ok", "expired", "untrusted", "name-mismatch", ... */
const char *tls_verify_reason(uint32_t flags);
/* mbed TLS error code as text. */
const char *tls_strerror(int err, char *buf, size_t len);

/* Statistics for the benchmark and metrics. */
struct tls_stats {
	unsigned long handshakes;
	unsigned long resumed;
	unsigned long verify_full;   /* chain checked with signatures */
	unsigned long verify_cached; /* chain already verified for that name */
};
const struct tls_stats *tls_stats(const struct tls_ctx *t);
void tls_count_handshake(struct tls_ctx *t, int resumed);

#endif
