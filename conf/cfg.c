/*
 * cfg: turn a libconfig file into a validated, immutable, reference-counted
 * struct cfg.
 *
 * The schema is a set of tables (struct cfg_key): one per group, listing
 * each setting's name, type, range and where it lands. The same tables
 * drive loading, the "unknown setting" check and cfg_dump(), so a setting
 * added to a table is parsed, checked and dumped without further code. A
 * new top-level group is one more row in cfg_top[].
 *
 * Contracts:
 * - cfg_load() starts from the embedded defaults, overrides what the file
 *   sets and returns NULL with exactly one message on the first problem.
 *   Messages are "file:line: setting.path: problem"; list elements appear
 *   as "[n]" (0-based, libconfig path syntax), e.g. "listen.[1].address".
 * - Unknown settings are errors: a typo must never silently fall back to
 *   a default (a misspelt "level" in a static policy would turn "verify"
 *   into "no policy").
 * - Relative file names (certificates, log file, state directory, and
 *   @include) are taken relative to the directory of the configuration
 *   file and stored absolute, so a later chdir() cannot change them.
 * - A loaded cfg is never modified; sessions hold a reference.
 */
#include "cfg.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "mxpattern.h"
#include "smtp_reply.h"

/* Enum fields are written through an int; make sure that is their size. */
_Static_assert(sizeof(enum cfg_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_listen_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_tls_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_format) == sizeof(int), "enum size");

#define CFG_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define CFG_TIMEOUT_MAX     86400 /* one day: anything longer is a typo */

/* ------------------------------------------------------------------------ */
/* Schema tables                                                             */

enum cfg_vtype {
	CFG_V_GROUP,   /* { ... }: members from sub, same base */
	CFG_V_ENUM,    /* string mapped to an int-sized field by names */
	CFG_V_BOOL,    /* true / false into a bool */
	CFG_V_INT,     /* integer in [min, max] into an int */
	CFG_V_SIZE,    /* integer in [min, max] into a size_t */
	CFG_V_SECONDS, /* number in (0, max] into a double */
	CFG_V_PATH,    /* file name into an owned char *, made absolute */
	CFG_V_STRING,  /* string borrowed from libconfig (scratch structs only) */
	CFG_V_STRLIST, /* [ "a", "b" ] into owned char ** plus an int count */
	CFG_V_CUSTOM,  /* parsed and dumped by its own functions */
};

#define CFG_K_REQUIRED 0x01 /* must be present in its group */
#define CFG_K_FILE     0x02 /* PATH: a readable regular file, checked at load */
#define CFG_K_DIR      0x04 /* PATH: a readable directory, checked at load */
#define CFG_K_STDIO    0x08 /* PATH: "-" is kept as is (standard error) */

struct cfg_loader;

struct cfg_name {
	const char *name;
	int value;
};

struct cfg_key {
	const char *name;
	enum cfg_vtype type;
	int flags;
	size_t off;                   /* field in the base struct */
	size_t off_n;                 /* STRLIST: the int count */
	long long min, max;           /* INT, SIZE inclusive; SECONDS: (0, max] */
	const struct cfg_name *names; /* ENUM */
	const struct cfg_key *sub;    /* GROUP */
	/* GROUP: cross-checks once all members are in */
	int (*check)(struct cfg_loader *, const config_setting_t *, void *base);
	/* STRLIST: validate (and possibly rewrite) one element */
	int (*elem)(struct cfg_loader *, const config_setting_t *, char *value);
	/* CUSTOM */
	int (*parse)(struct cfg_loader *, const config_setting_t *);
	void (*dump)(const struct cfg *, FILE *, int indent);
};

/* One integer literal that libconfig 1.5 silently wrapped (see cfg_scan_file). */
struct cfg_bigint {
	const char *file;
	unsigned line;
};

struct cfg_loader {
	struct cfg *c;
	const char *path; /* as given to cfg_load, used in messages */
	char dir[PATH_MAX];
	char *err;
	size_t errsz;
	struct cfg_bigint *big;
	size_t nbig;
};

static const struct cfg_name cfg_mode_names[] = {
        {"monitor", CFG_MODE_MONITOR},
        {"upgrade", CFG_MODE_UPGRADE},
        {"enforce", CFG_MODE_ENFORCE},
        {NULL, 0},
};

static const struct cfg_name cfg_kind_names[] = {
        {"redirect", CFG_LISTEN_REDIRECT},
        {"tproxy", CFG_LISTEN_TPROXY},
        {"fixed", CFG_LISTEN_FIXED},
        {NULL, 0},
};

static const struct cfg_name cfg_level_names[] = {
        {"none", CFG_TLS_NONE},
        {"may", CFG_TLS_MAY},
        {"encrypt", CFG_TLS_ENCRYPT},
        {"verify", CFG_TLS_VERIFY},
        {NULL, 0},
};

static const struct cfg_name cfg_tofu_names[] = {
        {"alert", CFG_TOFU_ALERT},
        {"defer", CFG_TOFU_DEFER},
        {NULL, 0},
};

static const struct cfg_name cfg_tlsver_names[] = {
        {"1.2", 12},
        {"1.3", 13},
        {NULL, 0},
};

static const struct cfg_name cfg_format_names[] = {
        {"json", CFG_LOG_JSON},
        {"text", CFG_LOG_TEXT},
        {NULL, 0},
};

static const struct cfg_name cfg_loglevel_names[] = {
        {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"notice", LOG_NOTICE},
        {"info", LOG_INFO}, {"debug", LOG_DEBUG},     {NULL, 0},
};

/* Scratch structs: listener and static policy entries are parsed with the
 * generic tables into these, then validated as a whole. */
struct cfg_listen_in {
	int kind;
	const char *address;
	int port;
	const char *upstream;
	const char *upstream_name;
};

struct cfg_static_in {
	const char *domain;
	int level;
	char **mx;
	int nmx;
};

static int cfg_parse_listen(struct cfg_loader *, const config_setting_t *);
static void cfg_dump_listen(const struct cfg *, FILE *, int);
static int cfg_parse_static(struct cfg_loader *, const config_setting_t *);
static void cfg_dump_static(const struct cfg *, FILE *, int);
static int cfg_elem_dns_server(struct cfg_loader *, const config_setting_t *, char *);
static int cfg_elem_mxpattern(struct cfg_loader *, const config_setting_t *, char *);
static int cfg_check_tls(struct cfg_loader *, const config_setting_t *, void *);
static int cfg_check_limits(struct cfg_loader *, const config_setting_t *, void *);
static int cfg_check_metrics(struct cfg_loader *, const config_setting_t *, void *);

/* One table row per setting of struct cfg. */
#define CFG_OFF(f) offsetof(struct cfg, f)
#define CFG_ENUM(n, f, tbl)                                                                        \
	{                                                                                          \
		.name = (n), .type = CFG_V_ENUM, .off = CFG_OFF(f), .names = (tbl)                 \
	}
#define CFG_BOOL(n, f)                                                                             \
	{                                                                                          \
		.name = (n), .type = CFG_V_BOOL, .off = CFG_OFF(f)                                 \
	}
#define CFG_INT(n, f, lo, hi)                                                                      \
	{                                                                                          \
		.name = (n), .type = CFG_V_INT, .off = CFG_OFF(f), .min = (lo), .max = (hi)        \
	}
#define CFG_SIZE(n, f, lo, hi)                                                                     \
	{                                                                                          \
		.name = (n), .type = CFG_V_SIZE, .off = CFG_OFF(f), .min = (lo), .max = (hi)       \
	}
