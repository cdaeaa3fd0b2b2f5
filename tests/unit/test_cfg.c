/*
 * test_cfg: table-driven tests of the configuration loader (conf/cfg.c).
 *
 * - every good file loads, the shipped examples included, and the values
 *   land where they should; the reference example documents the real
 *   defaults;
 * - a table of bad snippets, each with the exact one-line message it must
 *   produce ("file:line: setting: problem");
 * - static policy lookup (exact, then the longest ".parent");
 * - cfg_dump() output loads back into an equal configuration.
 *
 * Snippets are written to a private temporary directory; messages are
 * compared with that directory stripped from the front.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <syslog.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "cfg.h"

#define DATA     TEST_DATA_DIR "/cfg"
#define EXAMPLES TEST_DATA_DIR "/../../conf/examples"

static char tmpdir[] = "/tmp/test_cfg.XXXXXX";

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Load text as <tmpdir>/name; returns the cfg or NULL with err set. */
static struct cfg *
load_text(const char *name, const char *text, char *err, size_t errsz)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	write_file(path, text);
	return cfg_load(path, err, errsz);
}

/* The message without a leading "<dir>/". */
static const char *
strip_dir(const char *err, const char *dir)
{
	size_t n = strlen(dir);

	if (strncmp(err, dir, n) == 0 && err[n] == '/')
		return err + n + 1;
	return err;
}

/* ---- equality, field by field ------------------------------------------ */

static int
strv_equal(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static int
str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Everything but path and refcnt; the message says which field differs. */
static const char *
cfg_diff(const struct cfg *a, const struct cfg *b, int skip_policy_state)
{
#define F(cond, name)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return name;                                                               \
	} while (0)
	F(a->mode == b->mode, "mode");
	F(a->nlisteners == b->nlisteners, "nlisteners");
	for (int i = 0; i < a->nlisteners; i++) {
		const struct cfg_listener *x = &a->listeners[i], *y = &b->listeners[i];
		F(x->kind == y->kind, "listener kind");
		F(x->addrlen == y->addrlen && memcmp(&x->addr, &y->addr, x->addrlen) == 0,
		  "listener addr");
		F(strcmp(x->addrtext, y->addrtext) == 0, "listener addrtext");
		F(strcmp(x->upstream_host, y->upstream_host) == 0, "upstream_host");
		F(x->upstream_port == y->upstream_port, "upstream_port");
		F(strcmp(x->upstream_name, y->upstream_name) == 0, "upstream_name");
	}
	F(strv_equal(a->dns_servers, a->ndns_servers, b->dns_servers, b->ndns_servers),
	  "dns_servers");
	F(a->dns_timeout == b->dns_timeout, "dns_timeout");
	F(a->dns_tries == b->dns_tries, "dns_tries");
	F(str_equal(a->ca_file, b->ca_file), "ca_file");
	F(str_equal(a->ca_path, b->ca_path), "ca_path");
	F(a->tls_min_version == b->tls_min_version, "tls_min_version");
	F(a->tls_resumption == b->tls_resumption, "tls_resumption");
	F(a->tls_cache_size == b->tls_cache_size, "tls_cache_size");
	F(a->tls_verified_chains == b->tls_verified_chains, "tls_verified_chains");
	F(a->client_tls == b->client_tls, "client_tls");
	F(str_equal(a->client_cert, b->client_cert), "client_cert");
	F(str_equal(a->client_key, b->client_key), "client_key");
	F(a->default_level == b->default_level, "default_level");
	F(a->reroute == b->reroute, "reroute");
	if (!skip_policy_state) {
		F(a->npolicies == b->npolicies, "npolicies");
		for (int i = 0; i < a->npolicies; i++) {
			const struct cfg_policy *x = &a->policies[i], *y = &b->policies[i];
			F(strcmp(x->domain, y->domain) == 0, "policy domain");
			F(x->level == y->level, "policy level");
			F(strv_equal(x->mx, x->nmx, y->mx, y->nmx), "policy mx");
		}
		F(str_equal(a->state_dir, b->state_dir), "state_dir");
		F(str_equal(a->sts_cache_file, b->sts_cache_file), "sts_cache_file");
	}
	F(a->sts_enabled == b->sts_enabled, "sts_enabled");
	F(a->sts_fetch_timeout == b->sts_fetch_timeout, "sts_fetch_timeout");
	F(a->sts_max_policy_size == b->sts_max_policy_size, "sts_max_policy_size");
	F(a->sts_negative_ttl == b->sts_negative_ttl, "sts_negative_ttl");
	F(a->sts_refresh_interval == b->sts_refresh_interval, "sts_refresh_interval");
	F(a->sts_max_cache_entries == b->sts_max_cache_entries, "sts_max_cache_entries");
	F(a->sts_https_port == b->sts_https_port, "sts_https_port");
	F(str_equal(a->metrics_textfile, b->metrics_textfile), "metrics_textfile");
	F(a->metrics_interval == b->metrics_interval, "metrics_interval");
	F(a->max_sessions == b->max_sessions, "max_sessions");
	F(a->max_line == b->max_line, "max_line");
	F(a->max_reply_lines == b->max_reply_lines, "max_reply_lines");
	F(a->buffer_high == b->buffer_high, "buffer_high");
	F(a->buffer_low == b->buffer_low, "buffer_low");
	F(a->max_recipients == b->max_recipients, "max_recipients");
	F(a->accept_backoff == b->accept_backoff, "accept_backoff");
	F(a->t_connect == b->t_connect, "t_connect");
	F(a->t_greeting == b->t_greeting, "t_greeting");
	F(a->t_command == b->t_command, "t_command");
	F(a->t_data_block == b->t_data_block, "t_data_block");
	F(a->t_data_end == b->t_data_end, "t_data_end");
	F(a->t_tls == b->t_tls, "t_tls");
	F(a->t_idle == b->t_idle, "t_idle");
	F(a->t_dns == b->t_dns, "t_dns");
	F(a->log_format == b->log_format, "log_format");
	F(str_equal(a->log_file, b->log_file), "log_file");
	F(a->log_level == b->log_level, "log_level");
	F(a->log_syslog == b->log_syslog, "log_syslog");
#undef F
	return NULL;
}

