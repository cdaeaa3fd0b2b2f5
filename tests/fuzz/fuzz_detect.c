/*
 * fuzz_detect: libFuzzer driver for the downgrade classifier.
 *
 * Input: byte 0 chooses what the reply is (greeting, EHLO, EHLO refused,
 * STARTTLS reply) and the TOFU memory bits; the rest is split at LF (a CR
 * before it dropped) into reply lines fed through smtp_reply_feed(), the
 * way the relay does. Every detector then runs on the same findings,
 * followed by detect_combine().
 *
 * Invariants checked (abort on violation): n within 0..DETECT_MAX; every
 * evidence NUL-terminated, at most DETECT_EVIDENCE_MAX bytes of printable
 * ASCII without '"' or '\\', and decoding back to a prefix of what was
 * escaped; every event and escalation named in the catalogue; severities
 * in range and never below the catalogue's; detect_combine() idempotent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "smtp_reply.h"

#define FZD_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int
fzd_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
fzd_check_evidence(const char *ev)
{
	size_t len = strnlen(ev, DETECT_EVIDENCE_MAX + 1), i;

	FZD_CHECK(len <= DETECT_EVIDENCE_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)ev[i];

		FZD_CHECK(c >= 0x20 && c <= 0x7e && c != '"' && c != '\\');
		if (c == '%') {
			FZD_CHECK(i + 2 < len);
			FZD_CHECK(fzd_hex(ev[i + 1]) >= 0 && fzd_hex(ev[i + 2]) >= 0);
			i += 2;
		}
	}
}

static void
fzd_check(const struct detect_findings *fx)
{
	int i;

	FZD_CHECK(fx->n >= 0 && fx->n <= DETECT_MAX);
	FZD_CHECK(fx->dropped >= 0);
	for (i = 0; i < fx->n; i++) {
		const struct detect_finding *f = &fx->f[i];
		const char *name = detect_event_name(f->event);

		FZD_CHECK(name != NULL);
		FZD_CHECK(detect_event_by_name(name) == f->event);
		FZD_CHECK(detect_severity_name(f->severity) != NULL);
		FZD_CHECK(f->severity >= detect_event_severity(f->event));
		FZD_CHECK(f->escalated_by == DETECT_EV_NONE ||
		          detect_event_name(f->escalated_by) != NULL);
		FZD_CHECK(f->count >= 1);
		fzd_check_evidence(f->evidence);
	}
}

/* detect_escape() must round-trip: what it wrote decodes to a prefix of
 * the input, the whole input when it says nothing was cut. */
static void
fzd_escape(const uint8_t *data, size_t size, size_t outsz)
{
	char out[DETECT_EVIDENCE_MAX + 1];
	size_t n, i, k = 0;
	int cut = -1;

	if (outsz > sizeof(out))
		outsz = sizeof(out);
	n = detect_escape((const char *)data, size, out, outsz, &cut);
	FZD_CHECK(cut == 0 || cut == 1);
	if (outsz == 0) {
		FZD_CHECK(n == 0);
		return;
	}
	FZD_CHECK(n < outsz && out[n] == '\0' && strlen(out) == n);
	fzd_check_evidence(out);
	for (i = 0; i < n; i++, k++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '%') {
			c = (unsigned char)(fzd_hex(out[i + 1]) * 16 + fzd_hex(out[i + 2]));
			i += 2;
		}
		FZD_CHECK(k < size && data[k] == c);
	}
	FZD_CHECK(cut ? k < size : k == size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_reply r;
	struct detect_findings fx, again;
	struct detect_memory mem;
	const char *p, *end;
	char detail[256];
	uint8_t sel;
	int advertised = 0;

	if (size < 1)
		return 0;
	sel = data[0];
	fzd_escape(data + 1, size - 1, sel);

	detect_init(&fx);
	smtp_reply_init(&r, 0);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		enum smtp_reply_status st;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		st = smtp_reply_feed(&r, p, len);
		if (st > SMTP_REPLY_DONE) {
			/* What the relay does with an unparseable greeting. */
			if ((sel & 3) == 0)
				detect_greeting_line(p, len, &fx);
			break;
		}
		if (st == SMTP_REPLY_DONE)
			break;
		p = nl ? nl + 1 : end;
	}
	fzd_check(&fx);

	switch (sel & 3) {
	case 0:
		detect_greeting(&r, &fx);
		break;
	case 1:
		advertised = detect_ehlo(&r, &fx);
		FZD_CHECK(advertised == 0 || advertised == 1);
		break;
	case 2:
		detect_ehlo_refused(&r, &fx);
		break;
	case 3:
		detect_starttls_reply(&r, (sel >> 2) & 1, (size_t)(end - p), &fx);
		break;
	}
	fzd_check(&fx);

	/* Every entry point on the same session, as a hostile one might go. */
	detect_greeting(&r, &fx);
	(void)detect_ehlo(&r, &fx);
	detect_starttls_reply(&r, advertised, sel, &fx);
	snprintf(detail, sizeof(detail), "%.*s", (int)(size - 1 < 255 ? size - 1 : 255),
	         (const char *)data + 1);
	detect_tls_failure((enum detect_tls_kind)(sel % 8), detail, &fx);
	detect_injection((enum detect_direction)((sel >> 3) & 3), size - 1, (const char *)data + 1,
	                 size - 1, &fx);
	fzd_check(&fx);

	memset(&mem, 0, sizeof(mem));
	mem.starttls_offered = (sel >> 5) & 1;
	mem.tls_ok_last = (sel >> 6) & 1;
	mem.last_offered = sel;
	detect_combine(&fx, (sel & 0x80) ? NULL : &mem);
	fzd_check(&fx);
	if (fx.n < DETECT_MAX) {
		/* Not full: a second combine must change nothing at all. */
		again = fx;
		detect_combine(&again, (sel & 0x80) ? NULL : &mem);
		FZD_CHECK(memcmp(&again, &fx, sizeof(fx)) == 0);
	}
	return 0;
}
