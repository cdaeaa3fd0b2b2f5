/*
 * monitor: monitor mode (see monitor.h).
 *
 * The byte stream is never altered: what one side sent is what the other
 * side receives. An observer reads a copy of the plaintext dialogue:
 * client commands are queued in order (PIPELINING), each complete server
 * reply is matched with the oldest command and classified. Once a
 * STARTTLS is answered 220 the rest is TLS and only relayed. Message
 * bodies (DATA after 354, BDAT chunks) are skipped, not parsed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "detect.h"
#include "ehlo.h"
#include "log.h"
#include "monitor.h"
#include "proxy.h"
#include "session.h"
#include "smtp_body.h"
#include "smtp_cmd.h"
#include "smtp_reply.h"

#define OBS_LINE  1024 /* longer lines are relayed but not observed */
#define OBS_QUEUE 64   /* pipelined commands awaiting replies */
/* Queue marker for the end of a message body: its reply is the server's
 * verdict on the message (not a command verb). */
#define OBS_DATAEND ((enum smtp_verb)1000)

struct session_observe {
	int opaque; /* TLS (or lost sync): relay only */
	int greeted;
	/* client -> server */
	char cline[OBS_LINE];
	size_t clen;
	int cskip; /* rest of an overlong line */
	int in_body;
	struct smtp_body body;
	unsigned long long bdat_left;
	int bdat_last;
	enum smtp_verb queue[OBS_QUEUE];
	int qhead, qlen;
	int data_pending; /* DATA sent, 354 not seen yet */
	/* server -> client */
	char sline[OBS_LINE];
	size_t slen;
	int sskip;
	struct smtp_reply *reply; /* only while a reply is being assembled (22 KiB) */
	int starttls_advertised;
};

static void monitor_client_cb(struct io *io, enum io_event ev, void *arg);
static void monitor_server_cb(struct io *io, enum io_event ev, void *arg);

void
monitor_free(struct session *s)
{
	if (s->obs != NULL)
		free(s->obs->reply);
	free(s->obs);
	s->obs = NULL;
}

static void
obs_lost(struct session *s, const char *why)
{
	session_log(s, LOG_INFO, "monitor: stop observing: %s", why);
	s->obs->opaque = 1;
}

static int
queue_push(struct session_observe *o, enum smtp_verb v)
{
	if (o->qlen >= OBS_QUEUE)
		return -1;
	o->queue[(o->qhead + o->qlen) % OBS_QUEUE] = v;
	o->qlen++;
	return 0;
}

static enum smtp_verb
queue_pop(struct session_observe *o)
{
	enum smtp_verb v;

	if (o->qlen == 0)
		return SMTP_CMD_UNKNOWN;
	v = o->queue[o->qhead];
	o->qhead = (o->qhead + 1) % OBS_QUEUE;
	o->qlen--;
	return v;
}

/* A complete server reply, matched with the command it answers. */
static void
obs_reply(struct session *s, struct smtp_reply *r, size_t trailing, const char *trail)
{
	struct session_observe *o = s->obs;
	enum smtp_verb verb;
	size_t l;
	const char *first = smtp_reply_line(r, 0, &l);

	if (first == NULL) {
		first = "";
		l = 0;
	}
	if (!o->greeted) {
		o->greeted = 1;
		s->upstream_greeted = 1;
		detect_greeting(r, &s->findings);
		return;
	}
	verb = queue_pop(o);
	switch ((int)verb) {
	case SMTP_CMD_EHLO:
		if (smtp_reply_class(r) == 2 && !o->starttls_advertised) {
			o->starttls_advertised = detect_ehlo(r, &s->findings);
			s->starttls_advertised = o->starttls_advertised;
		} else if (smtp_reply_class(r) == 5) {
			detect_ehlo_refused(r, &s->findings);
		}
		session_memory(s);
		session_findings(s);
		break;
	case SMTP_CMD_STARTTLS:
		s->tls_tried = 1;
		detect_starttls_reply(r, o->starttls_advertised, trailing, &s->findings);
		session_findings(s);
		if (r->code == 220) {
			s->tls_ok = 1; /* negotiated by the client itself */
			obs_lost(s, "STARTTLS accepted, the rest is TLS");
		}
		break;
	case OBS_DATAEND:
		if (smtp_reply_class(r) == 2) {
			s->messages++;
			s->px->stats.messages++;
		}
		break;
	case SMTP_CMD_DATA:
		o->data_pending = 0;
		if (r->code == 354) {
			o->in_body = 1;
			smtp_body_init(&o->body);
		}
		break;
	default:
		break;
	}
}

