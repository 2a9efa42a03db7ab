/*
 * ocsp -- smimectl ocsp check ADDR|FILE: ask the OCSP responder about the
 * certificates of a mailbox (its signing certificate and its recipient
 * certificates) or of a PEM/DER file, print each answer, and store it in
 * ocsp_responses, where the milter finds it at its next start or reload.
 * Works whether or not ocsp = true.  Exit: 0 every certificate good, 1
 * some without an answer (or unknown), 2 some revoked.
 */
#include "smimectl.h"

#include "certstore.h"
#include "ocsp.h"
#include "smime_verify.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

struct certs {
	const char *address;
	STACK_OF(X509) *v;
};

static void push_pem(struct certs *c, const char *pem)
{
	STACK_OF(X509) *s = cert_stack_from_pem(pem);

	while (s && sk_X509_num(s) > 0) {
		X509 *x = sk_X509_shift(s);
		if (!sk_X509_push(c->v, x))
			X509_free(x);
	}
	sk_X509_free(s);
}

static int add_mapped(void *arg, const char *address, const struct db_cert *dc)
{
	struct certs *c = arg;

	if (str_ieq(address, c->address)) {
		push_pem(c, dc->cert_pem);
		push_pem(c, dc->chain_pem); /* to find the issuer */
	}
	return 0;
}

static int add_recipient(void *arg, const struct db_recipient *r)
{
	push_pem(arg, r->cert_pem);
	return 0;
}

/* " YYYY-MM-DD HH:MM UTC" of t, or "" for 0. */
static const char *when(time_t t, char *buf, size_t len)
{
	struct tm tm;

	buf[0] = '\0';
	if (t > 0 && gmtime_r(&t, &tm))
		strftime(buf, len, " %Y-%m-%d %H:%M UTC", &tm);
	return buf;
}

/* Ask about x and print the answer; store it in db.  0 good, 1 no answer
 * or unknown, 2 revoked. */
static int check_one(const struct config *cfg, struct db *db, X509 *x,
                     STACK_OF(X509) *all, X509_STORE *store)
{
	struct cert_info ci;
	struct ocsp_verdict v;
	char *url, err[600], t1[40], t2[40];
	X509 *issuer;
	int rc;

	if (cert_info_get(x, &ci) != 0)
		die(EX_OSERR, "out of memory");
	url = cfg->ocsp_responder ? xstrdup(cfg->ocsp_responder)
	                          : ocsp_cert_url(x);
	issuer = ocsp_find_issuer(x, all, store);
	if (url == NULL || issuer == NULL) {
		printf("%s %s: no answer: %s\n", ci.serial, ci.subject,
		       url ? "its issuer is not in ca_file"
		           : "it names no OCSP responder (and no "
		             "ocsp_responder is set)");
		rc = 1;
	} else if (ocsp_query(x, issuer, store, url,
	                      (long)cfg->ocsp_timeout * 1000, &v, err,
	                      sizeof(err)) != 0) {
		printf("%s %s: no answer: %s\n", ci.serial, ci.subject, err);
		rc = 1;
	} else {
		const char *reason = ocsp_reason_name(v.reason);
		struct db_ocsp row = { ci.issuer,
			               ci.serial,
			               (char *)ocsp_status_name(v.status),
			               v.revoked_at,
			               (char *)reason,
			               v.this_update,
			               v.next_update,
			               time(NULL),
			               url };
		printf("%s %s: %s", ci.serial, ci.subject,
		       ocsp_status_name(v.status));
		if (v.status == OCSP_VERDICT_REVOKED)
			printf(" since%s%s%s",
			       when(v.revoked_at, t1, sizeof(t1)),
			       reason ? ", " : "", reason ? reason : "");
		printf(" (responder %s; next update%s)\n", url,
		       v.next_update ? when(v.next_update, t2, sizeof(t2))
		                     : " not given");
		if (db_ocsp_put(db, &row, err, sizeof(err)) != 0)
			fprintf(stderr, "smimectl: answer not stored: %s\n",
			        err);
		rc = v.status == OCSP_VERDICT_GOOD      ? 0
		     : v.status == OCSP_VERDICT_REVOKED ? 2
		                                        : 1;
	}
	X509_free(issuer);
	free(url);
	cert_info_clear(&ci);
	return rc;
}

int cmd_ocsp(int argc, char **argv)
{
	struct certs c = { NULL, NULL };
	struct config *cfg;
	struct db *db;
	X509_STORE *store;
	char err[512], mbox[320];
	int worst = 0, n;

	if (argc != 3 || strcmp(argv[1], "check") != 0)
		die(EX_USAGE, "usage: ocsp check ADDR|FILE");
	cfg = load_config();
	store = cfg->ca_file ? smime_trust_load(cfg->ca_file, err, sizeof(err))
	                     : NULL;
	if (store == NULL)
		die(EX_CONFIG,
		    "%s: OCSP answers are verified against ca_file: %s",
		    cfg->path, cfg->ca_file ? err : "it is not set");
	db = open_db_as_user(cfg, DB_READWRITE);
	if (strchr(argv[2], '@')) {
		mailbox_arg(NULL, argv[2], mbox, sizeof(mbox));
		c.address = mbox;
		if ((c.v = sk_X509_new_null()) == NULL)
			die(EX_OSERR, "out of memory");
		if (db_mappings(db, add_mapped, &c, err, sizeof(err)) != 0 ||
		    db_recipients(db, mbox, 1, add_recipient, &c, err,
		                  sizeof(err)) != 0)
			die(EX_SOFTWARE, "%s", err);
	} else if (cert_read_file(argv[2], &c.v, err, sizeof(err)) != 0)
		die(EX_NOINPUT, "%s", err);
	n = sk_X509_num(c.v);
	if (n == 0)
		die(EX_NOINPUT, "no certificate of %s is stored", argv[2]);
	for (int i = 0; i < n; i++) {
		X509 *x = sk_X509_value(c.v, i);
		int rc;
		if (X509_check_ca(x) != 0)
			continue; /* an issuer: only helps find the issuer */
		rc = check_one(cfg, db, x, c.v, store);
		worst = rc > worst ? rc : worst;
	}
	sk_X509_pop_free(c.v, X509_free);
	X509_STORE_free(store);
	db_close(db);
	config_free(cfg);
	return worst;
}
