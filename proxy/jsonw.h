/*
 * jsonw: a tiny bounded JSON object writer for log records.
 * Strings are escaped (control bytes, quotes, backslash, and bytes that
 * are not valid UTF-8 as \u00XX) so hostile SMTP text can't break a line.
 * When the buffer is full, the member that did not fit is left out whole
 * (never half a key or string), later members too, and j->overflow is set:
 * the object stays valid JSON.
 */
#ifndef STSPROXY_JSONW_H
#define STSPROXY_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX 8192

struct jsonw {
	char buf[JSONW_MAX];
	size_t len;
	int depth;
	int first; /* no member written yet at this depth */
	int overflow;
	int skipped; /* arrays not opened because of overflow */
};

void jsonw_begin(struct jsonw *j);                                 /* "{" */
void jsonw_str(struct jsonw *j, const char *key, const char *val); /* NULL val = null */
void jsonw_strn(struct jsonw *j, const char *key, const char *val, size_t len);
void jsonw_int(struct jsonw *j, const char *key, long long v);
void jsonw_uint(struct jsonw *j, const char *key, unsigned long long v);
void jsonw_double(struct jsonw *j, const char *key, double v);
void jsonw_bool(struct jsonw *j, const char *key, int v);
void jsonw_array_begin(struct jsonw *j, const char *key);
void jsonw_array_str(struct jsonw *j, const char *val);
void jsonw_array_end(struct jsonw *j);
void jsonw_end(struct jsonw *j); /* "}" ; buf is NUL-terminated */

/* Escape len bytes of s as a JSON string body (without quotes) into out. */
size_t jsonw_escape(char *out, size_t outsz, const char *s, size_t len);

#endif
