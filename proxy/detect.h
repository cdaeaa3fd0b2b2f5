/*
 * detect: classify what an SMTP server (or the path to it) did into named
 * security findings: STARTTLS stripped or garbled, masked banners, EHLO
 * refused or rewritten, STARTTLS refused, plaintext injected around the TLS
 * switch, TLS failures, and downgrades against what we remember of an MX.
 *
 * Pure code: no I/O, no logging, no allocation, no clock. The relay feeds
 * each reply to the matching detect_* function, calls detect_combine() once
 * the greeting/EHLO phase (and later the TLS phase) is over, and emits every
 * finding it has not emitted yet as one JSON event line (docs/events.md).
 *
 * Findings accumulate in one struct detect_findings per session
 * (detect_init() first). Each detect_* call adds at most one finding per
 * event (with a count when several lines match), so a hostile reply of 256
 * odd lines still yields a handful of findings. When the array is full a
 * new finding replaces the least severe one if it is more severe (counted
 * in dropped), so an ALERT is never lost to a pile of NOTICEs.
 */
#ifndef STSPROXY_DETECT_H
#define STSPROXY_DETECT_H

#include <stddef.h>

#include "smtp_reply.h"

#define DETECT_MAX          16  /* findings kept per session */
#define DETECT_EVIDENCE_MAX 200 /* bytes of escaped evidence, without the NUL */

/* Ordered: a higher value is more severe. */
enum detect_severity {
	DETECT_SEV_INFO = 0, /* worth counting, not worth reading */
	DETECT_SEV_NOTICE,   /* odd; explains something, harmless alone */
	DETECT_SEV_WARNING,  /* TLS was or may be lost; look at it */
	DETECT_SEV_ALERT,    /* a downgrade or injection most likely happened */
};

/* The catalogue (docs/events.md); names are stable and part of the log schema. */
enum detect_event {
	DETECT_EV_NONE = 0,
	DETECT_EV_STARTTLS_NOT_ADVERTISED,
	DETECT_EV_STARTTLS_GARBLED,
	DETECT_EV_EHLO_EMPTY_LINE,
	DETECT_EV_EHLO_MALFORMED_LINE,
	DETECT_EV_EHLO_KEYWORD_MASKED,
	DETECT_EV_EHLO_STARTTLS_IN_GREETING_LINE,
	DETECT_EV_BANNER_MASKED,
	DETECT_EV_EHLO_REFUSED,
	DETECT_EV_EHLO_COMMAND_REWRITTEN,
	DETECT_EV_STARTTLS_REFUSED,
	DETECT_EV_STARTTLS_REJECTED_AFTER_ADVERTISED,
	DETECT_EV_STARTTLS_REPLY_PIPELINED,
	DETECT_EV_PLAINTEXT_INJECTION,
	DETECT_EV_TLS_HANDSHAKE_FAILED,
	DETECT_EV_TLS_VERSION_TOO_LOW,
	DETECT_EV_TLS_CERT_UNTRUSTED,
	DETECT_EV_TLS_CERT_NAME_MISMATCH,
	DETECT_EV_TLS_CERT_EXPIRED,
	DETECT_EV_TLS_CERT_INVALID,
	DETECT_EV_TLS_CERT_CHANGED,
	DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY,
	DETECT_EV_STARTTLS_STRIPPED,
	DETECT_EV_COUNT
};

/* What went wrong with TLS, for detect_tls_failure(). */
enum detect_tls_kind {
	DETECT_TLS_HANDSHAKE = 1, /* handshake failed or the peer closed during it */
	DETECT_TLS_VERSION,       /* negotiated (or offered only) a version below TLS 1.2 */
	DETECT_TLS_UNTRUSTED,     /* chain does not lead to a trusted CA */
	DETECT_TLS_NAME,          /* certificate does not name the MX host */
	DETECT_TLS_EXPIRED,       /* certificate expired or not yet valid */
	DETECT_TLS_CHANGED,       /* fingerprint differs from the one remembered (TOFU) */
	DETECT_TLS_INVALID,       /* rejected otherwise: revoked, weak key or hash, missing */
};

