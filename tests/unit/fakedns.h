/*
 * fakedns: the DNS server harness of the unit tests that resolve names
 * (test_dns, test_mxfind, and through sts_harness.h test_fetch and
 * test_sts_engine). Header-only; every function is static and marked
 * unused, so a test includes the whole of it and uses what it needs.
 *
 *  - fakedns_start() forks tests/data/dns/fakedns.py (a python3-dnslib
 *    server on 127.0.0.1 and, when it can bind it, [::1]) on a zone file,
 *    on a given port or one the kernel picks, optionally with N UDP
 *    "blackhole" ports that never answer, and reads the PORT, PORT6,
 *    BLACKHOLES and READY lines it prints on a pipe. The interpreter is
 *    $STSPROXY_PYTHON, else /usr/bin/python3 (it has python3-dnslib; a
 *    pyenv one may not), else python3 on PATH.
 *  - The child runs with PR_SET_PDEATHSIG(SIGKILL), so it dies with the
 *    test process; fakedns_stop() kills it with SIGKILL and reaps it.
 *    fakedns_start() stops it itself when it fails.
 *  - Every wait is bounded: start-up waits at most 10 s for each read of
 *    the pipe and gives up on a line longer than 1 KiB or EOF;
 *    fakedns_run_until() runs a libev loop under a guard timer.
 *  - fakedns_group_setup()/fakedns_group_teardown() are cmocka group
 *    fixtures for a test that needs nothing else: the group state is the
 *    struct fakedns.
 */
#ifndef STSPROXY_TEST_FAKEDNS_H
#define STSPROXY_TEST_FAKEDNS_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "cfg.h"
#include "dns.h"

#ifndef TEST_DATA_DIR
#error TEST_DATA_DIR must name tests/data
#endif

#define FAKEDNS_SCRIPT   TEST_DATA_DIR "/dns/fakedns.py"
#define FAKEDNS_ZONE     TEST_DATA_DIR "/dns/zone.txt"
#define FAKEDNS_MAXHOLES 32 /* blackhole ports kept from the BLACKHOLES line */

struct fakedns {
	pid_t pid;
	int port;
	int port6; /* 0 without IPv6 loopback */
	int holes[FAKEDNS_MAXHOLES];
	int nholes;
};

