/*
 * verifycache: certificate chains already verified for a name.
 *
 * With mbed TLS a P-256 ECDSA verification costs about as much CPU as the
 * rest of a full TLS handshake together; the CA's signature on a server's
 * leaf certificate never changes, yet every full handshake checked it
 * again. This remembers "this exact chain is valid for this name under our
 * CA store" (keyed by a digest of name + chain DER) together with the
 * window in which every certificate of the verified path is valid, so a
 * repeat MX costs only the handshake's own signature (CertificateVerify /
 * ServerKeyExchange), which proves possession of the leaf's key.
 *
 * Only successes are stored. A bounded table, least recently used entry
 * replaced; entries also expire after VERIFYCACHE_TTL so that a later
 * change of the CA store (reload) or of time needs no coordination beyond
 * verifycache_clear().
 */
#ifndef STSPROXY_VERIFYCACHE_H
#define STSPROXY_VERIFYCACHE_H

#include <stddef.h>
#include <time.h>

#define VERIFYCACHE_KEYLEN 32
#define VERIFYCACHE_TTL    (12 * 3600)

struct verifycache;

/* size: number of chains remembered (0 = caching off: every lookup misses). */
struct verifycache *verifycache_new(int size);
void verifycache_free(struct verifycache *vc);
void verifycache_clear(struct verifycache *vc);

/* 1 when key was stored less than VERIFYCACHE_TTL ago and now lies in its
 * validity window [not_before, not_after]; 0 otherwise. An entry found
 * outside its window is dropped. NULL-safe. */
int verifycache_hit(struct verifycache *vc, const unsigned char key[VERIFYCACHE_KEYLEN],
                    time_t now);
/* Remember a successful verification. NULL-safe. */
void verifycache_put(struct verifycache *vc, const unsigned char key[VERIFYCACHE_KEYLEN],
                     time_t not_before, time_t not_after, time_t now);

#endif
