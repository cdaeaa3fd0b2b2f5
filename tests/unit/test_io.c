/*
 * test_io: the transport (proxy/io.c) over loopback TCP with a real libev
 * loop. Plaintext: connect, partial writes through small socket buffers,
 * pause/resume, a full input buffer stops reading, IO_LOWAT once per
 * drain, the output limit, EOF after the data (also while paused),
 * io_shutdown flushing before it closes, io_close from a callback.
 * TLS (mbed TLS, both ends in this process, certificates from
 * tests/data/tls, see gen.sh there): a STARTTLS-like start where the
 * server's "220" goes out in plaintext first, the certificate check,
 * payloads both ways larger than a 16 KiB record and than the buffer
 * high-water mark, decrypted bytes held inside mbed TLS while paused,
 * close_notify as EOF, TLS 1.2 as well as 1.3, and a handshake with a
 * peer that does not speak TLS. The TLS read-ahead (IO_TLS_READAHEAD):
 * bursts of small records that must all be delivered with nothing more
 * arriving on the socket (after the handshake, through a full io.in,
 * across pause/resume), EOF right after them, records around and above
 * the buffer's size, and the recv() count it exists to cut.
 *
 * Every wait has a deadline: a stall fails the test instead of hanging.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "cfg.h"
#include "io.h"
#include "tls.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/data"
#endif

#ifndef DEADLINE
#define DEADLINE 20.0 /* seconds for any one wait */
#endif
#define NLOG 64
#define NEV  (IO_TICKET + 1)

static struct ev_loop *loop;

/* ---- one end of a connection: an io and what its owner saw --------------------- */

struct side {
	const char *name;
	struct io io;
	int n[NEV];    /* events by kind */
	int log[NLOG]; /* events in order */
	int nlog;
	int last;          /* the latest event */
	unsigned char *rx; /* application bytes taken out of io.in */
	size_t rxlen, rxcap;
	int consume;       /* DATAIN: take everything from io.in */
	int pause_every;   /* DATAIN: pause (without taking) every n-th time; resumer takes */
	int close_on_data; /* DATAIN: io_close from inside the callback */
	int closed_in_cb;  /* io_close was called from a callback */
	int after_close;   /* events delivered after that */
	size_t lowat_out;  /* iobuf_used(out) when IO_LOWAT came */
	struct tls_ctx *tls;
	int ticket_saves;
	const unsigned char *burst; /* TLSREADY: send these records at once */
	const size_t *burst_sizes;
	size_t burst_n;
	size_t ra_at_ready; /* TLSREADY: bytes then in the TLS read-ahead */
};

static void tls_burst(struct side *from, const unsigned char *p, const size_t *sizes, size_t n);

static void
take(struct side *s)
{
	size_t n = iobuf_used(&s->io.in);

	if (n == 0)
		return;
	if (s->rxlen + n > s->rxcap) {
		size_t cap = s->rxcap ? s->rxcap : 65536;

		while (cap < s->rxlen + n)
			cap *= 2;
		s->rx = realloc(s->rx, cap);
		assert_non_null(s->rx);
		s->rxcap = cap;
	}
	memcpy(s->rx + s->rxlen, iobuf_data(&s->io.in), n);
	s->rxlen += n;
	iobuf_consume(&s->io.in, n);
}

static void
on_io(struct io *io, enum io_event ev, void *arg)
{
	struct side *s = arg;

	assert_ptr_equal(io, &s->io);
	assert_true(ev >= IO_CONNECTED && ev < NEV);
	if (s->closed_in_cb)
		s->after_close++;
	s->n[ev]++;
	s->last = ev;
	if (s->nlog < NLOG)
		s->log[s->nlog++] = ev;
	switch (ev) {
	case IO_DATAIN:
		if (s->close_on_data) {
			take(s);
			io_close(io);
			s->closed_in_cb = 1;
		} else if (s->pause_every && s->n[IO_DATAIN] % s->pause_every == 0) {
			io_pause(io, 1);
		} else if (s->consume) {
			take(s);
		}
		break;
	case IO_LOWAT:
		s->lowat_out = iobuf_used(&io->out);
		break;
	case IO_TLSREADY:
		s->ra_at_ready = io->ra != NULL ? io->ra->len : 0;
		if (s->burst_n > 0)
			tls_burst(s, s->burst, s->burst_sizes, s->burst_n);
		break;
	case IO_TICKET:
		if (s->tls != NULL) {
			tls_client_save(s->tls, io->ssl, "mx.test/127.0.0.1");
			s->ticket_saves++;
		}
		break;
	default:
		break;
	}
}

static void
side_init(struct side *s, const char *name, int fd, size_t inmax, size_t outmax, size_t lowat)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->consume = 1;
	io_init(&s->io, loop, fd, on_io, s, inmax, outmax, lowat);
}

static void
side_free(struct side *s)
{
	io_close(&s->io);
	free(s->rx);
	s->rx = NULL;
}

/* ---- the loop, with deadlines ------------------------------------------------------ */

static int deadline_hit;

static void
deadline_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	deadline_hit = 1;
}

/* Run the loop until cond holds, doing each after every iteration; fail
 * after DEADLINE seconds. */
#define RUN_UNTIL_EACH(cond, each)                                                                 \
	do {                                                                                       \
		ev_timer dl_;                                                                      \
		ev_timer_init(&dl_, deadline_cb, DEADLINE, 0);                                     \
		ev_timer_start(loop, &dl_);                                                        \
		deadline_hit = 0;                                                                  \
		while (!(cond) && !deadline_hit) {                                                 \
			ev_run(loop, EVRUN_ONCE);                                                  \
			each;                                                                      \
		}                                                                                  \
		ev_timer_stop(loop, &dl_);                                                         \
		if (!(cond))                                                                       \
			fail_msg("line %d: timed out waiting for %s", __LINE__, #cond);            \
	} while (0)
#define RUN_UNTIL(cond) RUN_UNTIL_EACH(cond, (void)0)

/* Run the loop for a while (for "nothing happens" checks); returns loop
 * iterations, so a watcher that spins shows up as a huge number. */
static unsigned
settle(double secs)
{
	ev_timer t;
	unsigned before = ev_iteration(loop);

	ev_timer_init(&t, deadline_cb, secs, 0);
	ev_timer_start(loop, &t);
	deadline_hit = 0;
	while (!deadline_hit)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return ev_iteration(loop) - before;
}

/* Resumer for sides that pause themselves: take what they hold and resume,
 * from outside any io callback, as an owner does on the other side's LOWAT. */
static struct side *resume_sides[2];

static void
resume_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	for (int i = 0; i < 2; i++) {
		struct side *s = resume_sides[i];

		if (s != NULL && (s->io.flags & IO_F_PAUSED) && !(s->io.flags & IO_F_CLOSED)) {
			take(s);
			io_pause(&s->io, 0);
		}
	}
}