/* ---- defaults ------------------------------------------------------------ */

static void
test_defaults(void **state)
{
	struct cfg *c = cfg_defaults();

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->refcnt, 1);
	assert_null(c->path);
	assert_int_equal(c->mode, CFG_MODE_UPGRADE);
	assert_int_equal(c->nlisteners, 2);
	assert_int_equal(c->listeners[0].kind, CFG_LISTEN_REDIRECT);
	assert_string_equal(c->listeners[0].addrtext, "127.0.0.1:10025");
	assert_int_equal(c->listeners[0].addr.ss_family, AF_INET);
	assert_int_equal(c->listeners[0].addrlen, sizeof(struct sockaddr_in));
	assert_string_equal(c->listeners[1].addrtext, "[::1]:10025");
	assert_int_equal(c->listeners[1].addr.ss_family, AF_INET6);
	assert_int_equal(c->listeners[1].addrlen, sizeof(struct sockaddr_in6));
	assert_int_equal(c->ndns_servers, 0);
	assert_true(c->dns_timeout == 5.0);
	assert_int_equal(c->dns_tries, 2);
	assert_string_equal(c->ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_null(c->ca_path);
	assert_int_equal(c->tls_min_version, 12);
	assert_true(c->tls_resumption);
	assert_int_equal(c->tls_cache_size, 1000);
	assert_int_equal(c->tls_verified_chains, 512);
	assert_false(c->client_tls);
	assert_null(c->client_cert);
	assert_null(c->client_key);
	assert_int_equal(c->default_level, CFG_TLS_MAY);
	assert_true(c->reroute);
	assert_int_equal(c->npolicies, 0);
	assert_int_equal(c->max_sessions, 1000);
	assert_int_equal(c->max_line, 4096);
	assert_int_equal(c->max_reply_lines, 64);
	assert_int_equal(c->buffer_high, 262144);
	assert_int_equal(c->buffer_low, 65536);
	assert_int_equal(c->max_recipients, 1000);
	assert_true(c->accept_backoff == 1.0);
	assert_true(c->t_connect == 30 && c->t_greeting == 300 && c->t_command == 300);
	assert_true(c->t_data_block == 180 && c->t_data_end == 600 && c->t_tls == 60);
	assert_true(c->t_idle == 300 && c->t_dns == 30);
	assert_int_equal(c->log_format, CFG_LOG_JSON);
	assert_string_equal(c->log_file, "-");
	assert_int_equal(c->log_level, LOG_INFO);
	assert_false(c->log_syslog);
	assert_null(c->state_dir);
	assert_true(c->sts_enabled);
	assert_true(c->sts_fetch_timeout == 30.0);
	assert_int_equal(c->sts_max_policy_size, 65536);
	assert_true(c->sts_negative_ttl == 300.0);
	assert_true(c->sts_refresh_interval == 3600.0);
	assert_null(c->sts_cache_file);
	assert_int_equal(c->sts_max_cache_entries, 10000);
	assert_int_equal(c->sts_https_port, 443);
	assert_null(c->metrics_textfile);
	assert_true(c->metrics_interval == 15.0);
	assert_null(cfg_policy_find(c, "example.com"));
	cfg_unref(c);
}

static void
test_refcount(void **state)
{
	struct cfg *c = cfg_defaults();

	(void)state;
	assert_ptr_equal(cfg_ref(c), c);
	assert_int_equal(c->refcnt, 2);
	cfg_unref(c);
	assert_int_equal(c->refcnt, 1);
	cfg_unref(c); /* frees: ASan reports a leak or double free otherwise */
	cfg_unref(NULL);
	assert_null(cfg_ref(NULL));
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(cfg_mode_name(CFG_MODE_MONITOR), "monitor");
	assert_string_equal(cfg_mode_name(CFG_MODE_UPGRADE), "upgrade");
	assert_string_equal(cfg_mode_name(CFG_MODE_ENFORCE), "enforce");
	assert_string_equal(cfg_tls_level_name(CFG_TLS_NONE), "none");
	assert_string_equal(cfg_tls_level_name(CFG_TLS_MAY), "may");
	assert_string_equal(cfg_tls_level_name(CFG_TLS_ENCRYPT), "encrypt");
	assert_string_equal(cfg_tls_level_name(CFG_TLS_VERIFY), "verify");
	assert_string_equal(cfg_listen_kind_name(CFG_LISTEN_REDIRECT), "redirect");
	assert_string_equal(cfg_listen_kind_name(CFG_LISTEN_TPROXY), "tproxy");
	assert_string_equal(cfg_listen_kind_name(CFG_LISTEN_FIXED), "fixed");
	assert_string_equal(cfg_mode_name((enum cfg_mode)42), "?");
}

static char *dump_to_string(const struct cfg *c);

/* ---- good files ---------------------------------------------------------- */

static void
check_reference(const struct cfg *c)
{
	struct cfg *d = cfg_defaults();
	const char *diff;

	/* The reference file claims to show every default: hold it to that.
	 * Only its example static policies and state_dir are not defaults. */
	assert_non_null(d);
	diff = cfg_diff(c, d, 1);
	if (diff != NULL)
		fail_msg("stsproxy.conf documents a wrong default for %s", diff);
	cfg_unref(d);
	assert_string_equal(c->state_dir, "/var/lib/stsproxy");
	assert_string_equal(c->sts_cache_file, "/var/lib/stsproxy/mta-sts.cache");
	assert_int_equal(c->npolicies, 3);
}

static void
check_minimal(const struct cfg *c)
{
	assert_int_equal(c->mode, CFG_MODE_UPGRADE);
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].addrtext, "127.0.0.1:10025");
}

static void
check_monitor(const struct cfg *c)
{
	assert_int_equal(c->mode, CFG_MODE_MONITOR);
	assert_int_equal(c->nlisteners, 2);
	assert_int_equal(c->log_format, CFG_LOG_TEXT);
	assert_int_equal(c->log_level, LOG_DEBUG);
}

