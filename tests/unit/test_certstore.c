/*
 * Unit tests: the certificate checks of lib/certstore.c -- chains to a CA
 * file, validity, key usage and extended key usage for signing, e-mail
 * addresses in subjectAltName and in the subject's emailAddress (older
 * BSrE certificates), cert_matches_key, cert_info_get, cert_name_text,
 * the PEM helpers and cert_build_chain.  Expected values come from the
 * openssl command line, not from the code under test.  (The encryption
 * checks and cert_read_file are in test_recipient.c; the key store is not
 * tested here.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "fixture.h"
#include "tap.h"

#define LEAF_CRT FIXTURE_DATA "/leaf.crt.pem"
#define CA_CRT   FIXTURE_DATA "/ca.crt.pem"

static time_t now;
static EVP_PKEY *rsa, *ec;
static X509 *root, *inter;
static EVP_PKEY *root_key, *inter_key;
static char root_file[300];

static const char *ca_ext = "basicConstraints:critical,CA:true|keyUsage:"
                            "critical,keyCertSign,cRLSign";

/* A leaf from the intermediate, valid a day back to a year ahead. */
static X509 *leaf(EVP_PKEY *key, const char *cn, long serial, const char *exts)
{
	return fixture_cert_make(key, cn, inter, inter_key, serial, now, -86400,
	                         365 * 86400L, exts);
}

/* 1 when cert_check_usage(x, mailbox) refuses with want in the error (want
 * NULL: when it accepts). */
static int usage(X509 *x, const char *mailbox, const char *want)
{
	char err[512] = "";
	int rc = cert_check_usage(x, mailbox, err, sizeof(err));

	if ((rc == 0) != (want == NULL) || (want && !strstr(err, want)))
		printf("#   rc %d, err '%s', wanted '%s'\n", rc, err,
		       want ? want : "(accept)");
	return want ? rc == -1 && strstr(err, want) != NULL : rc == 0;
}

/* The -startdate or -enddate of the test leaf, as openssl and date(1)
 * read it. */
static time_t openssl_date(const char *which)
{
	char out[64];

	fixture_sh_out(out, sizeof(out),
	               "date -u -d \"$(openssl x509 -in %s -noout -%s | "
	               "cut -d= -f2)\" +%%s",
	               LEAF_CRT, which);
	return (time_t)atoll(out);
}

static void test_info(void)
{
	X509 *x = fixture_data_cert("leaf.crt.pem");
	struct cert_info ci;
	char want[200];
	time_t t;

	ok(cert_info_get(x, &ci) == 0, "cert_info_get on the test leaf");
	fixture_sh_out(want, sizeof(want),
	               "openssl x509 -in %s -noout -serial | cut -d= -f2",
	               LEAF_CRT);
	is_str(ci.serial, want, "serial as openssl prints it (hex, upper)");
	fixture_sh_out(want, sizeof(want),
	               "openssl x509 -in %s -noout -fingerprint -sha256 | "
	               "cut -d= -f2 | tr -d :",
	               LEAF_CRT);
	is_str(ci.fingerprint, want, "SHA-256 fingerprint as openssl's");
	is_str(ci.subject, "CN=Unit leaf", "subject, RFC 2253");
	is_str(ci.issuer, "CN=Unit Test Root", "issuer, RFC 2253");
	t = openssl_date("startdate");
	ok(t > 0 && ci.not_before == t, "notBefore as a time_t (%lld)",
	   (long long)ci.not_before);
	t = openssl_date("enddate");
	ok(t > 0 && ci.not_after == t, "notAfter as a time_t (%lld)",
	   (long long)ci.not_after);
	cert_info_clear(&ci);
	ok(ci.serial == NULL && ci.subject == NULL,
	   "cert_info_clear empties it");

	{
		EVP_PKEY *k = X509_get0_pubkey(x);
		char *h = pubkey_sha256_hex(k);
		fixture_sh_out(want, sizeof(want),
		               "openssl x509 -in %s -noout -pubkey | openssl "
		               "pkey -pubin -outform DER | openssl dgst "
		               "-sha256 "
		               "-r | cut -d' ' -f1 | tr a-f A-F",
		               LEAF_CRT);
		is_str(h, want, "pubkey_sha256_hex: SHA-256 of the SPKI DER");
		free(h);
	}
	{
		ASN1_TIME *a = ASN1_TIME_new();
		ASN1_TIME_set_string(a, "20260101000000Z");
		ok(asn1_time_to_time(a) == FIXTURE_SIGNING_TIME,
		   "asn1_time_to_time: 2026-01-01 UTC");
		ASN1_TIME_set_string(a, "491231235959Z");
		ok(asn1_time_to_time(a) == 2524607999,
		   "... a UTCTime 49 is 2049");
		ok(asn1_time_to_time(NULL) == 0, "... NULL is 0");
		ASN1_TIME_free(a);
	}
	X509_free(x);
}