static void
obs_server_bytes(struct session *s, const char *p, size_t n)
{
	struct session_observe *o = s->obs;

	for (size_t i = 0; i < n && !o->opaque; i++) {
		char c = p[i];
		if (c != '\n') {
			if (o->slen < sizeof(o->sline) - 1)
				o->sline[o->slen++] = c;
			else
				o->sskip = 1;
			continue;
		}
		if (o->sskip) {
			obs_lost(s, "server line too long to observe");
			return;
		}
		if (o->slen > 0 && o->sline[o->slen - 1] == '\r')
			o->slen--;
		if (o->reply == NULL) {
			if ((o->reply = malloc(sizeof(*o->reply))) == NULL) {
				obs_lost(s, "out of memory");
				return;
			}
			smtp_reply_init(o->reply, s->cfg->max_reply_lines);
		}
		enum smtp_reply_status st = smtp_reply_feed(o->reply, o->sline, o->slen);
		o->slen = 0;
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st != SMTP_REPLY_DONE) {
			free(o->reply);
			o->reply = NULL;
			session_event(s, "server_protocol_error", "notice", NULL,
			              smtp_reply_strstatus(st), strlen(smtp_reply_strstatus(st)));
			obs_lost(s, "malformed server reply");
			return;
		}
		obs_reply(s, o->reply, n - i - 1, p + i + 1);
		free(o->reply);
		o->reply = NULL;
	}
}

static void
obs_client_line(struct session *s, const char *line, size_t len, size_t trailing, const char *trail)
{
	struct session_observe *o = s->obs;
	struct smtp_cmd cmd;

	(void)smtp_cmd_parse(line, len, &cmd);
	if (queue_push(o, cmd.verb) == -1) {
		obs_lost(s, "too many pipelined commands");
		return;
	}
	switch (cmd.verb) {
	case SMTP_CMD_DATA:
		o->data_pending = 1;
		break;
	case SMTP_CMD_BDAT: {
		char *end;
		unsigned long long sz = strtoull(cmd.arg, &end, 10);
		o->bdat_left = sz;
		o->bdat_last = strcasestr(end, "LAST") != NULL;
		break;
	}
	case SMTP_CMD_STARTTLS:
		if (trailing > 0) {
			detect_injection(DETECT_FROM_CLIENT, trailing, trail, trailing,
			                 &s->findings);
			session_findings(s);
		}
		break;
	default:
		break;
	}
}

static void
obs_client_bytes(struct session *s, const char *p, size_t n)
{
	struct session_observe *o = s->obs;
	size_t i = 0;

	while (i < n && !o->opaque) {
		if (o->bdat_left > 0) {
			size_t take = n - i < o->bdat_left ? n - i : (size_t)o->bdat_left;
			o->bdat_left -= take;
			i += take;
			continue;
		}
		if (o->in_body) {
			long end = smtp_body_scan(&o->body, p + i, n - i);
			if (end < 0)
				return;
			o->in_body = 0;
			i += (size_t)end;
			if (queue_push(o, OBS_DATAEND) == -1) {
				obs_lost(s, "too many pipelined commands");
				return;
			}
			continue;
		}
		char c = p[i++];
		if (c != '\n') {
			if (o->clen < sizeof(o->cline) - 1)
				o->cline[o->clen++] = c;
			else
				o->cskip = 1;
			continue;
		}
		if (o->cskip) {
			obs_lost(s, "client line too long to observe");
			return;
		}
		if (o->clen > 0 && o->cline[o->clen - 1] == '\r')
			o->clen--;
		obs_client_line(s, o->cline, o->clen, n - i, p + i);
		o->clen = 0;
		if (o->data_pending) {
			/* The body starts only after the 354; stop scanning
			 * lines until the reply tells us. */
			return;
		}
	}
}