static void
check_empty(const struct cfg *c)
{
	struct cfg *d = cfg_defaults();
	const char *diff = cfg_diff(c, d, 0);

	if (diff != NULL)
		fail_msg("empty file differs from defaults in %s", diff);
	cfg_unref(d);
}

static void
check_full(const struct cfg *c)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->listeners[0].addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->listeners[1].addr;
	struct in6_addr a6;

	assert_int_equal(c->mode, CFG_MODE_ENFORCE);
	assert_int_equal(c->nlisteners, 2);
	assert_int_equal(c->listeners[0].kind, CFG_LISTEN_TPROXY);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 10026);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_string_equal(c->listeners[0].addrtext, "0.0.0.0:10026");
	assert_int_equal(c->listeners[1].kind, CFG_LISTEN_REDIRECT);
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 10027);
	inet_pton(AF_INET6, "2001:db8::10", &a6);
	assert_memory_equal(&sin6->sin6_addr, &a6, sizeof(a6));
	assert_string_equal(c->listeners[1].addrtext, "[2001:db8::10]:10027");

	assert_int_equal(c->ndns_servers, 4);
	assert_string_equal(c->dns_servers[0], "127.0.0.1");
	assert_string_equal(c->dns_servers[1], "[::1]:5353");
	assert_string_equal(c->dns_servers[2], "192.0.2.1:53");
	assert_string_equal(c->dns_servers[3], "2001:db8::53");
	assert_true(c->dns_timeout == 2.0);
	assert_int_equal(c->dns_tries, 3);

	assert_string_equal(c->ca_file, DATA "/certs/ca.pem");
	assert_string_equal(c->ca_path, DATA "/certs");
	assert_int_equal(c->tls_min_version, 13);
	assert_false(c->tls_resumption);
	assert_int_equal(c->tls_cache_size, 512);
	assert_int_equal(c->tls_verified_chains, 0);
	assert_true(c->client_tls);
	assert_string_equal(c->client_cert, DATA "/certs/client.pem");
	assert_string_equal(c->client_key, DATA "/certs/client.key");

	assert_int_equal(c->default_level, CFG_TLS_ENCRYPT);
	assert_false(c->reroute);
	/* sorted by domain */
	assert_int_equal(c->npolicies, 4);
	assert_string_equal(c->policies[0].domain, ".b.example.com");
	assert_int_equal(c->policies[0].level, CFG_TLS_MAY);
	assert_int_equal(c->policies[0].nmx, 0);
	assert_string_equal(c->policies[1].domain, ".example.com");
	assert_string_equal(c->policies[2].domain, "example.com");
	assert_int_equal(c->policies[2].level, CFG_TLS_VERIFY);
	assert_int_equal(c->policies[2].nmx, 2);
	assert_string_equal(c->policies[2].mx[0], "mx1.example.com");
	assert_string_equal(c->policies[2].mx[1], "*.example.net");
	assert_string_equal(c->policies[3].domain, "legacy.example");
	assert_int_equal(c->policies[3].level, CFG_TLS_NONE);

	assert_int_equal(c->max_sessions, 20000);
	assert_int_equal(c->max_line, 512);
	assert_int_equal(c->max_reply_lines, 256);
	assert_int_equal(c->buffer_high, 1048576);
	assert_int_equal(c->buffer_low, 0);
	assert_int_equal(c->max_recipients, 100);
	assert_true(c->accept_backoff == 0.25);
	assert_true(c->t_connect == 10 && c->t_greeting == 120.5 && c->t_command == 240);
	assert_true(c->t_data_block == 100 && c->t_data_end == 900 && c->t_tls == 0.5);
	assert_true(c->t_idle == 60 && c->t_dns == 15);

	assert_int_equal(c->log_format, CFG_LOG_TEXT);
	assert_string_equal(c->log_file, DATA "/log/stsproxy.log");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_true(c->log_syslog);
	assert_string_equal(c->state_dir, DATA "/state");
	assert_string_equal(c->metrics_textfile, DATA "/state/stsproxy.prom");
	assert_true(c->metrics_interval == 60.0);
}

static void
check_fixed(const struct cfg *c)
{
	const struct cfg_listener *l = c->listeners;

	assert_int_equal(c->nlisteners, 3);
	assert_int_equal(l[0].kind, CFG_LISTEN_FIXED);
	assert_string_equal(l[0].upstream_host, "mx.example.net");
	assert_int_equal(l[0].upstream_port, 25);
	assert_string_equal(l[0].upstream_name, "mx.example.net");
	assert_string_equal(l[1].addrtext, "[::1]:2525");
	assert_string_equal(l[1].upstream_host, "2001:db8::25");
	assert_int_equal(l[1].upstream_port, 2526);
	assert_string_equal(l[1].upstream_name, "relay.example.net");
	assert_string_equal(l[2].upstream_host, "192.0.2.25");
	assert_int_equal(l[2].upstream_port, 587);
	assert_string_equal(l[2].upstream_name, ""); /* an address names nothing */
}

static const struct {
	const char *path;
	void (*check)(const struct cfg *);
} good_files[] = {
        {EXAMPLES "/stsproxy.conf", check_reference}, {EXAMPLES "/minimal.conf", check_minimal},
        {EXAMPLES "/monitor.conf", check_monitor},    {DATA "/good_empty.conf", check_empty},
        {DATA "/good_full.conf", check_full},         {DATA "/good_fixed.conf", check_fixed},
};

static void
test_good_files(void **state)
{
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good_files) / sizeof(good_files[0]); i++) {
		struct cfg *c = cfg_load(good_files[i].path, err, sizeof(err));
		if (c == NULL)
			fail_msg("%s: %s", good_files[i].path, err);
		assert_string_equal(c->path, good_files[i].path);
		assert_int_equal(c->refcnt, 1);
		good_files[i].check(c);
		cfg_unref(c);
	}
}

/* ---- good snippets: each must load, and its dump must show the value ------ */

