/*
 * session: creation, logging and destruction of intercepted connections
 * (see session.h). The protocol itself lives in relay.c / monitor.c.
 *
 * Freeing is deferred: session_close() stops and closes everything at
 * once, so no callback can fire for the session again, and puts it on the
 * proxy's graveyard; the memory goes at the next loop turn, after every
 * callback on the current stack has unwound.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "mxfind.h"
#include "origdst.h"
#include "policy.h"
#include "proxy.h"
#include "relay.h"
#include "session.h"
#include "tls.h"
#include "tofu.h"

static void
session_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	if (s->state == RELAY_ST_MONITOR)
		monitor_on_timeout(s);
	else
		relay_on_timeout(s);
}

void
session_timer(struct session *s, double t)
{
	s->timer.repeat = t;
	ev_timer_again(s->px->loop, &s->timer);
}

void
session_log(struct session *s, int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > log_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(level, "session %llu client=%s dest=%s: %s", (unsigned long long)s->id,
	        s->client_text, s->dest_text, msg);
}

static int
severity_level(const char *sev)
{
	if (strcmp(sev, "alert") == 0)
		return LOG_ALERT;
	if (strcmp(sev, "warning") == 0)
		return LOG_WARNING;
	if (strcmp(sev, "notice") == 0)
		return LOG_NOTICE;
	return LOG_INFO;
}

/* Count an event and start its record with the fields every event has
 * (docs/events.md "Common fields"). */
static void
event_begin(struct session *s, struct jsonw *j, const char *name, const char *severity,
            const char *domain)
{
	char ts[40];

	s->nevents++;
	s->px->stats.events++;
	metrics_event(s->px->metrics, name, severity); /* metrics (proxy/metrics.h) */
	jsonw_begin(j);
	jsonw_str(j, "ts", log_timestamp(ts, sizeof(ts)));
	jsonw_str(j, "type", "event");
	jsonw_str(j, "event", name);
	jsonw_str(j, "severity", severity);
	jsonw_uint(j, "session", s->id);
	jsonw_str(j, "client", s->client_text);
	jsonw_str(j, "dest", s->dest_text);
	jsonw_str(j, "mode", cfg_mode_name(s->cfg->mode));
	if (s->sni[0])
		jsonw_str(j, "mx", s->sni);
	if (domain != NULL && domain[0])
		jsonw_str(j, "domain", domain);
}

void
session_event(struct session *s, const char *name, const char *severity, const char *domain,
              const char *evidence, size_t evlen)
{
	struct jsonw j;

	event_begin(s, &j, name, severity, domain);
	if (evidence != NULL) {
		/* Same %XX encoding as detect's findings (docs/events.md). */
		char esc[DETECT_EVIDENCE_MAX + 1];
		int cut = 0;
		detect_escape(evidence, evlen, esc, sizeof(esc), &cut);
		jsonw_str(&j, "evidence", esc);
		if (cut)
			jsonw_bool(&j, "evidence_truncated", 1);
	}
	jsonw_end(&j);
	log_record(severity_level(severity), &j);
	if (strcmp(severity, "alert") == 0)
		log_alert("%s for %s via %s (session %llu, %s)", name,
		          domain != NULL && domain[0] ? domain : "-", s->dest_text,
		          (unsigned long long)s->id, s->client_text);
}

/* TOFU key: the MX name when known, else the destination address. */
static const char *
memory_key(struct session *s, char *buf, size_t len)
{
	if (s->sni[0])
		return s->sni;
	if (s->dest_len == 0)
		return NULL;
	return sockaddr_ip_text((struct sockaddr *)&s->dest_ss, buf, len);
}

