/*
 * metrics: counters for monitoring, written as a node_exporter textfile.
 *
 * Why a textfile and not an HTTP endpoint: a security appliance should
 * not grow a listening socket and an HTTP parser for statistics; the
 * node_exporter textfile collector is the standard way to publish a
 * daemon's metrics without either, and node_exporter already runs where
 * Prometheus watches hosts. The file is replaced atomically (temporary
 * file in the same directory + rename, mode 0644), so a scrape sees the
 * previous complete file or the next one, never half of one.
 *
 * What is counted (Prometheus text exposition format 0.0.4, every name
 * prefixed "stsproxy_", HELP and TYPE before each family's samples,
 * label values escaped): events by name and severity (every "event"
 * record a session emits), sessions by result and by upstream TLS
 * version, recipients by outcome and policy verdicts by source and
 * verdict (both from the session outcome record), plus what struct
 * proxy_stats and the TLS context count (sessions accepted and refused,
 * messages, TLS upgrades, certificate chain checks), what the MTA-STS
 * engine counts (answers by status and reason, policy fetches; its events
 * join the session events), current sessions, start time and uptime. Counters count from the start of the process.
 *
 * Ownership: struct metrics owns its series and its ev_timer; it reads
 * the proxy's stats at each write and never writes to the proxy.
 * Every function is NULL-safe: a NULL struct metrics (no
 * metrics.textfile configured) makes them no-ops, so callers need no
 * "if enabled" of their own.
 */
#ifndef STSPROXY_METRICS_H
#define STSPROXY_METRICS_H

#include <stddef.h>

struct ev_loop;
struct cfg;
struct proxy;
struct session;
struct metrics;

/*
 * Create the metrics of px from cfg's "metrics" group, write the file
 * once (so a wrong directory is found at start-up) and start the timer
 * that rewrites it every metrics.interval seconds on loop.
 * Returns NULL with err set to "" when metrics are disabled (no
 * metrics.textfile), NULL with a message in err on failure.
 */
struct metrics *metrics_new(struct ev_loop *loop, const struct cfg *cfg, const struct proxy *px,
                            char *err, size_t errsz);
/* Stop the timer and free everything (no final write: call metrics_write). */
void metrics_free(struct metrics *m);

/* Write the file now, atomically. Returns 0, or -1 with errno set (the
 * previous file, if any, is left as it was). 0 when m is NULL. */
int metrics_write(struct metrics *m);

/* One "event" record was emitted (session_event, session_findings). */
void metrics_event(struct metrics *m, const char *name, const char *severity);
/* The same for an event of the MTA-STS engine (an sts_event_fn: arg is
 * the struct metrics; the domain is not a label, it is in the log). */
void metrics_sts_event(void *arg, const char *name, const char *severity, const char *domain);
/* A session ended: count its outcome record (result, TLS version,
 * recipients, one policy verdict per recipient domain). */
void metrics_session_end(struct metrics *m, const struct session *s);

#endif
