/*
 * tofu: what we remember about each MX host across sessions and restarts
 * (trust on first use): whether it ever offered STARTTLS, whether TLS with
 * it last succeeded, and the SHA-256 fingerprint of its certificate. The
 * relay turns an entry into a struct detect_memory so that detect can call
 * "STARTTLS gone from an MX that always had it" a downgrade.
 *
 * Key: the MX host name (lower-case, no trailing dot), or the address
 * literal when there is no name ("192.0.2.1", "[2001:db8::1]").
 *
 * Storage: one line per entry in a text file (format in tofu.c and
 * docs/events.md), written atomically (temporary file, fsync, rename,
 * mode 0600). A damaged file never stops the daemon: bad lines are
 * counted, reported and skipped. The number of entries is bounded; the
 * least recently seen are evicted first.
 *
 * Not thread-safe; one instance per process, used from the event loop.
 */
#ifndef STSPROXY_TOFU_H
#define STSPROXY_TOFU_H

#include <stddef.h>
#include <time.h>

#define TOFU_MAX_ENTRIES 100000 /* default bound */
#define TOFU_KEY_MAX     255    /* bytes of a key */
#define TOFU_FP_HEXLEN   64     /* SHA-256 in hex */

struct tofu;

struct tofu_entry {
	char key[TOFU_KEY_MAX + 1];
	int starttls_offered_ever;
	int tls_ok_last;                      /* the last session that tried TLS succeeded */
	char fingerprint[TOFU_FP_HEXLEN + 1]; /* lower-case hex, "" if none yet */
	time_t first_seen;
	time_t last_seen;
	time_t last_offered; /* last session that saw STARTTLS advertised, 0 = never */
	time_t last_tls_ok;  /* last successful TLS session, 0 = never */
};

enum tofu_tls {
	TOFU_TLS_NOT_TRIED = 0, /* no TLS attempt this session: tls_ok_last unchanged */
	TOFU_TLS_FAILED,        /* tried and failed (handshake or certificate check) */
	TOFU_TLS_OK,            /* handshake done, certificate accepted by the session's policy */
};

/* What one session learned about an MX, for tofu_record(). */
struct tofu_observation {
	const char *key; /* MX name or address literal; normalised by tofu */
	time_t when;
	int starttls_offered; /* STARTTLS advertised on a capability line */
	enum tofu_tls tls;
	const char *fingerprint; /* hex SHA-256 of the leaf certificate (DER), 64 digits,
				    either case; only with TOFU_TLS_OK; may be NULL */
};

/* What tofu_load() found. */
struct tofu_report {
	size_t loaded;       /* entries taken from the file */
	size_t damaged;      /* lines skipped as damaged */
	size_t evicted;      /* entries dropped to stay within the bound */
	long first_bad_line; /* 1-based number of the first damaged line, 0 if none */
	char first_bad_reason[64];
};

/*
 * A new, empty memory. path: the state file, NULL for memory only (then
 * load and save do nothing). max_entries 0 means TOFU_MAX_ENTRIES.
 * NULL on allocation failure.
 */
struct tofu *tofu_new(const char *path, size_t max_entries);

/* NULL-safe. */
void tofu_free(struct tofu *t);

/*
 * Merge the state file into memory (for a key known both ways the entry
 * seen last wins). A missing file is an empty memory. Damaged lines are
 * skipped and counted in rep (may be NULL). Returns 0, or -1 with errno
 * when the file exists but cannot be opened or read; whatever was read
 * before the error is kept. Never fatal to the caller.
 */
int tofu_load(struct tofu *t, struct tofu_report *rep);

/*
 * Write the whole memory atomically: a temporary file in the same
 * directory, mode 0600, fsync, rename over the state file, fsync of the
 * directory (best effort). Returns 0, or -1 with errno; on failure the
 * previous file is left untouched and the temporary file removed.
 */
int tofu_save(struct tofu *t);

/* Copy the entry for key into out. 0 if found, -1 (errno ENOENT or EINVAL) if not. */
int tofu_lookup(const struct tofu *t, const char *key, struct tofu_entry *out);

/*
 * Fold one observation into the entry for obs->key, creating it (and
 * evicting the least recently seen entries when full). Returns 0, or -1
 * with errno EINVAL (bad key or fingerprint; nothing changed) or ENOMEM.
 */
int tofu_record(struct tofu *t, const struct tofu_observation *obs);

/* Entries held. */
size_t tofu_count(const struct tofu *t);

/* Changed since the last successful load or save. */
int tofu_dirty(const struct tofu *t);

/*
 * 1 if e remembers a fingerprint and fp (hex, either case) differs from
 * it; 0 if they match, e has none, or fp is NULL/empty.
 */
int tofu_cert_changed(const struct tofu_entry *e, const char *fp);

/*
 * 1 if e says STARTTLS was offered, at most max_age seconds before now
 * (max_age <= 0: ever). Lets the relay forget an MX that really dropped
 * TLS instead of alerting on it forever.
 */
int tofu_offered_within(const struct tofu_entry *e, time_t now, time_t max_age);

#endif
