/*
 * sts_harness: the local world test_fetch and test_sts_engine run in.
 *
 *  - a temporary directory with a test CA and certificates made by openssl
 *    at test time: one for every mta-sts.<domain>.sts.test host below
 *    (SAN list) and one for wrong.example.org;
 *  - nginx (/usr/sbin/nginx, no master process, no daemon) on
 *    127.0.0.1:<free port> serving policies per host name: good ones, 404,
 *    301, wrong media type, oversized body, a wrong-name certificate;
 *  - a silent TLS port on 127.0.0.2:<same port> (accepts, never answers)
 *    for timeouts; nothing listens on 127.0.0.3 (connection refused);
 *  - tests/data/dns/fakedns.py (tests/unit/fakedns.h) serving
 *    tests/data/dns/zone.txt plus the records below, from a copy in the
 *    temporary directory.
 *
 * Every child runs with PR_SET_PDEATHSIG and is killed in sts_world_stop(),
 * which the group teardown calls even after failures. Every wait is
 * bounded. Without nginx, openssl or python3-dnslib the tests are skipped.
 */
#ifndef STSPROXY_TEST_STS_HARNESS_H
#define STSPROXY_TEST_STS_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "cfg.h"
#include "fakedns.h"

#define NGINX_BIN "/usr/sbin/nginx"

/* Policy hosts: domain (under sts.test), what nginx does. */
#define POLICY_ENFORCE                                                                             \
	"version: STSv1\nmode: enforce\nmx: mx1.good.sts.test\nmx: *.mx.good.sts.test\nmax_age: "  \
	"86400\n"
#define POLICY_TESTING "version: STSv1\r\nmode: testing\r\nmx: *.sts.test\r\nmax_age: 3600\r\n"
#define POLICY_NONE    "version: STSv1\nmode: none\nmax_age: 86400\n"
#define POLICY_BAD     "version: STSv1\nmode: enforcing\nmx: mx.bad.sts.test\nmax_age: 86400\n"

struct sts_world {
	char dir[64];
	int https_port;
	struct fakedns dns;
	pid_t nginx;
	int silent_fd; /* 127.0.0.2:https_port, never accepts */
	int silent_fd2;
	int ok; /* everything started */
	char why[256];
};

static struct sts_world world;

static __attribute__((unused)) int
world_write(const char *rel, const char *text, size_t len)
{
	char path[512];
	FILE *fp;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", world.dir, rel);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	rc = fwrite(text, 1, len, fp) == len ? 0 : -1;
	if (fclose(fp) != 0)
		rc = -1;
	return rc;
}

static __attribute__((unused)) int
world_writes(const char *rel, const char *text)
{
	return world_write(rel, text, strlen(text));
}

static int world_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static __attribute__((unused)) int
world_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0 ? 0 : -1;
}

