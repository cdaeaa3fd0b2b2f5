/*
 * stsproxy: a transparent SMTP proxy that upgrades legacy MTAs' outbound
 * mail to verified TLS and enforces TLS policies on their behalf.
 *
 * main: command line, start-up (config, log, TLS, resolver, listeners),
 * signals (TERM/INT drain, HUP reopens the log) and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "cfg.h"
#include "cli_probe.h"
#include "cli.h"
#include "dns.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "proxy.h"
#include "session.h"
#include "sts.h"
#include "tls.h"
#include "tofu.h"

#define STSPROXY_VERSION "0.1.0"
#define DRAIN_MAX        60.0 /* seconds SIGTERM waits for sessions to finish */

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: stsproxy [-c FILE] [-d] [--check-config] [-V]\n"
	            "       stsproxy probe [--json] HOST[:PORT] | --domain DOMAIN\n"
	            "       stsproxy policy [-c FILE] [--json] DOMAIN\n"
	            "       stsproxy cache [-c FILE] list | show DOMAIN | flush DOMAIN\n"
	            "\n"
	            "  -c, --config FILE   configuration file (default: embedded defaults)\n"
	            "  -t, --check-config  validate the configuration and exit 0/1\n"
	            "  -v, --verbose       with --check-config: print the effective configuration\n"
	            "  -d, --debug         log at debug level to stderr\n"
	            "  -V, --version       print the version\n"
	            "  -h, --help          this text\n");
}

static void
reap(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct proxy *px = w->data;
	struct session *s;

	while ((s = TAILQ_FIRST(&px->graveyard)) != NULL) {
		TAILQ_REMOVE(&px->graveyard, s, entry);
		session_free(s);
	}
	if (px->draining && px->nsessions == 0)
		ev_break(loop, EVBREAK_ALL);
}

static void
on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy *px = w->data;

	log_warnx("drain: %d sessions still open after %.0fs, closing them", px->nsessions,
	          DRAIN_MAX);
	while (!TAILQ_EMPTY(&px->sessions))
		session_close(TAILQ_FIRST(&px->sessions), "shutdown", "stsproxy stopping");
}

static void
on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct proxy *px = w->data;

	if (px->draining) {
		log_notice("second signal: stopping now");
		while (!TAILQ_EMPTY(&px->sessions))
			session_close(TAILQ_FIRST(&px->sessions), "shutdown", "stsproxy stopping");
		return;
	}
	log_notice("signal %d: no new sessions, draining %d", w->signum, px->nsessions);
	px->draining = 1;
	for (int i = 0; i < px->nlisteners; i++)
		listener_close(&px->listeners[i]);
	ev_timer_init(&px->drain_timer, on_drain_timeout, DRAIN_MAX, 0.);
	px->drain_timer.data = px;
	ev_timer_start(loop, &px->drain_timer);
}

static void
on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (log_reopen() == -1)
		log_warn("SIGHUP: reopening the log");
	else
		log_notice("SIGHUP: log reopened");
}

/* Persist the per-MX memory now and then, not per session. */
#define TOFU_SAVE_INTERVAL 60.0

static void
on_tofu_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy *px = w->data;

	if (tofu_dirty(px->tofu) && tofu_save(px->tofu) == -1)
		log_warn("tofu: saving the MX memory");
}

static void
tofu_open(struct proxy *px, const struct cfg *cfg)
{
	char path[4096];
	struct tofu_report rep;

	path[0] = '\0';
	if (cfg->state_dir != NULL) {
		/* The example configuration promises the directory is made. */
		if (mkdir(cfg->state_dir, 0700) == -1 && errno != EEXIST)
			log_warn("state_dir %s", cfg->state_dir);
		snprintf(path, sizeof(path), "%s/tofu.db", cfg->state_dir);
	}
	if ((px->tofu = tofu_new(path[0] ? path : NULL, 0)) == NULL)
		fatal("tofu");
	memset(&rep, 0, sizeof(rep));
	if (path[0] && tofu_load(px->tofu, &rep) == -1 && errno != ENOENT)
		log_warn("tofu: %s", path);
	if (rep.damaged > 0)
		log_warnx("tofu: %s: %zu damaged lines skipped (first at line %ld: %s)", path,
		          rep.damaged, rep.first_bad_line, rep.first_bad_reason);
	if (path[0])
		log_info("tofu: %zu MX hosts remembered from %s", rep.loaded, path);
	ev_timer_init(&px->tofu_timer, on_tofu_timer, TOFU_SAVE_INTERVAL, TOFU_SAVE_INTERVAL);
	px->tofu_timer.data = px;
	if (path[0])
		ev_timer_start(px->loop, &px->tofu_timer);
}

