/*
 * mxfind: learn which MX host name a destination address belongs to.
 *
 * stsproxy sees only the destination IP at accept time; the certificate
 * must be checked against the MX host name (RFC 8461 §4.1, RFC 7672 for
 * DANE), and SNI must carry it (RFC 8461 §7.1). Given the recipient
 * domain, mxfind resolves the domain's MX set (or the implicit MX, the
 * domain itself, when there is no MX record: RFC 5321 §5.1), resolves
 * every MX host's addresses, and reports the MX names whose addresses
 * include the destination. The whole MX set with addresses is returned
 * too, so a caller can reroute to another MX.
 */
#ifndef STSPROXY_MXFIND_H
#define STSPROXY_MXFIND_H

#include "dns.h"

#define MXFIND_MAXHOSTS 16 /* MX hosts considered, lowest preference first */
#define MXFIND_MAXADDRS 8  /* addresses kept per host */

struct mxfind_host {
	int preference;
	char name[256];
	int implicit; /* no MX record: the domain itself */
	enum dns_status addr_status;
	int naddrs;
	struct dns_addr addrs[MXFIND_MAXADDRS];
	int matches_dest; /* one of addrs equals the destination */
};

struct mxfind_result {
	enum dns_status mx_status; /* of the MX lookup itself */
	int nhosts;
	struct mxfind_host hosts[MXFIND_MAXHOSTS];
	int match;   /* index of the first host matching the destination, or -1 */
	int null_mx; /* the domain accepts no mail (RFC 7505); nhosts is 0 */
};

struct mxfind;
typedef void mxfind_cb(void *arg, const struct mxfind_result *res);

/*
 * Start; cb runs exactly once unless mxfind_cancel() is called first. It may
 * run before mxfind_start returns (then NULL is returned). dest may be NULL
 * (resolve the MX set only). The port in dest is ignored.
 */
struct mxfind *mxfind_start(struct dns *d, const char *domain, const struct sockaddr *dest,
                            mxfind_cb *cb, void *arg);
/* NULL-safe; harmless from inside m's own callback. Cancel every mxfind
 * before dns_free(). */
void mxfind_cancel(struct mxfind *m);

/* Do two socket addresses have the same IP (port ignored; v4-mapped v6 = v4)? */
int mxfind_same_ip(const struct sockaddr *a, const struct sockaddr *b);

#endif
