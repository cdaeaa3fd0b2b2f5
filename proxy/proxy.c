/*
 * proxy: shared daemon state helpers (see proxy.h).
 */
#include <netinet/in.h>
#include <string.h>

#include "cfg.h"
#include "listener.h"
#include "origdst.h"
#include "proxy.h"

static int
is_any(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

int
proxy_is_own_address(const struct proxy *px, const struct sockaddr *sa)
{
	for (int i = 0; i < px->nlisteners; i++) {
		const struct cfg_listener *cl = px->listeners[i].cl;
		const struct sockaddr *la = (const struct sockaddr *)&cl->addr;

		if (sockaddr_equal(la, sa))
			return 1;
		/* A wildcard listener owns its port on every local address;
		 * a REDIRECT to it reports a local address as destination
		 * when conntrack has no entry for the connection. */
		if (is_any(la) && sockaddr_port(la) == sockaddr_port(sa) &&
		    la->sa_family == sa->sa_family)
			return 1;
	}
	return 0;
}
