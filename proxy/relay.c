/*
 * relay: SMTP session state machine for upgrade and enforce modes (see
 * relay.h for the protocol outline).
 *
 * Invariants, each guarded by an explicit branch below:
 *  - nothing of the envelope (MAIL FROM, RCPT TO) or the message crosses to
 *    the server before the recipient's requirement has been checked
 *    against the session's TLS state (rcpt_advance);
 *  - the client's end-of-DATA is answered with the server's reply only
 *    (RELAY_ST_DATAEND); every failure of ours, of the network or of a
 *    policy answers 4xx (421/450/451), never 5xx;
 *  - plaintext buffered when a STARTTLS handshake starts is an injection:
 *    upstream it aborts the session, client-side it is discarded.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "dns.h"
#include "ehlo.h"
#include "log.h"
#include "mxfind.h"
#include "mxpattern.h"
#include "origdst.h"
#include "policy.h"
#include "proxy.h"
#include "relay.h"
#include "session.h"
#include "smtp_cmd.h"
#include "smtp_reply.h"
#include "tls.h"

#include <mbedtls/x509.h>

static void relay_enter(struct session *s, enum relay_state st);
static void relay_on_reply(struct session *s, struct smtp_reply *r);
static void client_process(struct session *s);
static void rcpt_advance(struct session *s);
static void connect_upstream(struct session *s, enum relay_state st);
static int reroute_or_defer(struct session *s, const char *why);

static const char *const state_names[RELAY_ST_MAX] = {
        [RELAY_ST_CONNECT] = "connect",
        [RELAY_ST_GREETING] = "greeting",
        [RELAY_ST_READY] = "ready",
        [RELAY_ST_EHLO] = "ehlo",
        [RELAY_ST_CMD] = "cmd",
        [RELAY_ST_POLICY] = "policy",
        [RELAY_ST_STARTTLS] = "starttls",
        [RELAY_ST_TLS] = "tls",
        [RELAY_ST_EHLO2] = "ehlo2",
        [RELAY_ST_HELO2] = "helo2",
        [RELAY_ST_RECONNECT] = "reconnect",
        [RELAY_ST_REGREET] = "regreet",
        [RELAY_ST_MAIL] = "mail",
        [RELAY_ST_RCPT] = "rcpt",
        [RELAY_ST_DATA] = "data",
        [RELAY_ST_BODY] = "body",
        [RELAY_ST_BODY_DISCARD] = "body-discard",
        [RELAY_ST_DATAEND] = "dataend",
        [RELAY_ST_CLIENT_TLS] = "client-tls",
        [RELAY_ST_MONITOR] = "monitor",
        [RELAY_ST_CLOSING] = "closing",
};

const char *
relay_strstate(int st)
{
	if (st < 0 || st >= RELAY_ST_MAX || state_names[st] == NULL)
		return "?";
	return state_names[st];
}

/* ------------------------------------------------------------------ */
/* small helpers */

