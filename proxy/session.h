/*
 * session: one intercepted SMTP connection and everything it owns: both
 * transports, its timer, pending DNS/policy handles, the held envelope and
 * the outcome record. session_free() (deferred to the next loop turn by
 * session_close()) stops, cancels, closes and frees all of it.
 *
 * The relay (relay.c) and the monitor (monitor.c) drive a session; this
 * module only creates, logs and destroys.
 */
#ifndef STSPROXY_SESSION_H
#define STSPROXY_SESSION_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ev.h>

#include "detect.h"
#include "ehlo.h"
#include "io.h"
#include "smtp_body.h"
#include "smtp_reply.h"
#include "tlspolicy.h"

struct proxy;
struct cfg;
struct cfg_listener;
struct mxfind;
struct dns_query;
struct policy_query;

/* Relay states; relay_strstate() names them for traces. */
enum relay_state {
	RELAY_ST_CONNECT = 0,  /* connecting upstream */
	RELAY_ST_GREETING,     /* waiting for the server's 220 */
	RELAY_ST_READY,        /* waiting for a client command */
	RELAY_ST_EHLO,         /* client's EHLO/HELO forwarded */
	RELAY_ST_CMD,          /* a plain command forwarded (RSET, ...) */
	RELAY_ST_POLICY,       /* RCPT held: policy / MX lookups running */
	RELAY_ST_STARTTLS,     /* our STARTTLS sent upstream */
	RELAY_ST_TLS,          /* upstream handshake running */
	RELAY_ST_EHLO2,        /* our EHLO after TLS (or after a reconnect) */
	RELAY_ST_HELO2,        /* HELO fallback when EHLO2 is refused */
	RELAY_ST_RECONNECT,    /* new plaintext connection after a failed handshake */
	RELAY_ST_REGREET,      /* its greeting */
	RELAY_ST_MAIL,         /* held MAIL FROM replayed */
	RELAY_ST_RCPT,         /* RCPT forwarded */
	RELAY_ST_DATA,         /* DATA forwarded, waiting for 354 */
	RELAY_ST_BODY,         /* streaming the message */
	RELAY_ST_BODY_DISCARD, /* upstream lost mid-body: swallow until the dot */
	RELAY_ST_DATAEND,      /* waiting for the server's verdict on the message */
	RELAY_ST_CLIENT_TLS,   /* handshake with the legacy client */
	RELAY_ST_MONITOR,      /* monitor mode: byte relay */
	RELAY_ST_REROUTE,      /* looking up policy-valid MX hosts to move the session to */
	RELAY_ST_CLOSING,      /* flushing a last reply, then gone */
	RELAY_ST_MAX
};

#define SESSION_MAXDOMAINS 16
#define SESSION_MAXREROUTE 8

struct session_candidate {
	char name[256];
	struct sockaddr_storage ss;
	socklen_t len;
};

/* What one recipient domain needs and what the session knows about it. */
struct session_domain {
	char name[256];
	struct tls_req req;
	char mx_name[256]; /* MX host the destination is for this domain, "" if unknown */
	int name_from_mx;
	int resolved; /* MX lookup done */
	enum tlspolicy_fail verdict;
	int deferred; /* recipients of this domain answered 4xx by us */
	int accepted;
};

struct session {
	TAILQ_ENTRY(session) entry;
	struct proxy *px;
	struct cfg *cfg; /* the snapshot this session started with */
	const struct cfg_listener *lst;
	uint64_t id;
	ev_tstamp started;
	int closed;     /* on the graveyard */
	int processing; /* client_process() is running (no re-entry) */

	struct sockaddr_storage client_ss, dest_ss;
	socklen_t client_len, dest_len;
	char client_text[64], dest_text[300];
	char orig_dest_text[300]; /* before any reroute */

	struct io client, server;
	ev_timer timer;
	enum relay_state state;

	struct smtp_reply *reply; /* server reply being assembled */

