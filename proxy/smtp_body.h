/*
 * smtp_body: find the end of a DATA body (RFC 5321 §4.1.1.4: CRLF "." CRLF)
 * in a stream that arrives in arbitrary pieces. Only CR LF counts as a line
 * end here: a lone LF before or after the dot never ends the body, so
 * stsproxy never sees the end of a message where a strict server would not
 * (the "SMTP smuggling" desynchronisation of 2023 exploits the opposite).
 */
#ifndef STSPROXY_SMTP_BODY_H
#define STSPROXY_SMTP_BODY_H

#include <stddef.h>

struct smtp_body {
	int st;                   /* matcher state */
	unsigned long long bytes; /* body bytes seen, terminator included */
	int bare_lf;              /* a LF without CR was seen (reported, passed through) */
};

/* Start of a body: the DATA command line's CRLF counts as a line start. */
void smtp_body_init(struct smtp_body *b);

/*
 * Scan n bytes. Returns the number of bytes up to and including the final
 * "CRLF.CRLF" if it ends within them, or -1 if the body goes on.
 */
long smtp_body_scan(struct smtp_body *b, const char *p, size_t n);

#endif
