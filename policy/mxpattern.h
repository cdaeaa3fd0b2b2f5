/*
 * mxpattern: host names against MX patterns (RFC 8461 §4.1, also used by
 * static policies). Case-insensitive, a trailing dot on either side is
 * ignored, "*." matches exactly one whole left-most label:
 * "*.example.com" matches "mx.example.com", not "example.com" nor
 * "a.b.example.com".
 */
#ifndef STSPROXY_MXPATTERN_H
#define STSPROXY_MXPATTERN_H

#include <stdbool.h>
#include <stddef.h>

bool mxpattern_match(const char *pattern, const char *host);

/* A pattern is a host name (LDH labels, A-labels) optionally starting with "*.". */
bool mxpattern_valid(const char *pattern, size_t len);

/* Does host match any of the n patterns? */
bool mxpattern_match_any(const char *const *patterns, int n, const char *host);

#endif