	/* client's session facts */
	int helo_verb; /* SMTP_CMD_EHLO / SMTP_CMD_HELO, 0 before */
	char helo_name[256];
	int client_tls;

	/* the transaction */
	char *mail_line;            /* held "MAIL FROM:..." (without CRLF) */
	int mail_sent;              /* forwarded and accepted upstream */
	char *mail_error;           /* server's serialized failure reply to MAIL */
	char *rcpt_line;            /* RCPT being processed */
	struct session_domain *cur; /* its domain */
	int rcpt_accepted;          /* in this transaction, by the server */
	int rcpt_deferred;          /* in this transaction, by stsproxy */
	int rcpt_total;             /* in this transaction */
	struct smtp_body body;

	/* upstream */
	int upstream_alive; /* connected, greeted, usable */
	int upstream_greeted;
	int upstream_gone; /* closed by the server between transactions */
	int tls_tried;
	int tls_ok;
	int tls_failed_hard; /* handshake failed: never try this destination again here */
	uint32_t tls_verify; /* verify flags for sni */
	char sni[256];       /* name sent in SNI and checked, "" = none */
	char ptr_name[256];  /* reverse name of the destination, when no MX name fits */
	int ptr_done;
	int sni_from_mx;
	char tls_key[320];    /* resumption cache key */
	char tls_version[16]; /* negotiated, kept for the outcome record */
	char tls_cipher[64];
	int tls_offered_session;
	struct ehlo_caps caps;   /* latest EHLO reply from the server */
	int starttls_advertised; /* in the plaintext EHLO */
	int ehlo_seen;           /* a 2xx plaintext EHLO reply was read */
	int ehlo_refused;

	struct session_domain *domains[SESSION_MAXDOMAINS];
	int ndomains;

	/* Rerouting (RFC 8461 §5): policy-valid MX hosts of the current
	 * domain to move the session to when the destination fails. */
	struct session_candidate *reroute;
	int nreroute, ireroute;
	char reroute_domain[256];
	char reroute_why[256];
	int rerouting; /* the upstream is a candidate being tried */

	/* pending asynchronous work, cancelled by session_free */
	struct policy_query *polq;
	struct mxfind *mxq;
	struct dns_query *ptrq;
	struct dns_query *upq; /* fixed upstream host resolution */

	/* outcome counters */
	unsigned messages, rcpt_ok, rcpt_tempfail, rcpt_permfail;
	unsigned nevents;
	char result[32]; /* "ok", "deferred", "client_quit", "error", ... */
	char reason[256];

	/* downgrade signals (detect.h) and what memory says about this MX */
	struct detect_findings findings;
	struct detect_memory memory;
	int memory_loaded;
	char tls_fingerprint[65];

	/* monitor mode observation */
	struct session_observe *obs;
};

/* Create a session for an accepted connection (fd owned). */
void session_accept(struct proxy *px, const struct cfg_listener *lst, int fd,
                    const struct sockaddr *client, socklen_t clen);
/* End the session: emit the outcome record, close now, free at the next loop turn. */
void session_close(struct session *s, const char *result, const char *reason);
/* Free what session_close left (called by the proxy's reaper). */
void session_free(struct session *s);

/* Per-session logging: adds id, client and destination. */
void session_log(struct session *s, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Named security/diagnostic event, one JSON line (docs/events.md). */
void session_event(struct session *s, const char *name, const char *severity, const char *domain,
                   const char *evidence, size_t evlen);

/* Classify with memory (detect_combine) and log every finding not yet
 * logged, as "type":"event" records. */
void session_findings(struct session *s);
/* Load what the TOFU memory knows about this session's MX (name or address). */
void session_memory(struct session *s);

/* Set up one of the session's transports with the configured buffer limits. */
void session_io_init(struct session *s, struct io *io, int fd, io_cb *cb);

/* (Re)arm the session timer for t seconds. */
void session_timer(struct session *s, double t);

#endif