static const struct {
	const char *text;
	const char *dumped; /* a line (or part) of cfg_dump() output */
} good[] = {
        /* big literals in comments and strings are not integers */
        {"limits = { max_sessions = 2000; }; # 4294967296\n", "max_sessions = 2000;"},
        {"limits = { max_sessions = 2000; /* 99999999999 */ };\n", "max_sessions = 2000;"},
        {"limits = { max_sessions = 2000; };\nstate_dir = \"/x/4294967296\";\n",
         "max_sessions = 2000;"},
        {"limits = { max_sessions = 1000000L; };\n", "max_sessions = 1000000;"},
        /* range boundaries are inclusive */
        {"limits = { buffer_high = 1073741824; buffer_low = 1073741823; };\n",
         "buffer_low = 1073741823;"},
        {"limits = { max_line = 65536; max_reply_lines = 1; };\n", "max_reply_lines = 1;"},
        {"limits = { max_line = 512; };\n", "max_line = 512;"},
        {"timeouts = { connect = 86400; dns = 0.001; };\n", "dns = 0.001;"},
        {"timeouts = { greeting = 1e2; };\n", "greeting = 100.0;"},
        {"dns = { timeout = 60; tries = 10; };\n", "timeout = 60.0;"},
        /* other accepted forms */
        {"listen = ( { port = 0x19; } );\n", "port = 25;"},
        {"listen = ( { kind = \"tproxy\"; address = \"::\"; } );\n",
         "{ kind = \"tproxy\"; address = \"::\"; port = 10025; }"},
        {"dns = { servers = ( \"::1\", \"[2001:db8::1]\" ); };\n",
         "servers = [ \"::1\", \"[2001:db8::1]\" ];"},
        {"policy = { static = (); };\n", "static = ();"},
        {"policy = { static = ( { domain = \"XN--BCHER-KVA.example.\"; level = \"verify\"; } ); "
         "};\n",
         "domain = \"xn--bcher-kva.example\";"},
        {"log = { level = \"error\"; };\n", "level = \"error\";"},
        {"log = { file = \"-\"; };\n", "file = \"-\";"},
        /* sts */
        {"sts = { enabled = false; };\n", "enabled = false;"},
        {"sts = { fetch_timeout = 300; max_policy_size = 1024; };\n", "fetch_timeout = 300.0;"},
        {"sts = { max_policy_size = 65536; };\n", "max_policy_size = 65536;"},
        {"sts = { negative_ttl = 0.5; refresh_interval = 86400; };\n", "negative_ttl = 0.5;"},
        {"sts = { max_cache_entries = 1; https_port = 8443; };\n", "https_port = 8443;"},
        {"sts = { cache_file = \"/tmp/x.cache\"; };\n", "cache_file = \"/tmp/x.cache\";"},
        {"state_dir = \"/var/lib/s\";\n", "cache_file = \"/var/lib/s/mta-sts.cache\";"},
        {"sts = { cache_file = \"/c/p.cache\"; };\nstate_dir = \"/var/lib/s\";\n",
         "cache_file = \"/c/p.cache\";"},
        {"sts = { };\n", "# cache_file not set"},
        /* metrics */
        {"metrics = { };\n", "# textfile not set"},
        {"metrics = { textfile = \"/run/ne/stsproxy.prom\"; };\n",
         "textfile = \"/run/ne/stsproxy.prom\";"},
        {"metrics = { textfile = \"/run/ne/a.prom\"; interval = 3600; };\n", "interval = 3600.0;"},
        {"metrics = { interval = 0.5; };\n", "interval = 0.5;"},
};

static void
test_good_snippets(void **state)
{
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cfg *c = load_text("t.conf", good[i].text, err, sizeof(err));
		char *text;

		if (c == NULL)
			fail_msg("snippet %zu: %s\n%s", i, strip_dir(err, tmpdir), good[i].text);
		text = dump_to_string(c);
		if (strstr(text, good[i].dumped) == NULL)
			fail_msg("snippet %zu: \"%s\" not in dump:\n%s", i, good[i].dumped, text);
		free(text);
		cfg_unref(c);
	}
}

/* ---- bad snippets ---------------------------------------------------------- */