#define CFG_SECONDS(n, f, hi)                                                                      \
	{                                                                                          \
		.name = (n), .type = CFG_V_SECONDS, .off = CFG_OFF(f), .max = (hi)                 \
	}
#define CFG_PATH(n, f, fl)                                                                         \
	{                                                                                          \
		.name = (n), .type = CFG_V_PATH, .flags = (fl), .off = CFG_OFF(f)                  \
	}
#define CFG_GROUP(n, tbl, chk)                                                                     \
	{                                                                                          \
		.name = (n), .type = CFG_V_GROUP, .sub = (tbl), .check = (chk)                     \
	}
#define CFG_CUSTOM(n, p, d)                                                                        \
	{                                                                                          \
		.name = (n), .type = CFG_V_CUSTOM, .parse = (p), .dump = (d)                       \
	}
#define CFG_END                                                                                    \
	{                                                                                          \
		.name = NULL                                                                       \
	}

static const struct cfg_key cfg_listen_keys[] = {
        {.name = "kind",
         .type = CFG_V_ENUM,
         .off = offsetof(struct cfg_listen_in, kind),
         .names = cfg_kind_names},
        {.name = "address", .type = CFG_V_STRING, .off = offsetof(struct cfg_listen_in, address)},
        {.name = "port",
         .type = CFG_V_INT,
         .off = offsetof(struct cfg_listen_in, port),
         .min = 1,
         .max = 65535},
        {.name = "upstream", .type = CFG_V_STRING, .off = offsetof(struct cfg_listen_in, upstream)},
        {.name = "upstream_name",
         .type = CFG_V_STRING,
         .off = offsetof(struct cfg_listen_in, upstream_name)},
        {.name = NULL},
};

static const struct cfg_key cfg_static_keys[] = {
        {.name = "domain",
         .type = CFG_V_STRING,
         .flags = CFG_K_REQUIRED,
         .off = offsetof(struct cfg_static_in, domain)},
        {.name = "level",
         .type = CFG_V_ENUM,
         .flags = CFG_K_REQUIRED,
         .off = offsetof(struct cfg_static_in, level),
         .names = cfg_level_names},
        {.name = "mx",
         .type = CFG_V_STRLIST,
         .off = offsetof(struct cfg_static_in, mx),
         .off_n = offsetof(struct cfg_static_in, nmx),
         .elem = cfg_elem_mxpattern},
        {.name = NULL},
};

static const struct cfg_key cfg_dns_keys[] = {
        {.name = "servers",
         .type = CFG_V_STRLIST,
         .off = CFG_OFF(dns_servers),
         .off_n = CFG_OFF(ndns_servers),
         .elem = cfg_elem_dns_server},
        CFG_SECONDS("timeout", dns_timeout, 60),
        CFG_INT("tries", dns_tries, 1, 10),
        CFG_END,
};

static const struct cfg_key cfg_tls_keys[] = {
        CFG_PATH("ca_file", ca_file, CFG_K_FILE),
        CFG_PATH("ca_path", ca_path, CFG_K_DIR),
        CFG_ENUM("min_version", tls_min_version, cfg_tlsver_names),
        CFG_BOOL("resumption", tls_resumption),
        CFG_INT("session_cache_size", tls_cache_size, 1, 1000000),
        CFG_INT("verified_chains", tls_verified_chains, 0, 1000000),
        CFG_BOOL("client_tls", client_tls),
        CFG_PATH("client_cert", client_cert, CFG_K_FILE),
        CFG_PATH("client_key", client_key, CFG_K_FILE),
        CFG_END,
};

static const struct cfg_key cfg_policy_keys[] = {
        CFG_ENUM("default_level", default_level, cfg_level_names),
        CFG_BOOL("reroute", reroute),
        CFG_CUSTOM("static", cfg_parse_static, cfg_dump_static),
        CFG_END,
};

static const struct cfg_key cfg_limits_keys[] = {
        CFG_INT("max_sessions", max_sessions, 1, 1000000),
        /* RFC 5321 §4.5.3.1.4-6: 512 (command, reply) and 1000 (text line)
	 * octets are the minimums; below 512 we would break valid SMTP. */
        CFG_SIZE("max_line", max_line, 512, 65536),
        CFG_INT("max_reply_lines", max_reply_lines, 1, SMTP_REPLY_MAXLINES),
        CFG_SIZE("buffer_high", buffer_high, 4096, 1073741824),
        CFG_SIZE("buffer_low", buffer_low, 0, 1073741824),
        CFG_INT("max_recipients", max_recipients, 1, 1000000),
        CFG_SECONDS("accept_backoff", accept_backoff, 60),
        CFG_END,
};

static const struct cfg_key cfg_timeout_keys[] = {
        CFG_SECONDS("connect", t_connect, CFG_TIMEOUT_MAX),
        CFG_SECONDS("greeting", t_greeting, CFG_TIMEOUT_MAX),
        CFG_SECONDS("command", t_command, CFG_TIMEOUT_MAX),
        CFG_SECONDS("data_block", t_data_block, CFG_TIMEOUT_MAX),
        CFG_SECONDS("data_end", t_data_end, CFG_TIMEOUT_MAX),
        CFG_SECONDS("tls_handshake", t_tls, CFG_TIMEOUT_MAX),
        CFG_SECONDS("idle", t_idle, CFG_TIMEOUT_MAX),
        CFG_SECONDS("dns", t_dns, CFG_TIMEOUT_MAX),
        CFG_END,
};

static const struct cfg_key cfg_log_keys[] = {
        CFG_ENUM("format", log_format, cfg_format_names),
        CFG_PATH("file", log_file, CFG_K_STDIO),
        CFG_ENUM("level", log_level, cfg_loglevel_names),
        CFG_BOOL("syslog", log_syslog),
        CFG_END,
};

/* RFC 8461. The limits are ours: §3.3 asks for "a reasonable" timeout and
 * size, the parser refuses more than STS_POLICY_MAXLEN (64 KiB). */
static const struct cfg_key cfg_sts_keys[] = {
        CFG_BOOL("enabled", sts_enabled),
        CFG_SECONDS("fetch_timeout", sts_fetch_timeout, 300),
        CFG_SIZE("max_policy_size", sts_max_policy_size, 1024, 65536),
        CFG_SECONDS("negative_ttl", sts_negative_ttl, 86400),
        CFG_SECONDS("refresh_interval", sts_refresh_interval, 86400),
        CFG_PATH("cache_file", sts_cache_file, 0),
        /* pcache's own bound (PCACHE_MAXENTRIES) */
        CFG_INT("max_cache_entries", sts_max_cache_entries, 1, 100000),
        CFG_INT("https_port", sts_https_port, 1, 65535),
        CFG_END,
};

/* Downgrade detection: the per-MX memory (policy/tofu.h). */
static const struct cfg_key cfg_detect_keys[] = {
        CFG_ENUM("tofu", tofu, cfg_tofu_names),
        CFG_INT("memory_days", memory_days, 1, 3650),
        CFG_END,
};

/* Prometheus metrics as a node_exporter textfile (see proxy/metrics.h). */
static const struct cfg_key cfg_metrics_keys[] = {
        CFG_PATH("textfile", metrics_textfile, 0),
        CFG_SECONDS("interval", metrics_interval, 3600),
        CFG_END,
};

/* The known top-level settings, in dump order. A new group is one row here
 * plus its member table. */
