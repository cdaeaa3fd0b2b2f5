/*
 * bench/loadgen.c: SMTP load client for the benchmark, with latency
 * percentiles and CPU accounting of other processes over the same window.
 *
 * Load mode (default): keeps -c sessions in flight; each session is one
 * message without pipelining, as a legacy MTA sends it:
 *   connect, 220, EHLO, 250, MAIL, 250, RCPT, 250, DATA, 354, body + ".",
 *   250, QUIT, 221, close.
 * The run has a warm-up (-w s, not counted) and a measurement window (-t s):
 * a session counts when its 221 arrives inside the window; its latency is
 * connect() to 221. At the window's edges the utime+stime of every -P
 * name=pid process (from /proc/PID/stat) and of this client are sampled, so
 * CPU per message is measured over exactly the counted messages. After the
 * window no session is started; the ones in flight finish (up to -D s).
 *
 * Idle mode (-I N -S ehlo|rcpt): opens N sessions (at most -c connecting at
 * once), takes each to the end of EHLO (or of RCPT), prints "READY n" on
 * stdout once all are there, holds them until SIGTERM/SIGINT or -T s, then
 * sends QUIT on each and exits.
 *
 * Output: one JSON object to -o FILE (default stdout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INBUF   8192
#define MAXPROC 8
#define MAXERRS 8

enum sst { S_CONN, S_GREET, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_DOT, S_QUIT, S_IDLE, S_BYE };

static const char *const sst_name[] = {"connect", "greeting", "ehlo", "mail", "rcpt",
                                       "data",    "dot",      "quit", "idle", "bye"};

struct sess {
	struct sess *prev, *next; /* all live sessions */
	int fd;
	enum sst st;
	double t0, last;
	char in[INBUF];
	size_t inlen;
	const char *wp; /* pending output */
	size_t wlen;
	int wr_armed;
};

static struct sockaddr_in dst;
static int epfd;
static char *body;
static size_t bodylen;
static double timeout_s = 60.0;
static int stage_idle; /* 0 = load, S_EHLO or S_RCPT = stop after that reply */
static volatile sig_atomic_t stop_flag;

static struct {
	unsigned long long started, ok, ok_win, errors, errors_win, idle;
	char samples[MAXERRS][200];
	int nsamples;
	double *lat;
	size_t nlat, caplat;
} R;