static const struct {
	const char *text;
	const char *msg; /* as written for <tmpdir>/t.conf */
} bad[] = {
        /* syntax, as libconfig reports it */
        {"mode = ;\n", "t.conf:1: syntax error"},
        {"mode = \"monitor\";\nmode = \"enforce\";\n", "t.conf:2: duplicate setting name"},
        {"dns = { servers = [ \"127.0.0.1\", 53 ]; };\n",
         "t.conf:1: mismatched element type in array"},
        {"@include \"missing.conf\"\n", "t.conf:1: cannot open include file"},

        /* unknown settings */
        {"mdoe = \"upgrade\";\n", "t.conf:1: mdoe: unknown setting (did you mean \"mode\"?)"},
        {"dane = { };\n", "t.conf:1: dane: unknown setting"},
        {"tls = {\n\tca_fiel = \"/x\";\n};\n",
         "t.conf:2: tls.ca_fiel: unknown setting (did you mean \"ca_file\"?)"},
        {"timeouts = { conect = 5; };\n",
         "t.conf:1: timeouts.conect: unknown setting (did you mean \"connect\"?)"},
        {"listen = ( { adress = \"127.0.0.1\"; } );\n",
         "t.conf:1: listen.[0].adress: unknown setting (did you mean \"address\"?)"},
        {"policy = { static = ( { domain = \"example.com\"; levle = \"verify\"; } ); };\n",
         "t.conf:1: policy.static.[0].levle: unknown setting (did you mean \"level\"?)"},
        {"log = { colour = true; };\n", "t.conf:1: log.colour: unknown setting"},

        /* mode */
        {"mode = \"strict\";\n", "t.conf:1: mode: expected one of monitor, upgrade, enforce"},
        {"\n\nmode = 1;\n",
         "t.conf:3: mode: expected a string, one of \"monitor\", \"upgrade\", \"enforce\""},

        /* listen */
        {"listen = ();\n", "t.conf:1: listen: at least one listener is required"},
        {"listen = { port = 25; };\n",
         "t.conf:1: listen: expected a list of groups ( { ... }, ... )"},
        {"listen = ( \"127.0.0.1\" );\n", "t.conf:1: listen.[0]: expected a group { ... }"},
        {"listen = ( { address = \"localhost\"; } );\n",
         "t.conf:1: listen.[0].address: not an IP address"},
        {"listen = (\n\t{ address = \"127.0.0.1\"; },\n\t{ address = \"[::1]\"; }\n);\n",
         "t.conf:3: listen.[1].address: not an IP address"},
        {"listen = (\n\t{ address = \"127.0.0.1\"; },\n\t{ address = \"::1\"; port = 0; }\n);\n",
         "t.conf:3: listen.[1].port: must be between 1 and 65535"},
        {"listen = ( { port = \"25\"; } );\n", "t.conf:1: listen.[0].port: expected an integer"},
        {"listen = ( { kind = \"nat\"; } );\n",
         "t.conf:1: listen.[0].kind: expected one of redirect, tproxy, fixed"},
        {"listen = ( { kind = \"fixed\"; } );\n",
         "t.conf:1: listen.[0].upstream: required with kind = \"fixed\""},
        {"listen = ( { upstream = \"mx.example.net\"; } );\n",
         "t.conf:1: listen.[0].upstream: only allowed with kind = \"fixed\""},
        {"listen = ( { kind = \"tproxy\"; upstream_name = \"mx.example.net\"; } );\n",
         "t.conf:1: listen.[0].upstream_name: only allowed with kind = \"fixed\""},
        {"listen = ( { kind = \"fixed\"; upstream = \"2001:db8::1:25\"; } );\n",
         "t.conf:1: listen.[0].upstream: an IPv6 address must be in brackets, e.g. "
         "[2001:db8::1]:25"},
        {"listen = ( { kind = \"fixed\"; upstream = \"mx.example.net:0\"; } );\n",
         "t.conf:1: listen.[0].upstream: port must be between 1 and 65535"},
        {"listen = ( { kind = \"fixed\"; upstream = \"mx.example.net:25x\"; } );\n",
         "t.conf:1: listen.[0].upstream: port must be between 1 and 65535"},
        {"listen = ( { kind = \"fixed\"; upstream = \"[::1]25\"; } );\n",
         "t.conf:1: listen.[0].upstream: port must be between 1 and 65535"},
        {"listen = ( { kind = \"fixed\"; upstream = \"mx_1.example.net\"; } );\n",
         "t.conf:1: listen.[0].upstream: not a valid host name or IP address"},
        {"listen = ( { kind = \"fixed\"; upstream = \"300.1.1.1\"; } );\n",
         "t.conf:1: listen.[0].upstream: not a valid host name or IP address"},
        {"listen = ( { kind = \"fixed\"; upstream = \"[192.0.2.1]:25\"; } );\n",
         "t.conf:1: listen.[0].upstream: not an IPv6 address inside [ ]"},
        {"listen = ( { kind = \"fixed\"; upstream = \"\"; } );\n",
         "t.conf:1: listen.[0].upstream: expected host, host:port or [IPv6]:port"},
        {"listen = ( { kind = \"fixed\"; upstream = \"192.0.2.1\"; upstream_name = \"192.0.2.1\"; "
         "} "
         ");\n",
         "t.conf:1: listen.[0].upstream_name: not a valid host name"},
        {"listen = (\n\t{ address = \"127.0.0.1\"; port = 25; },\n"
         "\t{ kind = \"tproxy\"; address = \"127.0.0.1\"; port = 25; }\n);\n",
         "t.conf:3: listen.[1]: 127.0.0.1:25 is already used by listen.[0] (line 2)"},

        /* dns */
        {"dns = { servers = [ \"localhost\" ]; };\n",
         "t.conf:1: dns.servers.[0]: not an IP address, IP:port or [IPv6]:port"},
        {"dns = { servers = [ \"127.0.0.1\", \"[::1]:99999\" ]; };\n",
         "t.conf:1: dns.servers.[1]: port must be between 1 and 65535"},
        {"dns = { servers = [ \"1.2.3.4:\" ]; };\n",
         "t.conf:1: dns.servers.[0]: port must be between 1 and 65535"},
        {"dns = { servers = [ \"[ns.example]:53\" ]; };\n",
         "t.conf:1: dns.servers.[0]: not an IPv6 address inside [ ]"},
        {"dns = { servers = ( \"127.0.0.1\", 53 ); };\n",
         "t.conf:1: dns.servers.[1]: expected a string"},
        {"dns = { servers = \"127.0.0.1\"; };\n",
         "t.conf:1: dns.servers: expected a list of strings [ \"...\", ... ]"},
        {"dns = { tries = 0; };\n", "t.conf:1: dns.tries: must be between 1 and 10"},
        {"dns = { timeout = 0.0; };\n",
         "t.conf:1: dns.timeout: must be greater than 0 and at most 60"},
        {"dns = { timeout = true; };\n", "t.conf:1: dns.timeout: expected a number"},
        {"dns = 1;\n", "t.conf:1: dns: expected a group { ... }"},

        /* tls */
        {"tls = { min_version = 1.2; };\n",
         "t.conf:1: tls.min_version: expected a string, one of \"1.2\", \"1.3\""},
        {"tls = { min_version = \"1.1\"; };\n",
         "t.conf:1: tls.min_version: expected one of 1.2, 1.3"},
        {"tls = { ca_file = \"/nonexistent/ca.pem\"; };\n",
         "t.conf:1: tls.ca_file: cannot read \"/nonexistent/ca.pem\": No such file or directory"},
        {"tls = { ca_file = \"/\"; };\n", "t.conf:1: tls.ca_file: \"/\" is not a regular file"},
        {"tls = { ca_file = \"\"; };\n", "t.conf:1: tls.ca_file: must not be empty"},
        {"tls = { ca_path = \"/dev/null\"; };\n",
         "t.conf:1: tls.ca_path: cannot read \"/dev/null\": Not a directory"},
        {"tls = { resumption = \"yes\"; };\n", "t.conf:1: tls.resumption: expected true or false"},
        {"tls = { client_tls = 1; };\n", "t.conf:1: tls.client_tls: expected true or false"},
        {"tls = { session_cache_size = 0; };\n",
         "t.conf:1: tls.session_cache_size: must be between 1 and 1000000"},
        {"tls = { verified_chains = -1; };\n",
         "t.conf:1: tls.verified_chains: must be between 0 and 1000000"},
        /* t.conf itself is a readable file, relative to its own directory */
        {"tls = {\n\tclient_tls = true;\n\tclient_cert = \"t.conf\";\n};\n",
         "t.conf:3: tls.client_cert: tls.client_key must be set as well"},
        {"tls = {\n\tclient_key = \"t.conf\";\n};\n",
         "t.conf:2: tls.client_key: tls.client_cert must be set as well"},
        {"tls = { client_key = \"nope.key\"; };\n",
         "t.conf:1: tls.client_key: cannot read \"" /* dir */ "\x01"},

        /* policy */
        {"policy = { default_level = \"secure\"; };\n",
         "t.conf:1: policy.default_level: expected one of none, may, encrypt, verify"},
        {"policy = { reroute = \"no\"; };\n", "t.conf:1: policy.reroute: expected true or false"},
        {"policy = { static = { domain = \"example.com\"; }; };\n",
         "t.conf:1: policy.static: expected a list of groups ( { ... }, ... )"},
        {"policy = { static = ( \"example.com\" ); };\n",
         "t.conf:1: policy.static.[0]: expected a group { ... }"},
        {"policy = {\n\tstatic = (\n\t\t{ level = \"verify\"; }\n\t);\n};\n",
         "t.conf:3: policy.static.[0].domain: required but not set"},
        {"policy = { static = ( { domain = \"example.com\"; } ); };\n",
         "t.conf:1: policy.static.[0].level: required but not set"},
        {"policy = { static = ( { domain = \"example.com\"; level = \"secure\"; } ); };\n",
         "t.conf:1: policy.static.[0].level: expected one of none, may, encrypt, verify"},
        {"policy = { static = ( { domain = \"exa mple.com\"; level = \"verify\"; } ); };\n",
         "t.conf:1: policy.static.[0].domain: not a valid domain name (use the A-label form for "
         "IDNs)"},
        {"policy = { static = ( { domain = \"b\xc3\xbc"
         "cher.example\"; level = \"verify\"; } ); "
         "};\n",
         "t.conf:1: policy.static.[0].domain: not a valid domain name (use the A-label form for "
         "IDNs)"},
        {"policy = { static = ( { domain = \".\"; level = \"verify\"; } ); };\n",
         "t.conf:1: policy.static.[0].domain: not a valid domain name (use the A-label form for "
         "IDNs)"},
        {"policy = { static = ( { domain = \"*.example.com\"; level = \"verify\"; } ); };\n",
         "t.conf:1: policy.static.[0].domain: not a valid domain name (use the A-label form for "
         "IDNs)"},
        {"policy = { static = ( { domain = \"example.com\"; level = \"verify\";\n"
         "\tmx = [ \"mx.example.com\", \"mx.*.example.com\" ]; } ); };\n",
         "t.conf:2: policy.static.[0].mx.[1]: not a valid MX host pattern (host name or \"*.\" + "
         "name)"},
        {"policy = {\n\tstatic = (\n\t\t{ domain = \"Example.COM.\"; level = \"verify\"; },\n"
         "\t\t{ domain = \".example.com\"; level = \"may\"; },\n"
         "\t\t{ domain = \"example.com\"; level = \"none\"; }\n\t);\n};\n",
         "t.conf:5: policy.static.[2].domain: duplicate of policy.static.[0] (line 3)"},

        /* limits */
        {"limits = { max_line = 100; };\n",
         "t.conf:1: limits.max_line: must be between 512 and 65536"},
        {"limits = { max_line = 65537; };\n",
         "t.conf:1: limits.max_line: must be between 512 and 65536"},
        {"limits = { max_line = 4096.0; };\n", "t.conf:1: limits.max_line: expected an integer"},
        {"limits = { max_reply_lines = 257; };\n",
         "t.conf:1: limits.max_reply_lines: must be between 1 and 256"},
        {"limits = { max_sessions = 0; };\n",
         "t.conf:1: limits.max_sessions: must be between 1 and 1000000"},
        {"limits = { max_sessions = 5000000000L; };\n",
         "t.conf:1: limits.max_sessions: must be between 1 and 1000000"},
        /* libconfig 1.5 would read these as 1000 and 1: they must not pass */
        {"limits = { max_sessions = 4294968296; };\n",
         "t.conf:1: limits.max_sessions: must be between 1 and 1000000"},
        {"limits = { max_sessions = 0x100000001; };\n",
         "t.conf:1: limits.max_sessions: must be between 1 and 1000000"},
        {"limits = { max_recipients = -1; };\n",
         "t.conf:1: limits.max_recipients: must be between 1 and 1000000"},
        {"limits = { buffer_high = 1024; };\n",
         "t.conf:1: limits.buffer_high: must be between 4096 and 1073741824"},
        {"limits = { buffer_low = 300000; };\n",
         "t.conf:1: limits.buffer_low: must be less than limits.buffer_high (262144)"},
        {"limits = { buffer_high = 8192; };\n",
         "t.conf:1: limits.buffer_high: must be greater than limits.buffer_low (65536)"},
        {"limits = {\n\tbuffer_high = 100000;\n\tbuffer_low = 100000;\n};\n",
         "t.conf:3: limits.buffer_low: must be less than limits.buffer_high (100000)"},
        {"limits = { accept_backoff = 0; };\n",
         "t.conf:1: limits.accept_backoff: must be greater than 0 and at most 60"},

        /* timeouts */
        {"timeouts = { connect = -1; };\n",
         "t.conf:1: timeouts.connect: must be greater than 0 and at most 86400"},
        {"timeouts = { data_end = \"600\"; };\n", "t.conf:1: timeouts.data_end: expected a number"},
        {"timeouts = { idle = 86400.5; };\n",
         "t.conf:1: timeouts.idle: must be greater than 0 and at most 86400"},
        {"timeouts = { dns = 1e999; };\n",
         "t.conf:1: timeouts.dns: must be greater than 0 and at most 86400"},
        /* wraps to 300 in libconfig 1.5 */
        {"timeouts = { idle = 4294967596; };\n",
         "t.conf:1: timeouts.idle: must be greater than 0 and at most 86400"},
        {"timeouts = 5;\n", "t.conf:1: timeouts: expected a group { ... }"},

        /* log, state_dir */
        {"log = { level = \"warn\"; };\n",
         "t.conf:1: log.level: expected one of error, warning, notice, info, debug"},
        {"log = { format = \"xml\"; };\n", "t.conf:1: log.format: expected one of json, text"},
        {"log = { file = \"\"; };\n", "t.conf:1: log.file: must not be empty"},
        {"log = { syslog = \"local0\"; };\n", "t.conf:1: log.syslog: expected true or false"},
        {"state_dir = 5;\n", "t.conf:1: state_dir: expected a string"},
        {"# a comment\n/* another\n   one */\nstate_dir = [ \"/var\" ];\n",
         "t.conf:4: state_dir: expected a string"},

        /* sts */
        {"sts = { enabled = 1; };\n", "t.conf:1: sts.enabled: expected true or false"},
        {"sts = { fetch_timeout = 0; };\n",
         "t.conf:1: sts.fetch_timeout: must be greater than 0 and at most 300"},
        {"sts = { fetch_timeout = 301; };\n",
         "t.conf:1: sts.fetch_timeout: must be greater than 0 and at most 300"},
        {"sts = { max_policy_size = 65537; };\n",
         "t.conf:1: sts.max_policy_size: must be between 1024 and 65536"},
        {"sts = { max_policy_size = 1023; };\n",
         "t.conf:1: sts.max_policy_size: must be between 1024 and 65536"},
        {"sts = { negative_ttl = -5; };\n",
         "t.conf:1: sts.negative_ttl: must be greater than 0 and at most 86400"},
        {"sts = { refresh_interval = 86401; };\n",
         "t.conf:1: sts.refresh_interval: must be greater than 0 and at most 86400"},
        {"sts = { cache_file = \"\"; };\n", "t.conf:1: sts.cache_file: must not be empty"},
        {"sts = { max_cache_entries = 0; };\n",
         "t.conf:1: sts.max_cache_entries: must be between 1 and 100000"},
        {"sts = { max_cache_entries = 100001; };\n",
         "t.conf:1: sts.max_cache_entries: must be between 1 and 100000"},
        {"sts = { https_port = 0; };\n", "t.conf:1: sts.https_port: must be between 1 and 65535"},
        {"sts = { https_port = 65536; };\n",
         "t.conf:1: sts.https_port: must be between 1 and 65535"},
        {"sts = { enable = true; };\n",
         "t.conf:1: sts.enable: unknown setting (did you mean \"enabled\"?)"},
        {"sts = { negativ_ttl = 5; };\n",
         "t.conf:1: sts.negativ_ttl: unknown setting (did you mean \"negative_ttl\"?)"},
        {"sts = true;\n", "t.conf:1: sts: expected a group { ... }"},

        /* metrics */
        {"metrics = {\n\tinterval = 5;\n\ttextfile = \"/run/ne/stsproxy.txt\";\n};\n",
         "t.conf:3: metrics.textfile: must name a file ending in \".prom\" (node_exporter's "
         "textfile collector reads only those)"},
        {"metrics = { textfile = \"/run/ne/.prom\"; };\n",
         "t.conf:1: metrics.textfile: must name a file ending in \".prom\" (node_exporter's "
         "textfile collector reads only those)"},
        {"metrics = { textfile = \"\"; };\n", "t.conf:1: metrics.textfile: must not be empty"},
        {"metrics = { textfile = 1; };\n", "t.conf:1: metrics.textfile: expected a string"},
        {"metrics = { interval = 0; };\n",
         "t.conf:1: metrics.interval: must be greater than 0 and at most 3600"},
        {"metrics = { interval = 3601; };\n",
         "t.conf:1: metrics.interval: must be greater than 0 and at most 3600"},
        {"metrics = { textfle = \"/x.prom\"; };\n",
         "t.conf:1: metrics.textfle: unknown setting (did you mean \"textfile\"?)"},
        {"metrics = \"/x.prom\";\n", "t.conf:1: metrics: expected a group { ... }"},
};

