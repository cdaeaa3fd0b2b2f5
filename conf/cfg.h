/*
 * cfg: load a libconfig file into a validated, immutable, reference-counted
 * snapshot. Sessions keep the snapshot they started with (cfg_ref /
 * cfg_unref) so a later reload never changes a running session.
 *
 * Every error names file, line and setting:
 *   "stsproxy.conf:14: mode: expected one of monitor, upgrade, enforce"
 * Without a file, cfg_defaults() gives the embedded defaults.
 */
#ifndef STSPROXY_CFG_H
#define STSPROXY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

enum cfg_mode {
	CFG_MODE_MONITOR = 0, /* relay bytes unchanged, observe and log only */
	CFG_MODE_UPGRADE, /* always try verified TLS upstream; plaintext if nothing requires TLS */
	CFG_MODE_ENFORCE, /* as upgrade; TLS-requiring policies are never met by plaintext */
};

enum cfg_listen_kind {
	CFG_LISTEN_REDIRECT = 0, /* iptables/nft REDIRECT: SO_ORIGINAL_DST */
	CFG_LISTEN_TPROXY,       /* TPROXY: IP_TRANSPARENT, destination = getsockname */
	CFG_LISTEN_FIXED,        /* always relay to one configured upstream */
};

/* Ordered TLS security levels (Postfix-style): a higher level is stricter. */
enum cfg_tls_level {
	CFG_TLS_NONE = 0, /* plaintext, never try TLS */
	CFG_TLS_MAY,      /* try TLS, plaintext if it fails */
	CFG_TLS_ENCRYPT,  /* TLS required, certificate not checked */
	CFG_TLS_VERIFY,   /* TLS required, chain and MX host name verified */
};

enum cfg_log_format { CFG_LOG_JSON = 0, CFG_LOG_TEXT };

/* The per-MX memory (TOFU): alert only, or also refuse plaintext. */
enum cfg_tofu {
	CFG_TOFU_ALERT = 0, /* raise alerts (starttls_downgrade_vs_memory), change nothing */
	CFG_TOFU_DEFER,     /* also defer (4xx) plaintext to an MX whose last TLS worked */
};

struct cfg_listener {
	enum cfg_listen_kind kind;
	struct sockaddr_storage addr; /* bind address */
	socklen_t addrlen;
	char addrtext[80]; /* "127.0.0.1:10025" / "[::1]:10025" for logs */
	/* fixed only */
	char upstream_host[256]; /* host name or address literal */
	int upstream_port;
	char upstream_name[256]; /* TLS name (SNI + certificate check); default upstream_host */
	                         /* "" for an address-literal upstream without upstream_name */
};

struct cfg_policy {
	char domain[256]; /* lower-case, no trailing dot; leading "." = all subdomains */
	enum cfg_tls_level level;
	char **mx; /* acceptable MX host patterns (mxpattern syntax, lower-case), may be empty */
	int nmx;
};

struct cfg {
	int refcnt;
	char *path; /* NULL for embedded defaults */

	enum cfg_mode mode;
	struct cfg_listener *listeners;
	int nlisteners;

	/* dns */
	char **dns_servers; /* "addr" or "addr:port" / "[v6]:port"; none = system resolver */
	int ndns_servers;
	double dns_timeout; /* seconds per try */
	int dns_tries;

	/* tls toward servers */
	char *ca_file;           /* PEM bundle */
	char *ca_path;           /* directory of PEM files, may be NULL */
	int tls_min_version;     /* 12 or 13 */
	bool tls_resumption;     /* session cache/tickets toward repeat MX hosts */
	int tls_cache_size;      /* remembered upstream sessions */
	int tls_verified_chains; /* certificate chains remembered as verified; 0 = none */

	/* optional STARTTLS offered to the legacy client */
	bool client_tls;
	char *client_cert; /* PEM; NULL with client_tls = generate a self-signed one at start-up */
	char *client_key;

