/*
 * io: buffered, event-driven transport over a non-blocking socket with an
 * optional mbed TLS layer (see io.h).
 *
 * Watchers are never toggled ad hoc: io_update() derives them from the
 * buffers and flags after every state change. mbed TLS talks to the socket
 * through non-blocking bio callbacks; WANT_READ/WANT_WRITE become
 * IO_F_WANT_R/W so the right watcher wakes us, and a write that asked to
 * be repeated is repeated with the same length, as mbed TLS requires.
 *
 * Reads under TLS go through a small read-ahead buffer (io->ra, see
 * IO_TLS_READAHEAD): bytes in it, like records held inside mbed TLS, are
 * invisible to libev, so every place that may leave some behind feeds the
 * read watcher itself (tls_pending, kick_read). The read-ahead only ever
 * holds TLS records, filled after io->ssl is set: plaintext that came
 * before STARTTLS stays in io->in for the owner's injection check.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>

#include "io.h"

#define IO_CHUNK 16384

static void io_on_read(struct ev_loop *loop, ev_io *w, int revents);
static void io_on_write(struct ev_loop *loop, ev_io *w, int revents);

static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct io *io = ctx;
	ssize_t n = send(io->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (errno == EPIPE || errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

/* recv() that remembers a short read: the socket is empty then, and asking
 * again before the (level-triggered) watcher wakes us, EOF included, would
 * only fetch EAGAIN. io_on_read clears IO_F_DRAINED. */
static ssize_t
sock_recv(struct io *io, void *buf, size_t len)
{
	ssize_t n = recv(io->fd, buf, len, 0);

	io->nrecv++;
	if (n > 0 && (size_t)n < len)
		io->flags |= IO_F_DRAINED;
	return n;
}

static int
bio_recv_result(ssize_t n)
{
	if (n >= 0)
		return (int)n; /* 0 is EOF: mbed TLS turns it into CONN_EOF */
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

/*
 * mbed TLS asks for exactly what it is missing (a 5-byte header, then the
 * body). The socket is only read when the read-ahead is empty, so EAGAIN
 * and EOF reach mbed TLS only after every buffered byte has. Without a
 * read-ahead (allocation failed) this is a plain recv().
 */
static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct io *io = ctx;
	struct io_readahead *ra = io->ra;
	ssize_t n;

	/* The socket is known to be empty (sock_recv). */
	if ((io->flags & IO_F_DRAINED) && (ra == NULL || ra->len == 0))
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (ra != NULL && ra->len == 0 && len < sizeof(ra->buf)) {
		if ((n = sock_recv(io, ra->buf, sizeof(ra->buf))) <= 0)
			return bio_recv_result(n);
		ra->off = 0;
		ra->len = (size_t)n;
	}
	if (ra != NULL && ra->len > 0) {
		if (len > ra->len)
			len = ra->len; /* mbed TLS asks again for the rest */
		memcpy(buf, ra->buf + ra->off, len);
		ra->off += len;
		ra->len -= len;
		return (int)len;
	}
	/* A read at least as large as the buffer (the rest of a bulk record):
	 * straight into mbed TLS's buffer, no copy. */
	return bio_recv_result(sock_recv(io, buf, len));
}

/* Can mbed TLS produce something without the socket's help? Records it
 * holds (decrypted or not yet parsed) or records in our read-ahead. */
static int
tls_pending(const struct io *io)
{
	return io->ssl != NULL &&
	       ((io->ra != NULL && io->ra->len > 0) || mbedtls_ssl_check_pending(io->ssl));
}

/* libev reports the fd only: whoever may leave pending TLS input behind
 * calls this so that io_on_read runs once more. One event per call (a
 * feed is deferred to the loop and does not repeat), so no spinning. */
static void
kick_read(struct io *io)
{
	if ((io->flags & IO_F_TLS) && !(io->flags & (IO_F_PAUSED | IO_F_EOF | IO_F_CLOSED)) &&
	    tls_pending(io))
		ev_feed_event(io->loop, &io->rw, EV_READ);
}

