/*
 * detect: the downgrade-signal classifier (see detect.h).
 *
 * Owns nothing but the caller's struct detect_findings. Contracts: pure (no
 * I/O, clock, allocation or global state); every input, however hostile,
 * ends in at most DETECT_MAX findings whose evidence is NUL-terminated,
 * printable ASCII and at most DETECT_EVIDENCE_MAX bytes; every event name
 * comes from the catalogue below, which docs/events.md documents.
 *
 * The guiding rule is not to cry wolf: a server that simply has no
 * STARTTLS is INFO; only shapes that a real MTA does not produce (masks,
 * deleted lines, a STARTTLS-like keyword where STARTTLS is missing) or a
 * contradiction with memory raise that to ALERT.
 */
#include "detect.h"

#include <string.h>
#include <syslog.h>

#include "ehlo.h"

struct detect_cat {
	const char *name;
	enum detect_severity sev;
	/* A finding that makes a missing STARTTLS look deleted rather than
	 * never offered: only shapes no real MTA emits on its own. */
	int corroborates;
};

/*
 * Severity choices, each for a reason:
 *  - ehlo_starttls_in_greeting_line: Cisco documents real servers that
 *    print "250-STARTTLS" before their name: a broken server, not a box
 *    on the path, so it does not corroborate;
 *  - ehlo_refused: a HELO-only server is ancient but real;
 *  - plaintext_injection (client side): the relay discards the bytes, so
 *    the attack failed; what is left to say is that someone tried;
 *  - tls_cert_untrusted / _name_mismatch / _expired / _invalid: many MX
 *    hosts present self-signed or mismatched certificates (RFC 7672 §1.3):
 *    alone, a fact about the server, not an attack;
 *  - tls_cert_changed: certificates rotate every few months.
 */
static const struct detect_cat detect_cat[DETECT_EV_COUNT] = {
        [DETECT_EV_NONE] = {"none", DETECT_SEV_INFO, 0},
        [DETECT_EV_STARTTLS_NOT_ADVERTISED] = {"starttls_not_advertised", DETECT_SEV_INFO, 0},
        [DETECT_EV_STARTTLS_GARBLED] = {"starttls_garbled", DETECT_SEV_ALERT, 1},
        [DETECT_EV_EHLO_EMPTY_LINE] = {"ehlo_empty_line", DETECT_SEV_NOTICE, 1},
        [DETECT_EV_EHLO_MALFORMED_LINE] = {"ehlo_malformed_line", DETECT_SEV_NOTICE, 1},
        [DETECT_EV_EHLO_KEYWORD_MASKED] = {"ehlo_keyword_masked", DETECT_SEV_NOTICE, 1},
        [DETECT_EV_EHLO_STARTTLS_IN_GREETING_LINE] = {"ehlo_starttls_in_greeting_line",
                                                      DETECT_SEV_NOTICE, 0},
        [DETECT_EV_BANNER_MASKED] = {"banner_masked", DETECT_SEV_NOTICE, 1},
        [DETECT_EV_EHLO_REFUSED] = {"ehlo_refused", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_EHLO_COMMAND_REWRITTEN] = {"ehlo_command_rewritten", DETECT_SEV_WARNING, 1},
        [DETECT_EV_STARTTLS_REFUSED] = {"starttls_refused", DETECT_SEV_INFO, 0},
        [DETECT_EV_STARTTLS_REJECTED_AFTER_ADVERTISED] = {"starttls_rejected_after_advertised",
                                                          DETECT_SEV_WARNING, 0},
        [DETECT_EV_STARTTLS_REPLY_PIPELINED] = {"starttls_reply_pipelined", DETECT_SEV_ALERT, 0},
        [DETECT_EV_PLAINTEXT_INJECTION] = {"plaintext_injection", DETECT_SEV_WARNING, 0},
        [DETECT_EV_TLS_HANDSHAKE_FAILED] = {"tls_handshake_failed", DETECT_SEV_WARNING, 0},
        [DETECT_EV_TLS_VERSION_TOO_LOW] = {"tls_version_too_low", DETECT_SEV_WARNING, 0},
        [DETECT_EV_TLS_CERT_UNTRUSTED] = {"tls_cert_untrusted", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_TLS_CERT_NAME_MISMATCH] = {"tls_cert_name_mismatch", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_TLS_CERT_EXPIRED] = {"tls_cert_expired", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_TLS_CERT_INVALID] = {"tls_cert_invalid", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_TLS_CERT_CHANGED] = {"tls_cert_changed", DETECT_SEV_NOTICE, 0},
        [DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY] = {"starttls_downgrade_vs_memory",
                                                    DETECT_SEV_ALERT, 0},
        [DETECT_EV_STARTTLS_STRIPPED] = {"starttls_stripped", DETECT_SEV_ALERT, 1},
};