static void client_reply(struct session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
client_reply(struct session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	if (io_write(&s->client, buf, (size_t)n) == -1)
		session_log(s, LOG_WARNING, "client output: %s", s->client.err);
}

static void
client_relay_reply(struct session *s, const struct smtp_reply *r)
{
	char buf[sizeof(r->buf) + 2 * SMTP_REPLY_MAXLINES];
	long n = smtp_reply_serialize(r, buf, sizeof(buf));

	if (n > 0)
		(void)io_write(&s->client, buf, (size_t)n);
}

static int
server_send(struct session *s, const char *line, size_t len)
{
	if (io_write(&s->server, line, len) == -1 || io_write(&s->server, "\r\n", 2) == -1) {
		session_log(s, LOG_WARNING, "server output: %s", s->server.err);
		return -1;
	}
	return 0;
}

static int server_sendf(struct session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
server_sendf(struct session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return server_send(s, buf, (size_t)n);
}

static char *
dupline(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* The first line of a reply, for events and logs. */
static const char *
reply_first(const struct smtp_reply *r, size_t *len)
{
	const char *l = smtp_reply_line(r, 0, len);

	if (l == NULL) {
		*len = 0;
		return "";
	}
	return l;
}

/*
 * End the session with a last reply to the client (a 421: RFC 5321
 * §3.8 lets a server send it at any time). The client keeps its mail and
 * retries: this is how every failure of ours reaches the legacy MTA.
 */
static void fail_session(struct session *s, const char *result, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
fail_session(struct session *s, const char *result, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	session_log(s, LOG_NOTICE, "closing (%s): %s", result, reason);
	snprintf(s->result, sizeof(s->result), "%s", result);
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	io_close(&s->server);
	s->upstream_alive = 0;
	if (s->client.flags & IO_F_CLOSED) {
		session_close(s, result, reason);
		return;
	}
	client_reply(s, "421 4.4.2 stsproxy: %s; closing connection", reason);
	relay_enter(s, RELAY_ST_CLOSING);
}

/*
 * Our own EHLO or HELO (after STARTTLS, on a reconnection, as fallback),
 * in the client's name, then wait in state next. A write failure ends the
 * session (the three callers used to differ: two ignored it).
 */
static void
send_greeting(struct session *s, const char *verb, enum relay_state next)
{
	if (server_sendf(s, "%s %s", verb, s->helo_name[0] ? s->helo_name : "localhost") == -1) {
		fail_session(s, "error", "cannot write to %s", s->dest_text);
		return;
	}
	relay_enter(s, next);
}

static void
transaction_reset(struct session *s)
{
	free(s->mail_line);
	s->mail_line = NULL;
	free(s->mail_error);
	s->mail_error = NULL;
	free(s->rcpt_line);
	s->rcpt_line = NULL;
	s->mail_sent = 0;
	s->rcpt_accepted = s->rcpt_deferred = s->rcpt_total = 0;
	s->cur = NULL;
}

static double
state_timeout(struct session *s, enum relay_state st)
{
	const struct cfg *c = s->cfg;

	switch (st) {
	case RELAY_ST_CONNECT:
	case RELAY_ST_RECONNECT:
		return c->t_connect;
	case RELAY_ST_GREETING:
	case RELAY_ST_REGREET:
		return c->t_greeting;
	case RELAY_ST_READY:
		return c->t_idle;
	case RELAY_ST_POLICY:
	case RELAY_ST_REROUTE:
		return c->t_dns;
	case RELAY_ST_TLS:
	case RELAY_ST_CLIENT_TLS:
		return c->t_tls;
	case RELAY_ST_BODY:
	case RELAY_ST_BODY_DISCARD:
		return c->t_data_block;
	case RELAY_ST_DATAEND:
		return c->t_data_end;
	case RELAY_ST_CLOSING:
		return 10.0;
	default:
		return c->t_command;
	}
}

static void
relay_enter(struct session *s, enum relay_state st)
{
	if (s->closed)
		return;
	if (s->state != st)
		session_log(s, LOG_DEBUG, "%s -> %s", relay_strstate(s->state), relay_strstate(st));
	s->state = st;
	session_timer(s, state_timeout(s, st));
	switch (st) {
	case RELAY_ST_READY:
		io_pause(&s->client, 0);
		client_process(s);
		break;
	case RELAY_ST_CLOSING:
		io_pause(&s->client, 1);
		io_shutdown(&s->client);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* upstream connection */

static void
upstream_unreachable(struct session *s, const char *why)
{
	/* What a client sees from a dead MX: a 421 greeting, so it moves on
	 * to its next MX host (RFC 5321 §5.1) and keeps the message. */
	session_log(s, LOG_NOTICE, "upstream unreachable: %s", why);
	io_close(&s->server);
	client_reply(s, "421 4.4.1 stsproxy: cannot reach %s: %s", s->dest_text, why);
	snprintf(s->result, sizeof(s->result), "unreachable");
	snprintf(s->reason, sizeof(s->reason), "%s", why);
	relay_enter(s, RELAY_ST_CLOSING);
}

static void
fixed_resolved(void *arg, enum dns_status st, const struct dns_addr *a, int n)
{
	struct session *s = arg;

	s->upq = NULL;
	if (st != DNS_OK || n == 0) {
		upstream_unreachable(s, dns_strstatus(st));
		return;
	}
	memcpy(&s->dest_ss, &a[0].ss, a[0].len);
	s->dest_len = a[0].len;
	sockaddr_set_port((struct sockaddr *)&s->dest_ss, s->lst->upstream_port);
	sockaddr_text((struct sockaddr *)&s->dest_ss, s->dest_text, sizeof(s->dest_text));
	connect_upstream(s, RELAY_ST_CONNECT);
}

static void
connect_upstream(struct session *s, enum relay_state st)
{
	io_close(&s->server);
	session_io_init(s, &s->server, -1, relay_server_cb);
	s->upstream_alive = 0;
	s->upstream_greeted = 0;
	if (io_connect(&s->server, (struct sockaddr *)&s->dest_ss, s->dest_len) == -1) {
		if (st == RELAY_ST_CONNECT)
			upstream_unreachable(s, s->server.err);
		else if (s->rerouting && reroute_or_defer(s, s->server.err))
			;
		else
			fail_session(s, "unreachable", "reconnect to %s failed: %s", s->dest_text,
			             s->server.err);
		return;
	}
	relay_enter(s, st);
}

void
relay_start(struct session *s)
{
	if (s->dest_len == 0) {
		/* fixed listener with a host name: resolve it first */
		struct dns_query *q =
		        dns_query_addrs(s->px->dns, s->lst->upstream_host, fixed_resolved, s);
		if (!s->closed && q != NULL) {
			s->upq = q;
			relay_enter(s, RELAY_ST_CONNECT);
		}
		return;
	}
	connect_upstream(s, RELAY_ST_CONNECT);
}

/* ------------------------------------------------------------------ */
/* server side */

static void
server_process(struct session *s)
{
	size_t maxline =
	        s->cfg->max_line < SMTP_REPLY_MAXLINE ? s->cfg->max_line : SMTP_REPLY_MAXLINE;

	while (!s->closed && !(s->server.flags & IO_F_CLOSED)) {
		const char *line;
		size_t len, adv;
		enum smtp_reply_status st;
		int rc = iobuf_getline(&s->server.in, maxline, &line, &len, &adv);

		if (rc == 0)
			return;
		if (rc == -1) {
			fail_session(s, "error", "server %s sent a line over %zu bytes",
			             s->dest_text, maxline);
			return;
		}
		if (s->reply == NULL) {
			if ((s->reply = malloc(sizeof(*s->reply))) == NULL) {
				fail_session(s, "error", "out of memory");
				return;
			}
			smtp_reply_init(s->reply, s->cfg->max_reply_lines);
		}
		st = smtp_reply_feed(s->reply, line, len);
		iobuf_consume(&s->server.in, adv);
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st != SMTP_REPLY_DONE) {
			fail_session(s, "error", "malformed reply from %s: %s", s->dest_text,
			             smtp_reply_strstatus(st));
			return;
		}
		struct smtp_reply *r = s->reply;
		s->reply = NULL;
		relay_on_reply(s, r);
		free(r);
		/* After a 220 to our STARTTLS, io belongs to mbed TLS. */
		if (s->state == RELAY_ST_TLS)
			return;
	}
}

static void
upstream_lost(struct session *s, const char *why)
{
	switch (s->state) {
	case RELAY_ST_CONNECT:
	case RELAY_ST_GREETING:
		upstream_unreachable(s, why);
		return;
	case RELAY_ST_BODY:
		/* The client is still sending the message and won't read a
		 * reply before its final dot: swallow the rest, then 421. */
		session_log(s, LOG_NOTICE, "upstream lost during DATA: %s", why);
		snprintf(s->reason, sizeof(s->reason), "connection to %s lost during DATA: %s",
		         s->dest_text, why);
		io_close(&s->server);
		s->upstream_alive = 0;
		relay_enter(s, RELAY_ST_BODY_DISCARD);
		/* It may have been paused by backpressure from the server that
		 * is now gone: nothing else would ever resume it. */
		io_pause(&s->client, 0);
		client_process(s);
		return;
	case RELAY_ST_TLS:
		/* handled by the TLS failure path */
		return;
	case RELAY_ST_READY:
		if (s->mail_line == NULL) {
			/* Between transactions nothing is lost: answer like a
			 * server that went away, at the client's next command
			 * (a QUIT still gets its 221). */
			session_log(s, LOG_INFO, "upstream closed between transactions: %s", why);
			io_close(&s->server);
			s->upstream_alive = 0;
			s->upstream_gone = 1;
			return;
		}
		fail_session(s, "upstream_lost", "connection to %s lost (%s)", s->dest_text, why);
		return;
	case RELAY_ST_CLOSING:
		io_close(&s->server);
		return;
	case RELAY_ST_RECONNECT:
	case RELAY_ST_REGREET:
	case RELAY_ST_EHLO2:
	case RELAY_ST_HELO2:
	case RELAY_ST_STARTTLS:
		if (s->rerouting) {
			io_close(&s->server);
			s->upstream_alive = 0;
			if (reroute_or_defer(s, why))
				return;
		}
		fail_session(s, "upstream_lost", "connection to %s lost (%s)", s->dest_text, why);
		return;
	default:
		fail_session(s, "upstream_lost", "connection to %s lost (%s)", s->dest_text, why);
	}
}

static void tls_failed(struct session *s, const char *why);

/*
 * Remember the upstream TLS session for resumption, but only one whose
 * certificate was fully verified for the name it is keyed under: a
 * resumed handshake carries no certificate, so trust is inherited from
 * the session it resumes. Saving an unverified session would let a later
 * connection pass "verify" without any check.
 */
static void
save_tls_session(struct session *s)
{
	if (s->tls_ok && s->tls_verify == 0 && s->sni[0] && s->server.ssl != NULL)
		tls_client_save(s->px->tls, s->server.ssl, s->tls_key);
}
static void tls_ready(struct session *s);

void
relay_server_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	switch (ev) {
	case IO_CONNECTED:
		relay_enter(s,
		            s->state == RELAY_ST_RECONNECT ? RELAY_ST_REGREET : RELAY_ST_GREETING);
		break;
	case IO_DATAIN:
		server_process(s);
		if (!s->closed)
			io_update(&s->server);
		break;
	case IO_TLSREADY:
		tls_ready(s);
		break;
	case IO_TICKET:
		save_tls_session(s);
		break;
	case IO_LOWAT:
		if ((s->state == RELAY_ST_BODY || s->state == RELAY_ST_BODY_DISCARD) &&
		    (s->client.flags & IO_F_PAUSED)) {
			io_pause(&s->client, 0);
			client_process(s);
		}
		break;
	case IO_EOF:
	case IO_ERROR:
		if (s->state == RELAY_ST_TLS) {
			tls_failed(s,
			           ev == IO_EOF ? "connection closed during handshake" : io->err);
			break;
		}
		/* Replies already buffered (e.g. "221" then close) count first. */
		server_process(s);
		if (!s->closed && !(s->server.flags & IO_F_CLOSED))
			upstream_lost(s, ev == IO_EOF ? "closed by the server" : io->err);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* STARTTLS toward the server */

static void
choose_sni(struct session *s)
{
	struct session_domain *d = s->cur;

	s->sni[0] = '\0';
	s->sni_from_mx = 0;
	if (d != NULL && d->mx_name[0]) {
		snprintf(s->sni, sizeof(s->sni), "%s", d->mx_name);
		s->sni_from_mx = d->name_from_mx;
	} else if (s->lst->kind == CFG_LISTEN_FIXED && s->lst->upstream_name[0]) {
		snprintf(s->sni, sizeof(s->sni), "%s", s->lst->upstream_name);
		s->sni_from_mx = 1;
	} else if (s->ptr_name[0]) {
		/* Better than no SNI for servers that pick a certificate by
		 * name, but it proves nothing: never counts for "verify". */
		snprintf(s->sni, sizeof(s->sni), "%s", s->ptr_name);
	}
}

static void
start_starttls(struct session *s)
{
	s->tls_tried = 1;
	choose_sni(s);
	/* Now the MX is known: what did it offer before? (detect_combine
	 * turns a missing STARTTLS into an alert if it used to offer it.) */
	session_memory(s);
	session_findings(s);
	if (server_sendf(s, "STARTTLS") == -1) {
		fail_session(s, "error", "cannot write to %s", s->dest_text);
		return;
	}
	relay_enter(s, RELAY_ST_STARTTLS);
}

static void
begin_handshake(struct session *s)
{
	mbedtls_ssl_context *ssl = calloc(1, sizeof(*ssl));
	char ip[64];
	int rc;

	if (ssl == NULL) {
		fail_session(s, "error", "out of memory");
		return;
	}
	mbedtls_ssl_init(ssl);
	snprintf(s->tls_key, sizeof(s->tls_key), "%s|%s", s->sni,
	         sockaddr_text((struct sockaddr *)&s->dest_ss, ip, sizeof(ip)));
	if ((rc = tls_client_setup(s->px->tls, ssl, s->sni[0] ? s->sni : NULL, s->tls_key)) == -1) {
		mbedtls_ssl_free(ssl);
		free(ssl);
		fail_session(s, "error", "TLS setup failed");
		return;
	}
	s->tls_offered_session = rc == 1;
	relay_enter(s, RELAY_ST_TLS);
	io_start_tls(&s->server, ssl, 0);
}

static void
tls_failed(struct session *s, const char *why)
{
	session_log(s, LOG_NOTICE, "TLS handshake with %s failed: %s", s->dest_text, why);
	tls_handshake_findings(s->server.tls_err, s->server.tls_alert, why, &s->findings);
	session_findings(s);
	/* The connection is unusable after a failed handshake. A plaintext
	 * retry (a new connection, no STARTTLS) is made only for recipients
	 * whose policy allows plaintext (rcpt_advance). */
	s->tls_ok = 0;
	s->tls_failed_hard = 1;
	io_close(&s->server);
	s->upstream_alive = 0;
	rcpt_advance(s);
}

static void
tls_ready(struct session *s)
{
	mbedtls_ssl_context *ssl = s->server.ssl;

	s->tls_ok = 1;
	s->tls_verify = tls_verify_peer(s->px->tls, ssl, s->sni[0] ? s->sni : NULL);
	/* A resumed session may come without the certificate; it resumes one
	 * that was verified for this very name and address (only those are
	 * saved), and the server proved it holds that session's secret. */
	if (s->tls_verify == MBEDTLS_X509_BADCERT_MISSING && s->tls_offered_session)
		s->tls_verify = 0;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", io_tls_version(&s->server));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", io_tls_cipher(&s->server));
	tls_count_handshake(s->px->tls, 0);
	save_tls_session(s);
	s->px->stats.tls_upgraded++;
	session_log(s, LOG_INFO, "TLS established with %s: %s %s, sni=%s, certificate %s",
	            s->dest_text, io_tls_version(&s->server), io_tls_cipher(&s->server),
	            s->sni[0] ? s->sni : "(none)", tls_verify_reason(s->tls_verify));
	(void)tls_peer_fingerprint(ssl, s->tls_fingerprint, sizeof(s->tls_fingerprint));
	tls_verify_findings(s->tls_verify, s->sni[0] != '\0', &s->findings);
	session_memory(s); /* also compares the certificate with the remembered one */
	session_findings(s);
	/* RFC 3207 §4.2: forget what was learned before TLS and EHLO again. */
	memset(&s->caps, 0, sizeof(s->caps));
	send_greeting(s, "EHLO", RELAY_ST_EHLO2);
}

/* ------------------------------------------------------------------ */
/* recipients: policy, MX name, upgrade, replay */

static struct session_domain *
domain_slot(struct session *s, const char *name)
{
	struct session_domain *d;

	for (int i = 0; i < s->ndomains; i++)
		if (strcmp(s->domains[i]->name, name) == 0)
			return s->domains[i];
	/* A session rarely sees many domains (each costs ~9 KiB, allocated
	 * when first seen); past the table the last slot is recycled and
	 * its facts are looked up again. */
	if (s->ndomains < SESSION_MAXDOMAINS) {
		if ((d = malloc(sizeof(*d))) == NULL)
			return NULL;
		s->domains[s->ndomains++] = d;
	} else {
		d = s->domains[SESSION_MAXDOMAINS - 1];
	}
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	return d;
}

static void defer_rcpt(struct session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
defer_rcpt(struct session *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* RFC 8461 §5: a policy failure is a temporary failure; the legacy
	 * MTA keeps the recipient queued and retries. */
	client_reply(s, "450 4.7.5 stsproxy: %s", why);
	session_log(s, LOG_NOTICE, "recipient deferred: %s", why);
	s->rcpt_deferred++;
	s->rcpt_tempfail++;
	s->px->stats.rcpt_deferred++;
	if (s->cur)
		s->cur->deferred++;
	free(s->rcpt_line);
	s->rcpt_line = NULL;
	relay_enter(s, RELAY_ST_READY);
}

static void
domain_resolved(struct session *s)
{
	s->cur->resolved = 1;
	rcpt_advance(s);
}

static void
ptr_found(void *arg, enum dns_status st, const char *name)
{
	struct session *s = arg;

	s->ptrq = NULL;
	s->ptr_done = 1;
	if (st == DNS_OK && name != NULL)
		snprintf(s->ptr_name, sizeof(s->ptr_name), "%s", name);
	domain_resolved(s);
}

static void
mx_found(void *arg, const struct mxfind_result *res)
{
	struct session *s = arg;
	struct session_domain *d = s->cur;

	s->mxq = NULL;
	if (res->match >= 0) {
		snprintf(d->mx_name, sizeof(d->mx_name), "%s", res->hosts[res->match].name);
		d->name_from_mx = 1;
	} else {
		session_log(s, LOG_INFO, "%s is not an MX host of %s (MX lookup: %s, %d hosts)",
		            s->dest_text, d->name, dns_strstatus(res->mx_status), res->nhosts);
		if (!s->tls_tried && !s->ptr_done) {
			/* No MX name for SNI: try the reverse name (RFC 8461
			 * §7.1 wants SNI; this one is only a hint). */
			struct dns_query *q = dns_query_ptr(
			        s->px->dns, (struct sockaddr *)&s->dest_ss, ptr_found, s);
			if (q != NULL && !s->closed)
				s->ptrq = q;
			return;
		}
	}
	domain_resolved(s);
}

static void
policy_found(void *arg, const struct tls_req *req)
{
	struct session *s = arg;
	struct session_domain *d = s->cur;
	struct mxfind *m;

	s->polq = NULL;
	d->req = *req;
	/* In upgrade mode a remote MTA-STS "enforce" policy is reported like
	 * "testing": only enforce mode lets a published policy defer mail.
	 * Static policies are the operator's word and apply in both. */
	if (s->cfg->mode == CFG_MODE_UPGRADE && req->source == TLSPOLICY_SRC_MTASTS)
		d->req.testing = 1;

	if (s->lst->kind == CFG_LISTEN_FIXED) {
		/* A smarthost is no MX of anyone: the operator's configured
		 * name is the one to check. */
		snprintf(d->mx_name, sizeof(d->mx_name), "%s", s->lst->upstream_name);
		d->name_from_mx = d->mx_name[0] != '\0';
		domain_resolved(s);
		return;
	}
	if (d->name[0] == '\0' || d->name[0] == '[') {
		domain_resolved(s);
		return;
	}
	m = mxfind_start(s->px->dns, d->name, (struct sockaddr *)&s->dest_ss, mx_found, s);
	if (m != NULL)
		s->mxq = m;
}

static void
forward_rcpt(struct session *s)
{
	if (server_send(s, s->rcpt_line, strlen(s->rcpt_line)) == -1) {
		fail_session(s, "error", "cannot write to %s", s->dest_text);
		return;
	}
	relay_enter(s, RELAY_ST_RCPT);
}

/* Does the established session meet this domain's requirement? */
static enum tlspolicy_fail
check_domain(struct session *s, struct session_domain *d, char *why, size_t whysz)
{
	struct tls_state st;

	memset(&st, 0, sizeof(st));
	st.tls = s->tls_ok && (s->server.flags & IO_F_TLS);
	st.mx_name = d->mx_name[0] ? d->mx_name : NULL;
	st.name_from_mx = d->name_from_mx;
	if (st.tls) {
		const char *ver = io_tls_version(&s->server);
		st.tls13 = ver != NULL && strstr(ver, "1.3") != NULL;
		if (st.mx_name != NULL && strcasecmp(st.mx_name, s->sni) == 0)
			st.verify = s->tls_verify;
		else
			st.verify = tls_verify_peer(s->px->tls, s->server.ssl, st.mx_name);
	}
	return tlspolicy_check(&d->req, &st, why, whysz);
}

/*
 * RFC 8461 §5: an MX that fails the policy (not a policy MX, no TLS, bad
 * certificate) is treated as unreachable and the sender moves on to the
 * next MX. The legacy MTA can't do that for a failure it doesn't see, so
 * stsproxy does it: it moves the session to the domain's policy-valid MX
 * hosts, lowest preference first, before any envelope byte was sent.
 * Returns 1 when a reroute is under way (the recipient will be answered
 * later), 0 when there is nothing (more) to try.
 */
static int
reroute_allowed(struct session *s)
{
	struct session_domain *d = s->cur;

	return s->cfg->reroute && d != NULL && d->name[0] && d->name[0] != '[' && d->req.nmx > 0 &&
	       !s->mail_sent && s->lst->kind != CFG_LISTEN_FIXED && s->dest_len > 0;
}

static int
reroute_next(struct session *s)
{
	struct session_domain *d = s->cur;
	struct session_candidate *c;
	char from[300];

	if (s->ireroute >= s->nreroute)
		return 0;
	c = &s->reroute[s->ireroute++];
	snprintf(from, sizeof(from), "%s -> %s", s->dest_text, c->name);
	session_log(s, LOG_NOTICE, "rerouting %s to policy MX %s (%s)", d->name, c->name,
	            s->reroute_why);
	session_event(s, "mx_rerouted", "notice", d->name, from, strlen(from));
	memcpy(&s->dest_ss, &c->ss, c->len);
	s->dest_len = c->len;
	sockaddr_text((struct sockaddr *)&s->dest_ss, s->dest_text, sizeof(s->dest_text));
	/* A new server: nothing learned about the old one holds. */
	s->tls_tried = s->tls_ok = s->tls_failed_hard = 0;
	s->tls_verify = 0;
	s->sni[0] = '\0';
	s->tls_fingerprint[0] = '\0';
	s->memory_loaded = 0;
	for (int i = 0; i < s->ndomains; i++)
		if (s->domains[i] != d)
			s->domains[i]->resolved = 0;
	snprintf(d->mx_name, sizeof(d->mx_name), "%s", c->name);
	d->name_from_mx = 1;
	s->rerouting = 1;
	connect_upstream(s, RELAY_ST_RECONNECT);
	return 1;
}

static void
reroute_found(void *arg, const struct mxfind_result *res)
{
	struct session *s = arg;
	struct session_domain *d = s->cur;

	s->mxq = NULL;
	free(s->reroute);
	s->nreroute = s->ireroute = 0;
	snprintf(s->reroute_domain, sizeof(s->reroute_domain), "%s", d->name);
	s->reroute = calloc(SESSION_MAXREROUTE, sizeof(*s->reroute));
	for (int i = 0; s->reroute != NULL && i < res->nhosts; i++) {
		const struct mxfind_host *h = &res->hosts[i];
		int ok = 0;
		for (int k = 0; k < d->req.nmx && !ok; k++)
			ok = mxpattern_match(d->req.mx[k], h->name);
		for (int a = 0; ok && a < h->naddrs && s->nreroute < SESSION_MAXREROUTE; a++) {
			struct session_candidate *c = &s->reroute[s->nreroute];
			if (mxfind_same_ip((const struct sockaddr *)&h->addrs[a].ss,
			                   (struct sockaddr *)&s->dest_ss))
				continue; /* the one that just failed */
			snprintf(c->name, sizeof(c->name), "%s", h->name);
			memcpy(&c->ss, &h->addrs[a].ss, h->addrs[a].len);
			c->len = h->addrs[a].len;
			sockaddr_set_port((struct sockaddr *)&c->ss, 25);
			s->nreroute++;
		}
	}
	if (!reroute_next(s))
		defer_rcpt(s, "TLS policy for %s not met: %s; no other policy MX host to try",
		           d->name, s->reroute_why);
}

static int
reroute_or_defer(struct session *s, const char *why)
{
	struct session_domain *d = s->cur;
	struct mxfind *m;

	if (!reroute_allowed(s))
		return 0;
	if (!s->rerouting || strcmp(s->reroute_domain, d->name) != 0) {
		/* First failure for this domain: find its policy MX hosts. */
		snprintf(s->reroute_why, sizeof(s->reroute_why), "%s", why);
		io_close(&s->server);
		s->upstream_alive = 0;
		s->rerouting = 1;
		relay_enter(s, RELAY_ST_REROUTE);
		m = mxfind_start(s->px->dns, d->name, NULL, reroute_found, s);
		if (m != NULL)
			s->mxq = m;
		return 1;
	}
	io_close(&s->server);
	s->upstream_alive = 0;
	if (reroute_next(s))
		return 1;
	defer_rcpt(s, "TLS policy for %s not met: %s (and no other policy MX host worked)", d->name,
	           why);
	return 1;
}

/*
 * Drive the current RCPT to the server: (re)connect, upgrade, check,
 * replay MAIL, forward RCPT, in that order; each step re-enters here
 * when its reply arrives.
 */
static void
rcpt_advance(struct session *s)
{
	struct session_domain *d = s->cur;
	enum tlspolicy_fail f;
	char why[400];

	if (s->closed || d == NULL || s->rcpt_line == NULL)
		return;
	if (!s->upstream_alive) {
		if (tlspolicy_requires_tls(&d->req)) {
			char why2[400];
			d->verdict = TLSPOLICY_FAIL_NOTLS;
			snprintf(why2, sizeof(why2), "TLS with %s failed", s->dest_text);
			if (reroute_or_defer(s, why2))
				return;
			defer_rcpt(s, "%s requires TLS (%s policy) and TLS with %s failed", d->name,
			           tlspolicy_source_name(d->req.source), s->dest_text);
			return;
		}
		session_log(s, LOG_INFO, "reconnecting to %s without STARTTLS for %s", s->dest_text,
		            d->name);
		connect_upstream(s, RELAY_ST_RECONNECT);
		return;
	}
	/* Upgrade before any envelope byte leaves, even when STARTTLS was
	 * not advertised: an attacker may have stripped or garbled it. */
	if (!s->tls_tried && !s->mail_sent && tlspolicy_wants_tls(&d->req)) {
		start_starttls(s);
		return;
	}
	f = check_domain(s, d, why, sizeof(why));
	d->verdict = f;
	if (f != TLSPOLICY_OK) {
		if (tlspolicy_requires_tls(&d->req)) {
			session_event(s, "policy_failure", "alert", d->name, why, strlen(why));
			if (reroute_or_defer(s, why))
				return;
			defer_rcpt(s, "TLS policy for %s not met: %s", d->name, why);
			return;
		}
		if (d->req.level >= CFG_TLS_ENCRYPT)
			session_event(s, "policy_failure_testing", "warning", d->name, why,
			              strlen(why));
	}
	/* detect.tofu = defer: this MX did TLS last time, so plaintext now is
	 * more likely an attack than a change of heart: keep the mail queued. */
	if (!s->tls_ok && s->cfg->tofu == CFG_TOFU_DEFER && s->memory_loaded &&
	    s->memory.tls_ok_last && d->req.level > CFG_TLS_NONE) {
		snprintf(why, sizeof(why), "%s did TLS before and not now (detect.tofu = defer)",
		         s->sni[0] ? s->sni : s->dest_text);
		session_event(s, "tofu_plaintext_refused", "alert", d->name, why, strlen(why));
		defer_rcpt(s, "%s", why);
		return;
	}
	if (!s->mail_sent) {
		if (server_send(s, s->mail_line, strlen(s->mail_line)) == -1) {
			fail_session(s, "error", "cannot write to %s", s->dest_text);
			return;
		}
		if (!s->tls_ok)
			s->px->stats.plaintext++;
		relay_enter(s, RELAY_ST_MAIL);
		return;
	}
	forward_rcpt(s);
}

static void
handle_rcpt(struct session *s, const struct smtp_cmd *cmd, const char *line, size_t len)
{
	struct smtp_path path;
	const char *domain = "";
	struct policy_query *q;

	if (s->mail_line == NULL) {
		client_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->mail_error != NULL) {
		/* The server refused the replayed MAIL FROM: its own answer. */
		(void)io_write(&s->client, s->mail_error, strlen(s->mail_error));
		return;
	}
	if (s->rcpt_total >= s->cfg->max_recipients) {
		client_reply(s,
		             "452 4.5.3 stsproxy: too many recipients (limits.max_recipients "
		             "= %d)",
		             s->cfg->max_recipients);
		return;
	}
	if (smtp_path_parse(cmd->arg, cmd->arglen, &path) == 0) {
		domain = path.addr_literal ? "" : path.domain;
	} else if (!(cmd->arglen >= 12 && strncasecmp(cmd->arg, "<postmaster>", 12) == 0)) {
		/* An address we can't read has no known policy: never guess
		 * "no policy" for it. */
		client_reply(s, "451 4.1.3 stsproxy: cannot parse the recipient address");
		return;
	}
	s->rcpt_total++;
	if ((s->rcpt_line = dupline(line, len)) == NULL) {
		fail_session(s, "error", "out of memory");
		return;
	}
	if ((s->cur = domain_slot(s, domain)) == NULL) {
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		client_reply(s, "451 4.3.0 stsproxy: out of memory");
		return;
	}
	relay_enter(s, RELAY_ST_POLICY);
	if (s->cur->resolved) {
		rcpt_advance(s);
		return;
	}
	q = policy_lookup(s->px->policy, s->cfg, domain, policy_found, s);
	if (q != NULL && s->closed)
		policy_cancel(q);
	else if (q != NULL)
		s->polq = q;
}

/* ------------------------------------------------------------------ */
/* replies */

static void
handle_ehlo_reply(struct session *s, struct smtp_reply *r)
{
	char buf[sizeof(r->buf) + 2 * SMTP_REPLY_MAXLINES];
	uint32_t drop;
	long n;

	if (smtp_reply_class(r) != 2 || s->helo_verb != SMTP_CMD_EHLO) {
		if (smtp_reply_class(r) == 5 && s->helo_verb == SMTP_CMD_EHLO) {
			s->ehlo_refused = 1;
			detect_ehlo_refused(r, &s->findings);
		}
		client_relay_reply(s, r);
		return;
	}
	ehlo_parse(r, &s->caps);
	/* Signals are read from the plaintext EHLO only: that is the one an
	 * attacker on the path can touch. */
	if (!s->tls_ok) {
		s->starttls_advertised = detect_ehlo(r, &s->findings);
		s->ehlo_seen = 1;
	}
	/* Offer the client only what we can honour: STARTTLS is ours to
	 * offer (client_tls), CHUNKING/BINARYMIME would need BDAT framing,
	 * AUTH would send credentials before our upgrade, XCLIENT/XFORWARD/
	 * ETRN are site-internal. */
	drop = EHLO_STARTTLS | EHLO_CHUNKING | EHLO_BINARYMIME | EHLO_AUTH | EHLO_XCLIENT |
	       EHLO_XFORWARD | EHLO_ETRN | EHLO_REQUIRETLS;
	n = ehlo_filter(r, drop, tls_server_enabled(s->px->tls) && !s->client_tls, buf,
	                sizeof(buf));
	if (n < 0) {
		fail_session(s, "error", "EHLO reply from %s too large", s->dest_text);
		return;
	}
	(void)io_write(&s->client, buf, (size_t)n);
}

static void
relay_on_reply(struct session *s, struct smtp_reply *r)
{
	int cls = smtp_reply_class(r);
	size_t l;
	const char *first = reply_first(r, &l);

	session_log(s, LOG_DEBUG, "server [%s]: %.*s%s", relay_strstate(s->state), (int)l, first,
	            r->nlines > 1 ? " ..." : "");
	switch (s->state) {
	case RELAY_ST_GREETING:
		s->upstream_greeted = 1;
		detect_greeting(r, &s->findings);
		client_relay_reply(s, r);
		if (r->code == 421) {
			snprintf(s->result, sizeof(s->result), "server_refused");
			relay_enter(s, RELAY_ST_CLOSING);
			return;
		}
		s->upstream_alive = 1;
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_REGREET:
		if (r->code != 220) {
			fail_session(s, "upstream_refused", "%s refused the reconnection: %.*s",
			             s->dest_text, (int)l, first);
			return;
		}
		s->upstream_alive = 1;
		send_greeting(s, "EHLO", RELAY_ST_EHLO2);
		return;
	case RELAY_ST_EHLO:
		handle_ehlo_reply(s, r);
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_CMD:
		client_relay_reply(s, r);
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_STARTTLS:
		if (r->code == 220) {
			/* Anything after the 220 was not sent by a server
			 * waiting for our ClientHello: a plaintext injection
			 * (Postfix 2011, nginx 2014). Never feed it to TLS. */
			detect_starttls_reply(r, s->starttls_advertised, iobuf_used(&s->server.in),
			                      &s->findings);
			if (s->ehlo_seen && !s->starttls_advertised)
				detect_starttls_stripped(r, &s->findings);
			session_findings(s);
			if (iobuf_used(&s->server.in) > 0) {
				fail_session(s, "injection",
				             "plaintext injected after STARTTLS on the way to %s",
				             s->dest_text);
				return;
			}
			begin_handshake(s);
			return;
		}
		detect_starttls_reply(r, s->starttls_advertised, 0, &s->findings);
		session_findings(s);
		/* The session goes on in plaintext on the same connection;
		 * rcpt_advance decides whether the recipient may. */
		rcpt_advance(s);
		return;
	case RELAY_ST_EHLO2:
		if (cls == 2) {
			ehlo_parse(r, &s->caps);
			s->upstream_alive = 1;
			rcpt_advance(s);
			return;
		}
		send_greeting(s, "HELO", RELAY_ST_HELO2);
		return;
	case RELAY_ST_HELO2:
		if (cls != 2) {
			fail_session(s, "upstream_refused", "%s refused EHLO and HELO: %.*s",
			             s->dest_text, (int)l, first);
			return;
		}
		rcpt_advance(s);
		return;
	case RELAY_ST_MAIL:
		if (cls == 2) {
			s->mail_sent = 1;
			forward_rcpt(s);
			return;
		}
		/* The server's own verdict on the sender, given to every RCPT. */
		{
			char buf[sizeof(r->buf) + 2 * SMTP_REPLY_MAXLINES];
			long n = smtp_reply_serialize(r, buf, sizeof(buf));
			free(s->mail_error);
			s->mail_error = n > 0 ? dupline(buf, (size_t)n) : NULL;
			if (s->mail_error != NULL)
				(void)io_write(&s->client, s->mail_error, strlen(s->mail_error));
			else
				client_reply(s, "451 4.3.0 stsproxy: sender refused by %s",
				             s->dest_text);
		}
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_RCPT:
		client_relay_reply(s, r);
		if (cls == 2) {
			s->rcpt_accepted++;
			s->rcpt_ok++;
			if (s->cur)
				s->cur->accepted++;
		} else if (cls == 4) {
			s->rcpt_tempfail++;
		} else {
			s->rcpt_permfail++;
		}
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_DATA:
		client_relay_reply(s, r);
		if (r->code == 354) {
			smtp_body_init(&s->body);
			relay_enter(s, RELAY_ST_BODY);
			client_process(s);
			return;
		}
		relay_enter(s, RELAY_ST_READY);
		return;
	case RELAY_ST_DATAEND:
		/* The only place the client learns its message's fate: the
		 * server's own reply, after the server gave it. */
		client_relay_reply(s, r);
		if (cls == 2) {
			s->messages++;
			s->px->stats.messages++;
		}
		session_log(s, LOG_INFO, "message %s by %s: %.*s",
		            cls == 2 ? "accepted" : "refused", s->dest_text, (int)l, first);
		transaction_reset(s);
		relay_enter(s, RELAY_ST_READY);
		return;
	default:
		/* Unsolicited: a server may announce its shutdown with 421. */
		if (r->code == 421) {
			client_relay_reply(s, r);
			io_close(&s->server);
			s->upstream_alive = 0;
			snprintf(s->result, sizeof(s->result), "server_closed");
			relay_enter(s, RELAY_ST_CLOSING);
			return;
		}
		session_log(s, LOG_WARNING, "unexpected reply in state %s ignored: %.*s",
		            relay_strstate(s->state), (int)l, first);
	}
}

/* ------------------------------------------------------------------ */
/* client side */

static void
forward_cmd(struct session *s, const char *line, size_t len, enum relay_state st)
{
	if (!s->upstream_alive) {
		fail_session(s, "upstream_lost", "no connection to %s", s->dest_text);
		return;
	}
	if (server_send(s, line, len) == -1) {
		fail_session(s, "error", "cannot write to %s", s->dest_text);
		return;
	}
	relay_enter(s, st);
}

static void
client_starttls(struct session *s)
{
	mbedtls_ssl_context *ssl;

	if (!tls_server_enabled(s->px->tls) || s->client_tls) {
		client_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	if ((ssl = calloc(1, sizeof(*ssl))) == NULL) {
		client_reply(s, "454 4.7.0 TLS not available: out of memory");
		return;
	}
	mbedtls_ssl_init(ssl);
	if (tls_server_setup(s->px->tls, ssl) == -1) {
		mbedtls_ssl_free(ssl);
		free(ssl);
		client_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	/* Commands pipelined behind STARTTLS were sent in plaintext and
	 * could have been injected: discard them (RFC 3207 §4.2). */
	if (iobuf_used(&s->client.in) > 0) {
		detect_injection(DETECT_FROM_CLIENT, iobuf_used(&s->client.in),
		                 iobuf_data(&s->client.in), iobuf_used(&s->client.in),
		                 &s->findings);
		session_findings(s);
		iobuf_reset(&s->client.in);
	}
	client_reply(s, "220 2.0.0 Ready to start TLS");
	relay_enter(s, RELAY_ST_CLIENT_TLS);
	io_start_tls(&s->client, ssl, 1);
}

static void
handle_data(struct session *s, const char *line, size_t len)
{
	if (s->mail_line == NULL) {
		client_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!s->mail_sent || s->rcpt_accepted == 0) {
		if (s->rcpt_deferred > 0)
			client_reply(s, "451 4.7.5 stsproxy: no recipient could be accepted");
		else
			client_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	forward_cmd(s, line, len, RELAY_ST_DATA);
}

static void
handle_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(line, len, &cmd);

	session_log(s, LOG_DEBUG, "client: %.*s", (int)(len > 200 ? 200 : len), line);
	if (rc == -1 && cmd.verb != SMTP_CMD_UNKNOWN) {
		client_reply(s, "501 5.5.4 Syntax error in parameters or arguments");
		return;
	}
	if (s->upstream_gone && cmd.verb != SMTP_CMD_QUIT && cmd.verb != SMTP_CMD_NOOP) {
		fail_session(s, "upstream_lost", "%s closed the connection", s->dest_text);
		return;
	}
	switch (cmd.verb) {
	case SMTP_CMD_EHLO:
	case SMTP_CMD_HELO:
		transaction_reset(s);
		s->helo_verb = cmd.verb;
		snprintf(s->helo_name, sizeof(s->helo_name), "%.*s",
		         (int)(cmd.arglen < 255 ? cmd.arglen : 255), cmd.arg);
		if (!s->upstream_alive) {
			client_reply(s, "250 stsproxy");
			return;
		}
		forward_cmd(s, line, len, RELAY_ST_EHLO);
		return;
	case SMTP_CMD_MAIL:
		if (s->helo_verb == 0) {
			client_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
			return;
		}
		if (s->mail_line != NULL) {
			client_reply(s, "503 5.5.1 Error: nested MAIL command");
			return;
		}
		/* Held until the first RCPT names a domain: only then do we
		 * know which TLS the envelope needs (see rcpt_advance). */
		if ((s->mail_line = dupline(line, len)) == NULL) {
			fail_session(s, "error", "out of memory");
			return;
		}
		client_reply(s, "250 2.1.0 Ok");
		return;
	case SMTP_CMD_RCPT:
		handle_rcpt(s, &cmd, line, len);
		return;
	case SMTP_CMD_DATA:
		handle_data(s, line, len);
		return;
	case SMTP_CMD_RSET:
		if (s->mail_sent) {
			transaction_reset(s);
			forward_cmd(s, line, len, RELAY_ST_CMD);
			return;
		}
		transaction_reset(s);
		client_reply(s, "250 2.0.0 Ok");
		return;
	case SMTP_CMD_NOOP:
		client_reply(s, "250 2.0.0 Ok");
		return;
	case SMTP_CMD_QUIT:
		client_reply(s, "221 2.0.0 Bye");
		if (s->upstream_alive) {
			(void)server_sendf(s, "QUIT");
			io_shutdown(&s->server);
		}
		snprintf(s->result, sizeof(s->result), "ok");
		relay_enter(s, RELAY_ST_CLOSING);
		return;
	case SMTP_CMD_VRFY:
		client_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message");
		return;
	case SMTP_CMD_HELP:
		client_reply(s, "214 2.0.0 stsproxy relays this session to its destination");
		return;
	case SMTP_CMD_STARTTLS:
		client_starttls(s);
		return;
	default:
		client_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
}

static void
body_forward(struct session *s)
{
	while (!s->closed && iobuf_used(&s->client.in) > 0) {
		const char *p = iobuf_data(&s->client.in);
		size_t n = iobuf_used(&s->client.in);
		long end;

		if (s->state == RELAY_ST_BODY && iobuf_used(&s->server.out) > s->cfg->buffer_high) {
			/* Backpressure: resume on the server's IO_LOWAT. */
			io_pause(&s->client, 1);
			return;
		}
		end = smtp_body_scan(&s->body, p, n);
		if (end >= 0)
			n = (size_t)end;
		if (s->state == RELAY_ST_BODY && io_write(&s->server, p, n) == -1) {
			fail_session(s, "error", "cannot write to %s", s->dest_text);
			return;
		}
		iobuf_consume(&s->client.in, n);
		if (end >= 0) {
			if (s->body.bare_lf)
				session_event(s, "body_bare_lf", "info", NULL, NULL, 0);
			if (s->state == RELAY_ST_BODY) {
				relay_enter(s, RELAY_ST_DATAEND);
			} else {
				char reason[256];
				snprintf(reason, sizeof(reason), "%s", s->reason);
				fail_session(s, "upstream_lost", "%s", reason);
			}
			return;
		}
	}
	if (!s->closed) {
		/* Room was made in the input buffer: reading may resume. */
		io_update(&s->client);
		session_timer(s, state_timeout(s, s->state));
	}
}

static void
client_process(struct session *s)
{
	char line[65540];

	/* Replies must come out in command order (PIPELINING): commands are
	 * handled one at a time. A nested call (a synchronous completion
	 * re-entering READY) leaves the work to the loop already running. */
	if (s->processing)
		return;
	s->processing = 1;
	while (!s->closed && !(s->client.flags & IO_F_CLOSED)) {
		const char *p;
		size_t len, adv;
		int rc;

		if (s->state == RELAY_ST_BODY || s->state == RELAY_ST_BODY_DISCARD) {
			body_forward(s);
			if (s->state == RELAY_ST_BODY || s->state == RELAY_ST_BODY_DISCARD ||
			    s->state == RELAY_ST_DATAEND)
				break;
			continue;
		}
		if (s->state != RELAY_ST_READY)
			break;
		rc = iobuf_getline(&s->client.in, s->cfg->max_line, &p, &len, &adv);
		if (rc == 0)
			break;
		if (rc == -1) {
			fail_session(s, "error", "command line over %zu bytes (limits.max_line)",
			             s->cfg->max_line);
			break;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		iobuf_consume(&s->client.in, adv);
		session_timer(s, state_timeout(s, s->state));
		handle_command(s, line, len);
	}
	s->processing = 0;
	if (!s->closed)
		io_update(&s->client);
}

void
relay_client_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	switch (ev) {
	case IO_DATAIN:
		client_process(s);
		break;
	case IO_TLSREADY:
		s->client_tls = 1;
		/* RFC 3207 §4.2: the client starts over with EHLO. */
		s->helo_verb = 0;
		transaction_reset(s);
		session_log(s, LOG_INFO, "client TLS established: %s", io_tls_version(io));
		relay_enter(s, RELAY_ST_READY);
		break;
	case IO_EOF:
		if (s->state == RELAY_ST_CLOSING) {
			session_close(s, s->result[0] ? s->result : "ok", NULL);
			break;
		}
		if (s->upstream_alive && s->state == RELAY_ST_READY) {
			(void)server_sendf(s, "QUIT");
			io_shutdown(&s->server);
		}
		session_close(s,
		              s->state == RELAY_ST_BODY || s->state == RELAY_ST_DATAEND
		                      ? "client_lost"
		                      : "client_closed",
		              s->state == RELAY_ST_BODY ? "client closed during DATA" : NULL);
		break;
	case IO_ERROR:
		session_close(s, "error", io->err);
		break;
	default:
		break;
	}
}

void
relay_on_timeout(struct session *s)
{
	switch (s->state) {
	case RELAY_ST_CONNECT:
	case RELAY_ST_GREETING:
		upstream_unreachable(s, "timeout");
		return;
	case RELAY_ST_READY:
		fail_session(s, "timeout", "idle timeout (timeouts.idle)");
		return;
	case RELAY_ST_POLICY:
		if (s->polq != NULL) {
			/* The policy source (MTA-STS) is too slow: decide with
			 * the static policy or the default, and say so. */
			struct tls_req req;
			policy_cancel(s->polq);
			s->polq = NULL;
			session_log(s, LOG_NOTICE, "policy lookup for %s timed out",
			            s->cur ? s->cur->name : "?");
			tlspolicy_from_cfg(s->cfg, s->cur ? s->cur->name : "", &req);
			session_timer(s, state_timeout(s, s->state));
			policy_found(s, &req);
			return;
		}
		/* DNS too slow: go on with what we know; a requirement that
		 * needs the MX name will fail closed in tlspolicy_check. */
		mxfind_cancel(s->mxq);
		s->mxq = NULL;
		dns_cancel(s->ptrq);
		s->ptrq = NULL;
		s->ptr_done = 1;
		session_log(s, LOG_NOTICE, "MX lookup for %s timed out",
		            s->cur ? s->cur->name : "?");
		if (s->cur)
			domain_resolved(s);
		return;
	case RELAY_ST_TLS:
		tls_failed(s, "handshake timeout (timeouts.tls_handshake)");
		return;
	case RELAY_ST_BODY:
	case RELAY_ST_BODY_DISCARD:
		fail_session(s, "timeout", "client stalled during DATA (timeouts.data_block)");
		return;
	case RELAY_ST_DATAEND:
		fail_session(s, "timeout",
		             "no answer from %s to the end of the message "
		             "(timeouts.data_end)",
		             s->dest_text);
		return;
	case RELAY_ST_CLIENT_TLS:
		session_close(s, "timeout", "client TLS handshake timeout");
		return;
	case RELAY_ST_REROUTE:
		mxfind_cancel(s->mxq);
		s->mxq = NULL;
		defer_rcpt(s, "TLS policy for %s not met: %s; MX lookup for rerouting timed out",
		           s->cur ? s->cur->name : "?", s->reroute_why);
		return;
	case RELAY_ST_CLOSING:
		session_close(s, s->result[0] ? s->result : "timeout", NULL);
		return;
	default:
		fail_session(s, "timeout", "timeout waiting for %s in state %s", s->dest_text,
		             relay_strstate(s->state));
	}
}