static void
set_tcp_options(int fd)
{
	int one = 1;

	/* SMTP is a dialogue of short lines: Nagle would hold pipelined
	 * replies behind delayed ACKs. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
io_init(struct io *io, struct ev_loop *loop, int fd, io_cb *cb, void *arg, size_t inmax,
        size_t outmax, size_t lowat)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->loop = loop;
	io->cb = cb;
	io->arg = arg;
	io->lowat = lowat;
	io->tls_alert = -1;
	iobuf_init(&io->in, inmax);
	iobuf_init(&io->out, outmax);
	ev_io_init(&io->rw, io_on_read, fd, EV_READ);
	ev_io_init(&io->ww, io_on_write, fd, EV_WRITE);
	io->rw.data = io;
	io->ww.data = io;
	if (fd >= 0) {
		set_tcp_options(fd);
		io_update(io);
	}
}

static void
watch(struct io *io, ev_io *w, int on)
{
	if (on && !ev_is_active(w))
		ev_io_start(io->loop, w);
	else if (!on && ev_is_active(w))
		ev_io_stop(io->loop, w);
}

void
io_update(struct io *io)
{
	int r = 0, w = 0;

	if (io->fd < 0 || (io->flags & IO_F_CLOSED)) {
		watch(io, &io->rw, 0);
		watch(io, &io->ww, 0);
		return;
	}
	if (io->flags & IO_F_CONNECTING) {
		w = 1;
	} else if (io->flags & IO_F_HANDSHAKE) {
		r = (io->flags & IO_F_WANT_R) != 0;
		w = (io->flags & IO_F_WANT_W) != 0;
	} else {
		/* Keep reading while paused only to notice EOF? No: a paused
		 * side must not grow our memory; EOF is seen on resume. */
		if (!(io->flags & (IO_F_PAUSED | IO_F_EOF)) && iobuf_used(&io->in) < io->in.max)
			r = 1;
		if (iobuf_used(&io->out) > 0 || io->tls_wpending > 0 ||
		    (io->flags & (IO_F_SHUTDOWN | IO_F_TLS_WAIT | IO_F_WSHUT)))
			w = 1;
		if (io->flags & IO_F_WANT_R)
			r = 1;
		if (io->flags & IO_F_WANT_W) /* a TLS read must write first */
			w = 1;
	}
	watch(io, &io->rw, r);
	watch(io, &io->ww, w);
}

static void
fail(struct io *io, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(io->err, sizeof(io->err), fmt, ap);
	va_end(ap);
	io->flags |= IO_F_EOF;
	watch(io, &io->rw, 0);
	watch(io, &io->ww, 0);
	io->cb(io, IO_ERROR, io->arg);
}

static void
tls_fail(struct io *io, const char *what, int rc)
{
	char eb[120];

	io->tls_err = rc;
	/* mbed TLS has no getter for a received alert: after a fatal alert
	 * its description is the second byte of the record it just read. */
	if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && io->ssl != NULL)
		io->tls_alert = io->ssl->MBEDTLS_PRIVATE(in_msg)[1];
	mbedtls_strerror(rc, eb, sizeof(eb));
	fail(io, "%s: %s", what, eb);
}

