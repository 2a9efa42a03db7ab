/* crl -- read, verify and apply CRLs; CRL Distribution Points (see crl.h). */
#include "crl.h"
#include "certstore.h"
#include "db.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* PEM first, then DER, from the start of bio. */
static X509_CRL *crl_from_bio(BIO *bio)
{
	X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);

	if (crl == NULL) {
		ERR_clear_error();
		(void)BIO_reset(bio);
		crl = d2i_X509_CRL_bio(bio, NULL);
	}
	ERR_clear_error();
	return crl;
}

X509_CRL *crl_parse(const unsigned char *data, size_t len, char *err,
                    size_t errlen)
{
	BIO *bio = len <= (size_t)INT32_MAX ? BIO_new_mem_buf(data, (int)len)
	                                    : NULL;
	X509_CRL *crl = bio ? crl_from_bio(bio) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	if (crl == NULL)
		seterr(err, errlen, "not a CRL (PEM or DER)");
	return crl;
}

X509_CRL *crl_read_file(const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "rb");
	X509_CRL *crl;

	if (bio == NULL) {
		ERR_clear_error();
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	crl = crl_from_bio(bio);
	BIO_free(bio);
	if (crl == NULL)
		seterr(err, errlen, "%s: not a CRL (PEM or DER)", path);
	return crl;
}

int crl_verify(X509_CRL *crl, const char *ca_file, char *err, size_t errlen)
{
	STACK_OF(X509) *cas;
	int ok = 0;

	if (cert_read_file(ca_file, &cas, err, errlen) != 0)
		return -1;
	for (int i = 0; !ok && i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		EVP_PKEY *pk = X509_get0_pubkey(ca);
		if (X509_NAME_cmp(X509_get_subject_name(ca),
		                  X509_CRL_get_issuer(crl)) == 0 &&
		    pk && X509_CRL_verify(crl, pk) == 1)
			ok = 1;
	}
	ERR_clear_error();
	sk_X509_pop_free(cas, X509_free);
	if (!ok)
		return seterr(err, errlen,
		              "CRL signature does not verify against any "
		              "issuer in %s",
		              ca_file);
	return 0;
}

/* The reasonCode of a CRL entry by its RFC 5280 name, or "crl" when the
 * entry has none. */
static const char *crl_entry_reason(X509_REVOKED *r)
{
	static const char *const names[] = {
		"unspecified",        "keyCompromise", "cACompromise",
		"affiliationChanged", "superseded",    "cessationOfOperation",
		"certificateHold",    "crl",           "removeFromCRL",
		"privilegeWithdrawn", "aACompromise",
	};
	ASN1_ENUMERATED *e =
	        X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	long code = e ? ASN1_ENUMERATED_get(e) : -1;

	ASN1_ENUMERATED_free(e);
	ERR_clear_error();
	if (code < 0 || code >= (long)(sizeof(names) / sizeof(names[0])))
		return "crl";
	return names[code];
}

/* One entry r of the CRL of issuer kept and applied: the certificates it
 * revoked added to *changed.  0 or -1 with err filled. */