static int
setup_loop(void **state)
{
	(void)state;
	loop = ev_loop_new(EVFLAG_AUTO);
	return loop != NULL ? 0 : -1;
}

static int
teardown_loop(void **state)
{
	(void)state;
	ev_loop_destroy(loop);
	loop = NULL;
	return 0;
}

/* ---- sockets ------------------------------------------------------------------------- */

static void
set_bufs(int fd, int bufsz)
{
	if (bufsz > 0) {
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz)), 0);
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz)), 0);
	}
}

static int
listener(struct sockaddr_in *sin, int bufsz)
{
	socklen_t len = sizeof(*sin);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	set_bufs(l, bufsz); /* inherited by accepted sockets */
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(listen(l, 8), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)sin, &len), 0);
	return l;
}

/* A connected non-blocking loopback TCP pair; bufsz > 0 shrinks the
 * kernel buffers so that large writes go out in pieces. */
static void
tcp_pair(int fds[2], int bufsz)
{
	struct sockaddr_in sin;
	int l = listener(&sin, bufsz), c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(c >= 0);
	set_bufs(c, bufsz);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	fds[1] = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fds[1] >= 0);
	assert_int_equal(fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK), 0);
	fds[0] = c;
	close(l);
}

/* A connected non-blocking AF_UNIX stream pair: each send() is in the
 * peer's queue when it returns and one recv() takes several of them, so a
 * burst is read as one, unlike loopback TCP where autocorking may hold
 * small segments back for a moment. */
static void
unix_pair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
	                 0);
}

/* Deterministic, non-repeating-looking payload. */
static unsigned char *
payload(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n ? n : 1);
	uint32_t x = 0x9e3779b9u ^ seed;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

/* ---- connect ------------------------------------------------------------------------ */