int
io_connect(struct io *io, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1) {
		snprintf(io->err, sizeof(io->err), "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, sa, len) == -1 && errno != EINPROGRESS) {
		snprintf(io->err, sizeof(io->err), "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	io->fd = fd;
	set_tcp_options(fd);
	ev_io_set(&io->rw, fd, EV_READ);
	ev_io_set(&io->ww, fd, EV_WRITE);
	io->flags |= IO_F_CONNECTING;
	io_update(io);
	return 0;
}

/*
 * Send what is queued now, without waiting for the loop, and without
 * callbacks: an error is left for the write watcher to find and report,
 * so callers never see their own io change under them. Plaintext only:
 * TLS writes keep going through the watcher (mbed TLS's repeat-the-same-
 * write rule is handled in one place, flush_out).
 */
static void
try_send_now(struct io *io)
{
	if (io->ssl != NULL || io->fd < 0 ||
	    (io->flags & (IO_F_CONNECTING | IO_F_HANDSHAKE | IO_F_TLS_WAIT | IO_F_CLOSED)))
		return;
	while (iobuf_used(&io->out) > 0) {
		ssize_t n = send(io->fd, iobuf_data(&io->out), iobuf_used(&io->out),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0)
			return;
		iobuf_consume(&io->out, (size_t)n);
		io->nwritten += (unsigned long long)n;
	}
}

int
io_write(struct io *io, const void *p, size_t n)
{
	int was_empty = iobuf_used(&io->out) == 0;

	if (io->flags & IO_F_CLOSED)
		return -1;
	if (iobuf_append(&io->out, p, n) == -1) {
		snprintf(io->err, sizeof(io->err), "output buffer limit reached");
		return -1;
	}
	/* Most writes fit in the socket buffer: send at once and only arm
	 * the write watcher for what is left (saves two epoll_ctl calls per
	 * write). Order is kept: only when nothing else was queued. */
	if (was_empty && !(io->flags & IO_F_SHUTDOWN))
		try_send_now(io);
	if (iobuf_used(&io->out) > io->lowat)
		io->lowat_armed = 1;
	io_update(io);
	return 0;
}

void
io_flush_quiet(struct io *io)
{
	if (io->flags & IO_F_CLOSED)
		return;
	if (io->ssl != NULL && (io->flags & IO_F_TLS) && !(io->flags & IO_F_HANDSHAKE)) {
		/* Best effort at teardown: one attempt, errors ignored. */
		size_t len = io->tls_wpending ? io->tls_wpending : iobuf_used(&io->out);
		if (len > IO_CHUNK)
			len = IO_CHUNK;
		if (len > 0)
			(void)mbedtls_ssl_write(io->ssl,
			                        (const unsigned char *)iobuf_data(&io->out), len);
		return;
	}
	try_send_now(io);
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return io_write(io, buf, (size_t)n);
}

static void
handshake(struct io *io)
{
	int rc = mbedtls_ssl_handshake(io->ssl);

	io->flags &= ~(IO_F_WANT_R | IO_F_WANT_W);
	if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
		io->flags |= IO_F_WANT_R;
		io_update(io);
		/* The bio says WANT_READ only with the read-ahead empty: then it
		 * is the fd's turn. Should mbed TLS ever stop early with bytes
		 * still buffered, run again: no readiness would announce them. */
		if (io->ra != NULL && io->ra->len > 0)
			ev_feed_event(io->loop, &io->rw, EV_READ);
		return;
	}
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
		io->flags |= IO_F_WANT_W;
		io_update(io);
		return;
	}
	if (rc != 0) {
		tls_fail(io, "TLS handshake", rc);
		return;
	}
	io->flags &= ~IO_F_HANDSHAKE;
	io->flags |= IO_F_TLS;
	io_update(io);
	io->cb(io, IO_TLSREADY, io->arg);
	/* Records that arrived with the last handshake flight (the peer's
	 * first command after Finished) are already inside mbed TLS or our
	 * read-ahead: the socket won't wake us for them. */
	kick_read(io);
}

void
io_start_tls(struct io *io, mbedtls_ssl_context *ssl, int server)
{
	io->ssl = ssl;
	/* Only now, so plaintext sessions never pay for it; without it
	 * (out of memory) bio_recv reads the socket directly. */
	if (io->ra == NULL)
		io->ra = malloc(sizeof(*io->ra));
	if (io->ra != NULL)
		io->ra->off = io->ra->len = 0;
	io->flags &= ~IO_F_DRAINED;
	mbedtls_ssl_set_bio(ssl, io, bio_send, bio_recv, NULL);
	if (server)
		io->flags |= IO_F_SERVER;
	if (iobuf_used(&io->out) > 0) {
		/* Our "220 ready" must reach the peer in plaintext first. */
		io->flags |= IO_F_TLS_WAIT;
		io_update(io);
		return;
	}
	io->flags |= IO_F_HANDSHAKE;
	handshake(io);
}

void
io_pause(struct io *io, int paused)
{
	if (paused)
		io->flags |= IO_F_PAUSED;
	else
		io->flags &= ~IO_F_PAUSED;
	io_update(io);
	/* TLS input may wait inside mbed TLS or the read-ahead with nothing
	 * on the socket. (Even with io->in full: the feed runs later, and
	 * resuming owners drain io->in right after this call.) */
	if (!paused)
		kick_read(io);
}

void
io_shutdown(struct io *io)
{
	if (io->flags & IO_F_CLOSED)
		return;
	io->flags |= IO_F_SHUTDOWN;
	io_update(io);
}

/* shutdown(SHUT_WR) once per socket. */
static void
shut_wr(struct io *io)
{
	if (!(io->flags & IO_F_WR_DONE)) {
		io->flags |= IO_F_WR_DONE;
		(void)shutdown(io->fd, SHUT_WR);
	}
}