static int
detect_ev_ok(enum detect_event ev)
{
	return (int)ev > (int)DETECT_EV_NONE && (int)ev < (int)DETECT_EV_COUNT;
}

const char *
detect_event_name(enum detect_event ev)
{
	if (!detect_ev_ok(ev))
		return NULL;
	return detect_cat[ev].name;
}

enum detect_event
detect_event_by_name(const char *name)
{
	int i;

	if (name == NULL)
		return DETECT_EV_NONE;
	for (i = DETECT_EV_NONE + 1; i < DETECT_EV_COUNT; i++)
		if (strcmp(detect_cat[i].name, name) == 0)
			return (enum detect_event)i;
	return DETECT_EV_NONE;
}

enum detect_severity
detect_event_severity(enum detect_event ev)
{
	if (!detect_ev_ok(ev))
		return DETECT_SEV_INFO;
	return detect_cat[ev].sev;
}

const char *
detect_severity_name(enum detect_severity sev)
{
	switch (sev) {
	case DETECT_SEV_INFO:
		return "info";
	case DETECT_SEV_NOTICE:
		return "notice";
	case DETECT_SEV_WARNING:
		return "warning";
	case DETECT_SEV_ALERT:
		return "alert";
	}
	return NULL;
}

int
detect_severity_syslog(enum detect_severity sev)
{
	switch (sev) {
	case DETECT_SEV_INFO:
		return LOG_INFO;
	case DETECT_SEV_NOTICE:
		return LOG_NOTICE;
	case DETECT_SEV_WARNING:
		return LOG_WARNING;
	case DETECT_SEV_ALERT:
		return LOG_ALERT;
	}
	return LOG_INFO;
}

size_t
detect_escape(const char *in, size_t len, char *out, size_t outsz, int *truncated)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;
	int cut = 0;

	if (out == NULL || outsz == 0) {
		if (truncated != NULL)
			*truncated = len > 0;
		return 0;
	}
	for (i = 0; i < len && in != NULL; i++) {
		unsigned char c = (unsigned char)in[i];
		/* Only printable ASCII passes; '%' is the escape itself and
		 * '"' / '\\' are what JSON and shell-ish log readers treat
		 * specially. Control bytes (ESC, CR, LF) never reach a log
		 * line or terminal raw. */
		int plain = c >= 0x20 && c <= 0x7e && c != '%' && c != '"' && c != '\\';
		size_t need = plain ? 1 : 3;

		if (need > outsz - 1 - o) {
			cut = 1;
			break;
		}
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		}
	}
	out[o] = '\0';
	if (truncated != NULL)
		*truncated = cut;
	return o;
}

void
detect_init(struct detect_findings *out)
{
	memset(out, 0, sizeof(*out));
}

/*
 * A new finding slot, zeroed, with event and catalogue severity set; NULL
 * if the array is full of findings at least as severe (counted in dropped).
 */
static struct detect_finding *
detect_add(struct detect_findings *out, enum detect_event ev)
{
	struct detect_finding *f;
	enum detect_severity sev = detect_cat[ev].sev;
	int i, victim = -1;

	if (out->n < 0 || out->n > DETECT_MAX)
		out->n = DETECT_MAX; /* never trust a corrupted count past the array */
	if (out->n < DETECT_MAX) {
		f = &out->f[out->n++];
	} else {
		/* Full: give way only to something more severe, replacing
		 * the least severe finding (the latest of them). */
		for (i = 0; i < DETECT_MAX; i++)
			if (victim < 0 || out->f[i].severity <= out->f[victim].severity)
				victim = i;
		out->dropped++;
		if (victim < 0 || out->f[victim].severity >= sev)
			return NULL;
		f = &out->f[victim];
	}
	memset(f, 0, sizeof(*f));
	f->event = ev;
	f->severity = sev;
	f->escalated_by = DETECT_EV_NONE;
	f->line = -1;
	f->count = 1;
	return f;
}