static void
test_connect(void **state)
{
	struct sockaddr_in sin;
	int l = listener(&sin, 0), fd;
	struct side c, s;

	(void)state;
	side_init(&c, "client", -1, 65536, 65536, 0);
	assert_int_equal(io_connect(&c.io, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_true(c.io.fd >= 0);
	RUN_UNTIL(c.n[IO_CONNECTED] == 1);
	assert_false(c.io.flags & IO_F_CONNECTING);
	assert_int_equal(c.n[IO_ERROR], 0);

	fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fd >= 0);
	side_init(&s, "server", fd, 65536, 65536, 0);
	assert_int_equal(io_printf(&s.io, "220 %s ESMTP\r\n", "mx.test"), 0);
	RUN_UNTIL(c.rxlen == 19);
	assert_memory_equal(c.rx, "220 mx.test ESMTP\r\n", 19);
	assert_int_equal(c.n[IO_CONNECTED], 1); /* once */
	side_free(&c);
	side_free(&s);
	close(l);
}

static void
test_connect_refused(void **state)
{
	struct sockaddr_in sin;
	int l = listener(&sin, 0);
	struct side c;

	(void)state;
	close(l); /* nobody listens on that port now */
	side_init(&c, "client", -1, 65536, 65536, 0);
	if (io_connect(&c.io, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		assert_non_null(strstr(c.io.err, "connect"));
	} else {
		RUN_UNTIL(c.n[IO_ERROR] == 1);
		assert_non_null(strstr(c.io.err, "connect"));
		assert_non_null(strstr(c.io.err, strerror(ECONNREFUSED)));
	}
	assert_int_equal(c.n[IO_CONNECTED], 0);
	side_free(&c);
}

/* ---- bulk data, partial writes --------------------------------------------------------- */

static void
test_bulk_both_ways(void **state)
{
	enum { N = 3 * 1024 * 1024 + 17 };
	unsigned char *pa = payload(N, 1), *pb = payload(N, 2);
	struct side a, b;
	int fds[2];
	int partial = 0;

	(void)state;
	tcp_pair(fds, 4096);
	side_init(&a, "a", fds[0], 1 << 20, 4 << 20, 0);
	side_init(&b, "b", fds[1], 1 << 20, 4 << 20, 0);
	assert_int_equal(io_write(&a.io, pa, N), 0);
	assert_int_equal(io_write(&b.io, pb, N), 0);
	/* the socket takes it in pieces: io.out is seen part-sent */
	RUN_UNTIL_EACH(a.rxlen == N && b.rxlen == N,
	               partial |= iobuf_used(&a.io.out) > 0 && iobuf_used(&a.io.out) < N);
	assert_true(partial);
	assert_memory_equal(b.rx, pa, N);
	assert_memory_equal(a.rx, pb, N);
	assert_int_equal(a.io.nwritten, N);
	assert_int_equal(b.io.nread, N);
	assert_int_equal(b.io.nwritten, N);
	assert_int_equal(a.io.nread, N);
	assert_int_equal(a.n[IO_ERROR] + b.n[IO_ERROR] + a.n[IO_EOF] + b.n[IO_EOF], 0);
	/* drained: no write watcher left, reading goes on, no spinning */
	assert_int_equal(iobuf_used(&a.io.out), 0);
	assert_false(ev_is_active(&a.io.ww));
	assert_false(ev_is_active(&b.io.ww));
	assert_true(ev_is_active(&a.io.rw));
	assert_true(ev_is_active(&b.io.rw));
	assert_true(settle(0.1) < 50);
	side_free(&a);
	side_free(&b);
	free(pa);
	free(pb);
}

/* ---- pause / resume --------------------------------------------------------------------- */

static void
test_pause_resume(void **state)
{
	enum { N = 200000 };
	unsigned char *p = payload(N, 3);
	struct side a, b;
	int fds[2];
	size_t got;

	(void)state;
	tcp_pair(fds, 4096);
	side_init(&a, "a", fds[0], 65536, 1 << 20, 0);
	side_init(&b, "b", fds[1], 1 << 20, 1 << 20, 0);
	io_pause(&b.io, 1);
	assert_false(ev_is_active(&b.io.rw));
	assert_int_equal(io_write(&a.io, p, N), 0);
	assert_true(settle(0.2) < 100);
	/* nothing read while paused: memory stays flat, the sender backs up */
	assert_int_equal(b.n[IO_DATAIN], 0);
	assert_int_equal(b.io.nread, 0);
	assert_int_equal(iobuf_used(&b.io.in), 0);
	assert_true(iobuf_used(&a.io.out) > 0);

	io_pause(&b.io, 0);
	assert_true(ev_is_active(&b.io.rw));
	RUN_UNTIL(b.rxlen >= N / 2);
	/* pause again mid-stream, then finish */
	io_pause(&b.io, 1);
	settle(0.05);
	got = b.rxlen;
	settle(0.1);
	assert_int_equal(b.rxlen, got);
	io_pause(&b.io, 0);
	RUN_UNTIL(b.rxlen == N);
	assert_memory_equal(b.rx, p, N);
	side_free(&a);
	side_free(&b);
	free(p);
}

/* A full input buffer stops reading; the owner empties it and calls
 * io_update() (or io_pause(io, 0)) to go on. */
static void
test_inbuf_full(void **state)
{
	enum { N = 300000, INMAX = 16384 };
	unsigned char *p = payload(N, 4);
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&a, "a", fds[0], 65536, 1 << 20, 0);
	side_init(&b, "b", fds[1], INMAX, 65536, 0);
	b.consume = 0;
	assert_int_equal(io_write(&a.io, p, N), 0);
	RUN_UNTIL(iobuf_used(&b.io.in) == INMAX);
	assert_true(settle(0.2) < 100);
	assert_int_equal(iobuf_used(&b.io.in), INMAX); /* never more than inmax */
	assert_int_equal(b.io.nread, INMAX);
	assert_false(ev_is_active(&b.io.rw));
	assert_true(b.io.in.cap <= INMAX + 4096);

	/* from outside the callback: take, recompute, repeat */
	while (b.rxlen < N) {
		int before = b.n[IO_DATAIN];

		take(&b);
		if (b.rxlen & 1)
			io_update(&b.io);
		else
			io_pause(&b.io, 0);
		if (b.rxlen < N)
			RUN_UNTIL(b.n[IO_DATAIN] > before);
		assert_true(iobuf_used(&b.io.in) <= INMAX);
	}
	assert_memory_equal(b.rx, p, N);
	side_free(&a);
	side_free(&b);
	free(p);
}

/*
 * KNOWN BUG (reported, not fixed here): when one read fills io.in to
 * inmax, io_on_read() stops the read watcher *before* the DATAIN
 * callback; an owner that empties io.in inside the callback (what
 * monitor.c's pump and relay.c's body_forward do) is never read from
 * again unless something else calls io_update()/io_pause(). With inmax
 * 64 KiB and lowat = buffer_low = 64 KiB the other side's LOWAT is not
 * armed either, so a fast client stalls until its timeout. Over TLS the
 * rest of a record also waits inside mbed TLS with nothing on the socket.
 * (A bug found by this test, fixed in io.c.)
 */
static void
test_consume_in_callback(void **state)
{
	enum { N = 300000, INMAX = 4096 };
	unsigned char *p = payload(N, 5);
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&a, "a", fds[0], 65536, 1 << 20, 0);
	side_init(&b, "b", fds[1], INMAX, 65536, 0);
	assert_int_equal(io_write(&a.io, p, N), 0);
	RUN_UNTIL(b.rxlen == N);
	assert_memory_equal(b.rx, p, N);
	side_free(&a);
	side_free(&b);
	free(p);
}

/* ---- IO_LOWAT and the output limit -------------------------------------------------------- */

static void
test_lowat(void **state)
{
	enum { N = 512 * 1024, LOWAT = 8192 };
	unsigned char *p = payload(N, 6);
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 4096);
	side_init(&a, "a", fds[0], 65536, 1 << 20, LOWAT);
	side_init(&b, "b", fds[1], 1 << 20, 65536, 0);
	io_pause(&b.io, 1);
	assert_int_equal(io_write(&a.io, p, N), 0);
	settle(0.2);
	assert_int_equal(a.n[IO_LOWAT], 0); /* still above the mark */
	assert_true(iobuf_used(&a.io.out) > LOWAT);

	io_pause(&b.io, 0);
	RUN_UNTIL(a.n[IO_LOWAT] == 1);
	assert_true(a.lowat_out <= LOWAT);
	RUN_UNTIL(b.rxlen == N);
	settle(0.05);
	assert_int_equal(a.n[IO_LOWAT], 1); /* once per drain, no repeats */
	assert_memory_equal(b.rx, p, N);

	/* a write that never rises above the mark does not arm it */
	assert_int_equal(io_write(&a.io, p, LOWAT), 0);
	RUN_UNTIL(b.rxlen == N + LOWAT);
	settle(0.05);
	assert_int_equal(a.n[IO_LOWAT], 1);

	/* rising above it again (the reader paused, so it stays queued) does */
	io_pause(&b.io, 1);
	settle(0.05);
	assert_int_equal(io_write(&a.io, p, N), 0);
	settle(0.1);
	assert_true(iobuf_used(&a.io.out) > LOWAT);
	io_pause(&b.io, 0);
	RUN_UNTIL(a.n[IO_LOWAT] == 2 && b.rxlen == 2 * N + LOWAT);
	side_free(&a);
	side_free(&b);
	free(p);
}

