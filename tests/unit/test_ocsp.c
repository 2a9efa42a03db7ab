/* Unit tests for lib/ocsp.c, lib/db_ocsp.c and lib/ocsp_cache.c: requests
 * made here answered by `openssl ocsp -reqin ... -respout` (no network),
 * judged good / revoked / unknown, and what is refused (another signer, a
 * replayed nonce, an answer about another certificate, garbage); the
 * ocsp_responses rows; the cache served from the database, a failing
 * responder reported once, a revoked inbound signer. */
#include "certstore.h"
#include "config.h"
#include "db.h"
#include "fixture.h"
#include "ocsp.h"
#include "ocsp_cache.h"
#include "smime_verify.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ca_ext = "basicConstraints:critical,CA:true|keyUsage:"
                            "critical,keyCertSign,cRLSign";
static const char *leaf_ext =
        "basicConstraints:CA:false|keyUsage:critical,digitalSignature,"
        "keyEncipherment|extendedKeyUsage:emailProtection|"
        "subjectAltName:email:partner@jabarprov.go.id|"
        "authorityInfoAccess:OCSP;URI:http://127.0.0.1:9/ocsp";

static X509 *ca, *other, *good, *revoked, *unknown, *noaia;
static X509_STORE *store;
static time_t now;

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(1 << 16);
	size_t n = 0;

	if (f && buf)
		n = fread(buf, 1, 1 << 16, f);
	if (f)
		fclose(f);
	*len = n;
	return buf;
}

/* The request r written, answered by openssl ocsp as signer (the "ca" or
 * "other" files), the response read into *der.  0 or -1. */
static int answer(const struct ocsp_req *r, const char *signer,
                  unsigned char **der, size_t *len)
{
	FILE *f = fopen(fixture_path("req.der"), "wb");

	*der = NULL;
	if (f == NULL || fwrite(r->der, 1, r->len, f) != r->len) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	if (fixture_sh("openssl ocsp -index %s -rsigner %s/%s.pem -rkey "
	               "%s/%s.key -CA %s/ca.pem -reqin %s -respout %s "
	               "-ndays 1 >/dev/null 2>&1",
	               fixture_path("index.txt"), fixture_path(""), signer,
	               fixture_path(""), signer, fixture_path(""),
	               fixture_path("req.der"), fixture_path("resp.der")) != 0)
		return -1;
	*der = slurp(fixture_path("resp.der"), len);
	return *der && *len ? 0 : -1;
}

/* Ask about x (issued by ca) with or without a nonce; answer as signer;
 * judge.  The check's result; *v and err filled. */
static int judge(X509 *x, const char *signer, struct ocsp_verdict *v, char *err,
                 size_t errlen)
{
	struct ocsp_req r;
	unsigned char *der;
	size_t len;
	int rc = -1;

	if (ocsp_request_make(x, ca, 1, &r, err, errlen) != 0)
		return -1;
	if (answer(&r, signer, &der, &len) == 0)
		rc = ocsp_response_check(&r, der, len, ca, store, v, err,
		                         errlen);
	free(der);
	ocsp_request_clear(&r);
	return rc;
}

static void test_names(void)
{
	enum ocsp_cert_status s = OCSP_VERDICT_GOOD;
	char *u;

	ok(ocsp_status_parse("revoked", &s) == 0 && s == OCSP_VERDICT_REVOKED &&
	           strcmp(ocsp_status_name(s), "revoked") == 0,
	   "status names: revoked both ways");
	ok(ocsp_status_parse("Good", &s) != 0 &&
	           ocsp_status_parse(NULL, &s) != 0,
	   "an unknown word is refused");
	is_str(ocsp_reason_name(1), "keyCompromise", "reason 1 by name");
	u = ocsp_cert_url(good);
	is_str(u, "http://127.0.0.1:9/ocsp", "the AIA OCSP URL");
	free(u);
	ok(ocsp_cert_url(noaia) == NULL && ocsp_cert_url(NULL) == NULL,
	   "no URL without an AIA OCSP entry");
}