static void
detect_set_evidence(struct detect_finding *f, const char *s, size_t len)
{
	detect_escape(s, len, f->evidence, sizeof(f->evidence), &f->truncated);
}

/* Add ev with reply line i of r as evidence. */
static struct detect_finding *
detect_add_line(struct detect_findings *out, enum detect_event ev, const struct smtp_reply *r,
                int i, int count)
{
	struct detect_finding *f;
	const char *line;
	size_t len = 0;

	if ((f = detect_add(out, ev)) == NULL)
		return NULL;
	f->code = r->code;
	f->count = count;
	if ((line = smtp_reply_line(r, i, &len)) != NULL) {
		f->line = i;
		detect_set_evidence(f, line, len);
	}
	return f;
}

static char
detect_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static int
detect_isalnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Length of the keyword at the start of a capability line's text: up to the
 * first SP, exactly as ehlo.c splits it, so both agree on what a line says. */
static size_t
detect_kwlen(const char *t, size_t len)
{
	size_t n = 0;

	while (n < len && t[n] != ' ')
		n++;
	return n;
}

int
detect_keyword_masked(const char *kw, size_t len)
{
	size_t i, other = 0;

	/* Cisco ASA ESMTP inspection ("match ehlo-reply-parameter others
	 * mask", and STARTTLS without allow-tls) overwrites a keyword with
	 * 'X' keeping its length, often leaving one letter to tell masked
	 * keywords apart ("XXXXXXXA", "XXXXXXXB"); PIX mailguard uses '*'.
	 * Four bytes at least: no real keyword is that X-heavy. */
	if (kw == NULL || len < 4)
		return 0;
	for (i = 0; i < len; i++)
		if (kw[i] != 'X' && kw[i] != 'x' && kw[i] != '*')
			other++;
	return other <= 1;
}

int
detect_text_masked(const char *text, size_t len)
{
	size_t i, stars = 0, nonblank = 0;

	/* PIX "fixup protocol smtp" turns every banner byte but '2' and '0'
	 * into '*'; ASA "mask-banner" does the same. Demand both many stars
	 * and an overwhelming share so that a decorated banner such as
	 * "220 ******** Welcome ********" is not mistaken for a mask. */
	if (text == NULL)
		return 0;
	for (i = 0; i < len; i++) {
		if (text[i] == '*')
			stars++;
		if (text[i] != ' ' && text[i] != '\t')
			nonblank++;
	}
	return stars >= 8 && stars * 10 >= nonblank * 8;
}

int
detect_keyword_near_starttls(const char *kw, size_t len)
{
	static const char starttls[] = "STARTTLS";
	size_t i, diff = 0;

	if (kw == NULL || len != sizeof(starttls) - 1)
		return 0;
	for (i = 0; i < len; i++)
		if (detect_upper(kw[i]) != starttls[i])
			diff++;
	/* Five of eight positions kept: a flipped or overwritten STARTTLS
	 * ("STARTTLX", "XXARTTLS"), not a different word that happens to
	 * have eight letters. */
	return diff >= 1 && diff <= 3;
}

/* Is kw exactly a registered keyword? ehlo_keyword_cap() files every X*
 * keyword under EHLO_XCLIENT, which would make "XXXXXXXA" look known. */
static int
detect_kw_registered(const char *kw, size_t len)
{
	static const char xclient[] = "XCLIENT";
	uint32_t cap = ehlo_keyword_cap(kw, len);
	size_t i;

	if (cap == EHLO_UNKNOWN)
		return 0;
	if (cap != EHLO_XCLIENT)
		return 1;
	if (len != sizeof(xclient) - 1)
		return 0;
	for (i = 0; i < len; i++)
		if (detect_upper(kw[i]) != xclient[i])
			return 0;
	return 1;
}

