/*
 * crl -- certificate revocation lists: read one (PEM or DER), verify it
 * against ca_file, apply it to the database (smimectl crl import and crl
 * fetch share this), the CRL Distribution Point URLs of certificates, and
 * the monitoring verdict of a fetch.
 */
#ifndef SMIME_CRL_H
#define SMIME_CRL_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

struct db;
struct db_crl_source;

/* The CRL in data (len bytes), PEM or DER; NULL with err filled ("not a
 * CRL (PEM or DER)"). */
X509_CRL *crl_parse(const unsigned char *data, size_t len, char *err,
                    size_t errlen);

/* The CRL in the file path, PEM or DER; NULL with err naming path. */
X509_CRL *crl_read_file(const char *path, char *err, size_t errlen);

/* 0 when crl is signed by a certificate of ca_file whose subject is the
 * CRL's issuer, -1 with err filled when not (or ca_file cannot be read). */
int crl_verify(X509_CRL *crl, const char *ca_file, char *err, size_t errlen);

/* What applying a CRL did. */
struct crl_applied {
	int entries;  /* serials the CRL lists */
	int changed;  /* certificates newly marked revoked */
	char *issuer; /* the CRL's issuer, as the database stores it */
	time_t this_update, next_update; /* 0 when absent */
};

/* Free what crl_apply put in a and zero it; NULL is fine. */
void crl_applied_clear(struct crl_applied *a);

/*
 * Verify crl against ca_file (NULL: not verified; the caller warns), then
 * apply it in one transaction of db: every entry kept in revoked_serials,
 * the certificates it lists marked revoked (db_revoke, reason "crl", by
 * actor), the CRL recorded in crls, and with src (may be NULL) the row of
 * crl_sources written from *src with the issuer and dates of crl.  Returns
 * 0 with *out filled (crl_applied_clear it), 1 when crl does not verify
 * (err says why; nothing is written), -1 on a database error (err; nothing
 * is written either).
 */
int crl_verify_apply(struct db *db, X509_CRL *crl, const char *ca_file,
                     const char *actor, const struct db_crl_source *src,
                     struct crl_applied *out, char *err, size_t errlen);

/* A list of distinct URLs, in the order first added. */
struct crl_urls {
	char **url;
	size_t n, cap;
};

/* Add a copy of url unless it is already there: 1 added, 0 already
 * there, -1 out of memory. */
int crl_urls_add(struct crl_urls *l, const char *url);

/* Add the URIs of the fullName of every CRL Distribution Point of x (any
 * scheme; see crl_url_fetchable).  Returns the number added, or -1 out of
 * memory. */
int crl_urls_add_cdp(struct crl_urls *l, X509 *x);

/* Free the list and zero it; NULL is fine. */
void crl_urls_free(struct crl_urls *l);

/* 1 when url is http:// or https:// (scheme in any case), else 0. */
int crl_url_fetchable(const char *url);

/*
 * The monitoring verdict of one URL at now: 0 when the CRL from it is
 * fresh (fetched or not modified, and next_update not passed; 0 means
 * none given), 1 when the fetch failed but the stored CRL (stored set) is
 * still within next_update, 2 when the CRL is past next_update or a failed
 * URL has never given one.
 */
int crl_verdict(int fetch_ok, int stored, time_t next_update, time_t now);

#endif
