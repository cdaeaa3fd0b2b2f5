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

/* false when the pattern is not mxpattern_valid() or host is not an LDH host
 * name (labels 1..63, 253 octets in all, trailing dot allowed). */
bool mxpattern_match(const char *pattern, const char *host);

/*
 * A pattern is a host name (LDH labels, A-labels) optionally starting with "*.".
 * Labels 1..63 octets without leading/trailing hyphen, 253 octets in all (a
 * trailing dot not counted). "*" alone, "*.", "a.*.com", "*a.com" are invalid;
 * "*.com" is valid (matches "example.com").
 */
bool mxpattern_valid(const char *pattern, size_t len);

/* Does host match any of the n patterns? */
bool mxpattern_match_any(const char *const *patterns, int n, const char *host);

#endif