void
io_shutdown_write(struct io *io)
{
	if (io->flags & IO_F_CLOSED)
		return;
	/* Nothing queued (the usual case): no need to wait for writability. */
	if (iobuf_used(&io->out) == 0 && io->tls_wpending == 0 && !(io->flags & IO_F_CONNECTING)) {
		shut_wr(io);
		return;
	}
	io->flags |= IO_F_WSHUT;
	io_update(io);
}

void
io_close(struct io *io)
{
	if (io == NULL || (io->flags & IO_F_CLOSED))
		return;
	watch(io, &io->rw, 0);
	watch(io, &io->ww, 0);
	if (io->ssl != NULL) {
		mbedtls_ssl_free(io->ssl);
		free(io->ssl);
		io->ssl = NULL;
	}
	free(io->ra);
	io->ra = NULL;
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
	iobuf_free(&io->in);
	iobuf_free(&io->out);
	io->flags |= IO_F_CLOSED;
}

/* Returns -1 after an error event was delivered. */
static int
flush_out(struct io *io)
{
	while (iobuf_used(&io->out) > 0) {
		size_t len = iobuf_used(&io->out);
		ssize_t n;

		if (io->ssl != NULL && (io->flags & IO_F_TLS)) {
			int rc;
			if (io->tls_wpending > 0)
				len = io->tls_wpending;
			else if (len > IO_CHUNK)
				len = IO_CHUNK;
			rc = mbedtls_ssl_write(io->ssl, (const unsigned char *)iobuf_data(&io->out),
			                       len);
			if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
				/* TLS 1.3 tickets can arrive while we write. */
				io->tls_wpending = len;
				io->cb(io, IO_TICKET, io->arg);
				if (io->flags & IO_F_CLOSED)
					return -1;
				continue;
			}
			if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
				io->tls_wpending = len;
				io->flags |= rc == MBEDTLS_ERR_SSL_WANT_READ ? IO_F_WANT_R : 0;
				return 0;
			}
			if (rc < 0) {
				tls_fail(io, "TLS write", rc);
				return -1;
			}
			io->tls_wpending = 0;
			io->flags &= ~IO_F_WANT_R;
			n = rc;
		} else {
			n = send(io->fd, iobuf_data(&io->out), len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					return 0;
				fail(io, "send: %s", strerror(errno));
				return -1;
			}
		}
		iobuf_consume(&io->out, (size_t)n);
		io->nwritten += (unsigned long long)n;
	}
	return 0;
}

static void
io_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct io *io = w->data;

	if (io->flags & IO_F_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		io->flags &= ~IO_F_CONNECTING;
		if (err != 0) {
			fail(io, "connect: %s", strerror(err));
			return;
		}
		io_update(io);
		io->cb(io, IO_CONNECTED, io->arg);
		return;
	}
	if (io->flags & IO_F_HANDSHAKE) {
		handshake(io);
		return;
	}
	if (flush_out(io) == -1)
		return;
	if (iobuf_used(&io->out) == 0 && (io->flags & IO_F_TLS_WAIT)) {
		io->flags &= ~IO_F_TLS_WAIT;
		io->flags |= IO_F_HANDSHAKE;
		handshake(io);
		return;
	}
	if (iobuf_used(&io->out) == 0 && (io->flags & IO_F_WSHUT)) {
		io->flags &= ~IO_F_WSHUT;
		shut_wr(io);
	}
	if (iobuf_used(&io->out) == 0 && (io->flags & IO_F_SHUTDOWN)) {
		if (io->ssl != NULL && (io->flags & IO_F_TLS) && !(io->flags & IO_F_WR_DONE))
			(void)mbedtls_ssl_close_notify(io->ssl);
		shut_wr(io);
		io_close(io);
		io->cb(io, IO_EOF, io->arg);
		return;
	}
	/* A TLS read stopped because mbed TLS had to send first (an alert, a
	 * key update answer): the socket is writable now, read again. */
	if (io->flags & IO_F_WANT_W) {
		io->flags &= ~IO_F_WANT_W;
		ev_feed_event(io->loop, &io->rw, EV_READ);
	}
	io_update(io);
	/* A write may have pulled records (a ticket, the next reply) into
	 * mbed TLS: read them now, the socket won't signal them again. */
	kick_read(io);
	if (io->lowat_armed && iobuf_used(&io->out) <= io->lowat) {
		io->lowat_armed = 0;
		io->cb(io, IO_LOWAT, io->arg);
	}
}