void
session_memory(struct session *s)
{
	struct tofu_entry e;
	char ip[64];
	const char *key = memory_key(s, ip, sizeof(ip));

	memset(&s->memory, 0, sizeof(s->memory));
	s->memory_loaded = 1;
	if (s->px->tofu == NULL || key == NULL || tofu_lookup(s->px->tofu, key, &e) != 0)
		return;
	/* "Offered STARTTLS before" is trusted for detect.memory_days: an MX
	 * that dropped TLS for good stops raising alerts after that. */
	s->memory.starttls_offered =
	        tofu_offered_within(&e, time(NULL), (time_t)s->cfg->memory_days * 86400);
	s->memory.tls_ok_last = e.tls_ok_last;
	s->memory.last_offered = (long long)e.last_offered;
	if (s->tls_fingerprint[0] && tofu_cert_changed(&e, s->tls_fingerprint))
		detect_tls_failure(DETECT_TLS_CHANGED, e.fingerprint, &s->findings);
}

static const char *
direction_name(enum detect_direction d)
{
	return d == DETECT_FROM_SERVER ? "server" : d == DETECT_FROM_CLIENT ? "client" : NULL;
}

void
session_findings(struct session *s)
{
	detect_combine(&s->findings, s->memory_loaded ? &s->memory : NULL);
	for (int i = 0; i < s->findings.n; i++) {
		struct detect_finding *f = &s->findings.f[i];
		struct jsonw j;

		if (f->emitted)
			continue;
		f->emitted = 1;
		event_begin(s, &j, detect_event_name(f->event), detect_severity_name(f->severity),
		            s->cur != NULL ? s->cur->name : NULL);
		if (f->evidence[0])
			jsonw_str(&j, "evidence", f->evidence);
		if (f->truncated)
			jsonw_bool(&j, "evidence_truncated", 1);
		if (f->line >= 0)
			jsonw_int(&j, "line", f->line);
		if (f->code)
			jsonw_int(&j, "code", f->code);
		if (f->count > 1)
			jsonw_int(&j, "count", f->count);
		if (f->bytes)
			jsonw_uint(&j, "bytes", f->bytes);
		if (direction_name(f->direction))
			jsonw_str(&j, "direction", direction_name(f->direction));
		if (f->escalated_by != DETECT_EV_NONE)
			jsonw_str(&j, "escalated_by", detect_event_name(f->escalated_by));
		if (f->escalated_by_memory)
			jsonw_bool(&j, "escalated_by_memory", 1);
		if (f->remembered) {
			char rts[40];
			time_t t = (time_t)f->remembered;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(rts, sizeof(rts), "%Y-%m-%dT%H:%M:%SZ", &tm);
			jsonw_str(&j, "remembered", rts);
		}
		jsonw_end(&j);
		log_record(detect_severity_syslog(f->severity), &j);
		if (f->severity >= DETECT_SEV_ALERT)
			log_alert("%s from %s (session %llu, %s%s%s)", detect_event_name(f->event),
			          s->sni[0] ? s->sni : s->dest_text, (unsigned long long)s->id,
			          s->client_text, f->evidence[0] ? ": " : "", f->evidence);
	}
}

static void
memory_record(struct session *s)
{
	struct tofu_observation o;
	char ip[64];

	if (s->px->tofu == NULL || s->state == RELAY_ST_CONNECT || !s->upstream_greeted)
		return;
	memset(&o, 0, sizeof(o));
	if ((o.key = memory_key(s, ip, sizeof(ip))) == NULL)
		return;
	o.when = time(NULL);
	o.starttls_offered = s->starttls_advertised;
	o.tls = !s->tls_tried ? TOFU_TLS_NOT_TRIED : s->tls_ok ? TOFU_TLS_OK : TOFU_TLS_FAILED;
	o.fingerprint = s->tls_fingerprint[0] ? s->tls_fingerprint : NULL;
	(void)tofu_record(s->px->tofu, &o);
}