static int active;
static struct sess *head;
static double win_start, win_end;

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_sig(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
err_sample(const char *fmt, ...)
{
	va_list ap;

	if (R.nsamples >= MAXERRS)
		return;
	va_start(ap, fmt);
	vsnprintf(R.samples[R.nsamples++], sizeof(R.samples[0]), fmt, ap);
	va_end(ap);
}

static void
sess_end(struct sess *s, int ok, const char *why)
{
	double t = now();

	epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	active--;
	if (s->prev)
		s->prev->next = s->next;
	else
		head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (ok) {
		R.ok++;
		if (t >= win_start && t <= win_end) {
			R.ok_win++;
			if (R.nlat == R.caplat) {
				R.caplat = R.caplat ? R.caplat * 2 : 4096;
				R.lat = realloc(R.lat, R.caplat * sizeof(double));
			}
			R.lat[R.nlat++] = t - s->t0;
		}
	} else {
		R.errors++;
		if (t >= win_start && t <= win_end)
			R.errors_win++;
		err_sample("%.3fs state=%s: %s", t - win_start, sst_name[s->st], why);
	}
	free(s);
}

static void
arm(struct sess *s, int wr)
{
	struct epoll_event ev = {.events = EPOLLIN | (wr ? EPOLLOUT : 0), .data.ptr = s};

	if (s->wr_armed == wr)
		return;
	s->wr_armed = wr;
	epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Returns -1 if the session ended. */
static int
flush(struct sess *s)
{
	while (s->wlen > 0) {
		ssize_t n = send(s->fd, s->wp, s->wlen, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				arm(s, 1);
				return 0;
			}
			char b[160];
			snprintf(b, sizeof(b), "send: %s", strerror(errno));
			sess_end(s, 0, b);
			return -1;
		}
		s->wp += n;
		s->wlen -= (size_t)n;
	}
	arm(s, 0);
	return 0;
}

static int
sendstr(struct sess *s, const char *p, size_t n)
{
	s->wp = p;
	s->wlen = n;
	return flush(s);
}

#define SEND(s, lit) sendstr((s), (lit), sizeof(lit) - 1)

static int
sess_start(void)
{
	struct sess *s = calloc(1, sizeof(*s));
	int one = 1;

	if (s == NULL)
		return -1;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd == -1) {
		err_sample("socket: %s", strerror(errno));
		R.errors++;
		free(s);
		return -1;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->t0 = s->last = now();
	s->st = S_CONN;
	R.started++;
	active++;
	s->next = head;
	if (head)
		head->prev = s;
	head = s;
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
	s->wr_armed = 1;
	epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
	if (connect(s->fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 && errno != EINPROGRESS) {
		char b[160];
		snprintf(b, sizeof(b), "connect: %s", strerror(errno));
		sess_end(s, 0, b);
		return -1;
	}
	return 0;
}

/* One complete reply with code `code` and first line `l` arrived. */
static int
on_reply(struct sess *s, int code, const char *l, size_t llen)
{
	int want;

	switch (s->st) {
	case S_GREET:
		want = 220;
		break;
	case S_EHLO:
		want = 250;
		break;
	case S_MAIL:
		want = 250;
		break;
	case S_RCPT:
		want = 250;
		break;
	case S_DATA:
		want = 354;
		break;
	case S_DOT:
		want = 250;
		break;
	case S_QUIT:
		want = 221;
		break;
	default:
		want = -1;
		break;
	}
	if (code != want) {
		char b[200];
		snprintf(b, sizeof(b), "expected %d, got: %.*s", want,
		         (int)(llen > 150 ? 150 : llen), l);
		sess_end(s, 0, b);
		return -1;
	}
	switch (s->st) {
	case S_GREET:
		s->st = S_EHLO;
		return SEND(s, "EHLO client.bench.test\r\n");
	case S_EHLO:
		if (stage_idle == S_EHLO) {
			s->st = S_IDLE;
			R.idle++;
			return 0;
		}
		s->st = S_MAIL;
		return SEND(s, "MAIL FROM:<sender@client.bench.test>\r\n");
	case S_MAIL:
		s->st = S_RCPT;
		return SEND(s, "RCPT TO:<user@bench.test>\r\n");
	case S_RCPT:
		if (stage_idle == S_RCPT) {
			s->st = S_IDLE;
			R.idle++;
			return 0;
		}
		s->st = S_DATA;
		return SEND(s, "DATA\r\n");
	case S_DATA:
		s->st = S_DOT;
		return sendstr(s, body, bodylen);
	case S_DOT:
		s->st = S_QUIT;
		return SEND(s, "QUIT\r\n");
	case S_QUIT:
		sess_end(s, 1, NULL);
		return -1;
	default:
		return 0;
	}
}

static void
on_readable(struct sess *s)
{
	for (;;) {
		ssize_t n = recv(s->fd, s->in + s->inlen, INBUF - s->inlen, 0);
		if (n == 0) {
			if (s->st == S_BYE) {
				sess_end(s, 1, NULL);
				return;
			}
			sess_end(s, 0, "connection closed by peer");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			char b[160];
			snprintf(b, sizeof(b), "recv: %s", strerror(errno));
			sess_end(s, 0, b);
			return;
		}
		s->inlen += (size_t)n;
		s->last = now();
		/* complete replies: lines "ddd-..." continue, "ddd ..." end */
		size_t off = 0, first = 0;
		for (;;) {
			char *nl = memchr(s->in + off, '\n', s->inlen - off);
			if (nl == NULL)
				break;
			size_t len = (size_t)(nl - (s->in + off));
			const char *line = s->in + off;
			off += len + 1;
			if (len >= 4 && line[3] == '-')
				continue;
			int code = len >= 3 ? atoi(line) : -1;
			const char *fl = s->in + first;
			size_t fll = (size_t)((char *)memchr(fl, '\n', s->inlen - first) - fl);
			if (s->st == S_IDLE || s->st == S_BYE) {
				/* unsolicited (e.g. a 421 timeout) */
				char b[200];
				snprintf(b, sizeof(b), "unsolicited: %.*s",
				         (int)(fll > 150 ? 150 : fll), fl);
				sess_end(s, 0, b);
				return;
			}
			if (on_reply(s, code, fl, fll) == -1)
				return;
			first = off;
		}
		memmove(s->in, s->in + off, s->inlen - off);
		s->inlen -= off;
		if (s->inlen == INBUF) {
			sess_end(s, 0, "reply line too long");
			return;
		}
	}
}

static void
on_event(struct sess *s, uint32_t ev)
{
	if (s->st == S_CONN) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			char b[160];
			snprintf(b, sizeof(b), "connect: %s", strerror(err));
			sess_end(s, 0, b);
			return;
		}
		s->st = S_GREET;
		arm(s, 0);
		s->wr_armed = 0;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
		epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &e);
		return;
	}
	if ((ev & EPOLLOUT) && s->wlen > 0)
		if (flush(s) == -1)
			return;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(s);
}

