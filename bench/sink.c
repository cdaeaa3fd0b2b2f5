/*
 * bench/sink.c: a minimal SMTP sink with STARTTLS, for benchmarks only.
 *
 * Single-threaded epoll server. Speaks just enough SMTP for one-message
 * sessions: greeting, EHLO/HELO (offers STARTTLS, PIPELINING, 8BITMIME,
 * SIZE), STARTTLS (OpenSSL, non-blocking handshake), MAIL, RCPT, DATA (body
 * up to "\r\n.\r\n"), RSET, NOOP, QUIT. Replies to every command without
 * delay. Counters (messages, sessions, full/resumed handshakes, TLS
 * versions, errors) are appended as one JSON line to the stats file on
 * SIGUSR1 and at exit (SIGTERM/SIGINT).
 *
 * Why C + OpenSSL and not Postfix's smtp-sink: Debian's smtp-sink has no
 * STARTTLS; why not Python: one core shared with the load client must not be
 * the bottleneck at thousands of sessions per second.
 *
 * usage: sink -p PORT [-a ADDR] [-c CERT -k KEY] [-R] [-s STATSFILE]
 *   -R  allow session resumption (TLS 1.3 tickets, TLS 1.2 tickets and
 *       session cache); without it every handshake is a full one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define INBUF  16384
#define OUTBUF 4096

enum st { ST_CMD, ST_BODY, ST_HANDSHAKE };

struct conn {
	int fd;
	int tls;
	enum st st;
	SSL *ssl;
	char in[INBUF];
	size_t inlen;
	char out[OUTBUF];
	size_t outlen, outoff;
	int want_write; /* EPOLLOUT armed */
	int closing;    /* close after flushing out */
	int body_state; /* end-of-data matcher: matched chars of "\r\n.\r\n" */
};

static struct {
	unsigned long long sessions, messages, hs_full, hs_resumed, tls12, tls13, errors, hs_errors,
	        open, open_max, close_notify, tls_eof, tls_read_errors, plain_eof;
} st;

static char last_cipher[64] = "", last_group[32] = "", last_tls_error[200] = "";
static volatile sig_atomic_t got_usr1, got_term;
static const char *stats_file;
static SSL_CTX *ctx;
static int epfd;

static void
on_sig(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

static void
dump_stats(const char *why)
{
	FILE *f = stats_file ? fopen(stats_file, "a") : stderr;

	if (f == NULL)
		return;
	fprintf(f,
	        "{\"event\":\"%s\",\"sessions\":%llu,\"messages\":%llu,\"hs_full\":%llu,"
	        "\"hs_resumed\":%llu,\"tls12\":%llu,\"tls13\":%llu,\"errors\":%llu,"
	        "\"hs_errors\":%llu,\"open\":%llu,\"open_max\":%llu,\"last_cipher\":\"%s\","
	        "\"last_group\":\"%s\",\"close_notify\":%llu,\"tls_eof\":%llu,"
	        "\"tls_read_errors\":%llu,\"plain_eof\":%llu,\"last_tls_error\":\"%s\"}\n",
	        why, st.sessions, st.messages, st.hs_full, st.hs_resumed, st.tls12, st.tls13,
	        st.errors, st.hs_errors, st.open, st.open_max, last_cipher, last_group,
	        st.close_notify, st.tls_eof, st.tls_read_errors, st.plain_eof, last_tls_error);
	if (f != stderr)
		fclose(f);
}

static void
conn_free(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	st.open--;
	free(c);
}

static void
arm(struct conn *c, int wr)
{
	struct epoll_event ev = {.events = EPOLLIN | (wr ? EPOLLOUT : 0), .data.ptr = c};

	if (wr == c->want_write)
		return;
	c->want_write = wr;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Returns -1 when the connection was freed. */
static int
flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		long n;
		if (c->tls) {
			n = SSL_write(c->ssl, c->out + c->outoff, (int)(c->outlen - c->outoff));
			if (n <= 0) {
				int e = SSL_get_error(c->ssl, (int)n);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					arm(c, 1);
					return 0;
				}
				st.errors++;
				conn_free(c);
				return -1;
			}
		} else {
			n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					arm(c, 1);
					return 0;
				}
				if (errno != EPIPE && errno != ECONNRESET)
					st.errors++;
				conn_free(c);
				return -1;
			}
		}
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	arm(c, 0);
	if (c->closing) {
		if (c->tls)
			SSL_shutdown(c->ssl);
		shutdown(c->fd, SHUT_WR);
		conn_free(c);
		return -1;
	}
	return 0;
}