static int
detect_is_starttls(const char *t, size_t len)
{
	return ehlo_keyword_cap(t, detect_kwlen(t, len)) == EHLO_STARTTLS;
}

static int
detect_blank(const char *t, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (t[i] != ' ' && t[i] != '\t')
			return 0;
	return 1;
}

/* A capability line that no conforming server writes: a byte outside
 * printable ASCII (RFC 5321 §4.1.1.1 ehlo-param excludes controls), or a
 * keyword not starting with a letter or digit. Deliberately lenient
 * otherwise: Exim's "PIPE_CONNECT" and the old "AUTH=LOGIN" are real. */
static int
detect_malformed(const char *t, size_t len)
{
	size_t i;

	if (len == 0 || !detect_isalnum((unsigned char)t[0]))
		return 1;
	for (i = 0; i < len; i++)
		if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e)
			return 1;
	return 0;
}

void
detect_greeting(const struct smtp_reply *r, struct detect_findings *out)
{
	int i, first = -1, count = 0;

	if (r == NULL || out == NULL)
		return;
	for (i = 0; i < r->nlines; i++) {
		size_t len;
		const char *t = smtp_reply_text(r, i, &len);

		if (t != NULL && detect_text_masked(t, len)) {
			if (first < 0)
				first = i;
			count++;
		}
	}
	if (first >= 0)
		detect_add_line(out, DETECT_EV_BANNER_MASKED, r, first, count);
}

int
detect_greeting_line(const char *line, size_t len, struct detect_findings *out)
{
	struct detect_finding *f;

	if (line == NULL || out == NULL || !detect_text_masked(line, len))
		return 0;
	if ((f = detect_add(out, DETECT_EV_BANNER_MASKED)) == NULL)
		return 1;
	if (len >= 3 && line[0] >= '0' && line[0] <= '9' && line[1] >= '0' && line[1] <= '9' &&
	    line[2] >= '0' && line[2] <= '9')
		f->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	f->line = 0;
	detect_set_evidence(f, line, len);
	return 1;
}

/*
 * starttls_not_advertised evidence: what the server did advertise, its
 * capability keywords separated by spaces; for a one-line reply the line.
 */
static void
detect_not_advertised(const struct smtp_reply *r, struct detect_findings *out)
{
	struct detect_finding *f;
	char raw[DETECT_EVIDENCE_MAX + 1];
	size_t used = 0;
	int i, cut = 0;

	if ((f = detect_add(out, DETECT_EV_STARTTLS_NOT_ADVERTISED)) == NULL)
		return;
	f->code = r->code;
	if (r->nlines < 2 || r->code / 100 != 2) {
		const char *line;
		size_t len;

		if ((line = smtp_reply_line(r, 0, &len)) != NULL) {
			f->line = 0;
			detect_set_evidence(f, line, len);
		}
		return;
	}
	for (i = 1; i < r->nlines && !cut; i++) {
		size_t len, kwlen;
		const char *t = smtp_reply_text(r, i, &len);

		if (t == NULL || len == 0)
			continue;
		kwlen = detect_kwlen(t, len);
		if (used > 0) {
			if (used + 1 > sizeof(raw) - 1) {
				cut = 1;
				break;
			}
			raw[used++] = ' ';
		}
		if (kwlen > sizeof(raw) - 1 - used) {
			kwlen = sizeof(raw) - 1 - used;
			cut = 1;
		}
		memcpy(raw + used, t, kwlen);
		used += kwlen;
	}
	detect_set_evidence(f, raw, used);
	f->truncated |= cut;
}

