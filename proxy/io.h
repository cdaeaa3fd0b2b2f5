/*
 * io: one connection's transport: fd, libev watchers, input/output
 * buffers and an optional mbed TLS layer. It turns readiness into events
 * for its owner and hides want-read/want-write.
 *
 * Events (io_cb):
 *   IO_CONNECTED  non-blocking connect finished
 *   IO_TLSREADY   handshake done (the owner checks the verification)
 *   IO_DATAIN     new bytes in io->in
 *   IO_LOWAT      output drained below the low-water mark
 *   IO_EOF        peer closed (or TLS close_notify)
 *   IO_ERROR      socket or TLS error (io->err says which)
 *
 * Re-entrancy: a callback may call io_close() (or free its owner later);
 * io.c never touches the io after a callback that returned after closing.
 * Nothing is freed here: struct io is embedded in its owner.
 */
#ifndef STSPROXY_IO_H
#define STSPROXY_IO_H

#include <ev.h>
#include <mbedtls/ssl.h>
#include <sys/socket.h>

#include "iobuf.h"

enum io_event {
	IO_CONNECTED = 1,
	IO_TLSREADY,
	IO_DATAIN,
	IO_LOWAT,
	IO_EOF,
	IO_ERROR,
	IO_TICKET, /* TLS 1.3 client: a new session ticket arrived (save the session) */
};

#define IO_F_CONNECTING 0x0001
#define IO_F_HANDSHAKE  0x0002 /* TLS handshake in progress */
#define IO_F_TLS        0x0004 /* TLS established */
#define IO_F_PAUSED     0x0008 /* owner asked not to read */
#define IO_F_EOF        0x0010 /* peer closed its side */
#define IO_F_CLOSED     0x0020 /* io_close() was called */
#define IO_F_SHUTDOWN   0x0040 /* close after output is flushed */
#define IO_F_TLS_WAIT   0x0080 /* start the handshake once output is flushed */
#define IO_F_SERVER     0x0100 /* TLS server role */
#define IO_F_WANT_R     0x0200 /* mbed TLS needs the fd readable */
#define IO_F_WANT_W     0x0400 /* mbed TLS needs the fd writable */
#define IO_F_WSHUT      0x0800 /* shut our write side once output is flushed (half-close) */
#define IO_F_DRAINED    0x1000 /* a short recv() emptied the socket since the watcher last woke us */
#define IO_F_WR_DONE    0x2000 /* shutdown(SHUT_WR) was called */

/*
 * Read-ahead for the TLS bio. mbed TLS reads a record as two exact reads
 * (the 5-byte header, then the body); one recv() per read costs two or
 * three system calls per record. SMTP over TLS is mostly small records
 * (a command or reply line, a handshake message), so one recv() into this
 * buffer serves several of them. 4 KiB holds a pipelined command batch or
 * most of a handshake flight; larger reads (the rest of a bulk 16 KiB
 * record) bypass it and land in mbed TLS's own buffer without a copy.
 * Allocated by io_start_tls only: plaintext sessions keep their footprint.
 */
#define IO_TLS_READAHEAD 4096

struct io_readahead {
	size_t off, len; /* unread bytes: buf[off .. off + len) */
	unsigned char buf[IO_TLS_READAHEAD];
};

struct io;
typedef void io_cb(struct io *io, enum io_event ev, void *arg);

struct io {
	int fd;
	int flags;
	struct ev_loop *loop;
	ev_io rw, ww;
	struct iobuf in, out;
	size_t lowat;                       /* IO_LOWAT when out drops to this */
	int lowat_armed;                    /* out was above lowat since the last event */
	mbedtls_ssl_context *ssl;           /* owned; NULL for plaintext */
	size_t tls_wpending;                /* length of a write mbed TLS asked us to repeat */
	struct io_readahead *ra;            /* TLS records read but not yet given to mbed TLS */
	unsigned long long nread, nwritten; /* application bytes */
	unsigned long nrecv;                /* recv() calls (tests, benchmarks) */
	io_cb *cb;
	void *arg;
	char err[160];
	int tls_err;   /* last mbed TLS error code, 0 if none */
	int tls_alert; /* fatal alert received from the peer (RFC 8446 §6), -1 if none */
};

void io_init(struct io *io, struct ev_loop *loop, int fd, io_cb *cb, void *arg, size_t inmax,
             size_t outmax, size_t lowat);
/* Start a non-blocking connect on a fresh socket. -1 on immediate failure (io->err). */
int io_connect(struct io *io, const struct sockaddr *sa, socklen_t len);
/* Queue bytes for sending; -1 if the output buffer limit is hit. */
int io_write(struct io *io, const void *p, size_t n);
int io_printf(struct io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Start a TLS handshake on ssl (already set up by tls_*_setup); io takes
 * ownership of ssl and allocates its TLS read-ahead (both freed by
 * io_close). For a server role the handshake starts only after the
 * output (our "220 ready") has been flushed. */
void io_start_tls(struct io *io, mbedtls_ssl_context *ssl, int server);
void io_pause(struct io *io, int paused);
/* One non-blocking attempt to send what is queued, errors ignored and no
 * callbacks: for teardown, so a queued QUIT still leaves. */
void io_flush_quiet(struct io *io);
/* Half-close: shut our write side once the output is flushed, keep reading. */
void io_shutdown_write(struct io *io);
/* Close after flushing what is queued (and TLS close_notify). */
void io_shutdown(struct io *io);
/* Stop everything and close the fd now. NULL-safe, idempotent. */
void io_close(struct io *io);
/* Recompute which watchers are active from the buffers and flags. */
void io_update(struct io *io);

const char *io_tls_version(const struct io *io);
const char *io_tls_cipher(const struct io *io);

#endif