/* A port free on 127.0.0.1 and 127.0.0.2 right now (small race accepted). */
static __attribute__((unused)) int
world_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static __attribute__((unused)) int
world_listen(const char *addr, int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static __attribute__((unused)) int
world_can_connect(const char *addr, int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	rc = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

static __attribute__((unused)) int
world_pki(void)
{
	const char *d = world.dir;
	static const char *const names[] = {"good",     "testing", "none",    "bad",      "missing",
	                                    "redirect", "html",    "big",     "timeout",  "refused",
	                                    "two",      "change",  "charset", "servfail", "cache",
	                                    "none2",    "c1",      "c2",      "c3",       "nodns"};
	char san[2048];
	size_t off = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		off += (size_t)snprintf(san + off, sizeof(san) - off, "%sDNS:mta-sts.%s.sts.test",
		                        i ? "," : "", names[i]);
	if (world_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	             "-nodes -sha256 -keyout ca.key -out ca.pem -days 2 -subj '/CN=stsproxy unit "
	             "test CA' -addext basicConstraints=critical,CA:TRUE -addext "
	             "keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1",
	             d) == -1)
		return -1;
	for (int k = 0; k < 2; k++) {
		const char *n = k == 0 ? "sts" : "wrong";
		char ext[2300];

		snprintf(ext, sizeof(ext),
		         "subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,"
		         "digitalSignature\nextendedKeyUsage=serverAuth\n",
		         k == 0 ? san : "DNS:wrong.example.org");
		{
			char rel[64];
			snprintf(rel, sizeof(rel), "%s.ext", n);
			if (world_writes(rel, ext) == -1)
				return -1;
		}
		if (world_sh("cd %s && openssl req -new -newkey ec -pkeyopt "
		             "ec_paramgen_curve:P-256 -nodes -sha256 -keyout %s.key -out %s.csr "
		             "-subj '/CN=%s' >/dev/null 2>&1 && openssl x509 -req -in %s.csr -CA "
		             "ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 -extfile %s.ext "
		             "-out %s.pem >/dev/null 2>&1",
		             d, n, n, k == 0 ? "mta-sts.good.sts.test" : "wrong.example.org", n, n,
		             n) == -1)
			return -1;
	}
	return 0;
}

/* The policy file of one host (rewritable during a test). */
static __attribute__((unused)) int
world_policy(const char *name, const char *text)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "www/%s/.well-known", name);
	world_sh("mkdir -p %s/%s", world.dir, rel);
	snprintf(rel, sizeof(rel), "www/%s/.well-known/mta-sts.txt", name);
	return world_writes(rel, text);
}

static __attribute__((unused)) int
world_nginx_conf(void)
{
	static const char *const plain[] = {"good", "testing", "none",     "bad",   "missing",
	                                    "two",  "change",  "servfail", "cache", "none2",
	                                    "c1",   "c2",      "c3"};
	char *conf = malloc(65536);
	size_t off = 0;
	int rc;

#define ADD(...) off += (size_t)snprintf(conf + off, 65536 - off, __VA_ARGS__)
	if (conf == NULL)
		return -1;
	ADD("daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx/nginx.pid;\n"
	    "error_log %s/nginx/error.log warn;\nevents { worker_connections 256; }\n"
	    "http {\n access_log off;\n client_body_temp_path %s/nginx/tmp;\n"
	    " proxy_temp_path %s/nginx/tmp;\n fastcgi_temp_path %s/nginx/tmp;\n"
	    " uwsgi_temp_path %s/nginx/tmp;\n scgi_temp_path %s/nginx/tmp;\n"
	    " types { }\n default_type text/plain;\n"
	    " ssl_certificate %s/sts.pem;\n ssl_certificate_key %s/sts.key;\n",
	    world.dir, world.dir, world.dir, world.dir, world.dir, world.dir, world.dir, world.dir,
	    world.dir);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.%s.sts.test; root "
		    "%s/www/%s; }\n",
		    world.https_port, plain[i], world.dir, plain[i]);
	ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.charset.sts.test; root "
	    "%s/www/good; charset utf-8; charset_types text/plain; }\n",
	    world.https_port, world.dir);
	ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.redirect.sts.test; "
	    "return 301 https://mta-sts.good.sts.test:%d/.well-known/mta-sts.txt; }\n",
	    world.https_port, world.https_port);
	ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.html.sts.test; root "
	    "%s/www/good; default_type text/html; }\n",
	    world.https_port, world.dir);
	ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.big.sts.test; root "
	    "%s/www/big; }\n",
	    world.https_port, world.dir);
	ADD(" server { listen 127.0.0.1:%d ssl; server_name mta-sts.wrongcert.sts.test; root "
	    "%s/www/good; ssl_certificate %s/wrong.pem; ssl_certificate_key %s/wrong.key; }\n",
	    world.https_port, world.dir, world.dir, world.dir);
	ADD("}\n");
#undef ADD
	rc = world_write("nginx/nginx.conf", conf, off);
	free(conf);
	return rc;
}