static __attribute__((unused)) const char *
fakedns_python(void)
{
	const char *p = getenv("STSPROXY_PYTHON");

	/* The distribution python has python3-dnslib; a pyenv one may not. */
	if (p != NULL && *p != '\0')
		return p;
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static __attribute__((unused)) void
fakedns_stop(struct fakedns *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

/* One line fakedns.py printed; 1 on READY. */
static __attribute__((unused)) int
fakedns_line(struct fakedns *f, char *line)
{
	char *p;

	if (strncmp(line, "PORT ", 5) == 0)
		f->port = atoi(line + 5);
	else if (strncmp(line, "PORT6 ", 6) == 0)
		f->port6 = atoi(line + 6);
	else if (strncmp(line, "BLACKHOLES ", 11) == 0)
		for (p = strtok(line + 11, " "); p && f->nholes < FAKEDNS_MAXHOLES;
		     p = strtok(NULL, " "))
			f->holes[f->nholes++] = atoi(p);
	else if (strcmp(line, "READY") == 0)
		return 1;
	return 0;
}

/*
 * Start fakedns.py serving zone, on port (0: the kernel picks one), with
 * blackholes never-answering UDP ports (at most FAKEDNS_MAXHOLES are kept).
 * 0 once it is READY with a port, else -1 with nothing left running.
 */
static __attribute__((unused)) int
fakedns_start(struct fakedns *f, const char *zone, int port, int blackholes)
{
	char portarg[16], holesarg[16], line[1024];
	const char *argv[8];
	size_t used = 0;
	int fds[2], n = 0, ready = 0;
	struct pollfd pfd;

	memset(f, 0, sizeof(*f));
	snprintf(portarg, sizeof(portarg), "%d", port);
	snprintf(holesarg, sizeof(holesarg), "%d", blackholes);
	argv[n++] = "python3";
	argv[n++] = FAKEDNS_SCRIPT;
	argv[n++] = zone;
	if (port > 0) {
		argv[n++] = "--port";
		argv[n++] = portarg;
	}
	if (blackholes > 0) {
		argv[n++] = "--blackholes";
		argv[n++] = holesarg;
	}
	argv[n] = NULL;
	if (pipe(fds) == -1)
		return -1;
	if ((f->pid = fork()) == -1) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (f->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp(fakedns_python(), (char *const *)argv);
		perror("exec python3");
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (!ready) {
		char *nl;
		ssize_t r;

		if (poll(&pfd, 1, 10000) != 1)
			break;
		if ((r = read(fds[0], line + used, sizeof(line) - 1 - used)) <= 0)
			break;
		used += (size_t)r;
		line[used] = '\0';
		while (!ready && (nl = strchr(line, '\n')) != NULL) {
			*nl = '\0';
			ready = fakedns_line(f, line);
			used -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, used + 1);
		}
		if (used == sizeof(line) - 1)
			break;
	}
	close(fds[0]);
	if (ready && f->port > 0)
		return 0;
	fakedns_stop(f);
	return -1;
}

static __attribute__((unused)) void
fakedns_guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

/* Run loop until *count reaches target or max seconds have passed: 0 if it
 * did, else -1. */
static __attribute__((unused)) int
fakedns_run_until(struct ev_loop *loop, const int *count, int target, double max)
{
	ev_timer guard;

	ev_now_update(loop);
	ev_timer_init(&guard, fakedns_guard_cb, max, 0.);
	ev_timer_start(loop, &guard);
	while (*count < target && ev_is_active(&guard))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return *count >= target ? 0 : -1;
}

static __attribute__((unused)) void
fakedns_run_for(struct ev_loop *loop, double secs)
{
	static const int never = 0;

	fakedns_run_until(loop, &never, 1, secs);
}

/* A resolver on loop over servers (NULL-terminated "addr[:port]" list). */
static __attribute__((unused)) struct dns *
fakedns_mkdns_list(struct ev_loop *loop, const char *const *servers, double timeout, int tries)
{
	char buf[32][64], *list[32], err[256];
	struct cfg c;
	struct dns *d;
	int n = 0;

	memset(&c, 0, sizeof(c));
	for (; servers != NULL && servers[n] != NULL && n < 32; n++) {
		snprintf(buf[n], sizeof(buf[n]), "%s", servers[n]);
		list[n] = buf[n];
	}
	c.dns_servers = n > 0 ? list : NULL;
	c.ndns_servers = n;
	c.dns_timeout = timeout;
	c.dns_tries = tries;
	d = dns_new(loop, &c, err, sizeof(err));
	if (d == NULL)
		fprintf(stderr, "dns_new: %s\n", err);
	return d;
}

/* A resolver on loop over f's IPv4 port. */
static __attribute__((unused)) struct dns *
fakedns_mkdns(struct ev_loop *loop, const struct fakedns *f, double timeout, int tries)
{
	char s[32];
	const char *servers[] = {s, NULL};

	snprintf(s, sizeof(s), "127.0.0.1:%d", f->port);
	return fakedns_mkdns_list(loop, servers, timeout, tries);
}

/* cmocka group set-up: SIGPIPE ignored, *loop the default loop, f serving
 * zone.txt with blackholes extra ports; the group state is f. */
static __attribute__((unused)) int
fakedns_group_setup(void **state, struct ev_loop **loop, struct fakedns *f, int blackholes)
{
	signal(SIGPIPE, SIG_IGN);
	*loop = ev_default_loop(0);
	*state = f;
	if (fakedns_start(f, FAKEDNS_ZONE, 0, blackholes) == -1) {
		fprintf(stderr, "cannot start fakedns.py (python3-dnslib installed?)\n");
		return -1;
	}
	return 0;
}

static __attribute__((unused)) int
fakedns_group_teardown(void **state)
{
	fakedns_stop(*state);
	return 0;
}

#endif