static void
test_out_limit(void **state)
{
	enum { OUTMAX = 65536 };
	unsigned char *p = payload(16 * OUTMAX, 7);
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 4096);
	side_init(&a, "a", fds[0], 65536, OUTMAX, 0);
	side_init(&b, "b", fds[1], 1 << 20, 65536, 0);
	io_pause(&b.io, 1);
	/* io_write sends what the socket takes at once: fill the socket
	 * buffers first, then the output buffer up to its limit. */
	size_t accepted = 0;
	while (accepted < 16 * OUTMAX - 1 && io_write(&a.io, p + accepted, 1) == 0)
		accepted++;
	assert_true(accepted >= OUTMAX);
	assert_int_equal(iobuf_used(&a.io.out), OUTMAX);
	assert_non_null(strstr(a.io.err, "limit"));
	assert_int_equal(io_printf(&a.io, "%s", "more"), -1);
	/* what was accepted still arrives, intact */
	io_pause(&b.io, 0);
	RUN_UNTIL(b.rxlen == accepted);
	assert_memory_equal(b.rx, p, accepted);
	assert_int_equal(a.n[IO_ERROR], 0);
	/* room again once drained */
	assert_int_equal(io_write(&a.io, p + accepted, 1), 0);
	RUN_UNTIL(b.rxlen == accepted + 1);
	assert_int_equal(b.rx[accepted], p[accepted]);
	side_free(&a);
	side_free(&b);
	free(p);
}

/* ---- EOF, shutdown, close ---------------------------------------------------------------- */

static void
test_eof_after_data(void **state)
{
	struct side b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&b, "b", fds[1], 65536, 65536, 0);
	assert_int_equal(send(fds[0], "QUIT\r\n", 6, 0), 6);
	close(fds[0]); /* data and FIN arrive together */
	RUN_UNTIL(b.n[IO_EOF] == 1);
	assert_int_equal(b.rxlen, 6);
	assert_memory_equal(b.rx, "QUIT\r\n", 6);
	assert_int_equal(b.n[IO_DATAIN], 1);
	assert_int_equal(b.log[0], IO_DATAIN); /* data first, then EOF */
	assert_int_equal(b.last, IO_EOF);
	assert_true(b.io.flags & IO_F_EOF);
	assert_false(ev_is_active(&b.io.rw));
	assert_null(b.io.ra); /* plaintext: no TLS read-ahead allocated */
	assert_true(b.io.nrecv >= 1);
	assert_true(settle(0.1) < 50); /* no repeated EOF, no spinning */
	assert_int_equal(b.n[IO_EOF], 1);
	assert_int_equal(b.n[IO_ERROR], 0);
	side_free(&b);
}

static void
test_eof_while_paused(void **state)
{
	struct side b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&b, "b", fds[1], 65536, 65536, 0);
	io_pause(&b.io, 1);
	assert_int_equal(send(fds[0], "x", 1, 0), 1);
	close(fds[0]);
	settle(0.1);
	assert_int_equal(b.nlog, 0); /* a paused side hears nothing, not even EOF */
	io_pause(&b.io, 0);
	RUN_UNTIL(b.n[IO_EOF] == 1);
	assert_int_equal(b.rxlen, 1);
	assert_int_equal(b.log[0], IO_DATAIN);
	assert_int_equal(b.log[1], IO_EOF);
	side_free(&b);
}

/* io_shutdown: everything queued reaches the peer before the close. */
static void
test_shutdown_flushes(void **state)
{
	enum { N = 2 * 1024 * 1024 + 3 };
	unsigned char *p = payload(N, 8);
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 4096);
	side_init(&a, "a", fds[0], 65536, 4 << 20, 0);
	side_init(&b, "b", fds[1], 1 << 20, 65536, 0);
	assert_int_equal(io_write(&a.io, p, N), 0);
	io_shutdown(&a.io);
	assert_false(a.io.flags & IO_F_CLOSED); /* not before the flush */
	RUN_UNTIL(b.n[IO_EOF] == 1);
	assert_int_equal(b.rxlen, N);
	assert_memory_equal(b.rx, p, N);
	assert_int_equal(b.last, IO_EOF);
	/* the shutting side reports its own end once, closed */
	RUN_UNTIL(a.n[IO_EOF] == 1);
	assert_true(a.io.flags & IO_F_CLOSED);
	assert_int_equal(a.io.fd, -1);
	assert_int_equal(a.io.nwritten, N);
	assert_int_equal(a.n[IO_ERROR], 0);
	assert_int_equal(io_write(&a.io, "x", 1), -1);
	io_shutdown(&a.io); /* after close: nothing */
	settle(0.05);
	assert_int_equal(a.n[IO_EOF], 1);
	side_free(&a);
	side_free(&b);
	free(p);
}

static void
test_shutdown_empty(void **state)
{
	struct side a, b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&a, "a", fds[0], 65536, 65536, 0);
	side_init(&b, "b", fds[1], 65536, 65536, 0);
	io_shutdown(&a.io);
	RUN_UNTIL(b.n[IO_EOF] == 1 && a.n[IO_EOF] == 1);
	assert_int_equal(b.n[IO_DATAIN], 0);
	assert_int_equal(b.rxlen, 0);
	side_free(&a);
	side_free(&b);
}

/* io_close from a callback: io.c delivers nothing more for that io. */
static void
test_close_in_callback(void **state)
{
	struct side b;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&b, "b", fds[1], 65536, 65536, 0);
	b.close_on_data = 1;
	assert_int_equal(send(fds[0], "DATA\r\n", 6, 0), 6);
	close(fds[0]); /* the EOF would come in the same read */
	RUN_UNTIL(b.n[IO_DATAIN] == 1);
	settle(0.1);
	assert_int_equal(b.after_close, 0);
	assert_int_equal(b.n[IO_EOF], 0);
	assert_true(b.io.flags & IO_F_CLOSED);
	assert_int_equal(b.io.fd, -1);
	assert_false(ev_is_active(&b.io.rw));
	assert_false(ev_is_active(&b.io.ww));
	assert_null(b.io.in.data); /* buffers released */
	assert_int_equal(b.rxlen, 6);
	io_close(&b.io); /* idempotent */
	io_close(NULL);  /* NULL-safe */
	assert_int_equal(io_write(&b.io, "x", 1), -1);
	side_free(&b);
}

/* ---- TLS -------------------------------------------------------------------------------- */

static struct cfg *tcfg;
static struct tls_ctx *tctx;

static void
set_str(char **dst, const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, rel);
	free(*dst);
	*dst = strdup(path);
	assert_non_null(*dst);
}