static void test_name_text(void)
{
	X509_NAME *n = X509_NAME_new();
	char *s;

	X509_NAME_add_entry_by_txt(n, "C", MBSTRING_ASC,
	                           (const unsigned char *)"ID", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
	                           (const unsigned char *)"Dinas Komunikasi "
	                                                  "\xe2\x80\x93 Kota",
	                           -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Pratama, Andi+1", -1,
	                           -1, 0);
	s = cert_name_text(n);
	is_str(s,
	       "CN=Pratama\\, Andi\\+1,O=Dinas Komunikasi \xe2\x80\x93 "
	       "Kota,C=ID",
	       "cert_name_text: RFC 2253 order and escapes, UTF-8 kept as is");
	free(s);
	X509_NAME_free(n);
	n = X509_NAME_new();
	s = cert_name_text(n);
	is_str(s, "", "... an empty name is empty text");
	free(s);
	X509_NAME_free(n);
}

static void test_emails(void)
{
	const char *san = "subjectAltName:email:Andi@Banjarkota.go.id,DNS:mail."
	                  "banjarkota.go.id";
	X509 *x = leaf(rsa, "san", 0x11, san), *y;
	X509_NAME *n;
	char *first;

	ok(cert_has_email(x, "andi@banjarkota.go.id") &&
	           cert_has_email(x, "ANDI@banjarkota.GO.ID"),
	   "cert_has_email: the SAN address, any case");
	ok(!cert_has_email(x, "andi@banjarkota.go") &&
	           !cert_has_email(x, "mail.banjarkota.go.id"),
	   "... not a prefix, not the DNS name");
	first = cert_first_email(x);
	is_str(first, "andi@banjarkota.go.id", "cert_first_email: lower-case");
	free(first);
	X509_free(x);

	/* the address only as emailAddress in the subject (older BSrE) */
	y = leaf(rsa, "legacy", 0x12, NULL);
	n = X509_get_subject_name(y);
	X509_NAME_add_entry_by_txt(n, "emailAddress", MBSTRING_ASC,
	                           (const unsigned char *)"Legacy@Banjarkota."
	                                                  "go.id",
	                           -1, -1, 0);
	ok(cert_has_email(y, "legacy@banjarkota.go.id"),
	   "cert_has_email: subject emailAddress");
	first = cert_first_email(y);
	is_str(first, "legacy@banjarkota.go.id",
	       "cert_first_email: from the subject when there is no SAN");
	free(first);
	ok(usage(y, "legacy@banjarkota.go.id", NULL),
	   "cert_check_usage accepts the address in the subject only");
	X509_free(y);

	y = leaf(rsa, "none", 0x13, NULL);
	ok(!cert_has_email(y, "none@banjarkota.go.id") &&
	           cert_first_email(y) == NULL,
	   "a certificate without an address has none");
	X509_free(y);
}

/* Signing certificates for sekda@banjarkota.go.id made here: what
 * cert_check_usage says of each (want NULL: accepted). */
#define SEKDA "subjectAltName:email:sekda@banjarkota.go.id"
static const struct usage_case {
	int ec; /* an EC key, else RSA */
	const char *exts, *want, *what;
} usages[] = {
	{ 1,
	  "keyUsage:critical,digitalSignature|"
	  "extendedKeyUsage:emailProtection|" SEKDA,
	  NULL, "digitalSignature + emailProtection (EC key)" },
	{ 0, "keyUsage:critical,nonRepudiation|" SEKDA, NULL,
	  "nonRepudiation alone is a signing usage" },
	{ 0, "keyUsage:critical,keyEncipherment|" SEKDA,
	  "does not allow e-mail signing",
	  "keyEncipherment only: refused for signing" },
	{ 0,
	  "keyUsage:critical,digitalSignature|extendedKeyUsage:"
	  "serverAuth|" SEKDA,
	  "does not allow e-mail signing",
	  "digitalSignature but EKU serverAuth: refused" },
	{ 0, SEKDA, NULL, "no keyUsage and no EKU: nothing forbids signing" },
};