int
detect_ehlo(const struct smtp_reply *r, struct detect_findings *out)
{
	int i, advertised = 0;
	int garbled = -1, ngarbled = 0, masked = -1, nmasked = 0;
	int empty = -1, nempty = 0, malformed = -1, nmalformed = 0;
	char esc[32];

	if (r == NULL || out == NULL || r->nlines < 1)
		return 0;
	if (r->code / 100 != 2) {
		detect_ehlo_refused(r, out);
		return 0;
	}
	/* RFC 5321 §4.1.1.1: the first line is the server's name and
	 * greeting; capabilities are on the lines after it. */
	for (i = 1; i < r->nlines; i++) {
		size_t len;
		const char *t = smtp_reply_text(r, i, &len);

		if (t != NULL && detect_is_starttls(t, len))
			advertised = 1;
	}

	for (i = 1; i < r->nlines; i++) {
		size_t len, kwlen;
		const char *t = smtp_reply_text(r, i, &len);

		if (t == NULL)
			continue;
		/* "250-" with nothing after it: a line was blanked on the way
		 * (the cheapest way for a box to delete STARTTLS without
		 * changing packet lengths or line counts). */
		if (detect_blank(t, len)) {
			if (empty < 0)
				empty = i;
			nempty++;
			continue;
		}
		kwlen = detect_kwlen(t, len);
		/* STARTTLS's shape where STARTTLS is missing: eight bytes,
		 * masked ("XXXXXXXA", "********") or a near miss ("STARTTLX").
		 * When STARTTLS is advertised, an eight-byte mask is some
		 * other keyword (ASA masks CHUNKING as "XXXXXXXB"). */
		if (!advertised && kwlen == 8 &&
		    (detect_keyword_masked(t, kwlen) ||
		     (detect_keyword_near_starttls(t, kwlen) && !detect_kw_registered(t, kwlen)))) {
			if (garbled < 0)
				garbled = i;
			ngarbled++;
			continue;
		}
		if (detect_keyword_masked(t, kwlen)) {
			if (masked < 0)
				masked = i;
			nmasked++;
			continue;
		}
		if (detect_malformed(t, len)) {
			if (malformed < 0)
				malformed = i;
			nmalformed++;
		}
	}

	if (garbled >= 0)
		detect_add_line(out, DETECT_EV_STARTTLS_GARBLED, r, garbled, ngarbled);
	if (masked >= 0)
		detect_add_line(out, DETECT_EV_EHLO_KEYWORD_MASKED, r, masked, nmasked);
	if (empty >= 0)
		detect_add_line(out, DETECT_EV_EHLO_EMPTY_LINE, r, empty, nempty);
	if (malformed >= 0)
		detect_add_line(out, DETECT_EV_EHLO_MALFORMED_LINE, r, malformed, nmalformed);

	if (!advertised) {
		size_t len;
		const char *t = smtp_reply_text(r, 0, &len);

		/* A "STARTTLS" first line is the greeting text, not an
		 * offer (ehlo.h); say so, since it explains the absence. */
		if (t != NULL && detect_is_starttls(t, len))
			detect_add_line(out, DETECT_EV_EHLO_STARTTLS_IN_GREETING_LINE, r, 0, 1);
	}
	/* RFC 3463 / RFC 2034 §3: enhanced status codes precede the text
	 * of every reply except the greeting and the replies to HELO and
	 * EHLO. "250 2.0.0 OK" is what a NOOP gets: PIX mailguard rewrites
	 * commands it does not know into NOOP, so the server never saw
	 * our EHLO. */
	if (smtp_reply_enhanced(r, esc, sizeof(esc)) == 0)
		detect_add_line(out, DETECT_EV_EHLO_COMMAND_REWRITTEN, r, 0, 1);

	if (!advertised)
		detect_not_advertised(r, out);
	return advertised;
}

/* A run of four or more 'X' standing alone: a command the path overwrote
 * byte by byte (Cisco: "replaced by Xs"), echoed back by the server. */
static int
detect_has_x_run(const char *t, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start = i;

		while (i < len && (t[i] == 'X' || t[i] == 'x'))
			i++;
		if (i - start >= 4 &&
		    (start == 0 || !detect_isalnum((unsigned char)t[start - 1])) &&
		    (i == len || !detect_isalnum((unsigned char)t[i])))
			return 1;
		if (i == start)
			i++;
	}
	return 0;
}

void
detect_ehlo_refused(const struct smtp_reply *r, struct detect_findings *out)
{
	int i;

	if (r == NULL || out == NULL || r->nlines < 1)
		return;
	detect_add_line(out, DETECT_EV_EHLO_REFUSED, r, 0, 1);
	for (i = 0; i < r->nlines; i++) {
		size_t len;
		const char *t = smtp_reply_text(r, i, &len);

		if (t != NULL && detect_has_x_run(t, len)) {
			detect_add_line(out, DETECT_EV_EHLO_COMMAND_REWRITTEN, r, i, 1);
			break;
		}
	}
	/* No EHLO, no STARTTLS (RFC 3207 §4): keep the invariant that
	 * every session without STARTTLS has a starttls_not_advertised. */
	detect_not_advertised(r, out);
}