/* --- CPU of other processes ---------------------------------------- */

struct proc {
	char name[32];
	int pid;
	double t0, t1; /* utime+stime, seconds */
	double u0, u1; /* utime alone */
};

static double
proc_cpu2(int pid, double *user)
{
	char path[64], buf[2048];
	FILE *f;
	size_t n;
	unsigned long ut, stt;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
		return -1;
	if (user != NULL)
		*user = (double)ut / (double)sysconf(_SC_CLK_TCK);
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
static double
machine_busy(void)
{
	unsigned long long v[10] = {0};
	FILE *f = fopen("/proc/stat", "r");

	if (f == NULL)
		return -1;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	               &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8)
		return -1;
	/* user nice system [idle] [iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	if (R.nlat == 0)
		return NAN;
	size_t i = (size_t)ceil(p / 100.0 * (double)R.nlat);
	if (i > 0)
		i--;
	if (i >= R.nlat)
		i = R.nlat - 1;
	return R.lat[i];
}

static void
jnum(FILE *f, const char *k, double v, int comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\":null%s", k, comma ? "," : "");
	else
		fprintf(f, "\"%s\":%.6g%s", k, v, comma ? "," : "");
}

static void
jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fputc(' ', f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
make_body(size_t size)
{
	static const char hdr[] = "From: <sender@client.bench.test>\r\n"
	                          "To: <user@bench.test>\r\n"
	                          "Subject: stsproxy benchmark message\r\n"
	                          "Message-ID: <bench@client.bench.test>\r\n"
	                          "\r\n";
	static const char tail[] = ".\r\n";
	size_t n = 0;

	body = malloc(size + 200);
	memcpy(body, hdr, sizeof(hdr) - 1);
	n = sizeof(hdr) - 1;
	while (n + 78 + 3 <= size) {
		for (int i = 0; i < 76; i++)
			body[n + i] = (char)('a' + (n + i) % 26);
		body[n + 76] = '\r';
		body[n + 77] = '\n';
		n += 78;
	}
	memcpy(body + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	bodylen = n;
}

int
main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *out = NULL;
	int port = 0, conc = 1, idle_n = 0, opt, nproc = 0;
	double warm = 1, dur = 5, drain = 10, idle_hold = 120;
	long max_sessions = 0; /* -n: a fixed number of sessions instead of a window */
	size_t size = 4096;
	struct proc procs[MAXPROC];
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "a:p:c:w:t:D:l:P:o:I:S:T:n:")) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			conc = atoi(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 't':
			dur = atof(optarg);
			break;
		case 'D':
			drain = atof(optarg);
			break;
		case 'l':
			size = (size_t)atol(optarg);
			break;
		case 'o':
			out = optarg;
			break;
		case 'I':
			idle_n = atoi(optarg);
			break;
		case 'S':
			stage_idle = strcmp(optarg, "rcpt") == 0 ? S_RCPT : S_EHLO;
			break;
		case 'T':
			idle_hold = atof(optarg);
			break;
		case 'n':
			max_sessions = atol(optarg);
			break;
		case 'P': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || nproc == MAXPROC)
				return 2;
			snprintf(procs[nproc].name, sizeof(procs[0].name), "%.*s",
			         (int)(eq - optarg), optarg);
			procs[nproc].pid = atoi(eq + 1);
			nproc++;
			break;
		}
		default:
			fprintf(stderr, "usage: see the header of bench/loadgen.c\n");
			return 2;
		}
	}
	if (port <= 0 || conc <= 0)
		return 2;
	if (idle_n > 0 && stage_idle == 0)
		stage_idle = S_EHLO;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &dst.sin_addr);
	make_body(size);
	epfd = epoll_create1(0);

	double t0 = now(), cpu_self0 = 0, cpu_self1 = 0, t_ready = NAN, busy0 = 0, busy1 = 0;
	int ready_printed = 0;

	if (idle_n > 0 || max_sessions > 0) {
		win_start = t0;
		win_end = 1e18;
		warm = 0;
	} else {
		win_start = t0 + warm;
		win_end = win_start + dur;
	}
	int sampled0 = 0, sampled1 = 0;
	for (;;) {
		double t = now();

		if (idle_n == 0) {
			if (!sampled0 && t >= win_start) {
				for (int i = 0; i < nproc; i++)
					procs[i].t0 = proc_cpu2(procs[i].pid, &procs[i].u0);
				cpu_self0 = self_cpu();
				busy0 = machine_busy();
				sampled0 = 1;
			}
			if (!sampled1 && t >= win_end) {
				for (int i = 0; i < nproc; i++)
					procs[i].t1 = proc_cpu2(procs[i].pid, &procs[i].u1);
				cpu_self1 = self_cpu();
				busy1 = machine_busy();
				sampled1 = 1;
			}
			if (t < win_end && !stop_flag)
				while (active < conc &&
				       (max_sessions == 0 ||
				        R.started < (unsigned long long)max_sessions))
					if (sess_start() == -1 && active == 0)
						break;
			if ((t >= win_end || stop_flag) && (active == 0 || t >= win_end + drain))
				break;
			if (max_sessions > 0 && R.started >= (unsigned long long)max_sessions &&
			    active == 0) {
				dur = t - t0;
				for (int i = 0; i < nproc; i++)
					procs[i].t1 = proc_cpu2(procs[i].pid, &procs[i].u1);
				cpu_self1 = self_cpu();
				busy1 = machine_busy();
				break;
			}
		} else {
			while (active < conc + (int)R.idle &&
			       R.started < (unsigned long long)idle_n && !stop_flag)
				if (sess_start() == -1)
					break;
			if (!ready_printed && R.idle == (unsigned long long)idle_n) {
				t_ready = t - t0;
				printf("READY %llu\n", R.idle);
				fflush(stdout);
				ready_printed = 1;
			}
			if (!ready_printed && R.started == (unsigned long long)idle_n &&
			    R.idle + R.errors == (unsigned long long)idle_n && R.errors > 0) {
				printf("READY %llu (errors %llu)\n", R.idle, R.errors);
				fflush(stdout);
				ready_printed = 1;
				t_ready = t - t0;
			}
			if (stop_flag || t - t0 > idle_hold)
				break;
		}

		struct epoll_event evs[256];
		int n = epoll_wait(epfd, evs, 256, 50);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		/* per-session silence timeout (idle sessions are exempt) */
		static double lastscan;
		if (t - lastscan > 1.0) {
			lastscan = t;
			for (struct sess *x = head, *nx; x != NULL; x = nx) {
				nx = x->next;
				if (x->st != S_IDLE && t - x->last > timeout_s) {
					char b[80];
					snprintf(b, sizeof(b), "timeout (%.0fs silent)", timeout_s);
					sess_end(x, 0, b);
				}
			}
		}
	}
	unsigned long long stuck = (unsigned long long)active;
	if (idle_n == 0)
		for (struct sess *x = head; x != NULL; x = x->next)
			err_sample("still open after the drain: state=%s, %.1fs since last reply",
			           sst_name[x->st], now() - x->last);

	if (idle_n > 0) {
		/* Say goodbye: QUIT on each idle session, wait for 221 (bounded). */
		for (struct sess *x = head, *nx; x != NULL; x = nx) {
			nx = x->next;
			if (x->st == S_IDLE) {
				x->st = S_QUIT;
				(void)SEND(x, "QUIT\r\n");
			}
		}
		double tq = now();
		while (active > 0 && now() - tq < 5.0) {
			struct epoll_event evs[256];
			int n = epoll_wait(epfd, evs, 256, 50);
			for (int i = 0; i < n; i++)
				on_event(evs[i].data.ptr, evs[i].events);
		}
	}
	FILE *f = out ? fopen(out, "w") : stdout;
	if (f == NULL)
		return 1;
	qsort(R.lat, R.nlat, sizeof(double), cmp_d);
	double mean = 0;
	for (size_t i = 0; i < R.nlat; i++)
		mean += R.lat[i];
	mean = R.nlat ? mean / (double)R.nlat : NAN;
	fprintf(f, "{");
	if (idle_n > 0) {
		fprintf(f, "\"mode\":\"idle\",\"stage\":\"%s\",\"wanted\":%d,\"idle\":%llu,",
		        sst_name[stage_idle], idle_n, R.idle);
		jnum(f, "seconds_to_ready", t_ready, 1);
	} else {
		fprintf(f, "\"mode\":\"load\",\"concurrency\":%d,\"window_s\":%g,\"warmup_s\":%g,",
		        conc, dur, warm);
		fprintf(f, "\"messages\":%llu,", R.ok_win);
		jnum(f, "msgs_per_s", (double)R.ok_win / dur, 1);
		jnum(f, "p50_ms", pct(50) * 1e3, 1);
		jnum(f, "p99_ms", pct(99) * 1e3, 1);
		jnum(f, "mean_ms", mean * 1e3, 1);
		jnum(f, "max_ms", R.nlat ? R.lat[R.nlat - 1] * 1e3 : NAN, 1);
		fprintf(f, "\"errors_window\":%llu,\"stuck_after_drain\":%llu,", R.errors_win,
		        stuck);
		fprintf(f, "\"cpu\":{");
		for (int i = 0; i < nproc; i++) {
			double d = procs[i].t1 - procs[i].t0;
			fprintf(f, "\"%s\":{", procs[i].name);
			jnum(f, "cpu_s", d, 1);
			double u = procs[i].u1 - procs[i].u0;
			jnum(f, "util", d / dur, 1);
			jnum(f, "user_per_msg_ms", R.ok_win ? u / (double)R.ok_win * 1e3 : NAN, 1);
			jnum(f, "sys_per_msg_ms", R.ok_win ? (d - u) / (double)R.ok_win * 1e3 : NAN,
			     1);
			jnum(f, "per_msg_ms", R.ok_win ? d / (double)R.ok_win * 1e3 : NAN, 0);
			fprintf(f, "},");
		}
		fprintf(f, "\"client\":{");
		jnum(f, "cpu_s", cpu_self1 - cpu_self0, 1);
		jnum(f, "util", (cpu_self1 - cpu_self0) / dur, 1);
		jnum(f, "per_msg_ms",
		     R.ok_win ? (cpu_self1 - cpu_self0) / (double)R.ok_win * 1e3 : NAN, 0);
		fprintf(f, "}},");
		/* CPU used on the machine by everything else (other users'
		 * builds and tests): the noise indicator for this window. */
		double ours = cpu_self1 - cpu_self0;
		for (int i = 0; i < nproc; i++)
			ours += procs[i].t1 - procs[i].t0;
		jnum(f, "machine_busy_cores", (busy1 - busy0) / dur, 1);
		jnum(f, "other_busy_cores", (busy1 - busy0 - ours) / dur, 1);
	}
	fprintf(f, "\"sessions_ok\":%llu,\"errors\":%llu,\"error_samples\":[", R.ok, R.errors);
	for (int i = 0; i < R.nsamples; i++) {
		if (i)
			fputc(',', f);
		jstr(f, R.samples[i]);
	}
	fprintf(f, "]}\n");
	if (f != stdout)
		fclose(f);
	return 0;
}