static const char world_zone_extra[] =
        "\n; --- sts_harness ---\n"
        "_mta-sts.good.sts.test. IN TXT \"v=STSv1; id=good1;\"\n"
        "_mta-sts.testing.sts.test. IN TXT \"v=STSv1;\" \" id=testing1\"\n"
        "_mta-sts.none.sts.test. IN TXT \"v=STSv1; id=none1\"\n"
        "_mta-sts.bad.sts.test. IN TXT \"v=STSv1; id=bad1\"\n"
        "_mta-sts.missing.sts.test. IN TXT \"v=STSv1; id=missing1\"\n"
        "_mta-sts.redirect.sts.test. IN TXT \"v=STSv1; id=redirect1\"\n"
        "_mta-sts.html.sts.test. IN TXT \"v=STSv1; id=html1\"\n"
        "_mta-sts.charset.sts.test. IN TXT \"v=STSv1; id=charset1\"\n"
        "_mta-sts.big.sts.test. IN TXT \"v=STSv1; id=big1\"\n"
        "_mta-sts.wrongcert.sts.test. IN TXT \"v=STSv1; id=wrongcert1\"\n"
        "_mta-sts.timeout.sts.test. IN TXT \"v=STSv1; id=timeout1\"\n"
        "_mta-sts.refused.sts.test. IN TXT \"v=STSv1; id=refused1\"\n"
        "_mta-sts.nodns.sts.test. IN TXT \"v=STSv1; id=nodns1\"\n"
        "_mta-sts.two.sts.test. IN TXT \"v=STSv1; id=two1\"\n"
        "_mta-sts.two.sts.test. IN TXT \"v=STSv1; id=two2\"\n"
        "_mta-sts.spf.sts.test. IN TXT \"v=spf1 -all\"\n"
        "_mta-sts.change.sts.test. IN TXT \"v=STSv1; id=@CHANGE@\"\n"
        "_mta-sts.cache.sts.test. IN TXT \"v=STSv1; id=cache1\"\n"
        "_mta-sts.none2.sts.test. IN TXT \"v=STSv1; id=none2new\"\n"
        "_mta-sts.c1.sts.test. IN TXT \"v=STSv1; id=c1\"\n"
        "_mta-sts.c2.sts.test. IN TXT \"v=STSv1; id=c2\"\n"
        "_mta-sts.c3.sts.test. IN TXT \"v=STSv1; id=c3\"\n"
        "mta-sts.good.sts.test. IN A 127.0.0.1\n"
        "mta-sts.testing.sts.test. IN A 127.0.0.1\n"
        "mta-sts.none.sts.test. IN A 127.0.0.1\n"
        "mta-sts.bad.sts.test. IN A 127.0.0.1\n"
        "mta-sts.missing.sts.test. IN A 127.0.0.1\n"
        "mta-sts.redirect.sts.test. IN A 127.0.0.1\n"
        "mta-sts.html.sts.test. IN A 127.0.0.1\n"
        "mta-sts.charset.sts.test. IN A 127.0.0.1\n"
        "mta-sts.big.sts.test. IN A 127.0.0.1\n"
        "mta-sts.wrongcert.sts.test. IN A 127.0.0.1\n"
        "mta-sts.timeout.sts.test. IN A 127.0.0.2\n"
        "mta-sts.refused.sts.test. IN A 127.0.0.3\n"
        "mta-sts.two.sts.test. IN A 127.0.0.1\n"
        "mta-sts.change.sts.test. IN A 127.0.0.1\n"
        "mta-sts.cache.sts.test. IN A 127.0.0.1\n"
        "mta-sts.none2.sts.test. IN A 127.0.0.1\n"
        "mta-sts.c1.sts.test. IN A 127.0.0.1\n"
        "mta-sts.c2.sts.test. IN A 127.0.0.1\n"
        "mta-sts.c3.sts.test. IN A 127.0.0.1\n"
        "mta-sts.v6.sts.test. IN AAAA ::1\n"
        "mta-sts.v6.sts.test. IN A 127.0.0.1\n"
        "good.sts.test. IN MX 10 mx1.good.sts.test.\n"
        "mx1.good.sts.test. IN A 127.0.0.1\n";

