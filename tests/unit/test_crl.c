/*
 * Unit tests: lib/crl.c and lib/db_crl.c -- the CRL Distribution Point
 * URLs of certificates (order, duplicates, schemes), the monitoring
 * verdict, CRLs read as PEM and DER, verified against the right and a
 * wrong CA of the same name, and applied: a refused CRL writes nothing, an
 * accepted one records its crl_sources row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crl.h"
#include "db.h"
#include "fixture.h"
#include "tap.h"

static void test_cdp(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	time_t now = time(NULL);
	X509 *a = fixture_cert_make(k, "CDP A", NULL, NULL, 1, now, -60, 3600,
	                            "crlDistributionPoints:URI:http://"
	                            "crl.example/CA-1.crl,"
	                            "URI:ldap://ldap.example/cn=CA,URI:HTTPS://"
	                            "crl.example/b.crl");
	X509 *b = fixture_cert_make(k, "CDP B", NULL, NULL, 2, now, -60, 3600,
	                            "crlDistributionPoints:URI:http://"
	                            "crl.example/CA-1.crl,"
	                            "URI:http://crl2.example/c.crl");
	X509 *none = fixture_cert_make(k, "No CDP", NULL, NULL, 3, now, -60,
	                               3600, "basicConstraints:CA:FALSE");
	struct crl_urls l = { 0 };

	ok(crl_urls_add_cdp(&l, a) == 3 && l.n == 3,
	   "three URIs of one certificate (%zu)", l.n);
	is_str(l.n > 0 ? l.url[0] : NULL, "http://crl.example/CA-1.crl",
	       "in their order, case kept (1)");
	is_str(l.n > 2 ? l.url[2] : NULL, "HTTPS://crl.example/b.crl",
	       "in their order, case kept (3)");
	ok(crl_urls_add_cdp(&l, b) == 1 && l.n == 4,
	   "a second certificate adds only the URL not seen yet (%zu)", l.n);
	ok(crl_urls_add_cdp(&l, none) == 0 && l.n == 4,
	   "a certificate without the extension adds nothing");
	ok(crl_urls_add(&l, "http://crl2.example/c.crl") == 0 &&
	           crl_urls_add(&l, "http://crl2.example/C.crl") == 1 &&
	           l.n == 5,
	   "crl_urls_add: a duplicate is dropped, another path is not");
	crl_urls_free(&l);
	ok(l.n == 0 && l.url == NULL, "crl_urls_free empties the list");
	crl_urls_free(NULL);
	X509_free(a);
	X509_free(b);
	X509_free(none);
	EVP_PKEY_free(k);
}

static void test_fetchable(void)
{
	ok(crl_url_fetchable("http://a/x.crl") &&
	           crl_url_fetchable("HTTPS://a/x.crl"),
	   "http and https, in any case, are fetched");
	ok(!crl_url_fetchable("ldap://a/cn=x") &&
	           !crl_url_fetchable("file:///etc/passwd") &&
	           !crl_url_fetchable("httpx://a") &&
	           !crl_url_fetchable("http:/a") && !crl_url_fetchable(NULL),
	   "ldap, file, look-alikes and NULL are not");
}

static void test_verdict(void)
{
	time_t now = 1800000000;

	ok(crl_verdict(1, 1, now + 60, now) == 0, "fetched and fresh: 0");
	ok(crl_verdict(1, 1, 0, now) == 0, "fetched, no nextUpdate: 0");
	ok(crl_verdict(1, 1, now, now) == 2, "fetched but at nextUpdate: 2");
	ok(crl_verdict(0, 1, now + 60, now) == 1,
	   "failed, the stored CRL still valid: 1");
	ok(crl_verdict(0, 1, now - 1, now) == 2,
	   "failed, the stored CRL expired: 2");
	ok(crl_verdict(0, 0, 0, now) == 2, "failed, never stored: 2");
}

/* A CRL of issuer signed by key, listing serial 0x1001, valid until
 * now + next. */
static X509_CRL *crl_make(X509 *issuer, EVP_PKEY *key, long next)
{
	X509_CRL *c = X509_CRL_new();
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	ASN1_TIME *t = ASN1_TIME_new();
	time_t now = time(NULL);

	ASN1_INTEGER_set(serial, 0x1001);
	X509_REVOKED_set_serialNumber(r, serial);
	X509_time_adj_ex(t, 0, -60, &now);
	X509_REVOKED_set_revocationDate(r, t);
	X509_CRL_add0_revoked(c, r);
	X509_CRL_set_version(c, 1);
	X509_CRL_set_issuer_name(c, X509_get_subject_name(issuer));
	X509_CRL_set1_lastUpdate(c, t);
	X509_time_adj_ex(t, 0, next, &now);
	X509_CRL_set1_nextUpdate(c, t);
	X509_CRL_sort(c);
	X509_CRL_sign(c, key, EVP_sha256());
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	return c;
}

static int count_crls(void *arg, const char *issuer, time_t next_update)
{
	++*(int *)arg;
	return 0;
}

