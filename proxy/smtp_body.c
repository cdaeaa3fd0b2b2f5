/*
 * smtp_body: end-of-data matcher (see smtp_body.h). Five states:
 * MID (inside a line), CR (after CR), BOL (after CRLF), DOT (BOL + "."),
 * DOTCR (BOL + "." + CR). DOTCR + LF is the end.
 */
#include <string.h>

#include "smtp_body.h"

enum { B_MID, B_CR, B_BOL, B_DOT, B_DOTCR };

void
smtp_body_init(struct smtp_body *b)
{
	b->st = B_BOL;
	b->bytes = 0;
	b->bare_lf = 0;
}

long
smtp_body_scan(struct smtp_body *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c;

		/* Most of a body is the middle of a line, where only a CR can
		 * change the state and an LF only marks a bare LF: jump there
		 * with memchr (several times faster than this loop per byte,
		 * which was most of a monitor-mode relay's own CPU). */
		if (b->st == B_MID) {
			const char *cr = memchr(p + i, '\r', n - i);
			size_t end = cr != NULL ? (size_t)(cr - p) : n;

			if (!b->bare_lf && memchr(p + i, '\n', end - i) != NULL)
				b->bare_lf = 1;
			if (cr == NULL)
				break;
			i = end;
		}
		c = p[i];

		if (c == '\n' && b->st != B_CR && b->st != B_DOTCR)
			b->bare_lf = 1;
		switch (b->st) {
		case B_MID:
			b->st = c == '\r' ? B_CR : B_MID;
			break;
		case B_CR:
			b->st = c == '\n' ? B_BOL : c == '\r' ? B_CR : B_MID;
			break;
		case B_BOL:
			b->st = c == '.' ? B_DOT : c == '\r' ? B_CR : B_MID;
			break;
		case B_DOT:
			b->st = c == '\r' ? B_DOTCR : B_MID;
			break;
		case B_DOTCR:
			if (c == '\n') {
				b->bytes += i + 1;
				b->st = B_BOL;
				return (long)(i + 1);
			}
			b->st = c == '\r' ? B_CR : B_MID;
			break;
		}
	}
	b->bytes += n;
	return -1;
}