static void
test_bad_snippets(void **state)
{
	char err[512], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *c = load_text("t.conf", bad[i].text, err, sizeof(err));
		const char *got = strip_dir(err, tmpdir);
		const char *dirmark = strchr(bad[i].msg, '\x01');

		if (c != NULL)
			fail_msg("snippet %zu loaded, expected \"%s\":\n%s", i, bad[i].msg,
			         bad[i].text);
		/* \x01 stands for "<tmpdir>/<rest of the file name>..." */
		if (dirmark != NULL) {
			snprintf(want, sizeof(want), "%.*s%s/", (int)(dirmark - bad[i].msg),
			         bad[i].msg, tmpdir);
			if (strncmp(got, want, strlen(want)) != 0)
				fail_msg("snippet %zu:\n  want prefix %s\n  got         %s", i,
				         want, got);
			continue;
		}
		if (strcmp(got, bad[i].msg) != 0)
			fail_msg("snippet %zu:\n  want %s\n  got  %s", i, bad[i].msg, got);
		assert_null(strchr(err, '\n'));
	}
}

static void
test_bad_files(void **state)
{
	char err[512], path[512];
	struct cfg *c;

	(void)state;
	/* the included file is named, relative to the including directory */
	c = cfg_load(DATA "/bad_include.conf", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, "include/bad_level.inc:3: policy.static.[1].level: expected one "
	                         "of none, may, encrypt, verify");

	c = cfg_load(DATA "/no-such-file.conf", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, DATA "/no-such-file.conf: cannot open: No such file or directory");

	c = cfg_load(DATA, err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, DATA ": not a regular file");

	c = cfg_load(NULL, err, sizeof(err));
	assert_null(c);

	/* a message never runs past its buffer, and a tiny buffer is fine */
	snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
	write_file(path, "mode = \"strict\";\n");
	assert_null(cfg_load(path, err, 8));
	assert_int_equal(strlen(err), 7);
	assert_null(cfg_load(path, NULL, 0));
}