static const struct cfg_key cfg_top[] = {
        CFG_ENUM("mode", mode, cfg_mode_names),
        CFG_CUSTOM("listen", cfg_parse_listen, cfg_dump_listen),
        CFG_GROUP("dns", cfg_dns_keys, NULL),
        CFG_GROUP("tls", cfg_tls_keys, cfg_check_tls),
        CFG_GROUP("policy", cfg_policy_keys, NULL),
        CFG_GROUP("limits", cfg_limits_keys, cfg_check_limits),
        CFG_GROUP("timeouts", cfg_timeout_keys, NULL),
        CFG_GROUP("log", cfg_log_keys, NULL),
        CFG_PATH("state_dir", state_dir, 0),
        CFG_GROUP("sts", cfg_sts_keys, NULL),
        CFG_GROUP("detect", cfg_detect_keys, NULL),
        CFG_GROUP("metrics", cfg_metrics_keys, cfg_check_metrics),
        CFG_END,
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* ASCII only: configuration values are never interpreted in a locale. */
static bool
cfg_isdigit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
cfg_isalnum(int ch)
{
	return cfg_isdigit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static void
cfg_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void *
cfg_field(void *base, size_t off)
{
	return (char *)base + off;
}

static const void *
cfg_cfield(const void *base, size_t off)
{
	return (const char *)base + off;
}

static void
cfg_strv_free(char **v, int n)
{
	if (v == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A host name: LDH labels of 1..63 octets, 253 in all, no label starting
 * or ending with '-'. The last label must not be all digits (RFC 3696 §2),
 * so "300.1.1.1" is refused instead of being taken for a name.
 */
static bool
cfg_hostname_valid(const char *h)
{
	size_t len = strlen(h), lab = 0;
	bool alldigits = true;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (ch == '.') {
			if (lab == 0 || h[i - 1] == '-')
				return false;
			lab = 0;
			alldigits = true;
			continue;
		}
		if (!cfg_isalnum(ch) && ch != '-')
			return false;
		if (lab == 0 && ch == '-')
			return false;
		if (!cfg_isdigit(ch))
			alldigits = false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && h[len - 1] != '-' && !alldigits;
}

/*
 * Lower-case, drop one trailing dot, check; with allow_dot a leading "."
 * (meaning "every subdomain") is kept. -1 if not a valid name.
 */
static int
cfg_norm_domain(const char *in, bool allow_dot, char *out, size_t outsz)
{
	size_t len = strlen(in);

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len >= outsz)
		return -1;
	memcpy(out, in, len);
	out[len] = '\0';
	cfg_lower(out);
	if (allow_dot && out[0] == '.')
		return cfg_hostname_valid(out + 1) ? 0 : -1;
	return cfg_hostname_valid(out) ? 0 : -1;
}

/* "1".."65535", digits only. */
static int
cfg_parse_port(const char *s, int *port)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s; s++) {
		if (!cfg_isdigit(*s))
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

static int
cfg_ip_family(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return AF_INET6;
	return 0;
}

/*
 * Split "host", "host:port", "[v6]" or "[v6]:port". host gets the name or
 * address without brackets; *port is left alone when none is given.
 * Returns 0, or -1 with a reason in *why.
 */
static const char cfg_why_form[] = "expected host, host:port or [IPv6]:port";

static int
cfg_split_hostport(const char *s, char *host, size_t hostsz, int *port, const char **why)
{
	const char *colon, *end;
	size_t hlen;

	*why = cfg_why_form;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return -1;
		hlen = (size_t)(end - s - 1);
		if (hlen == 0 || hlen >= hostsz)
			return -1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (cfg_ip_family(host) != AF_INET6) {
			*why = "not an IPv6 address inside [ ]";
			return -1;
		}
		if (end[1] == '\0')
			return 0;
		if (end[1] != ':' || cfg_parse_port(end + 2, port) == -1) {
			*why = "port must be between 1 and 65535";
			return -1;
		}
		return 0;
	}
	colon = strchr(s, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		*why = "an IPv6 address must be in brackets, e.g. [2001:db8::1]:25";
		return -1;
	}
	hlen = colon ? (size_t)(colon - s) : strlen(s);
	if (hlen == 0 || hlen >= hostsz)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (colon != NULL && cfg_parse_port(colon + 1, port) == -1) {
		*why = "port must be between 1 and 65535";
		return -1;
	}
	return 0;
}

/* Shortest "%f" text that reads back as the same double, always with a
 * decimal point so libconfig sees a float. */
static void
cfg_fmt_double(double v, char *buf, size_t sz)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sz, "%.*f", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
	snprintf(buf, sz, "%.17g", v);
	if (strpbrk(buf, ".e") == NULL && strlen(buf) + 2 < sz)
		strcat(buf, ".0");
}

/* ------------------------------------------------------------------------ */
/* Error messages                                                            */

/* "listen.[1].address": names from the root, list elements as [index]. */
static void
cfg_setting_path(const config_setting_t *s, char *buf, size_t sz)
{
	const config_setting_t *p = config_setting_parent(s);
	size_t n;

	buf[0] = '\0';
	if (p == NULL)
		return;
	cfg_setting_path(p, buf, sz);
	n = strlen(buf);
	if (n > 0 && n + 1 < sz)
		buf[n++] = '.';
	if (config_setting_is_list(p) || config_setting_is_array(p))
		snprintf(buf + n, sz - n, "[%d]", config_setting_index(s));
	else
		snprintf(buf + n, sz - n, "%s",
		         config_setting_name(s) ? config_setting_name(s) : "?");
}

/* One line, whatever a quoted value contained. */
static void
cfg_oneline(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/*
 * "file:line: path[.child]: message". child names a setting that is
 * missing from the group s (reported at the group's line). Returns -1.
 */
static int
cfg_vfail(struct cfg_loader *ld, const config_setting_t *s, const char *child, const char *fmt,
          va_list ap)
{
	char path[512];
	const char *file;
	int n;

	if (ld->err == NULL || ld->errsz == 0)
		return -1;
	cfg_setting_path(s, path, sizeof(path));
	if (child != NULL) {
		size_t pl = strlen(path);
		snprintf(path + pl, sizeof(path) - pl, "%s%s", pl ? "." : "", child);
	}
	file = config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
	n = snprintf(ld->err, ld->errsz, "%s:%u: %s: ", file, config_setting_source_line(s), path);
	if (n >= 0 && (size_t)n < ld->errsz)
		vsnprintf(ld->err + n, ld->errsz - (size_t)n, fmt, ap);
	cfg_oneline(ld->err);
	return -1;
}

static int cfg_fail(struct cfg_loader *ld, const config_setting_t *s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int cfg_fail_in(struct cfg_loader *ld, const config_setting_t *g, const char *child,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int cfg_fail_plain(struct cfg_loader *ld, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
cfg_fail(struct cfg_loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, s, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

static int
cfg_fail_in(struct cfg_loader *ld, const config_setting_t *g, const char *child, const char *fmt,
            ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, g, child, fmt, ap);
	va_end(ap);
	return -1;
}

/* Problems without a line: the file itself, or a default. */
static int
cfg_fail_plain(struct cfg_loader *ld, const char *fmt, ...)
{
	va_list ap;

	if (ld->err == NULL || ld->errsz == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ld->err, ld->errsz, fmt, ap);
	va_end(ap);
	cfg_oneline(ld->err);
	return -1;
}

static int
cfg_nomem(struct cfg_loader *ld, const config_setting_t *s)
{
	return cfg_fail(ld, s, "out of memory");
}

/* "a, b, c" or "\"a\", \"b\", \"c\"" */
static void
cfg_enum_list(const struct cfg_name *names, bool quoted, char *buf, size_t sz)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct cfg_name *e = names; e->name && n < sz; e++)
		n += (size_t)snprintf(buf + n, sz - n, "%s%s%s%s", e == names ? "" : ", ",
		                      quoted ? "\"" : "", e->name, quoted ? "\"" : "");
}

/* Edit distance for "did you mean", counting a swap of two neighbours as
 * one edit (the commonest typo); names are short. */
static size_t
cfg_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[64][64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

static int
cfg_unknown(struct cfg_loader *ld, const config_setting_t *s, const struct cfg_key *keys)
{
	const char *name = config_setting_name(s), *best = NULL;
	size_t bestd = 3;

	for (const struct cfg_key *k = keys; k->name; k++) {
		size_t d = cfg_distance(name, k->name);
		/* at most two edits, and fewer than half the name: "sts" is
		 * not a typo of "dns" */
		if (d < bestd && 2 * d < strlen(k->name)) {
			bestd = d;
			best = k->name;
		}
	}
	if (best != NULL)
		return cfg_fail(ld, s, "unknown setting (did you mean \"%s\"?)", best);
	return cfg_fail(ld, s, "unknown setting");
}

/* ------------------------------------------------------------------------ */
/* Integer literals libconfig 1.5 wraps                                      */

/*
 * libconfig 1.5 converts a decimal literal with atoi() and a hex literal
 * with strtoul() into an int: "max_sessions = 4294968296" reads as 1000
 * and passes every range check. Scan the files for integer literals
 * (outside strings and comments, without the 64-bit "L" suffix) that do
 * not fit an int, and refuse any integer setting on such a line.
 */
static int
cfg_scan_text(struct cfg_loader *ld, const char *file, const char *p)
{
	unsigned line = 1;

	while (*p) {
		char ch = *p;
		if (ch == '\n') {
			line++;
			p++;
		} else if (ch == '#' || (ch == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (ch == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			if (*p)
				p += 2;
		} else if (ch == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (*p == '\n')
					line++;
			}
			if (*p)
				p++;
		} else if (cfg_isalnum(ch) && !cfg_isdigit(ch)) {
			/* a name (or true/false): its digits are not numbers */
			while (cfg_isalnum(*p) || *p == '_' || *p == '-' || *p == '*')
				p++;
		} else if (cfg_isdigit(ch) || ((ch == '-' || ch == '+') && cfg_isdigit(p[1]))) {
			const char *start = p;
			bool hex = false, big;
			if (ch == '-' || ch == '+')
				p++;
			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
				hex = true;
				for (p += 2; cfg_isalnum(*p); p++)
					;
			} else {
				while (cfg_isdigit(*p))
					p++;
			}
			if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) {
				while (cfg_isdigit(*p) || *p == '.' || *p == 'e' || *p == 'E' ||
				       ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
					p++;
				continue;
			}
			if (*p == 'L')
				continue;
			errno = 0;
			if (hex) {
				unsigned long long v = strtoull(start, NULL, 16);
				big = errno == ERANGE || v > INT_MAX;
			} else {
				long long v = strtoll(start, NULL, 10);
				big = errno == ERANGE || v > INT_MAX || v < INT_MIN;
			}
			if (big) {
				struct cfg_bigint *nb =
				        realloc(ld->big, (ld->nbig + 1) * sizeof(*ld->big));
				if (nb == NULL)
					return -1;
				ld->big = nb;
				ld->big[ld->nbig].file = file;
				ld->big[ld->nbig].line = line;
				ld->nbig++;
			}
		} else {
			p++;
		}
	}
	return 0;
}

static int
cfg_scan_file(struct cfg_loader *ld, const char *name, const char *openpath)
{
	FILE *fp = fopen(openpath, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc;

	if (fp == NULL)
		return 0; /* libconfig just read it; nothing better to say */
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL) {
				free(buf);
				fclose(fp);
				return -1;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, fp);
		if (n == 0)
			break;
		len += n;
	}
	fclose(fp);
	buf[len] = '\0';
	rc = cfg_scan_text(ld, name, buf);
	free(buf);
	return rc;
}

static int
cfg_scan_all(struct cfg_loader *ld, const config_t *lc)
{
	char full[PATH_MAX + 256];

	/* libconfig 1.7 (Debian 13) ends the list with NULL and dropped the
	 * count that 1.5 (Debian 12) keeps. */
#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR < 7
	for (unsigned i = 0; lc->filenames != NULL && i < lc->num_filenames; i++) {
#else
	for (unsigned i = 0; lc->filenames != NULL && lc->filenames[i] != NULL; i++) {
#endif
		const char *name = lc->filenames[i];
		/* @include names are stored as written, relative to include_dir */
		if (i > 0 && name[0] != '/') {
			snprintf(full, sizeof(full), "%s/%s", ld->dir, name);
			if (cfg_scan_file(ld, name, full) == -1)
				return -1;
		} else if (cfg_scan_file(ld, name, name) == -1) {
			return -1;
		}
	}
	return 0;
}

static bool
cfg_wrapped(const struct cfg_loader *ld, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	if (config_setting_type(s) != CONFIG_TYPE_INT || file == NULL)
		return false;
	for (size_t i = 0; i < ld->nbig; i++)
		if (ld->big[i].line == config_setting_source_line(s) &&
		    strcmp(ld->big[i].file, file) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------ */
/* Generic value parsing                                                     */

static int
cfg_get_integer(struct cfg_loader *ld, const config_setting_t *s, long long *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		*v = cfg_wrapped(ld, s) ? LLONG_MAX : config_setting_get_int(s);
		return 0;
	case CONFIG_TYPE_INT64:
		*v = config_setting_get_int64(s);
		return 0;
	default:
		return cfg_fail(ld, s, "expected an integer");
	}
}

/* Float settings take integers too: "timeout = 30;" must not be an error. */
static int
cfg_get_number(struct cfg_loader *ld, const config_setting_t *s, double *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		*v = cfg_wrapped(ld, s) ? HUGE_VAL : config_setting_get_int(s);
		return 0;
	case CONFIG_TYPE_INT64:
		*v = (double)config_setting_get_int64(s);
		return 0;
	case CONFIG_TYPE_FLOAT:
		*v = config_setting_get_float(s);
		return 0;
	default:
		return cfg_fail(ld, s, "expected a number");
	}
}

static const char *
cfg_get_string(struct cfg_loader *ld, const config_setting_t *s)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_fail(ld, s, "expected a string");
		return NULL;
	}
	return config_setting_get_string(s);
}

static int
cfg_check_file(struct cfg_loader *ld, const config_setting_t *s, const char *path, bool dir)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	if (fd == -1)
		return cfg_fail(ld, s, "cannot read \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &st) == -1) {
		int e = errno;
		close(fd);
		return cfg_fail(ld, s, "cannot read \"%s\": %s", path, strerror(e));
	}
	close(fd);
	if (!dir && !S_ISREG(st.st_mode))
		return cfg_fail(ld, s, "\"%s\" is not a regular file", path);
	return 0;
}

static int
cfg_parse_path(struct cfg_loader *ld, const config_setting_t *s, const struct cfg_key *k,
               void *base)
{
	const char *v = cfg_get_string(ld, s);
	char **field = cfg_field(base, k->off);
	char *abs;

	if (v == NULL)
		return -1;
	if (*v == '\0')
		return cfg_fail(ld, s, "must not be empty");
	if ((k->flags & CFG_K_STDIO) && strcmp(v, "-") == 0) {
		abs = strdup(v);
	} else if (v[0] == '/') {
		abs = strdup(v);
	} else {
		size_t n = strlen(ld->dir) + 1 + strlen(v) + 1;
		abs = malloc(n);
		if (abs != NULL)
			snprintf(abs, n, "%s/%s", ld->dir, v);
	}
	if (abs == NULL)
		return cfg_nomem(ld, s);
	free(*field);
	*field = abs;
	/* Checked now so that a reload with a missing certificate keeps the
	 * running configuration instead of failing later, mid-traffic. */
	if (k->flags & (CFG_K_FILE | CFG_K_DIR))
		return cfg_check_file(ld, s, abs, (k->flags & CFG_K_DIR) != 0);
	return 0;
}

static int
cfg_parse_strlist(struct cfg_loader *ld, const config_setting_t *s, const struct cfg_key *k,
                  void *base)
{
	char ***field = cfg_field(base, k->off);
	int *count = cfg_field(base, k->off_n);
	int n = config_setting_length(s);
	char **v;

	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return cfg_fail(ld, s, "expected a list of strings [ \"...\", ... ]");
	v = calloc((size_t)n + 1, sizeof(*v));
	if (v == NULL)
		return cfg_nomem(ld, s);
	cfg_strv_free(*field, *count);
	*field = v;
	*count = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *str = cfg_get_string(ld, e);
		if (str == NULL)
			return -1;
		if ((v[i] = strdup(str)) == NULL)
			return cfg_nomem(ld, e);
		*count = i + 1;
		if (k->elem != NULL && k->elem(ld, e, v[i]) == -1)
			return -1;
	}
	return 0;
}

