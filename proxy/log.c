/*
 * log: diagnostics and JSON-lines records on one sink (see log.h).
 * Writes are whole lines with one write(2) each, so concurrent writers
 * (future worker processes) never interleave inside a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
	int fd;
	int format;
	int level;
	int use_syslog;
	char *path;
} lg = {2, LOG_FMT_TEXT, LOG_INFO, 0, NULL};

static const char *
level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
		return "crit";
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

const char *
log_timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	char base[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ldZ", base, (long)(tv.tv_usec / 1000));
	return buf;
}

static int
open_sink(const char *path)
{
	if (path == NULL || strcmp(path, "-") == 0)
		return 2;
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int
log_open(const char *path, int format, int level, int use_syslog)
{
	int fd = open_sink(path);

	if (fd == -1)
		return -1;
	if (lg.fd > 2)
		close(lg.fd);
	free(lg.path);
	lg.path = path ? strdup(path) : NULL;
	lg.fd = fd;
	lg.format = format;
	lg.level = level;
	lg.use_syslog = use_syslog;
	if (use_syslog)
		openlog("stsproxy", LOG_PID | LOG_NDELAY, LOG_MAIL);
	return 0;
}

int
log_reopen(void)
{
	int fd = open_sink(lg.path);

	if (fd == -1)
		return -1;
	if (lg.fd > 2)
		close(lg.fd);
	lg.fd = fd;
	return 0;
}

void
log_close(void)
{
	if (lg.fd > 2)
		close(lg.fd);
	lg.fd = 2;
	free(lg.path);
	lg.path = NULL;
	if (lg.use_syslog)
		closelog();
}

int
log_level(void)
{
	return lg.level;
}

static void
write_line(const char *s, size_t n)
{
	/* A log write failing must never take the daemon down; retry EINTR only. */
	while (n > 0) {
		ssize_t w = write(lg.fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

static void
emit_text(int level, const char *msg)
{
	char ts[40], line[JSONW_MAX + 128];
	int n;

	if (lg.format == LOG_FMT_JSON) {
		struct jsonw j;
		jsonw_begin(&j);
		jsonw_str(&j, "ts", log_timestamp(ts, sizeof(ts)));
		jsonw_str(&j, "type", "log");
		jsonw_str(&j, "level", level_name(level));
		jsonw_str(&j, "msg", msg);
		jsonw_end(&j);
		n = snprintf(line, sizeof(line), "%s\n", j.buf);
	} else {
		char esc[JSONW_MAX];
		/* Escaping keeps hostile bytes (CR, LF, ESC) out of the terminal. */
		jsonw_escape(esc, sizeof(esc), msg, strlen(msg));
		n = snprintf(line, sizeof(line), "%s %s: %s\n", log_timestamp(ts, sizeof(ts)),
		             level_name(level), esc);
	}
	if (n > 0)
		write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (lg.use_syslog && level <= LOG_WARNING)
		syslog(level, "%s", msg);
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char msg[4096];

	if (level > lg.level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit_text(level, msg);
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	char msg[4096];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_WARNING, "%s: %s", msg, strerror(saved));
	errno = saved;
}

#define LOG_FN(name, level)                                                                        \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vmsg(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}

LOG_FN(log_warnx, LOG_WARNING)
LOG_FN(log_notice, LOG_NOTICE)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_debug, LOG_DEBUG)

void
fatal(const char *fmt, ...)
{
	char msg[4096];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_ERR, "%s: %s", msg, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
log_alert(const char *fmt, ...)
{
	static double tokens = LOG_ALERT_BURST, last;
	static unsigned long held;
	char msg[1024], esc[2048], line[2300];
	double now = now_seconds();
	va_list ap;
	int n;

	if (last > 0) {
		tokens += (now - last) / LOG_ALERT_REFILL;
		if (tokens > LOG_ALERT_BURST)
			tokens = LOG_ALERT_BURST;
	}
	last = now;
	if (tokens < 1.0) {
		held++;
		return;
	}
	tokens -= 1.0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jsonw_escape(esc, sizeof(esc), msg, strlen(msg));
	if (held > 0)
		n = snprintf(line, sizeof(line), "stsproxy ALERT: %s (%lu more alerts held back)\n",
		             esc, held);
	else
		n = snprintf(line, sizeof(line), "stsproxy ALERT: %s\n", esc);
	held = 0;
	if (lg.fd != 2 && n > 0)
		(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (!lg.use_syslog)
		openlog("stsproxy", LOG_PID | LOG_NDELAY, LOG_MAIL);
	syslog(LOG_ALERT, "ALERT: %s", esc);
}

/* Text rendering of a record: the JSON itself is already one safe line. */
void
log_record(int level, struct jsonw *j)
{
	char line[JSONW_MAX + 2];
	size_t n;

	if (level > lg.level)
		return;
	n = j->len < JSONW_MAX ? j->len : JSONW_MAX - 1;
	memcpy(line, j->buf, n);
	line[n++] = '\n';
	write_line(line, n);
	if (lg.use_syslog && level <= LOG_WARNING)
		syslog(level, "%.*s", (int)(n - 1), line);
}