/* Write the zone (zone.txt + our records, the "change" id substituted)
 * and (re)start fakedns; with port > 0 on that port. */
static __attribute__((unused)) int
world_dns_start(const char *change_id, int port)
{
	char *zone = NULL, *at, zpath[128];
	size_t zl = 0;
	FILE *fp;
	long n;

	if ((fp = fopen(FAKEDNS_ZONE, "r")) == NULL)
		return -1;
	zone = malloc(1 << 20);
	if (zone == NULL) {
		fclose(fp);
		return -1;
	}
	zl = fread(zone, 1, (1 << 20) - sizeof(world_zone_extra) - 64, fp);
	fclose(fp);
	memcpy(zone + zl, world_zone_extra, sizeof(world_zone_extra));
	zl += sizeof(world_zone_extra) - 1;
	if ((at = strstr(zone, "@CHANGE@")) != NULL) {
		const char *id = change_id ? change_id : "change1";
		size_t idl = strlen(id), tail = zl - (size_t)(at - zone) - 8;

		memmove(at + idl, at + 8, tail + 1);
		memcpy(at, id, idl);
		zl = zl - 8 + idl;
	}
	snprintf(zpath, sizeof(zpath), "%s/zone.txt", world.dir);
	n = world_write("zone.txt", zone, zl);
	free(zone);
	if (n == -1)
		return -1;
	return fakedns_start(&world.dns, zpath, port, 0);
}

