/*
 * crl -- smimectl crl import: CRLs, checked against ca_file, mark the
 * certificates they list revoked and keep every serial for later imports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "db.h"
#include "smimectl.h"

static X509_CRL *read_crl(const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "rb");
	X509_CRL *crl;

	if (bio == NULL) {
		ERR_clear_error();
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (crl == NULL) {
		ERR_clear_error();
		(void)BIO_reset(bio);
		crl = d2i_X509_CRL_bio(bio, NULL);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (crl == NULL)
		seterr(err, errlen, "%s: not a CRL (PEM or DER)", path);
	return crl;
}

/* Verify crl's signature with an issuer from ca_file; 0 ok, -1 not. */
static int crl_verify(X509_CRL *crl, const char *ca_file, char *err,
                      size_t errlen)
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

/* The CRL file path, read and (with ca_file) verified, or die. */
static X509_CRL *crl_load(const struct config *cfg, const char *path)
{
	char err[1024];
	X509_CRL *crl = read_crl(path, err, sizeof(err));

	if (crl == NULL)
		die(EX_DATAERR, "%s", err);
	if (cfg->ca_file) {
		if (crl_verify(crl, cfg->ca_file, err, sizeof(err)) != 0)
			die(EX_DATAERR, "%s: refused: %s", path, err);
	} else
		fprintf(stderr,
		        "smimectl: warning: no ca_file configured, the "
		        "signature of %s is not verified\n",
		        path);
	return crl;
}

/* One entry r of the CRL of issuer (read from path) kept and applied:
 * the number of certificates it revoked into *count. */
static void crl_apply_entry(struct db *db, const char *path, const char *issuer,
                            X509_REVOKED *r, int *count)
{
	char err[1024];
	BIGNUM *bn =
	        ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	time_t when = asn1_time_to_time(X509_REVOKED_get0_revocationDate(r));

	*count = 0;
	if (hex == NULL) {
		db_rollback(db);
		die(EX_SOFTWARE, "%s: cannot read a serial", path);
	}
	/* every entry is kept, so that a recipient
	 * certificate imported later is refused too */
	if (db_serial_revoke_add(db, issuer, hex, crl_entry_reason(r), when,
	                         err, sizeof(err)) != 0 ||
	    db_revoke(db, issuer, hex, "crl", when, actor(), count, err,
	              sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	}
	OPENSSL_free(hex);
	BN_free(bn);
}

/* The CRL crl (read from path) applied in one transaction; returns how
 * many certificates it marked revoked.  Frees crl. */
static int crl_apply(struct db *db, const char *path, X509_CRL *crl)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	char err[1024], *issuer = cert_name_text(X509_CRL_get_issuer(crl));
	int changed = 0, n = sk_X509_REVOKED_num(revs);

	if (db_begin(db, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "%s", err);
	for (int i = 0; i < n; i++) {
		int count;
		crl_apply_entry(db, path, issuer,
		                sk_X509_REVOKED_value(revs, i), &count);
		changed += count;
	}
	if (db_crl_add(db, issuer,
	               asn1_time_to_time(X509_CRL_get0_lastUpdate(crl)),
	               asn1_time_to_time(X509_CRL_get0_nextUpdate(crl)), n, err,
	               sizeof(err)) != 0 ||
	    db_commit(db, err, sizeof(err)) != 0) {
		db_rollback(db);
		die(EX_TEMPFAIL, "nothing changed: %s", err);
	}
	printf("%s: %d serial%s listed, %d certificate%s marked "
	       "revoked\n",
	       path, n, n == 1 ? "" : "s", changed, changed == 1 ? "" : "s");
	free(issuer);
	X509_CRL_free(crl);
	return changed;
}

int cmd_crl(int argc, char **argv)
{
	X509_CRL **crls; /* by argv index */
	int total = 0;
	struct config *cfg;
	struct db *db;

	if (argc < 3 || strcmp(argv[1], "import") != 0)
		die(EX_USAGE, "usage: crl import FILE...");
	cfg = load_config();
	/* read and verify every CRL before the database is touched */
	crls = calloc((size_t)argc, sizeof(*crls));
	if (crls == NULL)
		die(EX_OSERR, "out of memory");
	for (int f = 2; f < argc; f++)
		crls[f] = crl_load(cfg, argv[f]);
	db = open_db_as_user(cfg, DB_READWRITE);
	for (int f = 2; f < argc; f++)
		total += crl_apply(db, argv[f], crls[f]);
	free(crls);
	if (total > 0)
		printf("run \"smimectl reload\" (or send SIGUSR1) so the "
		       "milter "
		       "stops using them\n");
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