static void test_issuer(void)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *i;

	i = ocsp_find_issuer(good, NULL, store);
	ok(i && X509_cmp(i, ca) == 0, "the issuer found in the trust bundle");
	X509_free(i);
	sk_X509_push(chain, good);
	sk_X509_push(chain, other);
	sk_X509_push(chain, ca);
	i = ocsp_find_issuer(good, chain, NULL);
	ok(i && X509_cmp(i, ca) == 0,
	   "... and among untrusted certificates (not the cert itself, not "
	   "a stranger)");
	X509_free(i);
	ok(ocsp_find_issuer(other, NULL, store) == NULL,
	   "a certificate from elsewhere has no issuer here");
	sk_X509_free(chain);
}

static void test_verdicts(void)
{
	struct ocsp_verdict v;
	char err[512];

	ok(judge(good, "ca", &v, err, sizeof(err)) == 0 &&
	           v.status == OCSP_VERDICT_GOOD && v.revoked_at == 0,
	   "good");
	ok(v.this_update > now - 600 && v.next_update > now + 86000 &&
	           v.next_update < now + 87000,
	   "... thisUpdate now, nextUpdate a day ahead");
	ok(judge(revoked, "ca", &v, err, sizeof(err)) == 0 &&
	           v.status == OCSP_VERDICT_REVOKED &&
	           v.revoked_at == 1793491200 && v.reason == 1,
	   "revoked on 2026-11-01, keyCompromise (%lld, %d)",
	   (long long)v.revoked_at, v.reason);
	ok(judge(unknown, "ca", &v, err, sizeof(err)) == 0 &&
	           v.status == OCSP_VERDICT_UNKNOWN,
	   "unknown to the responder");
	ok(judge(good, "other", &v, err, sizeof(err)) != 0 &&
	           strstr(err, "signature") != NULL,
	   "an answer signed by a stranger is refused: %s", err);
}

static void test_refusals(void)
{
	struct ocsp_req a, b;
	struct ocsp_verdict v;
	unsigned char *der = NULL, junk[64];
	size_t len = 0;
	char err[512] = "";

	/* the answer to request a, presented as the answer to b */
	ocsp_request_make(good, ca, 1, &a, err, sizeof(err));
	ocsp_request_make(good, ca, 1, &b, err, sizeof(err));
	ok(answer(&a, "ca", &der, &len) == 0 &&
	           ocsp_response_check(&a, der, len, ca, store, &v, err,
	                               sizeof(err)) == 0,
	   "the answer to its own request holds");
	ok(ocsp_response_check(&b, der, len, ca, store, &v, err, sizeof(err)) !=
	                   0 &&
	           strstr(err, "nonce") != NULL,
	   "replayed for another request (other nonce): refused: %s", err);
	ocsp_request_clear(&b);
	ok(ocsp_request_make(revoked, ca, 0, &b, err, sizeof(err)) == 0 &&
	           ocsp_response_check(&b, der, len, ca, store, &v, err,
	                               sizeof(err)) != 0 &&
	           strstr(err, "does not answer") != NULL,
	   "an answer about another certificate is refused: %s", err);
	ok(ocsp_response_check(&a, der, len - 1, ca, store, &v, err,
	                       sizeof(err)) != 0 &&
	           strstr(err, "malformed") != NULL,
	   "a cut answer is malformed: %s", err);
	memset(junk, 'x', sizeof(junk));
	ok(ocsp_response_check(&a, junk, sizeof(junk), ca, store, &v, err,
	                       sizeof(err)) != 0 &&
	           strstr(err, "malformed") != NULL,
	   "garbage is malformed");
	ok(ocsp_response_check(&a, der, len, ca, NULL, &v, err, sizeof(err)) !=
	           0,
	   "no trust bundle: nothing is judged");
	free(der);
	ocsp_request_clear(&a);
	ocsp_request_clear(&b);
	ocsp_request_clear(NULL);
	ok(ocsp_query(good, ca, store, "http://127.0.0.1:9/ocsp", 2000, &v, err,
	              sizeof(err)) != 0 &&
	           strstr(err, "OCSP responder") != NULL,
	   "nobody listening: the error names the OCSP responder: %s", err);
}

static int nreports, nerrors;
static char lastreport[1024];

static void reporter(int is_error, const char *text)
{
	nreports++;
	nerrors += is_error;
	snprintf(lastreport, sizeof(lastreport), "%s", text);
}