static int
setup_tls(void **state)
{
	char err[256] = "";

	if (setup_loop(state) != 0)
		return -1;
	if ((tcfg = cfg_defaults()) == NULL)
		return -1;
	set_str(&tcfg->ca_file, "tls/ca.pem");
	set_str(&tcfg->client_cert, "tls/server.pem");
	set_str(&tcfg->client_key, "tls/server.key");
	tcfg->client_tls = true;
	tcfg->tls_resumption = true;
	if ((tctx = tls_new(tcfg, err, sizeof(err))) == NULL) {
		print_error("tls_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown_tls(void **state)
{
	tls_free(tctx);
	tctx = NULL;
	cfg_unref(tcfg);
	tcfg = NULL;
	return teardown_loop(state);
}

static mbedtls_ssl_context *
new_ssl(void)
{
	mbedtls_ssl_context *ssl = malloc(sizeof(*ssl));

	assert_non_null(ssl);
	mbedtls_ssl_init(ssl);
	return ssl;
}

/* The server io greets in plaintext and starts TLS right away (its 220 must
 * leave first); the client reads the 220, then starts TLS for name. */
static void
tls_connect(struct side *c, struct side *s, const char *name)
{
	mbedtls_ssl_context *sssl = new_ssl(), *cssl = new_ssl();

	assert_int_equal(tls_server_setup(tctx, sssl), 0);
	assert_int_equal(io_write(&s->io, "220 ready\r\n", 11), 0);
	io_start_tls(&s->io, sssl, 1);
	/* The 220 either left at once (io_write sends what the socket takes)
	 * or waits for the watcher: either way no TLS byte precedes it. */
	assert_true((s->io.flags & IO_F_TLS_WAIT) || (s->io.flags & IO_F_HANDSHAKE));

	RUN_UNTIL(c->rxlen == 11);
	assert_memory_equal(c->rx, "220 ready\r\n", 11); /* plaintext, before any TLS byte */
	c->rxlen = 0;
	assert_int_equal(tls_client_setup(tctx, cssl, name, NULL), 0);
	io_start_tls(&c->io, cssl, 0);
	RUN_UNTIL(c->n[IO_TLSREADY] == 1 && s->n[IO_TLSREADY] == 1);
	assert_true(c->io.flags & IO_F_TLS);
	assert_true(s->io.flags & IO_F_TLS);
	assert_false(c->io.flags & IO_F_HANDSHAKE);
	assert_int_equal(c->n[IO_ERROR] + s->n[IO_ERROR], 0);
	assert_non_null(io_tls_version(&c->io));
	assert_non_null(io_tls_cipher(&c->io));
	assert_string_equal(io_tls_version(&c->io), io_tls_version(&s->io));
}

static void
test_tls_data(void **state)
{
	/* > 16 KiB records, > the default 256 KiB buffer_high, odd sizes */
	static const size_t sizes[] = {1, 16383, 16384, 16385, 300007, 1048576 + 13};
	struct side c, s;
	int fds[2];
	ev_timer resumer;
	size_t total = 0;

	(void)state;
	tcp_pair(fds, 8192);
	side_init(&c, "client", fds[0], 65536, 4 << 20, 16384);
	side_init(&s, "server", fds[1], 65536, 4 << 20, 16384);
	c.tls = tctx;
	tls_connect(&c, &s, "mx.test");
	assert_string_equal(io_tls_version(&c.io), "TLSv1.3");

	/* the certificate check the relay does after IO_TLSREADY */
	assert_int_equal(tls_verify_peer(tctx, c.io.ssl, "mx.test"), 0);
	assert_int_equal(tls_verify_peer(tctx, c.io.ssl, "a.mx.test"), 0);
	assert_true(tls_verify_peer(tctx, c.io.ssl, "mx.example.com") &
	            MBEDTLS_X509_BADCERT_CN_MISMATCH);
	assert_true(tls_verify_peer(tctx, c.io.ssl, "a.b.mx.test") &
	            MBEDTLS_X509_BADCERT_CN_MISMATCH);

	/* both ways at once; each receiver pauses itself every third DATAIN
	 * and is resumed from a timer, so that decrypted bytes wait inside
	 * mbed TLS across pauses */
	c.pause_every = 3;
	s.pause_every = 3;
	resume_sides[0] = &c;
	resume_sides[1] = &s;
	ev_timer_init(&resumer, resume_cb, 0.001, 0.001);
	ev_timer_start(loop, &resumer);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *pc = payload(sizes[i], 10 + (unsigned)i);
		unsigned char *ps = payload(sizes[i], 20 + (unsigned)i);

		assert_int_equal(io_write(&c.io, pc, sizes[i]), 0);
		assert_int_equal(io_write(&s.io, ps, sizes[i]), 0);
		RUN_UNTIL(s.rxlen == sizes[i] && c.rxlen == sizes[i]);
		if (memcmp(s.rx, pc, sizes[i]) != 0 || memcmp(c.rx, ps, sizes[i]) != 0)
			fail_msg("payload %zu (%zu bytes) corrupted", i, sizes[i]);
		s.rxlen = c.rxlen = 0;
		total += sizes[i];
		free(pc);
		free(ps);
	}
	ev_timer_stop(loop, &resumer);
	resume_sides[0] = resume_sides[1] = NULL;
	assert_int_equal(c.io.nwritten, total);
	assert_int_equal(s.io.nread, total);
	assert_int_equal(s.io.nwritten, total + 11); /* + the plaintext 220 */
	assert_int_equal(c.io.nread, total + 11);
	assert_int_equal(c.n[IO_ERROR] + s.n[IO_ERROR] + c.n[IO_EOF] + s.n[IO_EOF], 0);
	assert_true(c.n[IO_LOWAT] >= 1);
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_PROTO_TLS1_3)
	/* TLS 1.3 tickets surface as IO_TICKET on the client */
	assert_true(c.n[IO_TICKET] >= 1);
	assert_int_equal(c.ticket_saves, c.n[IO_TICKET]);
#endif
	assert_false(ev_is_active(&c.io.ww));
	assert_true(settle(0.1) < 50);

	/* close_notify after the last bytes: the peer gets them, then EOF */
	c.pause_every = s.pause_every = 0;
	assert_int_equal(io_write(&c.io, "QUIT\r\n", 6), 0);
	io_shutdown(&c.io);
	RUN_UNTIL(s.n[IO_EOF] == 1);
	assert_int_equal(s.rxlen, 6);
	assert_memory_equal(s.rx, "QUIT\r\n", 6);
	assert_int_equal(s.last, IO_EOF);
	assert_int_equal(s.n[IO_ERROR], 0);
	assert_true(c.io.flags & IO_F_CLOSED);
	side_free(&c);
	side_free(&s);
}

/* One record, a receiver with a small input buffer that pauses: the rest
 * of the record sits decrypted inside mbed TLS, with nothing on the socket
 * to wake the loop. Resuming must deliver it. (One record: a second one
 * would still be on the socket and wake the loop by itself.) */
static void
test_tls_pending_after_pause(void **state)
{
	enum { N = 3 * 4096, INMAX = 4096 };
	unsigned char *p = payload(N, 30);
	struct side c, s;
	ev_timer resumer;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&c, "client", fds[0], INMAX, 65536, 0);
	side_init(&s, "server", fds[1], 65536, 65536, 0);
	tls_connect(&c, &s, "mx.test");
	c.pause_every = 1; /* pause at every DATAIN, take nothing */
	c.n[IO_DATAIN] = 0;
	assert_int_equal(io_write(&s.io, p, N), 0);
	RUN_UNTIL(c.n[IO_DATAIN] == 1);
	assert_int_equal(iobuf_used(&c.io.in), INMAX);
	settle(0.1);
	assert_int_equal(c.n[IO_DATAIN], 1);
	assert_true(mbedtls_ssl_get_bytes_avail(c.io.ssl) > 0);

	/* the owner's resume path, from inside the loop as in the daemon:
	 * take, io_pause(io, 0); each resume yields the next piece */
	resume_sides[0] = &c;
	ev_timer_init(&resumer, resume_cb, 0.01, 0.01);
	ev_timer_start(loop, &resumer);
	RUN_UNTIL(c.rxlen + iobuf_used(&c.io.in) == N);
	ev_timer_stop(loop, &resumer);
	resume_sides[0] = NULL;
	take(&c);
	assert_int_equal(c.n[IO_DATAIN], N / INMAX);
	assert_memory_equal(c.rx, p, N);
	assert_int_equal(c.n[IO_ERROR], 0);
	side_free(&c);
	side_free(&s);
	free(p);
}