static void
raise_nofile(int want)
{
	struct rlimit rl;

	/* Each session needs two descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
run(struct cfg *cfg)
{
	struct proxy px;
	char err[512];
	ev_signal sterm, sint, shup;
	int opened = 0;

	memset(&px, 0, sizeof(px));
	TAILQ_INIT(&px.sessions);
	TAILQ_INIT(&px.graveyard);
	px.cfg = cfg;
	px.loop = ev_default_loop(EVFLAG_AUTO);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(2 * cfg->max_sessions + 64);

	if ((px.tls = tls_new(cfg, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((px.dns = dns_new(px.loop, cfg, err, sizeof(err))) == NULL)
		fatalx("dns: %s", err);
	tofu_open(&px, cfg);
	if ((px.policy = policy_new(px.loop, px.dns, cfg, err, sizeof(err))) == NULL)
		fatalx("policy: %s", err);
	/* metrics: node_exporter textfile, NULL when metrics.textfile is unset */
	if ((px.metrics = metrics_new(px.loop, cfg, &px, err, sizeof(err))) == NULL && err[0])
		fatalx("metrics: %s", err);
	if (px.metrics != NULL && policy_sts(px.policy) != NULL)
		sts_set_event_hook(policy_sts(px.policy), metrics_sts_event, px.metrics);
	if ((px.listeners = calloc((size_t)cfg->nlisteners, sizeof(*px.listeners))) == NULL)
		fatal("listeners");
	px.nlisteners = cfg->nlisteners;
	for (int i = 0; i < cfg->nlisteners; i++) {
		if (listener_open(&px, &px.listeners[i], &cfg->listeners[i], err, sizeof(err)) ==
		    -1) {
			/* The embedded defaults include [::1]: a host without
			 * IPv6 still runs on the listeners that worked. */
			log_warnx("%s", err);
			continue;
		}
		listener_start(&px.listeners[i]);
		log_notice("listening on %s (%s)", cfg->listeners[i].addrtext,
		           cfg_listen_kind_name(cfg->listeners[i].kind));
		opened++;
	}
	if (opened == 0)
		fatalx("no listener could be opened");

	ev_prepare_init(&px.reaper, reap);
	px.reaper.data = &px;
	ev_prepare_start(px.loop, &px.reaper);
	ev_signal_init(&sterm, on_term, SIGTERM);
	ev_signal_init(&sint, on_term, SIGINT);
	ev_signal_init(&shup, on_hup, SIGHUP);
	sterm.data = sint.data = shup.data = &px;
	ev_signal_start(px.loop, &sterm);
	ev_signal_start(px.loop, &sint);
	ev_signal_start(px.loop, &shup);
	log_notice("stsproxy %s started: mode %s, %d listener(s)", STSPROXY_VERSION,
	           cfg_mode_name(cfg->mode), opened);

	ev_run(px.loop, 0);

	reap(px.loop, &px.reaper, 0);
	log_notice("stsproxy stopped: %llu sessions, %llu messages, %llu upgraded to TLS, %llu "
	           "recipients deferred",
	           px.stats.sessions, px.stats.messages, px.stats.tls_upgraded,
	           px.stats.rcpt_deferred);
	/* metrics: the final counts, then stop */
	if (metrics_write(px.metrics) == -1)
		log_warn("metrics: final write");
	if (policy_sts(px.policy) != NULL) /* its last events must not reach freed metrics */
		sts_set_event_hook(policy_sts(px.policy), NULL, NULL);
	metrics_free(px.metrics);
	for (int i = 0; i < px.nlisteners; i++)
		listener_close(&px.listeners[i]);
	free(px.listeners);
	ev_timer_stop(px.loop, &px.tofu_timer);
	if (tofu_dirty(px.tofu) && tofu_save(px.tofu) == -1)
		log_warn("tofu: saving the MX memory");
	tofu_free(px.tofu);
	policy_free(px.policy);
	dns_free(px.dns);
	tls_free(px.tls);
	ev_loop_destroy(px.loop);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check-config", no_argument, NULL, 't'},
	        {"debug", no_argument, NULL, 'd'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int check = 0, debug = 0, verbose = 0, ch, rc;
	struct cfg *cfg;
	char err[1024];

	/* Operator tools: "stsproxy policy DOMAIN", "stsproxy cache ..." */
	if (argc > 1 && strcmp(argv[1], "policy") == 0)
		return cli_policy_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "cache") == 0)
		return cli_cache_main(argc - 1, argv + 1);

	if (argc > 1 && strcmp(argv[1], "probe") == 0)
		return cli_probe_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:tdvVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			printf("stsproxy %s\n", STSPROXY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "stsproxy: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	cfg = path ? cfg_load(path, err, sizeof(err)) : cfg_defaults();
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		if (verbose)
			cfg_dump(cfg, stdout);
		else
			printf("%s: configuration ok\n", path ? path : "(embedded defaults)");
		cfg_unref(cfg);
		return 0;
	}
	if (log_open(debug ? "-" : cfg->log_file,
	             cfg->log_format == CFG_LOG_JSON ? LOG_FMT_JSON : LOG_FMT_TEXT,
	             debug ? LOG_DEBUG : cfg->log_level, cfg->log_syslog) == -1) {
		fprintf(stderr, "stsproxy: log file %s: %s\n", cfg->log_file, strerror(errno));
		return 1;
	}
	rc = run(cfg);
	cfg_unref(cfg);
	log_close();
	return rc;
}
