/*
 * relay: the SMTP session state machine for upgrade and enforce modes.
 *
 * stsproxy stands between a legacy client and the server it meant to
 * reach. Greeting and EHLO are relayed (the EHLO reply filtered to what we
 * honour); MAIL FROM is held and answered by us; at the first RCPT the
 * recipient domain tells us the MX host name, so we STARTTLS upstream with
 * SNI = that name, verify, EHLO again, replay MAIL FROM and forward the
 * RCPT. Each recipient's requirement is checked against the session's TLS
 * state; unmet requirements get a 4.7.x deferral for that recipient only.
 * End-of-DATA is answered with the server's own reply, never before it.
 *
 * Entry points (OpenSMTPD style): relay_enter(s, st) performs a state's
 * entry action, relay_on_reply() handles a complete server reply,
 * relay_client_cb/relay_server_cb take transport events.
 */
#ifndef STSPROXY_RELAY_H
#define STSPROXY_RELAY_H

#include "io.h"

struct session;

void relay_start(struct session *s);
void relay_client_cb(struct io *io, enum io_event ev, void *arg);
void relay_server_cb(struct io *io, enum io_event ev, void *arg);
void relay_on_timeout(struct session *s);
const char *relay_strstate(int st);

#endif
