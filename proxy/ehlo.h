/*
 * ehlo: EHLO reply capabilities (RFC 5321 §4.1.1.1) and the filtered reply
 * stsproxy passes to its client.
 *
 * The first line of a 250 EHLO reply is the server's greeting text, never a
 * capability: "250-STARTTLS" as first line does not advertise STARTTLS.
 * Keywords are matched case-insensitively; parameters follow a space.
 */
#ifndef STSPROXY_EHLO_H
#define STSPROXY_EHLO_H

#include <stdint.h>
#include <stddef.h>

#include "smtp_reply.h"

enum ehlo_cap {
	EHLO_STARTTLS = 1u << 0,
	EHLO_PIPELINING = 1u << 1,
	EHLO_SIZE = 1u << 2,
	EHLO_8BITMIME = 1u << 3,
	EHLO_SMTPUTF8 = 1u << 4,
	EHLO_DSN = 1u << 5,
	EHLO_ENHANCEDSTATUSCODES = 1u << 6,
	EHLO_CHUNKING = 1u << 7,
	EHLO_BINARYMIME = 1u << 8,
	EHLO_AUTH = 1u << 9,
	EHLO_REQUIRETLS = 1u << 10,
	EHLO_XCLIENT = 1u << 11, /* and every other X* keyword but XFORWARD: site-internal */
	EHLO_XFORWARD = 1u << 12,
	EHLO_ETRN = 1u << 13,
	EHLO_VRFY = 1u << 14,
	EHLO_DELIVERBY = 1u << 15,
	EHLO_MTRK = 1u << 16,
	EHLO_UNKNOWN = 1u << 30, /* at least one keyword not in this list; bit 30: ISO C
	                            enumerators must fit an int (-Wpedantic) */
};

struct ehlo_caps {
	uint32_t caps;          /* enum ehlo_cap bits */
	unsigned long size_max; /* SIZE parameter, 0 if absent or none */
	/* Every line after the first is counted in exactly one of these: */
	int nkeywords;  /* capability lines with a well-formed keyword (or AUTH=) */
	int nmalformed; /* lines whose keyword breaks RFC 5321 ehlo-keyword syntax */
	int nempty;     /* capability lines with empty text */
};

/*
 * Parse the capabilities of a complete 250 reply. Returns 0, or -1 if r is not
 * a complete 2xx reply (caps is zeroed either way). Malformed keywords set
 * EHLO_UNKNOWN; "SIZE n" sets size_max from the first SIZE line (clamped to
 * ULONG_MAX, 0 when the parameter is absent or not all digits).
 */
int ehlo_parse(const struct smtp_reply *r, struct ehlo_caps *caps);

/* The enum ehlo_cap bit of a keyword (case-insensitive), EHLO_UNKNOWN if none or
 * malformed. "AUTH=..." (pre-RFC 2554 form) is EHLO_AUTH. */
uint32_t ehlo_keyword_cap(const char *kw, size_t len);

/*
 * Write the reply stsproxy sends its client: r with every capability line
 * whose keyword is in drop removed, plus a "STARTTLS" line appended when
 * add_starttls is set; continuation markers are rewritten so that only
 * the last line uses "250 ". Lines are CRLF-terminated. The greeting line is
 * always kept; empty capability lines are always dropped; malformed keywords
 * count as EHLO_UNKNOWN; with add_starttls the server's own STARTTLS line is
 * dropped so that exactly one is sent. out is NUL-terminated when there is
 * room (not counted).
 * Returns the number of bytes written, or -1 if out is too small or r is not
 * a complete 2xx reply.
 */
long ehlo_filter(const struct smtp_reply *r, uint32_t drop, int add_starttls, char *out,
                 size_t outsz);

#endif