static void test_usage(void)
{
	X509 *data_leaf = fixture_data_cert("leaf.crt.pem");
	X509 *data_server = fixture_data_cert("server.crt.pem");

	ok(usage(data_leaf, "unit@banjarkota.go.id", NULL),
	   "the test leaf may sign for its address");
	ok(usage(data_leaf, "other@banjarkota.go.id", "does not carry"),
	   "... not for another address");
	ok(usage(data_leaf, NULL, NULL), "... mailbox NULL: usage only");
	ok(usage(data_server, "unit@banjarkota.go.id",
	         "does not allow e-mail signing"),
	   "EKU serverAuth only: refused for signing");
	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++) {
		const struct usage_case *u = &usages[i];
		X509 *x = leaf(u->ec ? ec : rsa, u->what, 0x21 + (long)i,
		               u->exts);
		ok(usage(x, "sekda@banjarkota.go.id", u->want), "%s", u->what);
		X509_free(x);
	}
	X509_free(data_leaf);
	X509_free(data_server);
}

static void test_validity(void)
{
	const char *sign = "keyUsage:critical,digitalSignature|subjectAltName:"
	                   "email:sekda@banjarkota.go.id";
	X509 *x = leaf(rsa, "valid", 0x31, sign);
	time_t nb = asn1_time_to_time(X509_get0_notBefore(x));
	time_t na = asn1_time_to_time(X509_get0_notAfter(x));
	char err[512];

	ok(nb == now - 86400 && na == now + 365 * 86400L,
	   "the made certificate's validity read back");
	ok(validity_check(nb, na, nb, err, sizeof(err)) == 0 &&
	           validity_check(nb, na, na, err, sizeof(err)) == 0,
	   "validity_check: both ends are inside");
	ok(validity_check(nb, na, nb - 1, err, sizeof(err)) == -1 &&
	           strstr(err, "not valid before"),
	   "... a second before notBefore: not yet valid (%s)", err);
	ok(validity_check(nb, na, na + 1, err, sizeof(err)) == -1 &&
	           strstr(err, "expired on"),
	   "... a second after notAfter: expired (%s)", err);
	ok(cert_check_signing(x, "sekda@banjarkota.go.id", now, err,
	                      sizeof(err)) == 0,
	   "cert_check_signing now: usable");
	ok(cert_check_signing(x, "sekda@banjarkota.go.id", na + 86400, err,
	                      sizeof(err)) == -1 &&
	           strstr(err, "expired"),
	   "cert_check_signing a day after notAfter: expired (%s)", err);
	ok(cert_check_signing(x, "andi@banjarkota.go.id", now, err,
	                      sizeof(err)) == -1 &&
	           strstr(err, "does not carry andi@banjarkota.go.id"),
	   "cert_check_signing for another mailbox: refused (%s)", err);
	X509_free(x);
}