static void
reply(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (c->outlen + n > OUTBUF)
		return; /* cannot happen with our short replies */
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
}

static int
handshake(struct conn *c)
{
	int rc = SSL_do_handshake(c->ssl);

	if (rc == 1) {
		c->st = ST_CMD;
		c->tls = 1;
		if (SSL_session_reused(c->ssl))
			st.hs_resumed++;
		else
			st.hs_full++;
		snprintf(last_cipher, sizeof(last_cipher), "%s", SSL_get_cipher_name(c->ssl));
		{
			int nid = SSL_get_negotiated_group(c->ssl);
			const char *g = nid ? OBJ_nid2sn(nid & ~TLSEXT_nid_unknown) : NULL;
			snprintf(last_group, sizeof(last_group), "%s", g ? g : "?");
		}
		if (SSL_version(c->ssl) == TLS1_3_VERSION)
			st.tls13++;
		else
			st.tls12++;
		arm(c, 0);
		return 0;
	}
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		arm(c, 0);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		arm(c, 1);
		return 0;
	default:
		st.hs_errors++;
		conn_free(c);
		return -1;
	}
}

static int
ci_prefix(const char *line, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len >= n && strncasecmp(line, verb, n) == 0;
}

/* Process buffered input. Returns -1 when the connection was freed. */
static int
process(struct conn *c)
{
	size_t off = 0;

	while (off < c->inlen) {
		if (c->st == ST_BODY) {
			/* Scan for CRLF.CRLF; the body itself is dropped. The
			 * matcher starts in "after CRLF" state (354 follows a
			 * command line). */
			static const char eod[] = "\r\n.\r\n";
			while (off < c->inlen) {
				char ch = c->in[off++];
				if (ch == eod[c->body_state])
					c->body_state++;
				else
					c->body_state = ch == '\r' ? 1 : 0;
				if (c->body_state == 5)
					break;
			}
			if (c->body_state == 5) {
				c->st = ST_CMD;
				st.messages++;
				reply(c, "250 2.0.0 Ok: queued as BENCH\r\n");
			}
			continue;
		}
		char *nl = memchr(c->in + off, '\n', c->inlen - off);
		if (nl == NULL)
			break;
		char *line = c->in + off;
		size_t len = (size_t)(nl - line);
		off += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (ci_prefix(line, len, "EHLO")) {
			reply(c, "250-sink.bench.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n");
			if (ctx != NULL && !c->tls)
				reply(c, "250-STARTTLS\r\n");
			reply(c, "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
		} else if (ci_prefix(line, len, "HELO")) {
			reply(c, "250 sink.bench.test\r\n");
		} else if (ci_prefix(line, len, "MAIL")) {
			reply(c, "250 2.1.0 Ok\r\n");
		} else if (ci_prefix(line, len, "RCPT")) {
			reply(c, "250 2.1.5 Ok\r\n");
		} else if (ci_prefix(line, len, "DATA")) {
			reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
			c->st = ST_BODY;
			c->body_state = 2; /* "\r\n" already seen */
		} else if (ci_prefix(line, len, "RSET") || ci_prefix(line, len, "NOOP")) {
			reply(c, "250 2.0.0 Ok\r\n");
		} else if (ci_prefix(line, len, "QUIT")) {
			reply(c, "221 2.0.0 Bye\r\n");
			c->closing = 1;
			c->inlen = 0;
			return flush(c);
		} else if (ci_prefix(line, len, "STARTTLS") && ctx != NULL && !c->tls) {
			reply(c, "220 2.0.0 Ready to start TLS\r\n");
			/* Anything pipelined after STARTTLS is dropped. */
			c->inlen = 0;
			if (flush(c) == -1)
				return -1;
			c->ssl = SSL_new(ctx);
			SSL_set_fd(c->ssl, c->fd);
			SSL_set_accept_state(c->ssl);
			c->st = ST_HANDSHAKE;
			return handshake(c);
		} else {
			reply(c, "502 5.5.2 Error: command not recognized\r\n");
		}
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	if (c->inlen == INBUF) {
		st.errors++;
		conn_free(c);
		return -1;
	}
	return flush(c);
}

static void
on_readable(struct conn *c)
{
	for (;;) {
		long n;
		if (c->tls) {
			n = SSL_read(c->ssl, c->in + c->inlen, (int)(INBUF - c->inlen));
			if (n <= 0) {
				int e = SSL_get_error(c->ssl, (int)n);
				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					arm(c, 1);
					return;
				}
				/* EOF, close_notify or error: counted by kind, for
				 * diagnosing a relay that misbehaves */
				if (e == SSL_ERROR_ZERO_RETURN) {
					st.close_notify++;
				} else {
					unsigned long ec = ERR_peek_last_error();
					if (e == SSL_ERROR_SYSCALL && ec == 0)
						st.tls_eof++;
					else
						st.tls_read_errors++;
					if (ec != 0)
						ERR_error_string_n(ec, last_tls_error,
						                   sizeof(last_tls_error));
					else
						snprintf(last_tls_error, sizeof(last_tls_error),
						         "ssl_error=%d errno=%d at %s", e, errno,
						         c->closing ? "closing" : "open");
					ERR_clear_error();
				}
				conn_free(c);
				return;
			}
		} else {
			n = recv(c->fd, c->in + c->inlen, INBUF - c->inlen, 0);
			if (n == 0) {
				st.plain_eof++;
				conn_free(c);
				return;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				conn_free(c);
				return;
			}
		}
		c->inlen += (size_t)n;
		if (process(c) == -1)
			return;
		if (c->st == ST_HANDSHAKE)
			return;
	}
}

static void
on_event(struct conn *c, uint32_t ev)
{
	if (c->st == ST_HANDSHAKE) {
		if (handshake(c) == -1)
			return;
		if (c->st == ST_HANDSHAKE)
			return;
		/* fall through to read what followed the handshake */
		on_readable(c);
		return;
	}
	if ((ev & EPOLLOUT) && c->outlen > 0)
		if (flush(c) == -1)
			return;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(c);
}

int
main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *cert = NULL, *key = NULL;
	int port = 0, resume = 0, opt, lfd, one = 1;
	struct sockaddr_in sin;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "a:p:c:k:Rs:")) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'R':
			resume = 1;
			break;
		case 's':
			stats_file = optarg;
			break;
		default:
			fprintf(stderr,
			        "usage: sink -p PORT [-a ADDR] [-c CERT -k KEY] [-R] [-s FILE]\n");
			return 2;
		}
	}
	if (port <= 0)
		return 2;
	if (cert != NULL) {
		ctx = SSL_CTX_new(TLS_server_method());
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			ERR_print_errors_fp(stderr);
			return 1;
		}
		if (resume) {
			SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
			SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sink", 4);
		} else {
			SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
			SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
			SSL_CTX_set_num_tickets(ctx, 0);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(lfd, 4096) == -1) {
		perror("sink: bind/listen");
		return 1;
	}
	epfd = epoll_create1(0);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);

	while (!got_term) {
		struct epoll_event evs[256];
		int n = epoll_wait(epfd, evs, 256, 1000);

		if (got_usr1) {
			got_usr1 = 0;
			dump_stats("usr1");
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
					if (fd == -1)
						break;
					struct conn *c = calloc(1, sizeof(*c));
					if (c == NULL) {
						close(fd);
						continue;
					}
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
					st.sessions++;
					if (++st.open > st.open_max)
						st.open_max = st.open;
					reply(c, "220 sink.bench.test ESMTP bench sink\r\n");
					(void)flush(c);
				}
				continue;
			}
			on_event(evs[i].data.ptr, evs[i].events);
		}
	}
	dump_stats("exit");
	return 0;
}
