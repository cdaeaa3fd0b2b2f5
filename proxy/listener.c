/*
 * listener: accepting intercepted connections (see listener.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cfg.h"
#include "listener.h"
#include "log.h"
#include "proxy.h"
#include "session.h"

#define ACCEPT_BATCH 64 /* connections taken per wake-up, fairness with sessions */

static void
refuse(int fd, const char *line)
{
	/* Best effort, non-blocking: a full socket buffer just loses the text. */
	(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void
on_backoff(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	if (!l->px->draining)
		listener_start(l);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct proxy *px = l->px;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warn("listener %s: accept, pausing %.1fs "
				         "(limits.accept_backoff)",
				         l->cl->addrtext, px->cfg->accept_backoff);
				listener_stop(l);
				ev_timer_set(&l->backoff, px->cfg->accept_backoff, 0.);
				ev_timer_start(loop, &l->backoff);
				return;
			}
			log_warn("listener %s: accept", l->cl->addrtext);
			return;
		}
		if (px->nsessions >= px->cfg->max_sessions) {
			log_warnx("listener %s: limits.max_sessions (%d) reached, refusing a "
			          "connection",
			          l->cl->addrtext, px->cfg->max_sessions);
			px->stats.refused++;
			refuse(fd, "421 4.3.2 stsproxy: too many sessions, try again later\r\n");
			continue;
		}
		session_accept(px, l->cl, fd, (struct sockaddr *)&ss, len);
	}
}

int
listener_open(struct proxy *px, struct listener *l, const struct cfg_listener *cl, char *err,
              size_t errsz)
{
	int one = 1, fam = cl->addr.ss_family;

	memset(l, 0, sizeof(*l));
	l->px = px;
	l->cl = cl;
	l->fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1)
		goto fail;
	(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6 &&
	    setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (cl->kind == CFG_LISTEN_TPROXY) {
		int rc = fam == AF_INET6
		                 ? setsockopt(l->fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
		                 : setsockopt(l->fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
		if (rc == -1) {
			snprintf(err, errsz,
			         "listen %s: transparent socket (needs CAP_NET_ADMIN): %s",
			         cl->addrtext, strerror(errno));
			close(l->fd);
			l->fd = -1;
			return -1;
		}
	}
	if (bind(l->fd, (const struct sockaddr *)&cl->addr, cl->addrlen) == -1)
		goto fail;
	if (listen(l->fd, 1024) == -1)
		goto fail;
	ev_io_init(&l->w, on_accept, l->fd, EV_READ);
	l->w.data = l;
	ev_init(&l->backoff, on_backoff);
	l->backoff.data = l;
	return 0;
fail:
	snprintf(err, errsz, "listen %s (%s): %s", cl->addrtext, cfg_listen_kind_name(cl->kind),
	         strerror(errno));
	if (l->fd != -1)
		close(l->fd);
	l->fd = -1;
	return -1;
}

void
listener_start(struct listener *l)
{
	if (l->fd != -1 && !ev_is_active(&l->w))
		ev_io_start(l->px->loop, &l->w);
}

void
listener_stop(struct listener *l)
{
	if (ev_is_active(&l->w))
		ev_io_stop(l->px->loop, &l->w);
}

void
listener_close(struct listener *l)
{
	listener_stop(l);
	ev_timer_stop(l->px->loop, &l->backoff);
	if (l->fd != -1)
		close(l->fd);
	l->fd = -1;
}