static const struct cfg_key *
cfg_key_find(const struct cfg_key *keys, const char *name)
{
	for (const struct cfg_key *k = keys; k->name; k++)
		if (name != NULL && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static int cfg_parse_members(struct cfg_loader *, const config_setting_t *, const struct cfg_key *,
                             void *);

static int
cfg_parse_value(struct cfg_loader *ld, const config_setting_t *s, const struct cfg_key *k,
                void *base)
{
	char list[256];
	long long iv;
	double dv;
	const char *sv;

	switch (k->type) {
	case CFG_V_GROUP:
		if (!config_setting_is_group(s))
			return cfg_fail(ld, s, "expected a group { ... }");
		if (cfg_parse_members(ld, s, k->sub, base) == -1)
			return -1;
		return k->check ? k->check(ld, s, base) : 0;
	case CFG_V_ENUM:
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			cfg_enum_list(k->names, true, list, sizeof(list));
			return cfg_fail(ld, s, "expected a string, one of %s", list);
		}
		sv = config_setting_get_string(s);
		for (const struct cfg_name *e = k->names; e->name; e++) {
			if (strcmp(e->name, sv) == 0) {
				memcpy(cfg_field(base, k->off), &e->value, sizeof(int));
				return 0;
			}
		}
		cfg_enum_list(k->names, false, list, sizeof(list));
		return cfg_fail(ld, s, "expected one of %s", list);
	case CFG_V_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return cfg_fail(ld, s, "expected true or false");
		*(bool *)cfg_field(base, k->off) = config_setting_get_bool(s) != 0;
		return 0;
	case CFG_V_INT:
	case CFG_V_SIZE:
		if (cfg_get_integer(ld, s, &iv) == -1)
			return -1;
		if (iv < k->min || iv > k->max)
			return cfg_fail(ld, s, "must be between %lld and %lld", k->min, k->max);
		if (k->type == CFG_V_INT)
			*(int *)cfg_field(base, k->off) = (int)iv;
		else
			*(size_t *)cfg_field(base, k->off) = (size_t)iv;
		return 0;
	case CFG_V_SECONDS:
		if (cfg_get_number(ld, s, &dv) == -1)
			return -1;
		if (!(dv > 0 && dv <= (double)k->max))
			return cfg_fail(ld, s, "must be greater than 0 and at most %lld", k->max);
		*(double *)cfg_field(base, k->off) = dv;
		return 0;
	case CFG_V_PATH:
		return cfg_parse_path(ld, s, k, base);
	case CFG_V_STRING:
		if ((sv = cfg_get_string(ld, s)) == NULL)
			return -1;
		*(const char **)cfg_field(base, k->off) = sv;
		return 0;
	case CFG_V_STRLIST:
		return cfg_parse_strlist(ld, s, k, base);
	case CFG_V_CUSTOM:
		return k->parse(ld, s);
	}
	return cfg_fail(ld, s, "internal error: unknown setting type");
}

static int
cfg_parse_members(struct cfg_loader *ld, const config_setting_t *g, const struct cfg_key *keys,
                  void *base)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const struct cfg_key *k = cfg_key_find(keys, config_setting_name(s));
		if (k == NULL)
			return cfg_unknown(ld, s, keys);
		if (cfg_parse_value(ld, s, k, base) == -1)
			return -1;
	}
	for (const struct cfg_key *k = keys; k->name; k++)
		if ((k->flags & CFG_K_REQUIRED) && config_setting_get_member(g, k->name) == NULL)
			return cfg_fail_in(ld, g, k->name, "required but not set");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Settings with their own rules                                             */

