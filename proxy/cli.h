/*
 * cli: operator tools run as "stsproxy policy ..." and "stsproxy cache ...".
 *
 * stsproxy policy DOMAIN [--json] [-c FILE] [-v]
 *   Discovers and fetches DOMAIN's MTA-STS policy exactly like the daemon
 *   (same configuration, resolver, CA file and policy cache; the TXT
 *   record is always looked up now) and prints the TXT record(s), the
 *   selected record, the policy text, what the parser made of it, its
 *   validity, which of the domain's MX hosts match the policy and why, and
 *   the cache state before and after. The cache file is updated as the
 *   daemon would.
 *   Exit: 0 a valid policy applies (fetched now or cached; any mode),
 *         1 no policy (no _mta-sts TXT record / no STSv1 record),
 *         2 invalid or failed (several or invalid TXT records, fetch
 *           failed, invalid policy, DNS failure) and nothing cached,
 *         3 usage or configuration error.
 *
 * stsproxy cache list|show DOMAIN|flush DOMAIN [--json] [-c FILE]
 *   Works on the persistent cache file (sts.cache_file). "flush" removes
 *   one domain from the file; a running daemon keeps its in-memory copy
 *   (and writes it back) until it is restarted.
 *   Exit: 0 done, 1 no such domain, 2 cache file unreadable or not
 *         writable, 3 usage or configuration error (no cache file set).
 */
#ifndef STSPROXY_CLI_H
#define STSPROXY_CLI_H

#define CLI_EXIT_OK       0
#define CLI_EXIT_NOPOLICY 1
#define CLI_EXIT_FAILED   2
#define CLI_EXIT_USAGE    3

/* argv[0] is the subcommand name ("policy" / "cache"). */
int cli_policy_main(int argc, char **argv);
int cli_cache_main(int argc, char **argv);

#endif
