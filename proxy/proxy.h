/*
 * proxy: the daemon's shared state, owned by main: the event loop, the
 * configuration snapshot, the TLS context, the resolver, the listeners
 * and the list of live sessions. One instance per process (a future
 * multi-core version runs one per worker).
 */
#ifndef STSPROXY_PROXY_H
#define STSPROXY_PROXY_H

#include <stdint.h>
#include <sys/queue.h>

#include <ev.h>

struct cfg;
struct tls_ctx;
struct dns;
struct policy_engine;
struct session;
struct listener;
struct tofu;
struct metrics;

TAILQ_HEAD(session_list, session);

struct proxy_stats {
	unsigned long long sessions;
	unsigned long long messages;      /* end-of-DATA answered 2xx by a server */
	unsigned long long rcpt_deferred; /* recipients stsproxy answered 4xx */
	unsigned long long tls_upgraded;  /* sessions upgraded to TLS upstream */
	unsigned long long plaintext;     /* sessions that went on in plaintext */
	unsigned long long refused;       /* sessions refused (limits, self-relay) */
	unsigned long long events;        /* findings logged */
};

struct proxy {
	struct ev_loop *loop;
	struct cfg *cfg;
	struct tls_ctx *tls;
	struct dns *dns;
	struct policy_engine *policy;
	struct tofu *tofu; /* per-MX memory (state_dir/tofu.db), may be memory-only */
	ev_timer tofu_timer;
	struct listener *listeners;
	int nlisteners;

	struct session_list sessions;
	int nsessions;
	struct session_list graveyard; /* closed sessions freed at the next loop turn */
	ev_prepare reaper;
	uint64_t next_id;

	int draining; /* SIGTERM: no new sessions, exit when the last ends */
	ev_timer drain_timer;
	struct proxy_stats stats;
	struct metrics *metrics; /* node_exporter textfile (metrics.h); NULL = disabled */
};

/* Is sa one of our own listening addresses (a relay loop)? */
int proxy_is_own_address(const struct proxy *px, const struct sockaddr *sa);

#endif