/* ---- policy lookup ----------------------------------------------------------- */

static const char policy_conf[] = "policy = { static = (\n"
                                  "\t{ domain = \"example.com\"; level = \"verify\"; },\n"
                                  "\t{ domain = \".example.com\"; level = \"encrypt\"; },\n"
                                  "\t{ domain = \".b.example.com\"; level = \"may\"; },\n"
                                  "\t{ domain = \"other.org\"; level = \"none\"; },\n"
                                  "\t{ domain = \".net\"; level = \"may\"; }\n"
                                  "); };\n";

static const struct {
	const char *query;
	const char *want; /* domain of the entry found, NULL for none */
} lookups[] = {
        {"example.com", "example.com"},
        {"EXAMPLE.com.", "example.com"},
        {"a.example.com", ".example.com"},
        {"A.Example.Com", ".example.com"},
        {"b.example.com", ".example.com"}, /* ".b.example.com" is only below b */
        {"a.b.example.com", ".b.example.com"},
        {"x.a.b.example.com", ".b.example.com"},
        {"a.c.example.com", ".example.com"},
        {"notexample.com", NULL}, /* a suffix, but not at a label boundary */
        {"example.com.evil", NULL},
        {"com", NULL},
        {"other.org", "other.org"},
        {"a.other.org", NULL}, /* exact entries do not cover subdomains */
        {"example.net", ".net"},
        {"net", NULL},
        {"", NULL},
        {".", NULL},
        {".example.com", NULL}, /* a pattern is not a query */
};

