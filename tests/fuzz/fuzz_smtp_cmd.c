/*
 * fuzz_smtp_cmd: libFuzzer driver for SMTP command lines and paths.
 *
 * Input: lines split at LF (CR before LF dropped). Each line goes through
 * smtp_cmd_parse and, whole, through smtp_path_parse; the argument of a
 * parsed MAIL/RCPT goes through smtp_path_parse too. Invariants: the
 * argument lies inside the line; a success names a verb; a failed path
 * leaves an all-zero result; a parsed path's domain is non-empty
 * lower-case ASCII without trailing dot and ends the mailbox, params lie
 * inside the argument, and "<" mailbox ">" parses back to the same path.
 * Also built into tests/unit/test_corpus_replay.c, which renames
 * LLVMFuzzerTestOneInput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_cmd.h"

#define FZC_CHECK(c)                                                                               \
	do {                                                                                       \
		if (!(c))                                                                          \
			fzc_fail(#c, __LINE__);                                                    \
	} while (0)

static void
fzc_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_smtp_cmd.c:%d: invariant failed: %s\n", line, what);
	abort();
}

static void fzc_path(const char *arg, size_t len, int depth);

static void
fzc_path_ok(const char *arg, size_t len, const struct smtp_path *p, int depth)
{
	size_t ml = strnlen(p->mailbox, sizeof(p->mailbox));
	size_t dl = strnlen(p->domain, sizeof(p->domain));
	size_t i;

	FZC_CHECK(ml < sizeof(p->mailbox) && dl < sizeof(p->domain));
	if (p->params != NULL) {
		FZC_CHECK(p->params > arg && p->params + p->paramslen == arg + len);
		FZC_CHECK(p->paramslen > 0 && p->params[0] != ' ');
		FZC_CHECK(p->params[-1] == ' ');
	} else {
		FZC_CHECK(p->paramslen == 0);
	}
	if (p->null_path) {
		FZC_CHECK(ml == 0 && dl == 0 && !p->addr_literal);
		return;
	}
	FZC_CHECK(dl > 0 && ml > dl + 1);
	FZC_CHECK(p->domain[dl - 1] != '.');
	for (i = 0; i < dl; i++)
		FZC_CHECK(!(p->domain[i] >= 'A' && p->domain[i] <= 'Z') &&
		          (unsigned char)p->domain[i] > ' ' && p->domain[i] != 0x7f);
	for (i = 0; i < ml; i++)
		FZC_CHECK((unsigned char)p->mailbox[i] >= ' ' && p->mailbox[i] != 0x7f);
	if (p->addr_literal) {
		FZC_CHECK(ml >= dl + 3);
		FZC_CHECK(memcmp(p->mailbox + ml - dl - 3, "@[", 2) == 0);
		FZC_CHECK(memcmp(p->mailbox + ml - dl - 1, p->domain, dl) == 0);
		FZC_CHECK(p->mailbox[ml - 1] == ']');
	} else {
		FZC_CHECK(p->mailbox[ml - dl - 1] == '@');
		FZC_CHECK(memcmp(p->mailbox + ml - dl, p->domain, dl) == 0);
		FZC_CHECK(dl <= 253);
	}
	/* "<" mailbox ">" is a fixed point */
	if (depth == 0) {
		char again[SMTP_PATH_MAX + 2];
		struct smtp_path q;

		again[0] = '<';
		memcpy(again + 1, p->mailbox, ml);
		again[ml + 1] = '>';
		FZC_CHECK(smtp_path_parse(again, ml + 2, &q) == 0);
		FZC_CHECK(strcmp(q.mailbox, p->mailbox) == 0);
		FZC_CHECK(strcmp(q.domain, p->domain) == 0);
		FZC_CHECK(q.addr_literal == p->addr_literal && !q.null_path && q.params == NULL);
		fzc_path(again, ml + 2, depth + 1);
	}
}

static void
fzc_path(const char *arg, size_t len, int depth)
{
	struct smtp_path p;

	if (smtp_path_parse(arg, len, &p) == 0) {
		fzc_path_ok(arg, len, &p, depth);
		return;
	}
	FZC_CHECK(p.mailbox[0] == '\0' && p.domain[0] == '\0' && p.params == NULL);
	FZC_CHECK(!p.null_path && !p.addr_literal && p.paramslen == 0);
}

static void
fzc_line(const char *line, size_t len)
{
	struct smtp_cmd c;
	int rc = smtp_cmd_parse(line, len, &c);

	FZC_CHECK(smtp_cmd_name(c.verb) != NULL);
	if (rc == 0) {
		FZC_CHECK(c.verb != SMTP_CMD_UNKNOWN);
		FZC_CHECK(c.arg >= line && c.arg + c.arglen <= line + len);
		FZC_CHECK(memchr(line, '\0', len) == NULL);
		FZC_CHECK(memchr(line, '\r', len) == NULL && memchr(line, '\n', len) == NULL);
		if (c.verb == SMTP_CMD_MAIL || c.verb == SMTP_CMD_RCPT) {
			FZC_CHECK(c.arglen > 0 && c.arg[0] != ' ');
			fzc_path(c.arg, c.arglen, 0);
		}
	} else {
		FZC_CHECK(rc == -1);
	}
	fzc_path(line, len, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		fzc_line(p, len);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}
