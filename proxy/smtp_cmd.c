/*
 * smtp_cmd: split an SMTP command line into verb and argument (RFC 5321
 * §4.1) and take apart the reverse-path / forward-path of MAIL FROM and
 * RCPT TO (RFC 5321 §4.1.2, with RFC 6531 UTF-8 in local parts and
 * domains).
 *
 * Owns nothing: results point into the caller's line or are copied into
 * fixed arrays of the result struct. Contracts: any bytes of any length are
 * parsed without reading outside [line, line + len) or writing past the
 * result arrays; the domain of a parsed path is lower-case ASCII without a
 * trailing dot, and "<" mailbox ">" parses back to the same path.
 */
#include "smtp_cmd.h"

#include <arpa/inet.h>
#include <string.h>

enum smtp_cmd_args {
	SMTP_CMD_ARG_NONE, /* nothing but spaces may follow */
	SMTP_CMD_ARG_OPT,
	SMTP_CMD_ARG_REQ,
	SMTP_CMD_ARG_PATH, /* MAIL FROM: / RCPT TO: */
};

struct smtp_cmd_verb {
	const char *name;
	enum smtp_verb verb;
	enum smtp_cmd_args args;
};

/* Argument rules from the grammar of each command: RFC 5321 §4.1.1,
 * RFC 3207 §4 (STARTTLS has none), RFC 3030 §2 (BDAT), RFC 4954 §4
 * (AUTH), RFC 1985 (ETRN). */
static const struct smtp_cmd_verb smtp_cmd_verbs[] = {
        {"EHLO", SMTP_CMD_EHLO, SMTP_CMD_ARG_REQ},
        {"HELO", SMTP_CMD_HELO, SMTP_CMD_ARG_REQ},
        {"MAIL", SMTP_CMD_MAIL, SMTP_CMD_ARG_PATH},
        {"RCPT", SMTP_CMD_RCPT, SMTP_CMD_ARG_PATH},
        {"DATA", SMTP_CMD_DATA, SMTP_CMD_ARG_NONE},
        {"BDAT", SMTP_CMD_BDAT, SMTP_CMD_ARG_REQ},
        {"RSET", SMTP_CMD_RSET, SMTP_CMD_ARG_NONE},
        {"NOOP", SMTP_CMD_NOOP, SMTP_CMD_ARG_OPT},
        {"QUIT", SMTP_CMD_QUIT, SMTP_CMD_ARG_NONE},
        {"VRFY", SMTP_CMD_VRFY, SMTP_CMD_ARG_REQ},
        {"EXPN", SMTP_CMD_EXPN, SMTP_CMD_ARG_REQ},
        {"HELP", SMTP_CMD_HELP, SMTP_CMD_ARG_OPT},
        {"STARTTLS", SMTP_CMD_STARTTLS, SMTP_CMD_ARG_NONE},
        {"AUTH", SMTP_CMD_AUTH, SMTP_CMD_ARG_REQ},
        {"ETRN", SMTP_CMD_ETRN, SMTP_CMD_ARG_REQ},
        {"XCLIENT", SMTP_CMD_XCLIENT, SMTP_CMD_ARG_REQ},
        {"XFORWARD", SMTP_CMD_XFORWARD, SMTP_CMD_ARG_REQ},
};

#define SMTP_CMD_NVERBS (sizeof(smtp_cmd_verbs) / sizeof(smtp_cmd_verbs[0]))

static char
smtp_cmd_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int
smtp_cmd_isalpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
smtp_cmd_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