static void test_verify_apply(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	time_t now = time(NULL);
	X509 *ca =
	        fixture_cert_make(k, "CRL CA", NULL, NULL, 10, now, -60, 86400,
	                          "basicConstraints:critical,CA:TRUE");
	X509 *impostor =
	        fixture_cert_make(k2, "CRL CA", NULL, NULL, 11, now, -60, 86400,
	                          "basicConstraints:critical,CA:TRUE");
	X509_CRL *good = crl_make(ca, k, 3600),
	         *bad = crl_make(impostor, k2, 3600);
	unsigned char *der = NULL;
	int dlen = i2d_X509_CRL(good, &der), n = 0;
	BIO *mem = BIO_new(BIO_s_mem());
	char *pem, err[512], dbpath[512];
	long plen;
	X509_CRL *x;
	struct db *db = NULL;
	struct crl_applied a;
	struct db_crl_source src = { 0 }, got;

	PEM_write_bio_X509_CRL(mem, good);
	plen = BIO_get_mem_data(mem, &pem);
	x = crl_parse(der, (size_t)dlen, err, sizeof(err));
	ok(x != NULL, "a DER CRL is read");
	X509_CRL_free(x);
	x = crl_parse((unsigned char *)pem, (size_t)plen, err, sizeof(err));
	ok(x != NULL, "a PEM CRL is read");
	X509_CRL_free(x);
	ok(crl_parse((const unsigned char *)"<html>", 6, err, sizeof(err)) ==
	                   NULL &&
	           strstr(err, "not a CRL"),
	   "garbage is not a CRL (%s)", err);
	BIO_free(mem);
	OPENSSL_free(der);

	fixture_pem_write(fixture_path("ca.pem"), ca, NULL);
	err[0] = '\0';
	ok(crl_verify(good, fixture_path("ca.pem"), err, sizeof(err)) == 0,
	   "the CA's CRL verifies (%s)", err);
	ok(crl_verify(bad, fixture_path("ca.pem"), err, sizeof(err)) != 0 &&
	           strstr(err, "does not verify"),
	   "a CRL of another key with the CA's name does not (%s)", err);

	snprintf(dbpath, sizeof(dbpath), "%s", fixture_db("crl.db"));
	if (db_open(dbpath, DB_CREATE, &db, err, sizeof(err)) != 0) {
		ok(0, "database (%s)", err);
		goto out;
	}
	src.url = "http://crl.example/ca.crl";
	src.last_modified = 1700000000;
	src.fetched_at = src.checked_at = now;
	src.status = "fresh";
	err[0] = '\0';
	ok(crl_verify_apply(db, bad, fixture_path("ca.pem"), "test", &src, &a,
	                    err, sizeof(err)) == 1,
	   "crl_verify_apply refuses the wrong CA's CRL");
	ok(db_crls(db, count_crls, &n, err, sizeof(err)) == 0 && n == 0 &&
	           db_serial_revoked(db, "CN=CRL CA,O=Test Partner", "1001",
	                             err, sizeof(err)) == 0 &&
	           db_crl_source_get(db, src.url, &got, err, sizeof(err)) == 0,
	   "... and writes nothing: no CRL, no serial, no source row");
	err[0] = '\0';
	ok(crl_verify_apply(db, good, fixture_path("ca.pem"), "test", &src, &a,
	                    err, sizeof(err)) == 0 &&
	           a.entries == 1 && a.changed == 0,
	   "the CA's CRL is applied: 1 entry (%s)", err);
	ok(db_serial_revoked(db, a.issuer, "1001", err, sizeof(err)) == 1,
	   "its serial is kept (%s)", a.issuer);
	ok(db_crl_source_get(db, src.url, &got, err, sizeof(err)) == 1 &&
	           got.issuer && strcmp(got.issuer, a.issuer) == 0 &&
	           got.last_modified == 1700000000 &&
	           got.next_update == a.next_update && a.next_update > now &&
	           got.detail == NULL && strcmp(got.status, "fresh") == 0,
	   "the crl_sources row has the CRL's issuer and dates");
	db_crl_source_clear(&got);
	src.status = "failed";
	src.detail = "CRL timed out";
	src.next_update = 0;
	ok(db_crl_source_put(db, &src, err, sizeof(err)) == 0 &&
	           db_crl_source_get(db, src.url, &got, err, sizeof(err)) ==
	                   1 &&
	           strcmp(got.status, "failed") == 0 && got.issuer == NULL &&
	           got.next_update == 0 && got.detail &&
	           strcmp(got.detail, "CRL timed out") == 0,
	   "db_crl_source_put replaces the row, 0 times as NULL");
	db_crl_source_clear(&got);
	db_crl_source_clear(NULL);
	crl_applied_clear(&a);
	crl_applied_clear(NULL);
out:
	db_close(db);
	X509_CRL_free(good);
	X509_CRL_free(bad);
	X509_free(ca);
	X509_free(impostor);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

int main(void)
{
	EVP_PKEY *probe = EVP_EC_gen("P-256");

	/* fixture_cert_make ends the test when a key is NULL; say why */
	if (probe == NULL) {
		printf("# no EC P-256 keys from this OpenSSL\n1..0\n");
		return 1;
	}
	EVP_PKEY_free(probe);
	fixture_dir("crl");
	test_cdp();
	test_fetchable();
	test_verdict();
	test_verify_apply();
	return fixture_end(tap_done());
}