/* Where injected plaintext came from, for detect_injection(). */
enum detect_direction {
	DETECT_FROM_SERVER = 1, /* upstream: bytes after the server's 220 to STARTTLS
				   (starttls_reply_pipelined) */
	DETECT_FROM_CLIENT,     /* downstream: bytes after the client's STARTTLS command
				   (plaintext_injection) */
};

struct detect_finding {
	enum detect_event event;
	enum detect_severity severity;
	/* Why detect_combine() raised severity above the catalogue default:
	 * another finding of the session (DETECT_EV_NONE if none) and/or
	 * what TOFU memory says about the MX. */
	enum detect_event escalated_by;
	int escalated_by_memory;
	int line;     /* 0-based index of the evidence line in its reply, -1 if none */
	int code;     /* reply code of the evidence reply, 0 if none */
	int count;    /* lines (or occurrences) that matched; evidence is the first */
	size_t bytes; /* starttls_reply_pipelined, plaintext_injection: bytes seen */
	enum detect_direction direction; /* those two events: which side sent them, else 0 */
	long long remembered; /* starttls_downgrade_vs_memory: last time STARTTLS was seen
				 (seconds since the epoch, 0 if unknown) */
	int truncated;        /* evidence was cut at DETECT_EVIDENCE_MAX */
	int emitted;          /* for the caller: set it once logged; detect only zeroes it */
	/*
	 * The offending line (or detail) as printable ASCII, NUL-terminated:
	 * every byte outside 0x20..0x7e and every '%', '"' and '\\' is written
	 * as %XX (upper-case hex). Any JSON or text escaper leaves it unchanged,
	 * so it can go through jsonw_str() without double escaping, and it
	 * still decodes to the exact bytes received.
	 */
	char evidence[DETECT_EVIDENCE_MAX + 1];
};

struct detect_findings {
	int n;       /* findings in f[] */
	int dropped; /* findings lost (or replaced) because f[] was full */
	struct detect_finding f[DETECT_MAX];
};

/* What TOFU memory says about the MX, for detect_combine(). */
struct detect_memory {
	int starttls_offered;   /* the MX advertised STARTTLS before (the relay may age this,
				 see tofu_offered_within()) */
	int tls_ok_last;        /* the last TLS session with this MX succeeded */
	long long last_offered; /* when STARTTLS was last seen (epoch seconds), 0 if unknown */
};

void detect_init(struct detect_findings *out);

/*
 * The server greeting (a complete or partial reply). banner_masked when a
 * line's text is mostly '*' (Cisco PIX/ASA "mask-banner").
 */
void detect_greeting(const struct smtp_reply *r, struct detect_findings *out);

/*
 * A greeting line that smtp_reply_feed() refused (PIX masks can eat the
 * space after "220"): banner_masked if the line is mostly '*'. Returns 1 if
 * it was reported, else 0.
 */
int detect_greeting_line(const char *line, size_t len, struct detect_findings *out);

/*
 * The reply to our plaintext EHLO (never the one after TLS: servers rightly
 * stop advertising STARTTLS once it is in use). Returns 1 if STARTTLS is truly advertised (on a
 * capability line, i.e. not the first line: the same rule as ehlo_parse()),
 * else 0. Adds starttls_not_advertised when it is not, plus the evidence
 * of why: starttls_garbled, ehlo_empty_line, ehlo_malformed_line,
 * ehlo_keyword_masked, ehlo_starttls_in_greeting_line,
 * ehlo_command_rewritten. A non-2xx reply is handed to
 * detect_ehlo_refused().
 */
int detect_ehlo(const struct smtp_reply *r, struct detect_findings *out);

/*
 * EHLO answered with 4xx/5xx (the relay falls back to HELO): ehlo_refused,
 * starttls_not_advertised, and ehlo_command_rewritten when the reply echoes
 * a command masked on the way ("XXXX").
 */
void detect_ehlo_refused(const struct smtp_reply *r, struct detect_findings *out);