	/* policy */
	enum cfg_tls_level default_level; /* for domains without a policy (upgrade: may) */
	struct cfg_policy *policies; /* sorted by domain (strcmp), unique: see cfg_policy_find */
	int npolicies;
	bool reroute; /* try policy-valid MX hosts when the destination fails the policy */

	/* limits */
	int max_sessions;
	size_t max_line;       /* command / reply line bytes without CRLF */
	int max_reply_lines;   /* lines in one server reply (EHLO) */
	size_t buffer_high;    /* per direction: stop reading the other side above this */
	size_t buffer_low;     /* resume below this */
	int max_recipients;    /* per transaction */
	double accept_backoff; /* seconds to pause accept() after EMFILE/ENFILE */

	/* timeouts, seconds (RFC 5321 §4.5.3.2 defaults) */
	double t_connect;
	double t_greeting;
	double t_command;    /* a server reply to a command */
	double t_data_block; /* between body bytes in either direction */
	double t_data_end;   /* server reply to the final dot */
	double t_tls;        /* whole TLS handshake */
	double t_idle;       /* client silent between commands */
	double t_dns;        /* a whole MX/address resolution */

	/* logging */
	enum cfg_log_format log_format;
	char *log_file;  /* "-" = stderr */
	int log_level;   /* LOG_ERR..LOG_DEBUG from <syslog.h> */
	bool log_syslog; /* also send alert events to syslog */

	/* state kept across restarts */
	char *state_dir; /* policy cache, TOFU memory; NULL = none kept */

	/* MTA-STS (RFC 8461), group "sts" */
	bool sts_enabled;
	double sts_fetch_timeout;    /* one policy fetch, resolution to last body byte */
	size_t sts_max_policy_size;  /* policy body bytes; more is a failed fetch */
	double sts_negative_ttl;     /* a failed fetch is not retried for the same id */
	double sts_refresh_interval; /* period of the proactive refresh scan */
	char *sts_cache_file;        /* persistent policy cache; NULL = memory only */
	int sts_max_cache_entries;
	int sts_https_port; /* 443; other values are for tests only */

	/* downgrade detection, group "detect" */
	enum cfg_tofu tofu; /* what the per-MX memory may do */
	int memory_days;    /* "offered STARTTLS before" is remembered this long */

	/* metrics, group "metrics": node_exporter textfile */
	char *metrics_textfile;  /* written atomically; NULL = no metrics */
	double metrics_interval; /* seconds between writes */
};

/* Embedded defaults (listen 127.0.0.1:10025 and [::1]:10025, redirect, upgrade). */
struct cfg *cfg_defaults(void);

/*
 * Load and validate path. On error returns NULL and writes one message
 * (file:line: setting: problem) into err.
 *
 * Setting paths use libconfig syntax with 0-based list indexes
 * ("listen.[1].address"). A problem that has no line (the file cannot be
 * opened, the default tls.ca_file is unreadable) is "file: problem" or
 * "file: setting: problem". err may be NULL. Relative file names in the
 * file (and @include) are taken relative to the file's directory; the
 * snapshot holds absolute names. Files named by tls.ca_file, ca_path,
 * client_cert and client_key (ca_file also when defaulted) must be
 * readable at load time, so a reload with a missing file fails and the
 * running snapshot stays in use.
 */
struct cfg *cfg_load(const char *path, char *err, size_t errsz);

struct cfg *cfg_ref(struct cfg *c);
void cfg_unref(struct cfg *c); /* NULL-safe; frees at zero */

/* Find the static policy for a domain: exact match first, then the
 * longest ".parent" entry. NULL if none. */
const struct cfg_policy *cfg_policy_find(const struct cfg *c, const char *domain);

const char *cfg_mode_name(enum cfg_mode m);
const char *cfg_tls_level_name(enum cfg_tls_level l);
const char *cfg_listen_kind_name(enum cfg_listen_kind k);

/* Dump the effective configuration in libconfig syntax (for --check-config -v). */
void cfg_dump(const struct cfg *c, FILE *fp);

#endif