static int
cfg_elem_dns_server(struct cfg_loader *ld, const config_setting_t *s, char *v)
{
	static const char form[] = "not an IP address, IP:port or [IPv6]:port";
	char host[INET6_ADDRSTRLEN + 1];
	const char *why;
	int port = 53;

	/* A bare IPv6 address is unambiguous without a port. */
	if (cfg_ip_family(v) == AF_INET6)
		return 0;
	if (cfg_split_hostport(v, host, sizeof(host), &port, &why) == -1)
		return cfg_fail(ld, s, "%s", why == cfg_why_form ? form : why);
	if (cfg_ip_family(host) == 0)
		return cfg_fail(ld, s, "%s", form);
	return 0;
}

static int
cfg_elem_mxpattern(struct cfg_loader *ld, const config_setting_t *s, char *v)
{
	if (!mxpattern_valid(v, strlen(v)))
		return cfg_fail(ld, s, "not a valid MX host pattern (host name or \"*.\" + name)");
	cfg_lower(v);
	return 0;
}

static int
cfg_check_tls(struct cfg_loader *ld, const config_setting_t *g, void *base)
{
	const struct cfg *c = base;
	const config_setting_t *cert = config_setting_get_member(g, "client_cert");
	const config_setting_t *key = config_setting_get_member(g, "client_key");

	/* A certificate without its key (or the reverse) cannot be used; a
	 * silent fallback to a generated certificate would hide the mistake. */
	if (c->client_cert != NULL && c->client_key == NULL)
		return cfg_fail(ld, cert, "tls.client_key must be set as well");
	if (c->client_key != NULL && c->client_cert == NULL)
		return cfg_fail(ld, key, "tls.client_cert must be set as well");
	return 0;
}

