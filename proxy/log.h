/*
 * log: diagnostics and the structured record stream.
 *
 * Two kinds of output share one sink (a file, or stderr):
 *  - diagnostics (log_warn, log_info, ...): one line each, JSON
 *    {"ts":..,"type":"log","level":..,"msg":..} or plain text;
 *  - records (log_record): JSON objects built by the caller with jsonw,
 *    one per line: session outcomes and security events (docs/events.md).
 * Severity filtering uses <syslog.h> levels. fatal() only at start-up.
 */
#ifndef STSPROXY_LOG_H
#define STSPROXY_LOG_H

#include <stdarg.h>
#include <syslog.h>

#include "jsonw.h"

#define LOG_FMT_JSON 0
#define LOG_FMT_TEXT 1

/* path "-" or NULL = stderr. Returns 0 or -1 (errno set). */
int log_open(const char *path, int format, int level, int use_syslog);
void log_close(void);
int log_reopen(void); /* after rotation (SIGHUP) */
int log_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* + strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* no errno */
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);
__attribute__((noreturn)) void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Emit a finished record object (j must hold one complete JSON object).
 * In text format the record is printed as "type key=value ..." instead.
 * level decides filtering; syslog (if enabled) gets records at
 * LOG_WARNING or more severe.
 */
void log_record(int level, struct jsonw *j);

/*
 * A short human-readable line for alert-level findings, so a person sees
 * them without parsing JSON: written to stderr (when the log itself goes
 * elsewhere) and to syslog (LOG_ALERT, facility mail), whatever
 * log.syslog says. Rate-limited to LOG_ALERT_BURST lines, refilled at one
 * per LOG_ALERT_REFILL seconds; the next line that passes says how many
 * were held back.
 */
#define LOG_ALERT_BURST  10
#define LOG_ALERT_REFILL 6.0
void log_alert(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RFC 3339 UTC timestamp with milliseconds into buf (>= 32 bytes). */
const char *log_timestamp(char *buf, size_t len);

#endif
