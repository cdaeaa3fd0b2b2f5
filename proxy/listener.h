/*
 * listener: the sockets stsproxy accepts intercepted connections on.
 * REDIRECT and fixed listeners are ordinary sockets; TPROXY listeners set
 * IP_TRANSPARENT / IPV6_TRANSPARENT so they can accept connections
 * addressed to any host (needs CAP_NET_ADMIN). IPv6 listeners are
 * v6-only so "0.0.0.0" and "::" can coexist.
 *
 * When accept() runs out of descriptors (EMFILE/ENFILE) the listener
 * stops for limits.accept_backoff seconds instead of spinning.
 */
#ifndef STSPROXY_LISTENER_H
#define STSPROXY_LISTENER_H

#include <stddef.h>

#include <ev.h>

struct proxy;
struct cfg_listener;

struct listener {
	struct proxy *px;
	const struct cfg_listener *cl;
	int fd;
	ev_io w;
	ev_timer backoff;
};

int listener_open(struct proxy *px, struct listener *l, const struct cfg_listener *cl, char *err,
                  size_t errsz);
void listener_start(struct listener *l);
void listener_stop(struct listener *l);
void listener_close(struct listener *l);

#endif