/* A row for x in the database: status st, nextUpdate at next. */
static int store_row(struct db *db, X509 *x, const char *st, time_t next)
{
	struct db_ocsp r = { 0 };
	struct cert_info ci;
	char err[256];
	int rc;

	if (cert_info_get(x, &ci) != 0)
		return -1;
	r.issuer = ci.issuer; /* as the certificates table has them */
	r.serial = ci.serial;
	r.status = (char *)st;
	r.revoked_at = strcmp(st, "revoked") == 0 ? 1793491200 : 0;
	r.reason = strcmp(st, "revoked") == 0 ? "keyCompromise" : NULL;
	r.this_update = now - 60;
	r.next_update = next;
	r.checked_at = now - 60;
	r.responder = "http://127.0.0.1:9/ocsp";
	rc = db_ocsp_put(db, &r, err, sizeof(err));
	if (rc != 0)
		printf("# db_ocsp_put: %s\n", err);
	cert_info_clear(&ci);
	return rc;
}

static int count_row(void *arg, const struct db_ocsp *r)
{
	(*(int *)arg)++;
	return r == NULL;
}

static void test_db_and_cache(void)
{
	struct config cfg;
	struct db *db = NULL;
	struct db_ocsp got;
	struct ocsp_cache *c;
	struct ocsp_verdict v;
	struct smime_verdict sv;
	unsigned long hits = 0, queries = 0;
	char err[512], why[512], path[512];
	int n = 0;

	snprintf(path, sizeof(path), "%s", fixture_db("ocsp.db"));
	if (db_open(path, DB_CREATE, &db, err, sizeof(err)) != 0) {
		ok(0, "database: %s", err);
		return;
	}
	ok(store_row(db, good, "good", now + 3600) == 0 &&
	           store_row(db, revoked, "revoked", now + 3600) == 0 &&
	           store_row(db, unknown, "good", now - 10) == 0,
	   "three answers stored (one past its nextUpdate)");
	ok(db_ocsp_get(db, "CN=Test OCSP CA,O=Test Partner", "1002", &got, err,
	               sizeof(err)) == 1 &&
	           strcmp(got.status, "revoked") == 0 &&
	           got.revoked_at == 1793491200 &&
	           strcmp(got.reason, "keyCompromise") == 0,
	   "a stored answer read back");
	db_ocsp_clear(&got);
	ok(db_ocsp_get(db, "CN=nobody", "1002", &got, err, sizeof(err)) == 0,
	   "none for another issuer");
	ok(db_ocsp_current(db, now, 300, count_row, &n, err, sizeof(err)) ==
	                   0 &&
	           n == 2,
	   "the current answers: two of three (%d)", n);
	ok(store_row(db, good, "bad", now + 3600) != 0,
	   "a status other than good, revoked, unknown is refused");

	memset(&cfg, 0, sizeof(cfg));
	cfg.path = "test.conf";
	cfg.database = path;
	cfg.ca_file = (char *)fixture_path("ca.pem");
	cfg.ocsp_timeout = 2;
	ocsp_reporter = reporter;
	c = ocsp_cache_new(&cfg, db, err, sizeof(err));
	ok(c != NULL, "a cache seeded from the database: %s", c ? "" : err);
	ok(ocsp_cache_check(c, good, NULL, now, &v, why, sizeof(why)) == 1 &&
	           v.status == OCSP_VERDICT_GOOD,
	   "good, from memory");
	ok(ocsp_cache_revoked(c, revoked, NULL, now, NULL) == 1,
	   "revoked, from memory");
	ocsp_cache_counts(c, &hits, &queries);
	ok(hits == 2 && queries == 0 && nreports == 0,
	   "... no responder asked, nothing reported (%lu hits, %lu queries)",
	   hits, queries);
	ok(ocsp_cache_check(c, unknown, NULL, now, &v, why, sizeof(why)) == 0 &&
	           nerrors == 1 && strstr(lastreport, "127.0.0.1:9") &&
	           strstr(lastreport, "CRL status"),
	   "past nextUpdate: asked, no answer, reported: %s", lastreport);
	ok(ocsp_cache_check(c, unknown, NULL, now, &v, why, sizeof(why)) == 0 &&
	           nreports == 1 && strstr(why, "failing"),
	   "asked again: still no answer, not reported twice (%s)", why);
	ok(ocsp_cache_check(c, unknown, NULL, now + OCSP_RETRY + 1, &v, why,
	                    sizeof(why)) == 0 &&
	           nreports == 1,
	   "after %d s asked again, failing still: still reported once (%d)",
	   OCSP_RETRY, nreports);
	ocsp_cache_counts(c, &hits, &queries);
	ok(queries == 2, "... two questions sent in all (%lu)", queries);
	ok(ocsp_cache_check(c, noaia, NULL, now, &v, why, sizeof(why)) == 0 &&
	           strstr(why, "no OCSP responder"),
	   "a certificate without a responder: no answer (%s)", why);

	memset(&sv, 0, sizeof(sv));
	sv.result = SMIME_PASS;
	sv.signer = revoked;
	sv.serial = "1002";
	sv.issuer = "CN=Test OCSP CA,O=Test Partner";
	ok(ocsp_cache_judge(c, &sv, now) == 1 && sv.result == SMIME_FAIL &&
	           strstr(sv.reason, "certificate revoked 2026-11-01") &&
	           strstr(sv.reason, "OCSP"),
	   "an inbound signer revoked by OCSP fails: %s", sv.reason);
	sv.result = SMIME_PASS;
	sv.signer = good;
	ok(ocsp_cache_judge(c, &sv, now) == 0 && sv.result == SMIME_PASS,
	   "a good one passes");
	ok(ocsp_cache_judge(NULL, &sv, now) == 0, "no cache: left as it is");
	ocsp_cache_free(c);
	ocsp_cache_free(NULL);
	cfg.ca_file = NULL;
	ok(ocsp_cache_new(&cfg, NULL, err, sizeof(err)) == NULL &&
	           strstr(err, "ca_file"),
	   "ocsp without ca_file is refused: %s", err);
	cfg.ca_file = (char *)fixture_path("ca.pem");
	cfg.ocsp_responder = "ldap://x";
	ok(ocsp_cache_new(&cfg, NULL, err, sizeof(err)) == NULL &&
	           strstr(err, "ocsp_responder"),
	   "an ocsp_responder that is not http(s) is refused: %s", err);
	ocsp_reporter = NULL;
	db_close(db);
}

