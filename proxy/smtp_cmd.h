/*
 * smtp_cmd: parse SMTP command lines (RFC 5321 §4.1) and the paths of
 * MAIL FROM / RCPT TO. Pure functions over (const char *, size_t); no
 * allocation. Lines are given without their CRLF/LF.
 */
#ifndef STSPROXY_SMTP_CMD_H
#define STSPROXY_SMTP_CMD_H

#include <stddef.h>

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_EHLO,
	SMTP_CMD_HELO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_ETRN,
	SMTP_CMD_XCLIENT,
	SMTP_CMD_XFORWARD,
};

struct smtp_cmd {
	enum smtp_verb verb;
	/* For MAIL and RCPT: what follows "MAIL FROM:" / "RCPT TO:" (spaces
	 * after the colon skipped); for others: what follows the verb and one
	 * space. Points into the parsed line; arglen may be 0. */
	const char *arg;
	size_t arglen;
};

/*
 * Parse a command line. Verbs are case-insensitive and end at SP or the
 * line end. MAIL needs "FROM:", RCPT needs "TO:" (case-insensitive), else
 * the verb is returned but the function returns -1 (syntax error). Returns
 * 0 on success, -1 on syntax error (cmd->verb still set when the verb itself
 * was recognised), and sets SMTP_CMD_UNKNOWN for anything else.
 * Also syntax errors: NUL, CR or LF anywhere in the line; an argument to
 * DATA, RSET, QUIT or STARTTLS (trailing spaces are tolerated, arglen 0);
 * no argument to EHLO, HELO, MAIL, RCPT, BDAT, VRFY, EXPN, AUTH, ETRN,
 * XCLIENT, XFORWARD.
 */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);

/* Upper-case name of a verb ("MAIL"), "UNKNOWN" for SMTP_CMD_UNKNOWN. */
const char *smtp_cmd_name(enum smtp_verb verb);

#define SMTP_PATH_MAX   512 /* RFC 5321 §4.5.3.1.3: 256 octets, with slack */
#define SMTP_DOMAIN_MAX 256

struct smtp_path {
	int null_path;                /* "<>" */
	int addr_literal;             /* domain part is "[...]" */
	char mailbox[SMTP_PATH_MAX];  /* local@domain, source route dropped */
	char domain[SMTP_DOMAIN_MAX]; /* lower-cased, trailing dot removed;
	                                    for literals the text inside [] */
	const char *params;           /* ESMTP parameters after the path, or NULL */
	size_t paramslen;
};

/*
 * Parse the argument of MAIL FROM / RCPT TO: "<path> [params]". Accepts a
 * source route ("<@a,@b:user@dom>"), quoted local parts, address literals,
 * and, as real clients send it, a path without angle brackets. A non-null
 * path needs exactly one unquoted '@' before a non-empty domain (so the
 * domain-less "<Postmaster>" of RFC 5321 §4.1.1.3 is -1: callers that want
 * it must test for it). The local part is kept as received (quotes and
 * escapes included); domain labels are 1..63 LDH or UTF-8 octets, 253 in
 * all; literals are [IPv4] or [IPv6:...] (no other tag is registered).
 * Returns 0, or -1 on syntax error, control characters anywhere in arg, or
 * over-long parts (then *p is all zero).
 */
int smtp_path_parse(const char *arg, size_t len, struct smtp_path *p);

#endif