/* s[0..n) equals lit (n bytes), ignoring ASCII case. */
static int
smtp_cmd_caseeq(const char *s, const char *lit, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (smtp_cmd_lower(s[i]) != smtp_cmd_lower(lit[i]))
			return 0;
	return 1;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const struct smtp_cmd_verb *v = NULL;
	const char *rest;
	size_t i, vlen = 0, restlen;

	cmd->verb = SMTP_CMD_UNKNOWN;
	cmd->arg = line;
	cmd->arglen = 0;
	if (line == NULL)
		return -1;
	while (vlen < len && smtp_cmd_isalpha(line[vlen]))
		vlen++;
	/* RFC 5321 §4.1.1: the verb is followed by SP or the line end;
	 * "MAILFROM:" or "QUIT\t" is not a command we know. */
	if (vlen == 0 || (vlen < len && line[vlen] != ' '))
		return -1;
	for (i = 0; i < SMTP_CMD_NVERBS; i++) {
		if (strlen(smtp_cmd_verbs[i].name) == vlen &&
		    smtp_cmd_caseeq(line, smtp_cmd_verbs[i].name, vlen)) {
			v = &smtp_cmd_verbs[i];
			break;
		}
	}
	if (v == NULL)
		return -1;
	cmd->verb = v->verb;

	/* A NUL, CR or LF inside a command line is not SMTP: whoever reads
	 * the line after us may split it differently (command injection,
	 * SMTP smuggling), so the line is refused, never relayed. */
	for (i = vlen; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return -1;

	rest = line + vlen + (vlen < len);
	restlen = len - vlen - (vlen < len);
	cmd->arg = rest;
	cmd->arglen = restlen;

	switch (v->args) {
	case SMTP_CMD_ARG_NONE:
		for (i = 0; i < restlen; i++)
			if (rest[i] != ' ')
				return -1;
		cmd->arglen = 0;
		return 0;
	case SMTP_CMD_ARG_OPT:
		return 0;
	case SMTP_CMD_ARG_REQ:
		for (i = 0; i < restlen; i++)
			if (rest[i] != ' ')
				return 0;
		return -1;
	case SMTP_CMD_ARG_PATH:
		break;
	}

	/* RFC 5321 §4.1.1.2 / §4.1.1.3: "MAIL FROM:" / "RCPT TO:". §3.3
	 * says no space may follow the colon, but real clients send one;
	 * skip them rather than refuse mail the MX itself would take. */
	{
		const char *kw = v->verb == SMTP_CMD_MAIL ? "FROM:" : "TO:";
		size_t kwlen = strlen(kw);

		if (restlen < kwlen || !smtp_cmd_caseeq(rest, kw, kwlen))
			return -1;
		i = kwlen;
		while (i < restlen && rest[i] == ' ')
			i++;
		cmd->arg = rest + i;
		cmd->arglen = restlen - i;
		return cmd->arglen > 0 ? 0 : -1;
	}
}

const char *
smtp_cmd_name(enum smtp_verb verb)
{
	size_t i;

	for (i = 0; i < SMTP_CMD_NVERBS; i++)
		if (smtp_cmd_verbs[i].verb == verb)
			return smtp_cmd_verbs[i].name;
	return "UNKNOWN";
}

/* ---- paths ------------------------------------------------------------- */

/* RFC 5322 §3.2.3 atext (RFC 5321 §4.1.2 Atom), plus RFC 6531 §3.3 UTF-8. */
static int
smtp_cmd_atext(unsigned char c)
{
	if (c >= 0x80)
		return 1;
	if (smtp_cmd_isalpha((char)c) || smtp_cmd_isdigit((char)c))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Local part at arg[*i]: a Dot-string or a Quoted-string (RFC 5321 §4.1.2).
 * Dots are not checked for placement: "a..b" and "a." are delivered by
 * real MTAs and refusing them would make the proxy stricter than the MX.
 * Returns 0 with *i just past it, or -1.
 */
static int
smtp_cmd_local(const char *arg, size_t len, size_t *i)
{
	size_t j = *i;

	if (j < len && arg[j] == '"') {
		j++;
		for (;;) {
			unsigned char c;

			if (j >= len)
				return -1; /* unbalanced quote */
			c = (unsigned char)arg[j];
			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (j + 1 >= len || (unsigned char)arg[j + 1] < 32 ||
				    (unsigned char)arg[j + 1] > 126)
					return -1;
				j += 2;
				continue;
			}
			/* qtextSMTP = %d32-33 / %d35-91 / %d93-126, UTF-8 */
			if (c < 32 || c == 127)
				return -1;
			j++;
		}
		/* An empty quoted string is an empty local part. */
		if (j == *i + 1)
			return -1;
		*i = j + 1;
		return 0;
	}
	while (j < len && (arg[j] == '.' || smtp_cmd_atext((unsigned char)arg[j])))
		j++;
	if (j == *i)
		return -1;
	*i = j;
	return 0;
}

/*
 * Domain name at arg[*i] (RFC 5321 §4.1.2 Domain, RFC 6531 U-labels),
 * copied lower-cased into out without a trailing dot. Labels 1..63
 * octets, no leading or trailing hyphen, at most 253 octets in all
 * (RFC 1035 §2.3.4). Returns 0 with *i past it, or -1.
 */
static int
smtp_cmd_domain(const char *arg, size_t len, size_t *i, char *out, size_t outsz)
{
	size_t j = *i, n, lab = 0;

	while (j < len && (smtp_cmd_isalpha(arg[j]) || smtp_cmd_isdigit(arg[j]) || arg[j] == '-' ||
	                   arg[j] == '.' || (unsigned char)arg[j] >= 0x80))
		j++;
	n = j - *i;
	if (n > 0 && arg[j - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outsz)
		return -1;
	for (size_t k = 0; k < n; k++) {
		char c = arg[*i + k];

		if (c == '.') {
			if (lab == 0 || arg[*i + k - 1] == '-')
				return -1;
			lab = 0;
		} else {
			if (c == '-' && lab == 0)
				return -1;
			if (++lab > 63)
				return -1;
		}
		out[k] = smtp_cmd_lower(c);
	}
	if (lab == 0 || arg[*i + n - 1] == '-')
		return -1;
	out[n] = '\0';
	*i = j;
	return 0;
}

/* RFC 5321 §4.1.3 IPv4-address-literal: Snum 3("." Snum), Snum 0..255. */
static int
smtp_cmd_ipv4(const char *s, size_t len)
{
	size_t i = 0;
	int part;

	for (part = 0; part < 4; part++) {
		int v = 0, nd = 0;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		while (i < len && smtp_cmd_isdigit(s[i]) && nd < 3) {
			v = v * 10 + (s[i] - '0');
			i++;
			nd++;
		}
		if (nd == 0 || v > 255)
			return 0;
	}
	return i == len;
}

/*
 * Address literal "[...]" at arg[*i] (RFC 5321 §4.1.3): IPv4 or "IPv6:"
 * address. A General-address-literal needs a Standardized-tag registered
 * with IANA, and "IPv6" is the only one: any other tag is refused rather
 * than passed on as an opaque "domain" nobody can check.
 * The text inside the brackets is copied lower-cased into out.
 */
static int
smtp_cmd_literal(const char *arg, size_t len, size_t *i, char *out, size_t outsz)
{
	size_t s = *i + 1, j = s, n, k;

	/* dcontent = %d33-90 / %d94-126: no brackets, backslash, space. */
	while (j < len && arg[j] != ']') {
		unsigned char c = (unsigned char)arg[j];

		if (c < 33 || c > 126 || c == '[' || c == '\\')
			return -1;
		j++;
	}
	if (j >= len)
		return -1; /* unbalanced bracket */
	n = j - s;
	if (n == 0 || n >= outsz)
		return -1;
	for (k = 0; k < n; k++)
		out[k] = smtp_cmd_lower(arg[s + k]);
	out[n] = '\0';
	if (!smtp_cmd_ipv4(out, n)) {
		struct in6_addr a6;

		/* IPv6-address-literal = "IPv6:" IPv6-addr (tag case-insensitive) */
		if (n < 5 || memcmp(out, "ipv6:", 5) != 0 || inet_pton(AF_INET6, out + 5, &a6) != 1)
			return -1;
	}
	*i = j + 1;
	return 0;
}

/* Source route "@a,@b:" (RFC 5321 §4.1.2 A-d-l): checked, then dropped:
 * §4.1.1.3 and Appendix C tell receivers to accept and ignore it. */
static int
smtp_cmd_route(const char *arg, size_t len, size_t *i)
{
	char tmp[SMTP_DOMAIN_MAX];

	for (;;) {
		if (*i >= len || arg[*i] != '@')
			return -1;
		(*i)++;
		if (smtp_cmd_domain(arg, len, i, tmp, sizeof(tmp)) < 0)
			return -1;
		if (*i < len && arg[*i] == ',') {
			(*i)++;
			continue;
		}
		if (*i < len && arg[*i] == ':') {
			(*i)++;
			return 0;
		}
		return -1;
	}
}

static int
smtp_path_parse1(const char *arg, size_t len, struct smtp_path *p)
{
	size_t i = 0, lstart, llen, dlen;
	int bracket;

	/* Control characters (NUL, CR, LF, TAB, DEL) appear nowhere in the
	 * grammar of a path or its ESMTP parameters (RFC 5321 §4.1.2,
	 * esmtp-value %d33-60 / %d62-126). */
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] < 0x20 || arg[i] == 0x7f)
			return -1;
	i = 0;
	while (i < len && arg[i] == ' ')
		i++;
	if (i >= len)
		return -1;
	bracket = arg[i] == '<';
	if (bracket) {
		i++;
		if (i < len && arg[i] == '>') {
			/* RFC 5321 §4.1.1.2: "<>" is the null reverse-path. */
			p->null_path = 1;
			i++;
			goto params;
		}
		if (i < len && arg[i] == '@' && smtp_cmd_route(arg, len, &i) < 0)
			return -1;
	}

	lstart = i;
	if (smtp_cmd_local(arg, len, &i) < 0)
		return -1;
	llen = i - lstart;
	/* Exactly one unquoted '@': the first one ends the local part, a
	 * second one is not a domain character and fails below. */
	if (i >= len || arg[i] != '@')
		return -1;
	i++;
	if (i < len && arg[i] == '[') {
		p->addr_literal = 1;
		if (smtp_cmd_literal(arg, len, &i, p->domain, sizeof(p->domain)) < 0)
			return -1;
	} else if (smtp_cmd_domain(arg, len, &i, p->domain, sizeof(p->domain)) < 0) {
		return -1;
	}
	dlen = strlen(p->domain);
	if (llen + 1 + dlen + 2 * p->addr_literal >= sizeof(p->mailbox))
		return -1;
	memcpy(p->mailbox, arg + lstart, llen);
	p->mailbox[llen] = '@';
	if (p->addr_literal) {
		p->mailbox[llen + 1] = '[';
		memcpy(p->mailbox + llen + 2, p->domain, dlen);
		p->mailbox[llen + 2 + dlen] = ']';
		p->mailbox[llen + 3 + dlen] = '\0';
	} else {
		memcpy(p->mailbox + llen + 1, p->domain, dlen + 1);
	}
	if (bracket) {
		if (i >= len || arg[i] != '>')
			return -1;
		i++;
	}

params:
	/* RFC 5321 §4.1.1.2: Mail-parameters follow the path after SP. */
	if (i < len && arg[i] != ' ')
		return -1;
	while (i < len && arg[i] == ' ')
		i++;
	if (i < len) {
		p->params = arg + i;
		p->paramslen = len - i;
	}
	return 0;
}

int
smtp_path_parse(const char *arg, size_t len, struct smtp_path *p)
{
	memset(p, 0, sizeof(*p));
	if (arg == NULL || smtp_path_parse1(arg, len, p) < 0) {
		/* Nothing half-parsed may be mistaken for a result. */
		memset(p, 0, sizeof(*p));
		return -1;
	}
	return 0;
}