/* Read what is available. Returns bytes added, or -1 after an error event. */
static long
fill_in(struct io *io)
{
	long got = 0;

	io->flags &= ~IO_F_WANT_W; /* set again if this read stops on WANT_WRITE */
	for (;;) {
		size_t room = io->in.max - iobuf_used(&io->in);
		char *p;
		ssize_t n;

		if (room == 0)
			break;
		if (room > IO_CHUNK)
			room = IO_CHUNK;
		if ((p = iobuf_reserve(&io->in, room)) == NULL) {
			fail(io, "input buffer: %s", strerror(errno));
			return -1;
		}
		if (io->ssl != NULL && (io->flags & IO_F_TLS)) {
			int rc = mbedtls_ssl_read(io->ssl, (unsigned char *)p, room);
			if (rc == MBEDTLS_ERR_SSL_WANT_READ)
				break;
			if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
				io->flags |= IO_F_WANT_W;
				break;
			}
			if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
				io->cb(io, IO_TICKET, io->arg);
				if (io->flags & IO_F_CLOSED)
					return -1;
				continue;
			}
			if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
			    rc == MBEDTLS_ERR_SSL_CONN_EOF || rc == MBEDTLS_ERR_NET_CONN_RESET) {
				io->flags |= IO_F_EOF;
				break;
			}
			if (rc < 0) {
				tls_fail(io, "TLS read", rc);
				return -1;
			}
			n = rc;
		} else {
			n = sock_recv(io, p, room);
			if (n == 0) {
				io->flags |= IO_F_EOF;
				break;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					break;
				if (errno == ECONNRESET) {
					io->flags |= IO_F_EOF;
					break;
				}
				fail(io, "recv: %s", strerror(errno));
				return -1;
			}
		}
		iobuf_commit(&io->in, (size_t)n);
		io->nread += (unsigned long long)n;
		got += n;
		/* Plaintext: a short read emptied the socket (sock_recv). */
		if (!(io->flags & IO_F_TLS) && (io->flags & IO_F_DRAINED))
			break;
	}
	return got;
}

static void
io_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct io *io = w->data;
	long got;

	if (io->flags & IO_F_CLOSED)
		return;
	io->flags &= ~IO_F_DRAINED; /* woken: the socket may hold bytes again */
	if (io->flags & IO_F_HANDSHAKE) {
		handshake(io);
		return;
	}
	if (io->flags & IO_F_PAUSED) {
		io_update(io);
		return;
	}
	/* A TLS write that needed to read first can proceed now. */
	if (io->tls_wpending > 0 && (io->flags & IO_F_WANT_R)) {
		io->flags &= ~IO_F_WANT_R;
		if (flush_out(io) == -1)
			return;
	}
	if ((got = fill_in(io)) == -1)
		return;
	io_update(io);
	if (got > 0) {
		io->cb(io, IO_DATAIN, io->arg);
		if (io->flags & IO_F_CLOSED)
			return;
		/* The owner may have drained a full buffer: reading stopped
		 * when it filled, so restart it. */
		io_update(io);
	}
	/* Fetch records mbed TLS or the read-ahead already hold: left behind
	 * by a full io->in, or by a read that mbed TLS ended early (a ticket,
	 * a warning alert), even with nothing delivered. Not while io->in is
	 * full or mbed TLS waits to write: nothing could be read, and the
	 * feed would repeat forever. */
	if (iobuf_used(&io->in) < io->in.max && !(io->flags & IO_F_WANT_W))
		kick_read(io);
	if ((io->flags & IO_F_EOF) && !(io->flags & IO_F_CLOSED)) {
		watch(io, &io->rw, 0);
		io->cb(io, IO_EOF, io->arg);
	}
}

const char *
io_tls_version(const struct io *io)
{
	return io->ssl && (io->flags & IO_F_TLS) ? mbedtls_ssl_get_version(io->ssl) : NULL;
}

const char *
io_tls_cipher(const struct io *io)
{
	return io->ssl && (io->flags & IO_F_TLS) ? mbedtls_ssl_get_ciphersuite(io->ssl) : NULL;
}