/* KNOWN BUG, TLS side of test_consume_in_callback: the owner takes
 * everything inside DATAIN; the rest of the record waits in mbed TLS. */
static void
test_tls_consume_in_callback(void **state)
{
	enum { N = 200000, INMAX = 4096 };
	unsigned char *p = payload(N, 31);
	struct side c, s;
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&c, "client", fds[0], INMAX, 65536, 0);
	side_init(&s, "server", fds[1], 65536, 1 << 20, 0);
	tls_connect(&c, &s, "mx.test");
	assert_int_equal(io_write(&s.io, p, N), 0);
	RUN_UNTIL(c.rxlen == N);
	assert_memory_equal(c.rx, p, N);
	side_free(&c);
	side_free(&s);
	free(p);
}

/* TLS 1.2 too: a server limited to it, built here from the same files. */
static void
test_tls12(void **state)
{
	enum { N = 100000 };
	unsigned char *pc = payload(N, 40), *ps = payload(N, 41);
	mbedtls_ssl_config conf;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_context *sssl = new_ssl(), *cssl = new_ssl();
	char path[4096];
	struct side c, s;
	int fds[2];

	(void)state;
	mbedtls_ssl_config_init(&conf);
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&key);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/tls/server.pem", TEST_DATA_DIR);
	assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
	snprintf(path, sizeof(path), "%s/tls/server.key", TEST_DATA_DIR);
	assert_int_equal(mbedtls_pk_parse_keyfile(&key, path, NULL, mbedtls_ctr_drbg_random, &drbg),
	                 0);
	assert_int_equal(mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER,
	                                             MBEDTLS_SSL_TRANSPORT_STREAM,
	                                             MBEDTLS_SSL_PRESET_DEFAULT),
	                 0);
	mbedtls_ssl_conf_min_tls_version(&conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	assert_int_equal(mbedtls_ssl_conf_own_cert(&conf, &crt, &key), 0);
	assert_int_equal(mbedtls_ssl_setup(sssl, &conf), 0);

	tcp_pair(fds, 8192);
	side_init(&c, "client", fds[0], 65536, 1 << 20, 0);
	side_init(&s, "server", fds[1], 65536, 1 << 20, 0);
	io_start_tls(&s.io, sssl, 1); /* nothing queued: handshake starts now */
	assert_true(s.io.flags & IO_F_HANDSHAKE);
	assert_int_equal(tls_client_setup(tctx, cssl, "mx.test", NULL), 0);
	io_start_tls(&c.io, cssl, 0);
	RUN_UNTIL(c.n[IO_TLSREADY] == 1 && s.n[IO_TLSREADY] == 1);
	assert_string_equal(io_tls_version(&c.io), "TLSv1.2");
	assert_int_equal(tls_verify_peer(tctx, c.io.ssl, "mx.test"), 0);

	assert_int_equal(io_write(&c.io, pc, N), 0);
	assert_int_equal(io_write(&s.io, ps, N), 0);
	RUN_UNTIL(s.rxlen == N && c.rxlen == N);
	assert_memory_equal(s.rx, pc, N);
	assert_memory_equal(c.rx, ps, N);
	io_shutdown(&s.io);
	RUN_UNTIL(c.n[IO_EOF] == 1);
	assert_int_equal(c.n[IO_ERROR] + s.n[IO_ERROR], 0);

	side_free(&c);
	side_free(&s); /* frees sssl before conf goes */
	mbedtls_ssl_config_free(&conf);
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&crt);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	free(pc);
	free(ps);
}

/* ---- TLS read-ahead ------------------------------------------------------------------------ */

/* Records of the given sizes from p, each its own mbedtls_ssl_write (one
 * record, one send()), straight on from's TLS context: the receiver, not
 * running meanwhile, finds them all queued on its socket. */