/*
 * The reply to STARTTLS. advertised: whether the EHLO reply advertised it.
 * trailing_bytes: bytes the server sent after this reply and before our
 * handshake began (must be 0; RFC 3207 §4.2 / CVE-2011-0411 class).
 */
void detect_starttls_reply(const struct smtp_reply *r, int advertised, size_t trailing_bytes,
                           struct detect_findings *out);

/* A TLS failure toward the server; detail (may be NULL) becomes the evidence. */
/*
 * A 220 to a STARTTLS that a successful (2xx) EHLO reply did not offer:
 * starttls_stripped (ALERT). Only the caller knows an EHLO reply was seen
 * (after HELO nothing could have been offered), so it decides to call.
 */
void detect_starttls_stripped(const struct smtp_reply *r, struct detect_findings *out);

void detect_tls_failure(enum detect_tls_kind kind, const char *detail, struct detect_findings *out);

/*
 * Plaintext buffered at the moment of the TLS switch: bytes in all, sample
 * (samplelen bytes, may be NULL) as evidence. From the server that is
 * starttls_reply_pipelined (the same event detect_starttls_reply() gives
 * for trailing_bytes; use this one when the bytes are found later than the
 * reply), from the client plaintext_injection. Nothing is added for 0 bytes.
 */
void detect_injection(enum detect_direction dir, size_t bytes, const char *sample, size_t samplelen,
                      struct detect_findings *out);

/*
 * Weigh the findings together: call after the EHLO phase and again after
 * the TLS phase, before emitting. mem may be NULL (no memory).
 *  - starttls_not_advertised becomes ALERT when a corroborating finding
 *    (banner_masked, starttls_garbled, ehlo_empty_line, ehlo_malformed_line,
 *    ehlo_keyword_masked, ehlo_command_rewritten) is present;
 *  - with mem->starttls_offered, starttls_not_advertised becomes ALERT and
 *    starttls_downgrade_vs_memory (ALERT) is added;
 *  - with mem->tls_ok_last, starttls_rejected_after_advertised,
 *    tls_handshake_failed, tls_version_too_low, tls_cert_untrusted,
 *    tls_cert_name_mismatch and tls_cert_invalid go up one severity level
 *    (never tls_cert_expired);
 *  - tls_cert_changed becomes ALERT next to tls_cert_untrusted,
 *    tls_cert_name_mismatch, tls_cert_expired or tls_cert_invalid.
 * Idempotent except for dropped when the array is full.
 */
void detect_combine(struct detect_findings *f, const struct detect_memory *mem);

/* Stable snake_case name of an event ("starttls_garbled"); NULL if out of range. */
const char *detect_event_name(enum detect_event ev);

/* The event named name, DETECT_EV_NONE if none. */
enum detect_event detect_event_by_name(const char *name);

/* Catalogue severity of an event (before detect_combine()). */
enum detect_severity detect_event_severity(enum detect_event ev);

/* "info", "notice", "warning", "alert"; NULL if out of range. */
const char *detect_severity_name(enum detect_severity sev);

/* <syslog.h> level for a severity: LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ALERT. */
int detect_severity_syslog(enum detect_severity sev);

/*
 * Escape len bytes of in as evidence (see struct detect_finding) into out,
 * NUL-terminated, writing at most outsz - 1 characters and never half of a
 * %XX. *truncated (may be NULL) says whether input was left over. Returns
 * the characters written.
 */
size_t detect_escape(const char *in, size_t len, char *out, size_t outsz, int *truncated);

/*
 * The shape predicates, exposed for tests and fuzzing. All take a keyword
 * or text (no reply code) and a length; none reads past len.
 */
/* len >= 4, at most one byte not 'X', 'x' or '*': the ASA/PIX mask shape. */
int detect_keyword_masked(const char *kw, size_t len);
/* A text that is mostly '*' (>= 8 of them, >= 80 % of non-blank bytes). */
int detect_text_masked(const char *text, size_t len);
/* An 8-byte keyword that is not STARTTLS but differs from it (ignoring
 * ASCII case) in 1..3 positions. */
int detect_keyword_near_starttls(const char *kw, size_t len);

#endif