static int
cfg_check_limits(struct cfg_loader *ld, const config_setting_t *g, void *base)
{
	const struct cfg *c = base;
	const config_setting_t *low = config_setting_get_member(g, "buffer_low");
	const config_setting_t *high = config_setting_get_member(g, "buffer_high");

	/* Equal marks would stop and resume reading on every byte. */
	if (c->buffer_low >= c->buffer_high) {
		if (low != NULL)
			return cfg_fail(ld, low, "must be less than limits.buffer_high (%zu)",
			                c->buffer_high);
		return cfg_fail(ld, high, "must be greater than limits.buffer_low (%zu)",
		                c->buffer_low);
	}
	return 0;
}

static int
cfg_check_metrics(struct cfg_loader *ld, const config_setting_t *g, void *base)
{
	const struct cfg *c = base;
	const char *f = c->metrics_textfile;
	size_t n = f != NULL ? strlen(f) : 0;

	/* node_exporter's textfile collector reads only *.prom: any other
	 * name would be written forever and never collected. */
	if (f != NULL && (n < 6 || strcmp(f + n - 5, ".prom") != 0 || f[n - 6] == '/'))
		return cfg_fail(ld, config_setting_get_member(g, "textfile"),
		                "must name a file ending in \".prom\" (node_exporter's textfile "
		                "collector reads only those)");
	return 0;
}

static void
cfg_listener_text(struct cfg_listener *l)
{
	char a[INET6_ADDRSTRLEN];
	int port;

	if (l->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		port = ntohs(sin6->sin6_port);
		snprintf(l->addrtext, sizeof(l->addrtext), "[%s]:%d", a, port);
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		port = ntohs(sin->sin_port);
		snprintf(l->addrtext, sizeof(l->addrtext), "%s:%d", a, port);
	}
}

static int
cfg_listener_set(struct cfg_listener *l, enum cfg_listen_kind kind, const char *addr, int port)
{
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	if (cfg_ip_family(addr) == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &sin->sin_addr);
		l->addrlen = sizeof(*sin);
	} else if (cfg_ip_family(addr) == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &sin6->sin6_addr);
		l->addrlen = sizeof(*sin6);
	} else {
		return -1;
	}
	cfg_listener_text(l);
	return 0;
}

static bool
cfg_listener_same(const struct cfg_listener *a, const struct cfg_listener *b)
{
	return a->addrlen == b->addrlen && a->addr.ss_family == b->addr.ss_family &&
	       strcmp(a->addrtext, b->addrtext) == 0;
}

static int
cfg_listener_upstream(struct cfg_loader *ld, const config_setting_t *g,
                      const struct cfg_listen_in *in, struct cfg_listener *l)
{
	const config_setting_t *us = config_setting_get_member(g, "upstream");
	const config_setting_t *ns = config_setting_get_member(g, "upstream_name");
	const char *why;
	int port = 25;

	if (in->kind != CFG_LISTEN_FIXED) {
		if (us != NULL)
			return cfg_fail(ld, us, "only allowed with kind = \"fixed\"");
		if (ns != NULL)
			return cfg_fail(ld, ns, "only allowed with kind = \"fixed\"");
		return 0;
	}
	if (us == NULL)
		return cfg_fail_in(ld, g, "upstream", "required with kind = \"fixed\"");
	if (cfg_split_hostport(in->upstream, l->upstream_host, sizeof(l->upstream_host), &port,
	                       &why) == -1)
		return cfg_fail(ld, us, "%s", why);
	l->upstream_port = port;
	if (cfg_ip_family(l->upstream_host) == 0) {
		char norm[256];
		if (cfg_norm_domain(l->upstream_host, false, norm, sizeof(norm)) == -1)
			return cfg_fail(ld, us, "not a valid host name or IP address");
		snprintf(l->upstream_host, sizeof(l->upstream_host), "%s", norm);
		/* The name we connect to is the name the certificate must carry. */
		snprintf(l->upstream_name, sizeof(l->upstream_name), "%s", norm);
	}
	if (ns != NULL && cfg_norm_domain(in->upstream_name, false, l->upstream_name,
	                                  sizeof(l->upstream_name)) == -1)
		return cfg_fail(ld, ns, "not a valid host name");
	return 0;
}

static int
cfg_parse_listen(struct cfg_loader *ld, const config_setting_t *s)
{
	struct cfg *c = ld->c;
	struct cfg_listener *ls;
	int n = config_setting_length(s);

	if (!config_setting_is_list(s))
		return cfg_fail(ld, s, "expected a list of groups ( { ... }, ... )");
	if (n == 0)
		return cfg_fail(ld, s, "at least one listener is required");
	if ((ls = calloc((size_t)n, sizeof(*ls))) == NULL)
		return cfg_nomem(ld, s);
	free(c->listeners);
	c->listeners = ls;
	c->nlisteners = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
		struct cfg_listen_in in = {
		        .kind = CFG_LISTEN_REDIRECT, .address = "127.0.0.1", .port = 10025};

		if (!config_setting_is_group(g))
			return cfg_fail(ld, g, "expected a group { ... }");
		if (cfg_parse_members(ld, g, cfg_listen_keys, &in) == -1)
			return -1;
		if (cfg_listener_set(&ls[i], (enum cfg_listen_kind)in.kind, in.address, in.port) ==
		    -1) {
			const config_setting_t *a = config_setting_get_member(g, "address");
			return cfg_fail(ld, a, "not an IP address");
		}
		if (cfg_listener_upstream(ld, g, &in, &ls[i]) == -1)
			return -1;
		for (int j = 0; j < i; j++) {
			/* Caught here rather than as EADDRINUSE at start-up. */
			if (cfg_listener_same(&ls[j], &ls[i]))
				return cfg_fail(ld, g,
				                "%s is already used by listen.[%d] (line %u)",
				                ls[i].addrtext, j,
				                config_setting_source_line(
				                        config_setting_get_elem(s, (unsigned)j)));
		}
		c->nlisteners = i + 1;
	}
	return 0;
}

static int
cfg_policy_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cfg_policy *)a)->domain,
	              ((const struct cfg_policy *)b)->domain);
}

struct cfg_policy_ref {
	const char *domain;
	int idx;
};