static void test_keys(void)
{
	X509 *x = fixture_data_cert("leaf.crt.pem");
	EVP_PKEY *k = fixture_data_key("leaf.key.pem");
	EVP_PKEY *other = fixture_data_key("server.key.pem");
	X509 *e = leaf(ec, "ec", 0x41, NULL);

	ok(cert_matches_key(x, k), "cert_matches_key: the leaf and its key");
	ok(!cert_matches_key(x, other), "... not the server's key");
	ok(cert_matches_key(e, ec) && !cert_matches_key(e, k),
	   "... an EC certificate: its key only, not an RSA one");
	X509_free(x);
	X509_free(e);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_chain(void)
{
	const char *sign = "keyUsage:critical,digitalSignature";
	X509 *data_leaf = fixture_data_cert("leaf.crt.pem");
	X509 *x = leaf(rsa, "chained", 0x51, sign);
	EVP_PKEY *ok_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *old_inter =
	        fixture_cert_make(inter_key, "Old Issuing CA", root, root_key,
	                          0x52, now, -10 * 86400L, -86400, ca_ext);
	X509 *y = fixture_cert_make(ok_key, "under old", old_inter, inter_key,
	                            0x53, now, -86400, 86400, sign);
	STACK_OF(X509) *sk = sk_X509_new_null(), *chain;
	char err[1024] = "", der_file[300];
	char *pem;

	ok(cert_verify_chain(data_leaf, NULL, CA_CRT, now, err, sizeof(err)) ==
	           0,
	   "the test leaf chains to tests/data/unit/ca.crt.pem (%s)", err);
	ok(cert_verify_chain(data_leaf, NULL, root_file, now, err,
	                     sizeof(err)) == -1,
	   "... but not to another root");
	sk_X509_push(sk, inter);
	ok(cert_verify_chain(x, sk, root_file, now, err, sizeof(err)) == 0,
	   "leaf + intermediate chain to the root file (%s)", err);
	ok(cert_verify_chain(x, sk, root_file, now + 2 * 365 * 86400L, err,
	                     sizeof(err)) == -1 &&
	           strstr(err, "expired"),
	   "... not at a time after the leaf expired (%s)", err);
	ok(cert_verify_chain(x, sk, root_file, now - 2 * 86400L, err,
	                     sizeof(err)) == -1 &&
	           strstr(err, "not yet valid"),
	   "... nor before it was valid (%s)", err);
	sk_X509_pop(sk);
	sk_X509_push(sk, old_inter);
	ok(cert_verify_chain(y, sk, root_file, now, err, sizeof(err)) == -1 &&
	           strstr(err, "expired") && strstr(err, "depth 1"),
	   "an expired intermediate fails the chain at depth 1 (%s)", err);
	snprintf(der_file, sizeof(der_file), "%s", fixture_path("root.der"));
	fixture_sh("openssl x509 -in %s -outform DER -out %s", root_file,
	           der_file);
	sk_X509_pop(sk);
	sk_X509_push(sk, inter);
	ok(cert_verify_chain(x, sk, der_file, now, err, sizeof(err)) == 0,
	   "a DER CA file works too (%s)", err);

	/* PEM text round trips */
	pem = cert_to_pem(x);
	ok(pem && strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0,
	   "cert_to_pem: a CERTIFICATE block");
	chain = cert_stack_from_pem(pem);
	ok(chain && sk_X509_num(chain) == 1 &&
	           X509_cmp(sk_X509_value(chain, 0), x) == 0,
	   "cert_stack_from_pem reads it back");
	sk_X509_pop_free(chain, X509_free);
	free(pem);
	sk_X509_unshift(sk, x);
	pem = cert_stack_to_pem(sk);
	chain = cert_stack_from_pem(pem);
	ok(chain && sk_X509_num(chain) == 2 &&
	           X509_cmp(sk_X509_value(chain, 0), x) == 0 &&
	           X509_cmp(sk_X509_value(chain, 1), inter) == 0,
	   "cert_stack_to_pem: two certificates, in order");
	sk_X509_pop_free(chain, X509_free);
	free(pem);
	sk_X509_shift(sk);
	chain = cert_stack_from_pem("no certificate here");
	ok(chain == NULL || sk_X509_num(chain) == 0,
	   "cert_stack_from_pem of junk: nothing");
	sk_X509_pop_free(chain, X509_free);

	/* cert_build_chain: the intermediate, never the root */
	chain = cert_build_chain(x, sk, root_file);
	ok(chain && sk_X509_num(chain) == 1 &&
	           X509_cmp(sk_X509_value(chain, 0), inter) == 0,
	   "cert_build_chain: the intermediate from extra, the root left out");
	sk_X509_pop_free(chain, X509_free);
	{
		char both[300];
		snprintf(both, sizeof(both), "%s", fixture_path("both.pem"));
		fixture_pem_write(both, root, inter);
		chain = cert_build_chain(x, NULL, both);
		ok(chain && sk_X509_num(chain) == 1 &&
		           X509_cmp(sk_X509_value(chain, 0), inter) == 0,
		   "... the intermediate from ca_file");
		sk_X509_pop_free(chain, X509_free);
	}
	chain = cert_build_chain(x, NULL, NULL);
	ok(chain && sk_X509_num(chain) == 0,
	   "... nothing to build from: an empty chain");
	sk_X509_pop_free(chain, X509_free);

	sk_X509_free(sk);
	X509_free(x);
	X509_free(y);
	X509_free(old_inter);
	X509_free(data_leaf);
	EVP_PKEY_free(ok_key);
}

int main(void)
{
	now = time(NULL);
	fixture_dir("certstore");
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	root_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	inter_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!rsa || !ec || !root_key || !inter_key)
		return 1;
	root = fixture_cert_make(root_key, "Test Root", NULL, NULL, 1, now,
	                         -30 * 86400L, 3650 * 86400L, ca_ext);
	inter = fixture_cert_make(inter_key, "Test Issuing CA", root, root_key,
	                          2, now, -30 * 86400L, 1825 * 86400L, ca_ext);
	snprintf(root_file, sizeof(root_file), "%s", fixture_path("root.pem"));
	fixture_pem_write(root_file, root, NULL);

	test_info();
	test_name_text();
	test_emails();
	test_usage();
	test_validity();
	test_keys();
	test_chain();

	X509_free(root);
	X509_free(inter);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(inter_key);
	return fixture_end(tap_done());
}