static void
outcome_record(struct session *s)
{
	struct jsonw j;
	char ts[40];
	const char *ver = s->tls_version[0] ? s->tls_version : NULL;
	const char *cipher = s->tls_cipher[0] ? s->tls_cipher : NULL;

	jsonw_begin(&j);
	jsonw_str(&j, "ts", log_timestamp(ts, sizeof(ts)));
	jsonw_str(&j, "type", "session");
	jsonw_uint(&j, "session", s->id);
	jsonw_str(&j, "client", s->client_text);
	jsonw_str(&j, "dest", s->dest_text);
	/* After a reroute "dest" is where the mail went; this is where the
	 * client meant it to go. */
	if (s->orig_dest_text[0] && strcmp(s->orig_dest_text, s->dest_text) != 0)
		jsonw_str(&j, "original_dest", s->orig_dest_text);
	jsonw_str(&j, "listener", s->lst ? cfg_listen_kind_name(s->lst->kind) : NULL);
	jsonw_str(&j, "mode", cfg_mode_name(s->cfg->mode));
	jsonw_str(&j, "mx", s->sni[0] ? s->sni : NULL);
	jsonw_bool(&j, "mx_verified_name", s->sni_from_mx);
	jsonw_bool(&j, "starttls_advertised", s->starttls_advertised);
	jsonw_bool(&j, "tls", s->tls_ok);
	jsonw_str(&j, "tls_version", ver);
	jsonw_str(&j, "tls_cipher", cipher);
	if (s->tls_ok)
		jsonw_str(&j, "tls_verify", tls_verify_reason(s->tls_verify));
	jsonw_bool(&j, "tls_session_offered", s->tls_offered_session);
	jsonw_bool(&j, "client_tls", s->client_tls);
	jsonw_array_begin(&j, "domains");
	for (int i = 0; i < s->ndomains; i++) {
		char buf[400];
		struct session_domain *d = s->domains[i];
		snprintf(buf, sizeof(buf), "%s policy=%s/%s%s verdict=%s accepted=%d deferred=%d",
		         d->name, tlspolicy_source_name(d->req.source),
		         cfg_tls_level_name(d->req.level), d->req.testing ? "/testing" : "",
		         tlspolicy_fail_name(d->verdict), d->accepted, d->deferred);
		jsonw_array_str(&j, buf);
	}
	jsonw_array_end(&j);
	jsonw_uint(&j, "messages", s->messages);
	jsonw_uint(&j, "rcpt_accepted", s->rcpt_ok);
	jsonw_uint(&j, "rcpt_deferred", s->rcpt_tempfail);
	jsonw_uint(&j, "rcpt_rejected", s->rcpt_permfail);
	jsonw_uint(&j, "bytes_from_client", s->client.nread);
	jsonw_uint(&j, "bytes_to_server", s->server.nwritten);
	jsonw_uint(&j, "events", s->nevents);
	jsonw_str(&j, "result", s->result);
	jsonw_str(&j, "reason", s->reason[0] ? s->reason : NULL);
	jsonw_double(&j, "duration", ev_now(s->px->loop) - s->started);
	jsonw_end(&j);
	log_record(LOG_NOTICE, &j);
	metrics_session_end(s->px->metrics, s); /* metrics (proxy/metrics.h) */
}

static void
cancel_pending(struct session *s)
{
	policy_cancel(s->polq);
	s->polq = NULL;
	mxfind_cancel(s->mxq);
	s->mxq = NULL;
	dns_cancel(s->ptrq);
	s->ptrq = NULL;
	dns_cancel(s->upq);
	s->upq = NULL;
}

void
session_close(struct session *s, const char *result, const char *reason)
{
	if (s->closed)
		return;
	s->closed = 1;
	if (result != s->result)
		snprintf(s->result, sizeof(s->result), "%s", result);
	if (reason != NULL && reason != s->reason)
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
	if (!s->memory_loaded)
		session_memory(s);
	session_findings(s);
	memory_record(s);
	/* The record reads counters from the io structs: emit before closing. */
	outcome_record(s);
	ev_timer_stop(s->px->loop, &s->timer);
	cancel_pending(s);
	/* A QUIT (or last reply) still queued goes out if the socket takes it. */
	io_flush_quiet(&s->server);
	io_flush_quiet(&s->client);
	io_close(&s->client);
	io_close(&s->server);
	TAILQ_REMOVE(&s->px->sessions, s, entry);
	s->px->nsessions--;
	TAILQ_INSERT_TAIL(&s->px->graveyard, s, entry);
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	monitor_free(s);
	free(s->reply);
	free(s->mail_line);
	free(s->mail_error);
	free(s->rcpt_line);
	free(s->reroute);
	for (int i = 0; i < s->ndomains; i++)
		free(s->domains[i]);
	cfg_unref(s->cfg);
	free(s);
}

