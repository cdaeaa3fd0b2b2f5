/*
 * sts_record: the "_mta-sts" TXT record of RFC 8461 §3.1.
 *
 * Pure parsers over (const char *, size_t); no allocation, no I/O. The DNS
 * layer hands over each TXT record with its character-strings already
 * concatenated without separator (§3.1: a record split into several strings
 * is one record).
 *
 * Grammar (§3.1, case-sensitive per RFC 7405 "%s"):
 *   sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
 *   sts-version     = "v" *WSP "=" *WSP "STSv1"
 *   sts-sep         = *WSP ";" *WSP
 *   sts-field       = sts-id / sts-extension
 *   sts-id          = "id" *WSP "=" *WSP 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name *WSP "=" *WSP sts-ext-value
 *   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * Documented choices:
 *  - The grammar is applied strictly: no leading or trailing white space
 *    outside a separator ("v=STSv1; id=1 " without a final ";" is invalid),
 *    no empty field (";;"), "v" only as the first field. §3.1 says a
 *    syntactically invalid record means "no policy available".
 *  - A field named exactly "id" is the policy id and its value must be
 *    1*32(ALPHA / DIGIT); "ID" is an (ignored) extension, not the id.
 *  - Duplicate "id": the first one is used and later ones are ignored
 *    (they must still be well-formed extension fields). §3.2 asks parsers
 *    to use the first occurrence of a non-repeated field and ignore the
 *    rest; rejecting the record instead would turn a cosmetic publishing
 *    slip into "no policy", i.e. plaintext delivery.
 *  - A later "v=..." field is an ordinary extension and ignored.
 */
#ifndef STSPROXY_STS_RECORD_H
#define STSPROXY_STS_RECORD_H

#include <stddef.h>

#define STS_ID_MAXLEN 32 /* §3.1: 1*32(ALPHA / DIGIT) */

enum sts_rec_status {
	STS_REC_OK = 0,   /* exactly one valid STSv1 record; out is filled */
	STS_REC_NONE,     /* no record begins with the STSv1 version */
	STS_REC_MULTIPLE, /* more than one does: §3.1 says treat as no policy */
	STS_REC_INVALID,  /* the one STSv1 record is syntactically invalid */
};

struct sts_record {
	char id[STS_ID_MAXLEN + 1]; /* NUL-terminated, 1..32 ALPHA / DIGIT */
	int next;                   /* extension fields seen (ignored) */
};

/*
 * Parse one record of len bytes (NUL bytes are just invalid characters).
 * Returns STS_REC_OK and fills out, or STS_REC_INVALID (out is zeroed).
 */
enum sts_rec_status sts_record_parse(const char *txt, size_t len, struct sts_record *out);

/*
 * Does the record begin with the STSv1 version, i.e. sts-version followed
 * by WSP, ";" or the end? "v=STSv12" and "v=spf1" do not.
 */
int sts_record_is_sts(const char *txt, size_t len);

/*
 * Choose among all TXT records of "_mta-sts.<domain>" (§3.1): records not
 * beginning with the STSv1 version are discarded; zero left is
 * STS_REC_NONE, more than one STS_REC_MULTIPLE, one that does not parse
 * STS_REC_INVALID; otherwise STS_REC_OK with out filled. out is zeroed on
 * every result but STS_REC_OK. n may be 0; recs[i] may be NULL (skipped).
 */
enum sts_rec_status sts_record_select(const char *const *recs, const size_t *lens, int n,
                                      struct sts_record *out);

const char *sts_rec_strstatus(enum sts_rec_status st);

#endif