static void
tls_burst(struct side *from, const unsigned char *p, const size_t *sizes, size_t n)
{
	double until = ev_time() + DEADLINE;

	for (size_t i = 0; i < n; i++) {
		for (size_t done = 0; done < sizes[i];) {
			int rc = mbedtls_ssl_write(from->io.ssl, p + done, sizes[i] - done);

			if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
				/* a full socket: let the receiver drain it (the
				 * same write again, as mbed TLS requires) */
				if (ev_time() > until)
					fail_msg("%s: burst stuck at record %zu", from->name, i);
				ev_run(loop, EVRUN_NOWAIT);
				continue;
			}
			/* a record holds at most what mbed TLS's buffer does:
			 * a larger one goes out as two */
			assert_true(rc > 0);
			done += (size_t)rc;
		}
		p += sizes[i];
	}
}

static size_t
sum(const size_t *sizes, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += sizes[i];
	return t;
}

/* Client and server over a UNIX socket pair (bursts arrive whole) with TLS
 * up; the client's input buffer holds inmax bytes. */
static void
tls_unix_pair(struct side *c, struct side *s, size_t inmax)
{
	int fds[2];

	unix_pair(fds);
	side_init(c, "client", fds[0], inmax, 65536, 0);
	side_init(s, "server", fds[1], 65536, 65536, 0);
	tls_connect(c, s, "mx.test");
}

/* The client sends a burst of small records right behind its Finished (an
 * SMTP client's EHLO after STARTTLS), then nothing. The server's handshake
 * reads them into the read-ahead with the Finished; only the post-handshake
 * check can deliver them, the socket stays silent. */
static void
test_tls_burst_after_handshake(void **state)
{
	enum { NREC = 24 };
	size_t sizes[NREC], total;
	unsigned char *p;
	struct side c, s;
	int fds[2];

	(void)state;
	for (size_t i = 0; i < NREC; i++)
		sizes[i] = 10 + 7 * i; /* 10 .. 171 bytes: SMTP lines */
	total = sum(sizes, NREC);
	p = payload(total, 50);
	unix_pair(fds);
	side_init(&c, "client", fds[0], 65536, 65536, 0);
	side_init(&s, "server", fds[1], 65536, 65536, 0);
	c.burst = p;
	c.burst_sizes = sizes;
	c.burst_n = NREC;
	tls_connect(&c, &s, "mx.test");
	assert_true(s.ra_at_ready > 0); /* the burst came in with the Finished */
	RUN_UNTIL(s.rxlen == total);
	assert_memory_equal(s.rx, p, total);
	assert_int_equal(s.n[IO_ERROR] + s.n[IO_EOF], 0);
	/* without the read-ahead: two recv() per record, one per header and
	 * one per body; with it, one for the whole burst (plus the handshake
	 * and the EAGAINs) */
	assert_true(s.io.nrecv < NREC);
	side_free(&c);
	side_free(&s);
	assert_null(s.io.ra); /* freed by io_close */
	free(p);
}

/* A burst of records each exactly as large as io.in: every read fills it
 * and stops with the rest in the read-ahead (mbed TLS itself holds
 * nothing: mbedtls_ssl_check_pending is false). The owner empties io.in
 * inside DATAIN; the rest must follow with the socket silent. */
static void
test_tls_burst_small_inbuf(void **state)
{
	enum { NREC = 40, INMAX = 64 };
	size_t sizes[NREC];
	unsigned char *p = payload(NREC * INMAX, 51);
	unsigned long before;
	struct side c, s;

	(void)state;
	for (size_t i = 0; i < NREC; i++)
		sizes[i] = INMAX;
	tls_unix_pair(&c, &s, INMAX);
	c.n[IO_DATAIN] = 0;
	before = c.io.nrecv;
	tls_burst(&s, p, sizes, NREC);
	RUN_UNTIL(c.rxlen == NREC * INMAX);
	assert_memory_equal(c.rx, p, NREC * INMAX);
	assert_int_equal(c.n[IO_DATAIN], NREC); /* one record per full io.in */
	assert_int_equal(c.n[IO_ERROR] + c.n[IO_EOF], 0);
	assert_true(c.io.nrecv - before <= 3); /* the burst, an EAGAIN, maybe a ticket */
	assert_true(settle(0.1) < 50);         /* and no spinning once drained */
	side_free(&c);
	side_free(&s);
	free(p);
}

/* As above, but the owner pauses at each DATAIN without taking anything
 * and resumes later from a timer: the records wait in the read-ahead
 * while paused (nothing is read meanwhile) and each resume delivers the
 * next one without any new socket readiness or recv(). */
static void
test_tls_pause_with_readahead(void **state)
{
	enum { NREC = 12, INMAX = 100 };
	size_t sizes[NREC];
	unsigned char *p = payload(NREC * INMAX, 52);
	unsigned long nrecv;
	struct side c, s;
	ev_timer resumer;

	(void)state;
	for (size_t i = 0; i < NREC; i++)
		sizes[i] = INMAX;
	tls_unix_pair(&c, &s, INMAX);
	settle(0.05); /* a TLS 1.3 ticket, if any, is read before the burst */
	c.n[IO_DATAIN] = 0;
	c.pause_every = 1;
	tls_burst(&s, p, sizes, NREC);
	RUN_UNTIL(c.n[IO_DATAIN] == 1);
	assert_true(c.io.flags & IO_F_PAUSED);
	assert_int_equal(iobuf_used(&c.io.in), INMAX);
	assert_non_null(c.io.ra);
	assert_true(c.io.ra->len > 0);                     /* the rest waits here */
	assert_false(mbedtls_ssl_check_pending(c.io.ssl)); /* and not in mbed TLS */
	nrecv = c.io.nrecv;
	assert_true(settle(0.1) < 50);
	assert_int_equal(c.n[IO_DATAIN], 1); /* paused: nothing more */
	assert_int_equal(c.io.nrecv, nrecv);

	resume_sides[0] = &c;
	ev_timer_init(&resumer, resume_cb, 0.001, 0.001);
	ev_timer_start(loop, &resumer);
	RUN_UNTIL(c.rxlen + iobuf_used(&c.io.in) == NREC * INMAX);
	ev_timer_stop(loop, &resumer);
	resume_sides[0] = NULL;
	take(&c);
	assert_memory_equal(c.rx, p, NREC * INMAX);
	assert_int_equal(c.n[IO_DATAIN], NREC);
	assert_int_equal(c.io.nrecv, nrecv); /* all from the read-ahead */
	assert_int_equal(c.n[IO_ERROR] + c.n[IO_EOF], 0);
	side_free(&c);
	side_free(&s);
	free(p);
}