int main(void)
{
	EVP_PKEY *cakey, *okey, *key;
	FILE *f;

	now = time(NULL);
	fixture_dir("ocsp");
	cakey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	okey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!cakey || !okey || !key)
		return 1;
	ca = fixture_cert_make(cakey, "Test OCSP CA", NULL, NULL, 1, now,
	                       -86400L, 3650 * 86400L, ca_ext);
	other = fixture_cert_make(okey, "Other CA", NULL, NULL, 1, now, -86400L,
	                          3650 * 86400L, ca_ext);
	good = fixture_cert_make(key, "Good", ca, cakey, 0x1001, now, -86400L,
	                         365 * 86400L, leaf_ext);
	revoked = fixture_cert_make(key, "Revoked", ca, cakey, 0x1002, now,
	                            -86400L, 365 * 86400L, leaf_ext);
	unknown = fixture_cert_make(key, "Unknown", ca, cakey, 0x1003, now,
	                            -86400L, 365 * 86400L, leaf_ext);
	noaia = fixture_cert_make(key, "No AIA", ca, cakey, 0x1004, now,
	                          -86400L, 365 * 86400L,
	                          "basicConstraints:CA:false");
	if (fixture_pem_write(fixture_path("ca.pem"), ca, NULL) != 0 ||
	    fixture_key_write(fixture_path("ca.key"), cakey) != 0 ||
	    fixture_pem_write(fixture_path("other.pem"), other, NULL) != 0 ||
	    fixture_key_write(fixture_path("other.key"), okey) != 0 ||
	    (f = fopen(fixture_path("index.txt"), "w")) == NULL)
		return 1;
	fputs("V\t301231000000Z\t\t1001\tunknown\t/CN=Good\n"
	      "R\t301231000000Z\t261101000000Z,keyCompromise\t1002\tunknown\t"
	      "/CN=Revoked\n",
	      f);
	fclose(f);
	store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);

	test_names();
	test_issuer();
	test_verdicts();
	test_refusals();
	test_db_and_cache();

	X509_STORE_free(store);
	X509 *all[] = { ca, other, good, revoked, unknown, noaia };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		X509_free(all[i]);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(okey);
	EVP_PKEY_free(key);
	return fixture_end(tap_done());
}