void
session_io_init(struct session *s, struct io *io, int fd, io_cb *cb)
{
	const struct cfg *c = s->cfg;
	/* Input holds one command or reply line (limits.max_line) or a body
	 * chunk; output may exceed the high-water mark by one read before the
	 * other side is paused. */
	size_t inmax = c->max_line + 2 > 65536 ? c->max_line + 2 : 65536;

	io_init(io, s->px->loop, fd, cb, s, inmax, c->buffer_high + 65536, c->buffer_low);
}

static int
set_destination(struct session *s, int fd)
{
	const struct cfg_listener *l = s->lst;

	if (l->kind == CFG_LISTEN_FIXED) {
		/* Name upstreams are resolved by the relay before connecting. */
		if (sockaddr_parse_ip(l->upstream_host, l->upstream_port, &s->dest_ss,
		                      &s->dest_len) == -1) {
			snprintf(s->dest_text, sizeof(s->dest_text), "%s:%d", l->upstream_host,
			         l->upstream_port);
			s->dest_len = 0;
			return 0;
		}
	} else if (origdst_get(fd, l->kind, &s->dest_ss, &s->dest_len) == -1) {
		session_log(s, LOG_WARNING, "cannot read the original destination: %s",
		            strerror(errno));
		return -1;
	}
	sockaddr_text((struct sockaddr *)&s->dest_ss, s->dest_text, sizeof(s->dest_text));
	return 0;
}

void
session_accept(struct proxy *px, const struct cfg_listener *lst, int fd,
               const struct sockaddr *client, socklen_t clen)
{
	struct session *s = calloc(1, sizeof(*s));
	struct cfg *cfg = px->cfg;

	if (s == NULL) {
		log_warn("session: out of memory");
		close(fd);
		return;
	}
	s->px = px;
	s->cfg = cfg_ref(cfg);
	s->lst = lst;
	s->id = ++px->next_id;
	s->started = ev_now(px->loop);
	detect_init(&s->findings);
	memcpy(&s->client_ss, client, clen);
	s->client_len = clen;
	sockaddr_text(client, s->client_text, sizeof(s->client_text));
	snprintf(s->dest_text, sizeof(s->dest_text), "?");
	ev_init(&s->timer, session_on_timer);
	s->timer.data = s;
	TAILQ_INSERT_TAIL(&px->sessions, s, entry);
	px->nsessions++;
	px->stats.sessions++;

	session_io_init(s, &s->client, fd, relay_client_cb);
	session_io_init(s, &s->server, -1, relay_server_cb);
	/* Nothing is read from the client before the server's greeting has
	 * been relayed: an early talker gets no chance to desynchronise us. */
	io_pause(&s->client, 1);

	if (set_destination(s, fd) == -1) {
		session_close(s, "error", "no original destination");
		return;
	}
	/* A connection to ourselves (no NAT entry, or a rule that catches our
	 * own traffic) would loop forever. */
	if (s->dest_len > 0 && proxy_is_own_address(px, (struct sockaddr *)&s->dest_ss)) {
		session_log(s, LOG_WARNING,
		            "destination is one of our own listeners: refusing to loop");
		px->stats.refused++;
		session_close(s, "refused", "relay loop: destination is stsproxy itself");
		return;
	}
	snprintf(s->orig_dest_text, sizeof(s->orig_dest_text), "%s", s->dest_text);
	session_log(s, LOG_INFO, "accepted on %s listener %s", cfg_listen_kind_name(lst->kind),
	            lst->addrtext);
	if (cfg->mode == CFG_MODE_MONITOR)
		monitor_start(s);
	else
		relay_start(s);
}