/* Records, then the peer's end in the same burst: with close_notify, and
 * as a bare FIN (mbed TLS must see recv()'s 0 only after the buffered
 * records). All data first, then exactly one EOF, never an error. */
static void
test_tls_eof_after_burst(void **state)
{
	enum { NREC = 10, INMAX = 80 };
	size_t sizes[NREC];
	unsigned char *p = payload(NREC * INMAX, 53);

	(void)state;
	for (size_t i = 0; i < NREC; i++)
		sizes[i] = INMAX;
	for (int notify = 0; notify <= 1; notify++) {
		struct side c, s;

		tls_unix_pair(&c, &s, INMAX);
		settle(0.05); /* tickets, if any, before the burst */
		c.nlog = 0;
		tls_burst(&s, p, sizes, NREC);
		if (notify)
			assert_int_equal(mbedtls_ssl_close_notify(s.io.ssl), 0);
		assert_int_equal(shutdown(s.io.fd, SHUT_WR), 0);
		RUN_UNTIL(c.n[IO_EOF] == 1);
		assert_int_equal(c.rxlen, NREC * INMAX);
		assert_memory_equal(c.rx, p, NREC * INMAX);
		assert_int_equal(c.nlog, NREC + 1); /* NREC x DATAIN, then EOF */
		assert_int_equal(c.log[NREC - 1], IO_DATAIN);
		assert_int_equal(c.last, IO_EOF);
		assert_int_equal(c.n[IO_ERROR], 0);
		assert_true(settle(0.1) < 50);
		assert_int_equal(c.n[IO_EOF], 1);
		side_free(&c);
		side_free(&s);
	}
	free(p);
}

/* Records around and above the read-ahead's size in one burst, through
 * small socket buffers (partial reads anywhere in a record): a header and
 * part of a body in the buffer, the rest read straight into mbed TLS. */
static void
test_tls_records_vs_readahead(void **state)
{
	static const size_t sizes[] = {
	        1,
	        5,
	        IO_TLS_READAHEAD - 30,
	        IO_TLS_READAHEAD - 22,
	        IO_TLS_READAHEAD - 21,
	        17,
	        IO_TLS_READAHEAD - 1,
	        IO_TLS_READAHEAD,
	        IO_TLS_READAHEAD + 1,
	        2,
	        2 * IO_TLS_READAHEAD + 3,
	        16384,
	        16383,
	        3000,
	        3000,
	        3000,
	        1,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	size_t total = sum(sizes, N);
	unsigned char *p = payload(total, 54);

	(void)state;
	for (int bufsz = 0; bufsz <= 8192; bufsz += 8192) {
		struct side c, s;
		int fds[2];

		tcp_pair(fds, bufsz);
		side_init(&c, "client", fds[0], 65536, 65536, 0);
		side_init(&s, "server", fds[1], 65536, 65536, 0);
		tls_connect(&c, &s, "mx.test");
		tls_burst(&s, p, sizes, N);
		RUN_UNTIL(c.rxlen == total);
		assert_memory_equal(c.rx, p, total);
		assert_int_equal(c.n[IO_ERROR] + c.n[IO_EOF], 0);
		side_free(&c);
		side_free(&s);
	}
	free(p);
}

/* A "server" that answers the ClientHello with SMTP text: IO_ERROR. */
static void
test_tls_not_tls(void **state)
{
	static const char junk[] = "421 4.3.0 TLS not available due to local problem\r\n";
	mbedtls_ssl_context *cssl = new_ssl();
	struct side c;
	struct pollfd pfd;
	char hello[512];
	int fds[2];

	(void)state;
	tcp_pair(fds, 0);
	side_init(&c, "client", fds[0], 65536, 65536, 0);
	assert_int_equal(tls_client_setup(tctx, cssl, "mx.test", NULL), 0);
	io_start_tls(&c.io, cssl, 0);
	assert_true(c.io.flags & IO_F_HANDSHAKE);
	pfd.fd = fds[1];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(recv(fds[1], hello, sizeof(hello), 0) > 5);
	assert_int_equal(hello[0], 0x16); /* a TLS handshake record */
	assert_int_equal(send(fds[1], junk, sizeof(junk) - 1, 0), (ssize_t)sizeof(junk) - 1);
	RUN_UNTIL(c.n[IO_ERROR] == 1);
	assert_non_null(strstr(c.io.err, "TLS handshake"));
	assert_int_equal(c.n[IO_TLSREADY], 0);
	assert_int_equal(c.n[IO_DATAIN], 0); /* the junk never reaches the owner */
	assert_false(ev_is_active(&c.io.rw));
	assert_false(ev_is_active(&c.io.ww));
	side_free(&c);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f)  cmocka_unit_test_setup_teardown(f, setup_loop, teardown_loop)
#define TT(f) cmocka_unit_test_setup_teardown(f, setup_tls, teardown_tls)
	        T(test_connect),
	        T(test_connect_refused),
	        T(test_bulk_both_ways),
	        T(test_pause_resume),
	        T(test_inbuf_full),
	        T(test_consume_in_callback),
	        T(test_lowat),
	        T(test_out_limit),
	        T(test_eof_after_data),
	        T(test_eof_while_paused),
	        T(test_shutdown_flushes),
	        T(test_shutdown_empty),
	        T(test_close_in_callback),
	        TT(test_tls_data),
	        TT(test_tls_pending_after_pause),
	        TT(test_tls_consume_in_callback),
	        TT(test_tls12),
	        TT(test_tls_not_tls),
	        TT(test_tls_burst_after_handshake),
	        TT(test_tls_burst_small_inbuf),
	        TT(test_tls_pause_with_readahead),
	        TT(test_tls_eof_after_burst),
	        TT(test_tls_records_vs_readahead),
#undef T
#undef TT
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