void
detect_starttls_reply(const struct smtp_reply *r, int advertised, size_t trailing_bytes,
                      struct detect_findings *out)
{
	struct detect_finding *f;

	if (r == NULL || out == NULL || r->nlines < 1)
		return;
	if (r->code == 220) {
		/* RFC 3207 §4.2 and CVE-2011-0411: anything the "server"
		 * sent after its 220 and before the handshake was sent in
		 * plaintext and would be read as if it came over TLS. The
		 * real server waits for our ClientHello; a man in the
		 * middle injecting responses does not. */
		if (trailing_bytes > 0 &&
		    (f = detect_add_line(out, DETECT_EV_STARTTLS_REPLY_PIPELINED, r, r->nlines - 1,
		                         1)) != NULL) {
			f->bytes = trailing_bytes;
			f->direction = DETECT_FROM_SERVER;
		}
		return;
	}
	/* RFC 3207 §4: 454 (TLS not available) or 501. After an offer,
	 * that is a broken server or an attacker swapping the 220. */
	detect_add_line(out,
	                advertised ? DETECT_EV_STARTTLS_REJECTED_AFTER_ADVERTISED
	                           : DETECT_EV_STARTTLS_REFUSED,
	                r, 0, 1);
}

void
detect_starttls_stripped(const struct smtp_reply *r, struct detect_findings *out)
{
	/* The caller saw a 2xx EHLO reply without STARTTLS, then a 220 to
	 * STARTTLS: real servers refuse a STARTTLS they did not offer
	 * (Postfix 502, Exim 503), so the offer was removed on the way. */
	if (r != NULL && out != NULL && r->nlines >= 1 && r->code == 220)
		detect_add_line(out, DETECT_EV_STARTTLS_STRIPPED, r, 0, 1);
}

void
detect_tls_failure(enum detect_tls_kind kind, const char *detail, struct detect_findings *out)
{
	struct detect_finding *f;
	enum detect_event ev;

	if (out == NULL)
		return;
	switch (kind) {
	case DETECT_TLS_HANDSHAKE:
		ev = DETECT_EV_TLS_HANDSHAKE_FAILED;
		break;
	case DETECT_TLS_VERSION:
		ev = DETECT_EV_TLS_VERSION_TOO_LOW;
		break;
	case DETECT_TLS_UNTRUSTED:
		ev = DETECT_EV_TLS_CERT_UNTRUSTED;
		break;
	case DETECT_TLS_NAME:
		ev = DETECT_EV_TLS_CERT_NAME_MISMATCH;
		break;
	case DETECT_TLS_EXPIRED:
		ev = DETECT_EV_TLS_CERT_EXPIRED;
		break;
	case DETECT_TLS_CHANGED:
		ev = DETECT_EV_TLS_CERT_CHANGED;
		break;
	case DETECT_TLS_INVALID:
		ev = DETECT_EV_TLS_CERT_INVALID;
		break;
	default:
		return;
	}
	if ((f = detect_add(out, ev)) != NULL && detail != NULL)
		detect_set_evidence(f, detail, strlen(detail));
}

void
detect_injection(enum detect_direction dir, size_t bytes, const char *sample, size_t samplelen,
                 struct detect_findings *out)
{
	struct detect_finding *f;

	if (out == NULL || bytes == 0)
		return;
	/* Anything but the client is the upstream side: the dangerous one,
	 * whose bytes would be read as if they had come over TLS. */
	if (dir != DETECT_FROM_CLIENT)
		dir = DETECT_FROM_SERVER;
	if ((f = detect_add(out, dir == DETECT_FROM_CLIENT ? DETECT_EV_PLAINTEXT_INJECTION
	                                                   : DETECT_EV_STARTTLS_REPLY_PIPELINED)) ==
	    NULL)
		return;
	f->direction = dir;
	f->bytes = bytes;
	if (sample != NULL)
		detect_set_evidence(f, sample, samplelen);
}

