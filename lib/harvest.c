/* harvest -- store a verified signer's certificate (see harvest.h). */
#include "harvest.h"
#include "certstore.h"
#include "db.h"
#include "recipient.h"
#include "util.h"

#include <stdio.h>
#include <time.h>

/* Store x for every address it carries. */
static int store(struct db *db, X509 *x, harvest_fn found, void *arg, char *why,
                 size_t whylen)
{
	char **addrs = cert_emails(x), err[512];
	int stored = 0;

	if (addrs == NULL)
		return seterr(why, whylen, "out of memory");
	for (char **a = addrs; *a; a++) {
		struct db_recipient r;
		int added = 0;
		if (recipient_from_cert(x, *a, "harvest", &r, err,
		                        sizeof(err)) != 0 ||
		    db_recipient_add(db, &r, "smime-milter", &added, err,
		                     sizeof(err)) != 0) {
			db_recipient_clear(&r);
			seterr(why, whylen, "cannot store: %s", err);
			cert_emails_free(addrs);
			return -1;
		}
		if (added) {
			stored++;
			if (found)
				found(arg, *a, r.serial, x);
		} else if (stored == 0) {
			seterr(why, whylen, "certificate already known");
		}
		db_recipient_clear(&r);
	}
	cert_emails_free(addrs);
	return stored;
}

int harvest_signer(const struct snapshot *s, const char *from, X509 *signer,
                   STACK_OF(X509) *certs, harvest_fn found, void *arg,
                   char *why, size_t whylen)
{
	const struct config *cfg = s->cfg;
	time_t now = time(NULL);
	struct db *db = NULL;
	X509 *known;
	char err[512];
	int rc;

	why[0] = '\0';
	if (signer == NULL || from == NULL || from[0] == '\0') {
		seterr(why, whylen, "no verified signer with a From address");
		return 0;
	}
	if (!cert_has_email(signer, from)) {
		seterr(why, whylen,
		       "signer certificate does not carry the From address %s",
		       from);
		return 0;
	}
	/* known already: no database work for every message */
	known = snapshot_encryption_cert(s, from, now, NULL);
	if (known && X509_cmp(known, signer) == 0) {
		seterr(why, whylen, "certificate already known");
		return 0;
	}
	if (db_open(cfg->database, DB_READWRITE, &db, err, sizeof(err)) != 0) {
		seterr(why, whylen, "database: %s", err);
		return -1;
	}
	if (recipient_cert_check(db, signer, certs, cfg->ca_file, now, err,
	                         sizeof(err)) != 0) {
		seterr(why, whylen, "signer certificate refused: %s", err);
		rc = 0;
	} else {
		rc = store(db, signer, found, arg, why, whylen);
	}
	db_close(db);
	return rc;
}