/* Move everything from one side to the other, unchanged. */
static void
pump(struct session *s, struct io *from, struct io *to, int client_to_server)
{
	size_t n = iobuf_used(&from->in);

	if (n == 0)
		return;
	if (!s->obs->opaque) {
		if (client_to_server)
			obs_client_bytes(s, iobuf_data(&from->in), n);
		else
			obs_server_bytes(s, iobuf_data(&from->in), n);
	}
	if (io_write(to, iobuf_data(&from->in), n) == -1) {
		session_close(s, "error", to->err[0] ? to->err : "write to a closed connection");
		return;
	}
	iobuf_consume(&from->in, n);
	if (iobuf_used(&to->out) > s->cfg->buffer_high)
		io_pause(from, 1);
	session_timer(s, s->cfg->t_idle > s->cfg->t_data_end ? s->cfg->t_idle : s->cfg->t_data_end);
}

/*
 * One side sent FIN. TCP lets the other keep talking, and so must a
 * transparent relay: pass the half-close on (after what is queued) and
 * keep relaying the other direction. When both directions are done, or a
 * side is gone for good, the session ends once the output is flushed.
 */
static void
side_eof(struct session *s, struct io *from, struct io *to, int client_to_server)
{
	pump(s, from, to, client_to_server);
	if (s->closed)
		return;
	from->flags |= IO_F_EOF;
	if ((s->client.flags & IO_F_EOF) && (s->server.flags & IO_F_EOF)) {
		io_shutdown(&s->client);
		io_shutdown(&s->server);
		return;
	}
	io_shutdown_write(to);
}

/* io_shutdown finished on one side (it closes and reports IO_EOF). */
static int
side_closed(struct session *s, struct io *io)
{
	if (!(io->flags & IO_F_CLOSED))
		return 0;
	if ((s->client.flags & IO_F_CLOSED) && (s->server.flags & IO_F_CLOSED))
		session_close(s, s->result[0] ? s->result : "ok", NULL);
	return 1;
}

static void
monitor_client_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	switch (ev) {
	case IO_DATAIN:
		pump(s, &s->client, &s->server, 1);
		break;
	case IO_LOWAT:
		io_pause(&s->server, 0);
		break;
	case IO_EOF:
		if (!side_closed(s, io))
			side_eof(s, &s->client, &s->server, 1);
		break;
	case IO_ERROR:
		session_close(s, "error", io->err[0] ? io->err : "client connection error");
		break;
	default:
		break;
	}
}

static void
monitor_server_cb(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;

	switch (ev) {
	case IO_CONNECTED:
		s->upstream_alive = 1;
		io_pause(&s->client, 0);
		session_timer(s, s->cfg->t_greeting);
		break;
	case IO_DATAIN:
		pump(s, &s->server, &s->client, 0);
		break;
	case IO_LOWAT:
		io_pause(&s->client, 0);
		break;
	case IO_EOF:
		if (!side_closed(s, io))
			side_eof(s, &s->server, &s->client, 0);
		break;
	case IO_ERROR:
		if (!s->upstream_alive) {
			/* Unreachable: close, as the real server would look. */
			session_log(s, LOG_NOTICE, "upstream unreachable: %s", io->err);
			session_close(s, "unreachable", io->err);
			break;
		}
		session_close(s, "error", io->err[0] ? io->err : "server connection error");
		break;
	default:
		break;
	}
}

void
monitor_on_timeout(struct session *s)
{
	session_close(s, "timeout", s->upstream_alive ? "idle timeout" : "connect timeout");
}

void
monitor_start(struct session *s)
{
	if ((s->obs = calloc(1, sizeof(*s->obs))) == NULL) {
		session_close(s, "error", "out of memory");
		return;
	}
	s->state = RELAY_ST_MONITOR;
	s->client.cb = monitor_client_cb;
	s->server.cb = monitor_server_cb;
	if (s->dest_len == 0) {
		session_close(s, "error",
		              "monitor mode needs an address upstream for fixed listeners");
		return;
	}
	if (io_connect(&s->server, (struct sockaddr *)&s->dest_ss, s->dest_len) == -1) {
		session_log(s, LOG_NOTICE, "upstream unreachable: %s", s->server.err);
		session_close(s, "unreachable", s->server.err);
		return;
	}
	session_timer(s, s->cfg->t_connect);
}
