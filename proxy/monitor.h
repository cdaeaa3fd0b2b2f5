/*
 * monitor: monitor mode. Bytes are relayed exactly as the two sides sent
 * them; a copy of the plaintext part of the dialogue (until a STARTTLS
 * succeeds) is parsed and classified for downgrade signals.
 */
#ifndef STSPROXY_MONITOR_H
#define STSPROXY_MONITOR_H

struct session;

void monitor_start(struct session *s);
void monitor_on_timeout(struct session *s);
void monitor_free(struct session *s); /* NULL-safe on a session without monitor state */

#endif