static int
detect_find(const struct detect_findings *f, enum detect_event ev)
{
	int i;

	for (i = 0; i < f->n; i++)
		if (f->f[i].event == ev)
			return i;
	return -1;
}

/* Raise to at least sev; never lowers. */
static void
detect_raise(struct detect_finding *f, enum detect_severity sev)
{
	if (f->severity < sev)
		f->severity = sev;
}

void
detect_combine(struct detect_findings *f, const struct detect_memory *mem)
{
	int i, corro = -1, certbad = -1, notadv = -1;

	if (f == NULL)
		return;
	if (f->n < 0 || f->n > DETECT_MAX)
		f->n = DETECT_MAX;
	for (i = 0; i < f->n; i++) {
		enum detect_event ev = f->f[i].event;

		if (!detect_ev_ok(ev))
			continue;
		if (corro < 0 && detect_cat[ev].corroborates)
			corro = i;
		if (certbad < 0 &&
		    (ev == DETECT_EV_TLS_CERT_UNTRUSTED || ev == DETECT_EV_TLS_CERT_NAME_MISMATCH ||
		     ev == DETECT_EV_TLS_CERT_EXPIRED || ev == DETECT_EV_TLS_CERT_INVALID))
			certbad = i;
	}

	for (i = 0; i < f->n; i++) {
		struct detect_finding *x = &f->f[i];

		switch (x->event) {
		case DETECT_EV_STARTTLS_NOT_ADVERTISED:
			if (notadv < 0)
				notadv = i;
			/* A missing STARTTLS next to a mask, a blanked line or
			 * a rewritten command was deleted, not never offered. */
			if (corro >= 0) {
				detect_raise(x, DETECT_SEV_ALERT);
				if (x->escalated_by == DETECT_EV_NONE)
					x->escalated_by = f->f[corro].event;
			}
			/* This MX offered STARTTLS before: now it does not. An
			 * attacker stripping STARTTLS is exactly this (the
			 * TOFU argument of RFC 8461 §1 and RFC 7672 §1.3). */
			if (mem != NULL && mem->starttls_offered) {
				detect_raise(x, DETECT_SEV_ALERT);
				x->escalated_by_memory = 1;
			}
			break;
		case DETECT_EV_STARTTLS_REJECTED_AFTER_ADVERTISED:
		case DETECT_EV_TLS_HANDSHAKE_FAILED:
		case DETECT_EV_TLS_VERSION_TOO_LOW:
		case DETECT_EV_TLS_CERT_UNTRUSTED:
		case DETECT_EV_TLS_CERT_NAME_MISMATCH:
		case DETECT_EV_TLS_CERT_INVALID:
			/* TLS with this MX worked last time: a failure now is
			 * more likely interference. One level only: servers do
			 * break their TLS. Not for expiry, which is the
			 * commonest honest breakage of all. */
			if (mem != NULL && mem->tls_ok_last) {
				enum detect_severity up = detect_cat[x->event].sev;

				if (up < DETECT_SEV_ALERT)
					up = (enum detect_severity)(up + 1);
				detect_raise(x, up);
				x->escalated_by_memory = 1;
			}
			break;
		case DETECT_EV_TLS_CERT_CHANGED:
			/* A new certificate that also fails verification is
			 * the signature of an interception proxy. */
			if (certbad >= 0) {
				detect_raise(x, DETECT_SEV_ALERT);
				if (x->escalated_by == DETECT_EV_NONE)
					x->escalated_by = f->f[certbad].event;
			}
			break;
		default:
			break;
		}
	}

	if (notadv >= 0 && mem != NULL && mem->starttls_offered &&
	    detect_find(f, DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY) < 0) {
		struct detect_finding src = f->f[notadv], *d;

		if ((d = detect_add(f, DETECT_EV_STARTTLS_DOWNGRADE_VS_MEMORY)) != NULL) {
			d->line = src.line;
			d->code = src.code;
			d->remembered = mem->last_offered;
			d->truncated = src.truncated;
			memcpy(d->evidence, src.evidence, sizeof(d->evidence));
		}
	}
}