static __attribute__((unused)) void
world_kill(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

/* Restart fakedns on the same port with another id for change.sts.test. */
static __attribute__((unused)) int
world_dns_restart(const char *change_id)
{
	int port = world.dns.port;

	fakedns_stop(&world.dns);
	for (int i = 0; i < 50; i++) {
		if (world_dns_start(change_id, port) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

static __attribute__((unused)) int
world_nginx_start(void)
{
	char prefix[128], conf[160];

	snprintf(prefix, sizeof(prefix), "%s/nginx/", world.dir);
	snprintf(conf, sizeof(conf), "%s/nginx/nginx.conf", world.dir);
	if ((world.nginx = fork()) == -1)
		return -1;
	if (world.nginx == 0) {
		int devnull = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(devnull, 0);
		dup2(devnull, 1);
		execl(NGINX_BIN, "nginx", "-p", prefix, "-c", conf, "-e", "stderr", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		int st;

		if (world_can_connect("127.0.0.1", world.https_port))
			return 0;
		if (waitpid(world.nginx, &st, WNOHANG) == world.nginx) {
			world.nginx = 0;
			return -1;
		}
		usleep(100000);
	}
	return -1;
}

static __attribute__((unused)) void
world_stop(void)
{
	world_kill(&world.nginx);
	fakedns_stop(&world.dns);
	if (world.silent_fd > 0)
		close(world.silent_fd);
	if (world.silent_fd2 > 0)
		close(world.silent_fd2);
	world.silent_fd = world.silent_fd2 = 0;
	if (world.dir[0] != '\0' && getenv("STS_TEST_KEEP") == NULL)
		world_sh("rm -rf '%s'", world.dir);
	world.dir[0] = '\0';
}

static __attribute__((unused)) int
world_start(void)
{
	char big[70000];

	memset(&world, 0, sizeof(world));
	signal(SIGPIPE, SIG_IGN);
	if (access(NGINX_BIN, X_OK) != 0) {
		snprintf(world.why, sizeof(world.why), "%s not installed", NGINX_BIN);
		return -1;
	}
	if (world_sh("command -v openssl >/dev/null && %s -c 'import dnslib' 2>/dev/null",
	             fakedns_python()) == -1) {
		snprintf(world.why, sizeof(world.why), "openssl or python3-dnslib missing");
		return -1;
	}
	snprintf(world.dir, sizeof(world.dir), "/tmp/sts-test.XXXXXX");
	if (mkdtemp(world.dir) == NULL) {
		world.dir[0] = '\0';
		return -1;
	}
	world_sh("mkdir -p %s/nginx/tmp %s/www/missing %s/www/big", world.dir, world.dir,
	         world.dir);
	if (world_pki() == -1) {
		snprintf(world.why, sizeof(world.why), "openssl could not make the test PKI");
		goto fail;
	}
	memset(big, 'x', sizeof(big));
	memcpy(big, POLICY_ENFORCE, strlen(POLICY_ENFORCE));
	big[strlen(POLICY_ENFORCE)] = '#';
	if (world_policy("good", POLICY_ENFORCE) || world_policy("testing", POLICY_TESTING) ||
	    world_policy("none", POLICY_NONE) || world_policy("bad", POLICY_BAD) ||
	    world_policy("two", POLICY_ENFORCE) || world_policy("change", POLICY_ENFORCE) ||
	    world_policy("servfail", POLICY_ENFORCE) || world_policy("cache", POLICY_ENFORCE) ||
	    world_policy("none2", POLICY_NONE) || world_policy("c1", POLICY_ENFORCE) ||
	    world_policy("c2", POLICY_ENFORCE) || world_policy("c3", POLICY_ENFORCE) ||
	    world_write("www/big/.well-known/mta-sts.txt", big, sizeof(big)) == -1) {
		world_sh("mkdir -p %s/www/big/.well-known", world.dir);
		if (world_write("www/big/.well-known/mta-sts.txt", big, sizeof(big)) == -1)
			goto fail;
	}
	for (int tries = 0; tries < 20; tries++) {
		world.https_port = world_free_port();
		if (world.https_port <= 0)
			continue;
		world.silent_fd = world_listen("127.0.0.2", world.https_port);
		if (world.silent_fd < 0)
			continue;
		if (world_nginx_conf() == -1)
			goto fail;
		if (world_nginx_start() == 0)
			break;
		close(world.silent_fd);
		world.silent_fd = 0;
		world.https_port = 0;
	}
	if (world.https_port <= 0 || world.nginx <= 0) {
		snprintf(world.why, sizeof(world.why), "nginx did not start");
		goto fail;
	}
	if (world_dns_start(NULL, 0) == -1) {
		snprintf(world.why, sizeof(world.why), "fakedns.py did not start");
		goto fail;
	}
	world.ok = 1;
	return 0;
fail:
	world_stop();
	return -1;
}

/* cmocka group set-up of a test in the world: *loop a loop of its own
 * and the group state; without the world the network tests skip. */
static __attribute__((unused)) int
world_group_setup(void **state, struct ev_loop **loop, const char *test)
{
	*loop = ev_loop_new(EVFLAG_AUTO);
	*state = *loop;
	if (world_start() == -1)
		fprintf(stderr, "%s: skipping the network tests: %s\n", test, world.why);
	return 0;
}

static __attribute__((unused)) int
world_group_teardown(void **state)
{
	world_stop();
	ev_loop_destroy(*state);
	return 0;
}

/* A config for the world (extra: more text inside the "sts" group). */
static __attribute__((unused)) struct cfg *
world_cfg(const char *sts_extra)
{
	char text[2048], err[512], path[160];
	struct cfg *c;

	snprintf(text, sizeof(text),
	         "dns = { servers = [ \"127.0.0.1:%d\" ]; timeout = 1.0; tries = 2; };\n"
	         "tls = { ca_file = \"%s/ca.pem\"; };\n"
	         "sts = { https_port = %d; fetch_timeout = 3.0; %s };\n",
	         world.dns.port, world.dir, world.https_port, sts_extra ? sts_extra : "");
	snprintf(path, sizeof(path), "%s/test.conf", world.dir);
	if (world_writes("test.conf", text) == -1)
		return NULL;
	c = cfg_load(path, err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "world_cfg: %s\n", err);
	return c;
}

/* Run loop until *flag (0 or 1) or seconds pass. 0 or -1. */
static __attribute__((unused)) int
world_run_until(struct ev_loop *loop, const int *flag, double seconds)
{
	return fakedns_run_until(loop, flag, 1, seconds);
}

#endif
