/*
 * origdst: original destination of intercepted connections (see origdst.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "origdst.h"

/* <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> clash
 * with glibc's headers; the values are fixed kernel ABI. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int
origdst_get(int fd, enum cfg_listen_kind kind, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	*len = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (kind == CFG_LISTEN_TPROXY)
		return getsockname(fd, (struct sockaddr *)ss, len);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1)
		return -1;
	if (local.ss_family == AF_INET6) {
		/* A v4-mapped peer on a v6 socket still went through iptables. */
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&local;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, len);
		return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, len);
	}
	return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, len);
}

static int
mapped_v4(const struct sockaddr *sa, struct sockaddr_in *out)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return 0;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = s6->sin6_port;
	memcpy(&out->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	return 1;
}

const char *
sockaddr_ip_text(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockaddr_in v4;

	if (len == 0)
		return buf;
	buf[0] = '\0'; /* inet_ntop leaves buf untouched when it is too short */
	if (mapped_v4(sa, &v4))
		sa = (const struct sockaddr *)&v4;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
		          (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)len);
	else
		snprintf(buf, len, "?");
	return buf;
}

const char *
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	struct sockaddr_in v4;

	if (mapped_v4(sa, &v4))
		sa = (const struct sockaddr *)&v4;
	sockaddr_ip_text(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%d", ip, sockaddr_port(sa));
	else
		snprintf(buf, len, "%s:%d", ip, sockaddr_port(sa));
	return buf;
}

int
sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

void
sockaddr_set_port(struct sockaddr *sa, int port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

socklen_t
sockaddr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int
sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sockaddr_in va, vb;

	if (mapped_v4(a, &va))
		a = (const struct sockaddr *)&va;
	if (mapped_v4(b, &vb))
		b = (const struct sockaddr *)&vb;
	if (a->sa_family != b->sa_family || sockaddr_port(a) != sockaddr_port(b))
		return 0;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		              &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

int
sockaddr_parse_ip(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	errno = EINVAL;
	return -1;
}