static int crl_apply_entry(struct db *db, const char *issuer, X509_REVOKED *r,
                           const char *actor, int *changed, char *err,
                           size_t errlen)
{
	BIGNUM *bn =
	        ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	time_t when = asn1_time_to_time(X509_REVOKED_get0_revocationDate(r));
	int count = 0, rc = -1;

	if (hex == NULL)
		seterr(err, errlen, "cannot read a serial of the CRL");
	/* every entry is kept, so that a recipient certificate imported
	 * later is refused too */
	else if (db_serial_revoke_add(db, issuer, hex, crl_entry_reason(r),
	                              when, err, errlen) == 0 &&
	         db_revoke(db, issuer, hex, "crl", when, actor, &count, err,
	                   errlen) == 0) {
		*changed += count;
		rc = 0;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/* The writes of crl_verify_apply, inside its transaction. */
static int crl_write(struct db *db, X509_CRL *crl, const char *actor,
                     const struct db_crl_source *src, struct crl_applied *out,
                     char *err, size_t errlen)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	struct db_crl_source row;

	out->entries = sk_X509_REVOKED_num(revs);
	if (out->entries < 0)
		out->entries = 0;
	for (int i = 0; i < out->entries; i++)
		if (crl_apply_entry(db, out->issuer,
		                    sk_X509_REVOKED_value(revs, i), actor,
		                    &out->changed, err, errlen) != 0)
			return -1;
	if (db_crl_add(db, out->issuer, out->this_update, out->next_update,
	               out->entries, err, errlen) != 0)
		return -1;
	if (src == NULL)
		return 0;
	row = *src;
	row.issuer = out->issuer;
	row.this_update = out->this_update;
	row.next_update = out->next_update;
	return db_crl_source_put(db, &row, err, errlen);
}

int crl_verify_apply(struct db *db, X509_CRL *crl, const char *ca_file,
                     const char *actor, const struct db_crl_source *src,
                     struct crl_applied *out, char *err, size_t errlen)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);

	memset(out, 0, sizeof(*out));
	if (ca_file != NULL && crl_verify(crl, ca_file, err, errlen) != 0)
		return 1;
	out->issuer = cert_name_text(X509_CRL_get_issuer(crl));
	if (out->issuer == NULL)
		return seterr(err, errlen, "cannot read the CRL's issuer");
	out->this_update = asn1_time_to_time(X509_CRL_get0_lastUpdate(crl));
	out->next_update = next ? asn1_time_to_time(next) : 0;
	if (db_begin(db, err, errlen) != 0)
		return -1;
	if (crl_write(db, crl, actor, src, out, err, errlen) != 0 ||
	    db_commit(db, err, errlen) != 0) {
		db_rollback(db);
		out->changed = 0;
		return -1;
	}
	return 0;
}

void crl_applied_clear(struct crl_applied *a)
{
	if (a == NULL)
		return;
	free(a->issuer);
	memset(a, 0, sizeof(*a));
}

/* ---- distribution points -------------------------------------------- */

int crl_urls_add(struct crl_urls *l, const char *url)
{
	char *copy;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->url[i], url) == 0)
			return 0;
	if (array_grow(&l->url, &l->cap, l->n, sizeof(*l->url)) != 0)
		return -1;
	copy = strdup(url);
	if (copy == NULL)
		return -1;
	l->url[l->n++] = copy;
	return 1;
}

/* The URIs of one list of general names added to l: how many, or -1. */
static int crl_urls_add_names(struct crl_urls *l, GENERAL_NAMES *names)
{
	int added = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *s;
		int len, r;
		char *url;

		if (gn->type != GEN_URI)
			continue;
		s = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		/* an embedded NUL would make the URL another one */
		if (len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
			continue;
		url = strndup((const char *)s, (size_t)len);
		r = url ? crl_urls_add(l, url) : -1;
		free(url);
		if (r < 0)
			return -1;
		added += r;
	}
	return added;
}

int crl_urls_add_cdp(struct crl_urls *l, X509 *x)
{
	STACK_OF(DIST_POINT) *dps =
	        X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	int added = 0;

	ERR_clear_error();
	for (int i = 0; added >= 0 && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		int r;

		/* a relative name (type 1) has no URL of its own */
		if (dp->distpoint == NULL || dp->distpoint->type != 0)
			continue;
		r = crl_urls_add_names(l, dp->distpoint->name.fullname);
		added = r < 0 ? -1 : added + r;
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return added;
}

void crl_urls_free(struct crl_urls *l)
{
	if (l == NULL)
		return;
	strv_free(l->url, l->n);
	memset(l, 0, sizeof(*l));
}

int crl_url_fetchable(const char *url)
{
	return url != NULL && (strncasecmp(url, "http://", 7) == 0 ||
	                       strncasecmp(url, "https://", 8) == 0);
}

int crl_verdict(int fetch_ok, int stored, time_t next_update, time_t now)
{
	int within = next_update <= 0 || now < next_update;

	if (fetch_ok)
		return within ? 0 : 2;
	return stored && within ? 1 : 2;
}
