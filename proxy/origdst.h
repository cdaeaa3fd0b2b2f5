/*
 * origdst: where an intercepted connection was going.
 *  - REDIRECT (iptables/nft nat): the kernel's conntrack keeps the
 *    original destination, read with SO_ORIGINAL_DST (IPv4) or
 *    IP6T_SO_ORIGINAL_DST (IPv6).
 *  - TPROXY: the socket is bound to the original destination itself, so
 *    getsockname() returns it.
 * Plus small socket-address helpers used across the proxy.
 */
#ifndef STSPROXY_ORIGDST_H
#define STSPROXY_ORIGDST_H

#include <stddef.h>
#include <sys/socket.h>

#include "cfg.h"

/* Returns 0 and fills ss/len, or -1 with errno. */
int origdst_get(int fd, enum cfg_listen_kind kind, struct sockaddr_storage *ss, socklen_t *len);

/* "192.0.2.1:25" / "[2001:db8::1]:25"; v4-mapped IPv6 shown as IPv4. */
const char *sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);
/* Address only, no port. */
const char *sockaddr_ip_text(const struct sockaddr *sa, char *buf, size_t len);
int sockaddr_port(const struct sockaddr *sa);
void sockaddr_set_port(struct sockaddr *sa, int port);
socklen_t sockaddr_len(const struct sockaddr *sa);
/* Same IP and port (v4-mapped aware)? */
int sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Parse an IP literal (no port) into ss with port; 0 or -1. */
int sockaddr_parse_ip(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len);

#endif