static void
test_policy_find(void **state)
{
	char err[512], longname[600];
	struct cfg *c = load_text("p.conf", policy_conf, err, sizeof(err));
	const struct cfg_policy *p;

	(void)state;
	if (c == NULL)
		fail_msg("%s", err);
	for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
		p = cfg_policy_find(c, lookups[i].query);
		if (lookups[i].want == NULL) {
			if (p != NULL)
				fail_msg("%s: want none, got %s", lookups[i].query, p->domain);
		} else if (p == NULL || strcmp(p->domain, lookups[i].want) != 0) {
			fail_msg("%s: want %s, got %s", lookups[i].query, lookups[i].want,
			         p ? p->domain : "none");
		}
	}
	p = cfg_policy_find(c, "a.b.example.com");
	assert_int_equal(p->level, CFG_TLS_MAY);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(cfg_policy_find(c, longname));
	assert_null(cfg_policy_find(c, NULL));
	assert_null(cfg_policy_find(NULL, "example.com"));
	cfg_unref(c);
}

/* ---- dump and reload --------------------------------------------------------- */

static char *
dump_to_string(const struct cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	cfg_dump(c, fp);
	fclose(fp);
	return buf;
}

static void
roundtrip(struct cfg *c, const char *what)
{
	char path[512], err[512];
	char *text = dump_to_string(c), *text2;
	struct cfg *c2;
	const char *diff;

	snprintf(path, sizeof(path), "%s/dump.conf", tmpdir);
	write_file(path, text);
	c2 = cfg_load(path, err, sizeof(err));
	if (c2 == NULL)
		fail_msg("%s: dump does not load: %s\n%s", what, err, text);
	diff = cfg_diff(c, c2, 0);
	if (diff != NULL)
		fail_msg("%s: reloaded dump differs in %s\n%s", what, diff, text);
	/* and the dump of the reloaded file is the same text but for the
	 * first line, which names the source */
	text2 = dump_to_string(c2);
	assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
	free(text);
	free(text2);
	cfg_unref(c2);
}

static void
test_dump_roundtrip(void **state)
{
	char err[512];
	struct cfg *c;

	(void)state;
	c = cfg_defaults();
	roundtrip(c, "defaults");
	cfg_unref(c);
	for (size_t i = 0; i < sizeof(good_files) / sizeof(good_files[0]); i++) {
		c = cfg_load(good_files[i].path, err, sizeof(err));
		if (c == NULL)
			fail_msg("%s: %s", good_files[i].path, err);
		roundtrip(c, good_files[i].path);
		cfg_unref(c);
	}
	c = load_text("p.conf", policy_conf, err, sizeof(err));
	assert_non_null(c);
	roundtrip(c, "policy_conf");
	cfg_unref(c);
}

static void
test_dump_escapes(void **state)
{
	char err[512], *text;
	struct cfg *c;

	(void)state;
	/* a state_dir with a quote, a backslash and a newline survives */
	c = load_text("e.conf", "state_dir = \"/tmp/a \\\"b\\\" \\\\ c\\nd\";\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(c->state_dir, "/tmp/a \"b\" \\ c\nd");
	text = dump_to_string(c);
	assert_non_null(strstr(text, "state_dir = \"/tmp/a \\\"b\\\" \\\\ c\\nd\";"));
	free(text);
	roundtrip(c, "escapes");
	cfg_unref(c);
}

/* ---- fixture ------------------------------------------------------------------- */

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	static const char *const names[] = {"t.conf", "p.conf", "e.conf", "dump.conf"};
	char path[512];

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_refcount),
	        cmocka_unit_test(test_names),          cmocka_unit_test(test_good_files),
	        cmocka_unit_test(test_good_snippets),  cmocka_unit_test(test_bad_snippets),
	        cmocka_unit_test(test_bad_files),      cmocka_unit_test(test_policy_find),
	        cmocka_unit_test(test_dump_roundtrip), cmocka_unit_test(test_dump_escapes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