static int
cfg_policy_ref_cmp(const void *a, const void *b)
{
	const struct cfg_policy_ref *x = a, *y = b;
	int r = strcmp(x->domain, y->domain);

	return r != 0 ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Two entries for one domain would make the effective policy depend on
 * table order; refuse them. */
static int
cfg_policy_dups(struct cfg_loader *ld, const config_setting_t *s)
{
	const struct cfg *c = ld->c;
	struct cfg_policy_ref *r;
	int rc = 0;

	if (c->npolicies < 2)
		return 0;
	if ((r = calloc((size_t)c->npolicies, sizeof(*r))) == NULL)
		return cfg_nomem(ld, s);
	for (int i = 0; i < c->npolicies; i++) {
		r[i].domain = c->policies[i].domain;
		r[i].idx = i;
	}
	qsort(r, (size_t)c->npolicies, sizeof(*r), cfg_policy_ref_cmp);
	for (int i = 1; i < c->npolicies && rc == 0; i++) {
		if (strcmp(r[i - 1].domain, r[i].domain) == 0) {
			const config_setting_t *first =
			        config_setting_get_elem(s, (unsigned)r[i - 1].idx);
			const config_setting_t *dup = config_setting_get_member(
			        config_setting_get_elem(s, (unsigned)r[i].idx), "domain");
			rc = cfg_fail(ld, dup, "duplicate of policy.static.[%d] (line %u)",
			              r[i - 1].idx, config_setting_source_line(first));
		}
	}
	free(r);
	return rc;
}

static int
cfg_parse_static(struct cfg_loader *ld, const config_setting_t *s)
{
	struct cfg *c = ld->c;
	int n = config_setting_length(s);
	struct cfg_policy *ps;

	if (!config_setting_is_list(s))
		return cfg_fail(ld, s, "expected a list of groups ( { ... }, ... )");
	if ((ps = calloc((size_t)n + 1, sizeof(*ps))) == NULL)
		return cfg_nomem(ld, s);
	for (int i = 0; i < c->npolicies; i++)
		cfg_strv_free(c->policies[i].mx, c->policies[i].nmx);
	free(c->policies);
	c->policies = ps;
	c->npolicies = 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
		struct cfg_static_in in = {.level = CFG_TLS_VERIFY};
		int rc;

		if (!config_setting_is_group(g))
			return cfg_fail(ld, g, "expected a group { ... }");
		rc = cfg_parse_members(ld, g, cfg_static_keys, &in);
		/* the pattern list is owned by the entry from here on */
		ps[i].mx = in.mx;
		ps[i].nmx = in.nmx;
		ps[i].level = (enum cfg_tls_level)in.level;
		c->npolicies = i + 1;
		if (rc == -1)
			return -1;
		if (cfg_norm_domain(in.domain, true, ps[i].domain, sizeof(ps[i].domain)) == -1)
			return cfg_fail(ld, config_setting_get_member(g, "domain"),
			                "not a valid domain name (use the A-label form for IDNs)");
	}
	if (cfg_policy_dups(ld, s) == -1)
		return -1;
	/* Sorted for the binary search in cfg_policy_find(). */
	qsort(c->policies, (size_t)c->npolicies, sizeof(*c->policies), cfg_policy_cmp);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

static void
cfg_free(struct cfg *c)
{
	free(c->path);
	free(c->listeners);
	cfg_strv_free(c->dns_servers, c->ndns_servers);
	free(c->ca_file);
	free(c->ca_path);
	free(c->client_cert);
	free(c->client_key);
	for (int i = 0; i < c->npolicies; i++)
		cfg_strv_free(c->policies[i].mx, c->policies[i].nmx);
	free(c->policies);
	free(c->log_file);
	free(c->state_dir);
	free(c->sts_cache_file);
	free(c->metrics_textfile);
	free(c);
}

struct cfg *
cfg_defaults(void)
{
	struct cfg *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->refcnt = 1;
	c->mode = CFG_MODE_UPGRADE;

	c->listeners = calloc(2, sizeof(*c->listeners));
	if (c->listeners == NULL)
		goto fail;
	cfg_listener_set(&c->listeners[0], CFG_LISTEN_REDIRECT, "127.0.0.1", 10025);
	cfg_listener_set(&c->listeners[1], CFG_LISTEN_REDIRECT, "::1", 10025);
	c->nlisteners = 2;

	c->dns_timeout = 5.0;
	c->dns_tries = 2;

	c->ca_file = strdup(CFG_DEFAULT_CA_FILE);
	c->tls_min_version = 12;
	c->tls_resumption = true;
	c->tls_cache_size = 1000;
	c->tls_verified_chains = 512;
	c->client_tls = false;

	c->default_level = CFG_TLS_MAY;
	c->reroute = true;

	c->max_sessions = 1000;
	c->max_line = 4096;
	c->max_reply_lines = 64;
	c->buffer_high = 262144;
	c->buffer_low = 65536;
	c->max_recipients = 1000;
	c->accept_backoff = 1.0;

	c->t_connect = 30;
	c->t_greeting = 300;
	c->t_command = 300;
	c->t_data_block = 180;
	c->t_data_end = 600;
	c->t_tls = 60;
	c->t_idle = 300;
	c->t_dns = 30;

	c->log_format = CFG_LOG_JSON;
	c->log_file = strdup("-");
	c->log_level = LOG_INFO;
	c->log_syslog = false;
	c->state_dir = NULL;

	c->sts_enabled = true;
	c->sts_fetch_timeout = 30;
	c->sts_max_policy_size = 65536;
	c->sts_negative_ttl = 300;
	c->sts_refresh_interval = 3600;
	c->sts_cache_file = NULL; /* cfg_load: <state_dir>/mta-sts.cache */
	c->sts_max_cache_entries = 10000;
	c->sts_https_port = 443;

	c->tofu = CFG_TOFU_ALERT;
	c->memory_days = 30;

	c->metrics_textfile = NULL;
	c->metrics_interval = 15;

	if (c->ca_file == NULL || c->log_file == NULL)
		goto fail;
	return c;
fail:
	cfg_free(c);
	return NULL;
}

/* The directory relative names are taken from, made absolute. */
static int
cfg_base_dir(const char *path, char *dir)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(tmp, sizeof(tmp), ".");
	else if (slash == path)
		snprintf(tmp, sizeof(tmp), "/");
	else
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(slash - path), path);
	return realpath(tmp, dir) == NULL ? -1 : 0;
}

struct cfg *
cfg_load(const char *path, char *err, size_t errsz)
{
	struct cfg_loader ld = {.path = path, .err = err, .errsz = errsz};
	config_t lc;
	struct stat st;
	FILE *fp;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		cfg_fail_plain(&ld, "no configuration file given");
		return NULL;
	}
	/* Opened here first: libconfig only says "file I/O error". */
	if ((fp = fopen(path, "re")) == NULL) {
		cfg_fail_plain(&ld, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		cfg_fail_plain(&ld, "%s: not a regular file", path);
		return NULL;
	}
	fclose(fp);
	if (cfg_base_dir(path, ld.dir) == -1) {
		cfg_fail_plain(&ld, "%s: cannot resolve its directory: %s", path, strerror(errno));
		return NULL;
	}

	config_init(&lc);
	config_set_include_dir(&lc, ld.dir);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			cfg_fail_plain(&ld, "%s: cannot read: %s", path,
			               config_error_text(&lc) ? config_error_text(&lc)
			                                      : "I/O error");
		else
			cfg_fail_plain(&ld, "%s:%d: %s",
			               config_error_file(&lc) ? config_error_file(&lc) : path,
			               config_error_line(&lc),
			               config_error_text(&lc) ? config_error_text(&lc)
			                                      : "syntax error");
		config_destroy(&lc);
		return NULL;
	}

	if ((ld.c = cfg_defaults()) == NULL || (ld.c->path = strdup(path)) == NULL) {
		cfg_fail_plain(&ld, "%s: out of memory", path);
		goto fail;
	}
	if (cfg_scan_all(&ld, &lc) == -1) {
		cfg_fail_plain(&ld, "%s: out of memory", path);
		goto fail;
	}
	if (cfg_parse_members(&ld, config_root_setting(&lc), cfg_top, ld.c) == -1)
		goto fail;
	/* The default bundle is checked too: a host without it would only
	 * notice at the first TLS handshake. */
	if (config_lookup(&lc, "tls.ca_file") == NULL && access(ld.c->ca_file, R_OK) == -1) {
		cfg_fail_plain(&ld, "%s: tls.ca_file: default \"%s\" cannot be read: %s", path,
		               ld.c->ca_file, strerror(errno));
		goto fail;
	}
	/* The policy cache lives in the state directory unless placed
	 * elsewhere; without either it is kept in memory only. */
	if (ld.c->sts_cache_file == NULL && ld.c->state_dir != NULL &&
	    asprintf(&ld.c->sts_cache_file, "%s/mta-sts.cache", ld.c->state_dir) < 0) {
		ld.c->sts_cache_file = NULL;
		cfg_fail_plain(&ld, "%s: out of memory", path);
		goto fail;
	}
	config_destroy(&lc);
	free(ld.big);
	return ld.c;
fail:
	config_destroy(&lc);
	free(ld.big);
	cfg_unref(ld.c);
	return NULL;
}

struct cfg *
cfg_ref(struct cfg *c)
{
	if (c != NULL)
		c->refcnt++;
	return c;
}

void
cfg_unref(struct cfg *c)
{
	if (c == NULL || --c->refcnt > 0)
		return;
	cfg_free(c);
}

static int
cfg_policy_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct cfg_policy *)elem)->domain);
}

const struct cfg_policy *
cfg_policy_find(const struct cfg *c, const char *domain)
{
	char d[256];
	const struct cfg_policy *p;
	size_t len;

	if (c == NULL || domain == NULL || c->npolicies == 0)
		return NULL;
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	/* a query is a domain, never a ".parent" pattern itself */
	if (len == 0 || len >= sizeof(d) || domain[0] == '.')
		return NULL;
	memcpy(d, domain, len);
	d[len] = '\0';
	cfg_lower(d);

	p = bsearch(d, c->policies, (size_t)c->npolicies, sizeof(*p), cfg_policy_key_cmp);
	if (p != NULL)
		return p;
	/* ".example.com" covers every name below example.com, not
	 * example.com itself; the leftmost dot gives the longest parent. */
	for (const char *dot = strchr(d + 1, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
		p = bsearch(dot, c->policies, (size_t)c->npolicies, sizeof(*p), cfg_policy_key_cmp);
		if (p != NULL)
			return p;
	}
	return NULL;
}

static const char *
cfg_enum_name(const struct cfg_name *names, int v)
{
	for (const struct cfg_name *e = names; e->name; e++)
		if (e->value == v)
			return e->name;
	return "?";
}

const char *
cfg_mode_name(enum cfg_mode m)
{
	return cfg_enum_name(cfg_mode_names, (int)m);
}

const char *
cfg_tls_level_name(enum cfg_tls_level l)
{
	return cfg_enum_name(cfg_level_names, (int)l);
}

const char *
cfg_listen_kind_name(enum cfg_listen_kind k)
{
	return cfg_enum_name(cfg_kind_names, (int)k);
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                      */

static void
cfg_dump_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", fp);
		else if (ch == '\t')
			fputs("\\t", fp);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(fp, "\\x%02x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

static void
cfg_dump_strv(FILE *fp, char *const *v, int n)
{
	fputc('[', fp);
	for (int i = 0; i < n; i++) {
		fputs(i ? ", " : " ", fp);
		cfg_dump_string(fp, v[i]);
	}
	fputs(n ? " ]" : "]", fp);
}

static void
cfg_indent(FILE *fp, int indent)
{
	for (int i = 0; i < indent; i++)
		fputc('\t', fp);
}

static void
cfg_dump_keys(const struct cfg *c, const struct cfg_key *keys, FILE *fp, int indent)
{
	char num[64];

	for (const struct cfg_key *k = keys; k->name; k++) {
		const void *f = cfg_cfield(c, k->off);
		int iv;

		if (k->type == CFG_V_CUSTOM) {
			k->dump(c, fp, indent);
			continue;
		}
		if (k->type == CFG_V_PATH && *(char *const *)f == NULL) {
			cfg_indent(fp, indent);
			fprintf(fp, "# %s not set\n", k->name);
			continue;
		}
		cfg_indent(fp, indent);
		fprintf(fp, "%s = ", k->name);
		switch (k->type) {
		case CFG_V_GROUP:
			fputs("{\n", fp);
			cfg_dump_keys(c, k->sub, fp, indent + 1);
			cfg_indent(fp, indent);
			fputc('}', fp);
			break;
		case CFG_V_ENUM:
			memcpy(&iv, f, sizeof(iv));
			cfg_dump_string(fp, cfg_enum_name(k->names, iv));
			break;
		case CFG_V_BOOL:
			fputs(*(const bool *)f ? "true" : "false", fp);
			break;
		case CFG_V_INT:
			fprintf(fp, "%d", *(const int *)f);
			break;
		case CFG_V_SIZE:
			fprintf(fp, "%zu", *(const size_t *)f);
			break;
		case CFG_V_SECONDS:
			cfg_fmt_double(*(const double *)f, num, sizeof(num));
			fputs(num, fp);
			break;
		case CFG_V_PATH:
		case CFG_V_STRING:
			cfg_dump_string(fp, *(const char *const *)f);
			break;
		case CFG_V_STRLIST:
			cfg_dump_strv(fp, *(char **const *)f,
			              *(const int *)cfg_cfield(c, k->off_n));
			break;
		case CFG_V_CUSTOM:
			break;
		}
		fputs(";\n", fp);
	}
}

static void
cfg_dump_listen(const struct cfg *c, FILE *fp, int indent)
{
	cfg_indent(fp, indent);
	fputs("listen = (\n", fp);
	for (int i = 0; i < c->nlisteners; i++) {
		const struct cfg_listener *l = &c->listeners[i];
		char a[INET6_ADDRSTRLEN] = "";
		int port;

		if (l->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
			inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
			port = ntohs(sin6->sin6_port);
		} else {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
			inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
			port = ntohs(sin->sin_port);
		}
		cfg_indent(fp, indent + 1);
		fprintf(fp, "{ kind = \"%s\"; address = \"%s\"; port = %d;",
		        cfg_listen_kind_name(l->kind), a, port);
		if (l->kind == CFG_LISTEN_FIXED) {
			bool v6 = strchr(l->upstream_host, ':') != NULL;
			fprintf(fp, " upstream = \"%s%s%s:%d\";", v6 ? "[" : "", l->upstream_host,
			        v6 ? "]" : "", l->upstream_port);
			if (l->upstream_name[0] != '\0')
				fprintf(fp, " upstream_name = \"%s\";", l->upstream_name);
		}
		fputs(i + 1 < c->nlisteners ? " },\n" : " }\n", fp);
	}
	cfg_indent(fp, indent);
	fputs(");\n", fp);
}

static void
cfg_dump_static(const struct cfg *c, FILE *fp, int indent)
{
	cfg_indent(fp, indent);
	fputs("static = (", fp);
	for (int i = 0; i < c->npolicies; i++) {
		const struct cfg_policy *p = &c->policies[i];

		fputs(i ? ",\n" : "\n", fp);
		cfg_indent(fp, indent + 1);
		fprintf(fp, "{ domain = \"%s\"; level = \"%s\";", p->domain,
		        cfg_tls_level_name(p->level));
		if (p->nmx > 0) {
			fputs(" mx = ", fp);
			cfg_dump_strv(fp, p->mx, p->nmx);
			fputc(';', fp);
		}
		fputs(" }", fp);
	}
	if (c->npolicies > 0) {
		fputc('\n', fp);
		cfg_indent(fp, indent);
	}
	fputs(");\n", fp);
}

void
cfg_dump(const struct cfg *c, FILE *fp)
{
	fputs("# stsproxy effective configuration, from ", fp);
	for (const char *p = c->path ? c->path : "the embedded defaults"; *p; p++)
		fputc((unsigned char)*p < 0x20 ? '?' : *p, fp);
	fputc('\n', fp);
	cfg_dump_keys(c, cfg_top, fp, 0);
}
