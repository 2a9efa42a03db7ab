/* Unit tests: recipient certificates (issue 5) -- cert_check_encryption,
 * cert_emails, cert_verify_chain, cert_read_file on PKCS#7 bundles
 * (lib/certstore.c), recipient_cert_check and recipient_from_cert
 * (lib/recipient.c) and the recipient_certs / revoked_serials API of
 * lib/db_recipient.c.  Certificates are made here with the OpenSSL API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "db.h"
#include "recipient.h"
#include "fixture.h"
#include "tap.h"

static EVP_PKEY *rsa_key, *ec_key, *ed_key, *ca_key;
static X509 *ca;
static const char *dir;
static time_t now;

static X509 *mkcert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
                    long serial, long from, long to, const char *exts)
{
	return fixture_cert_make(key, cn, issuer, ikey, serial, now, from, to,
	                         exts);
}

/* A leaf from the test CA with the usual extensions plus exts. */
static X509 *leaf(EVP_PKEY *key, const char *cn, long serial, const char *exts)
{
	return mkcert(key, cn, ca, ca_key, serial, -86400, 365 * 86400L, exts);
}

/* 1 when OpenSSL's own SMIME_ENCRYPT purpose accepted the last leaf enc()
 * made */
static int purpose_ok;

/* Make a leaf for key with exts and check it with cert_check_encryption:
 * 1 when it is accepted (want_in_err NULL) or refused with want_in_err in
 * the error. */
static int enc(EVP_PKEY *key, const char *cn, long serial, const char *exts,
               const char *want_in_err)
{
	X509 *x = leaf(key, cn, serial, exts);
	char err[512] = "";
	int rc = cert_check_encryption(x, err, sizeof(err));

	purpose_ok = X509_check_purpose(x, X509_PURPOSE_SMIME_ENCRYPT, 0) == 1;
	X509_free(x);
	if (want_in_err == NULL) {
		if (rc != 0)
			printf("#   unexpected: %s\n", err);
		return rc == 0;
	}
	if (rc == 0 || strstr(err, want_in_err) == NULL)
		printf("#   rc %d, err '%s', wanted '%s'\n", rc, err,
		       want_in_err);
	return rc == -1 && strstr(err, want_in_err) != NULL;
}

struct collect {
	char list[1024];
	int n;
};

static int collect_row(void *arg, const struct db_recipient *r)
{
	struct collect *c = arg;
	size_t used = strlen(c->list);

	snprintf(c->list + used, sizeof(c->list) - used, "%s%s/%s/%s",
	         c->n++ ? " " : "", r->address, r->serial, r->status);
	return 0;
}

static struct db_recipient row(const char *address, const char *serial,
                               const char *fpr, const char *issuer,
                               time_t not_before)
{
	struct db_recipient r;

	memset(&r, 0, sizeof(r));
	r.address = (char *)address;
	r.subject = (char *)"CN=x";
	r.issuer = (char *)issuer;
	r.serial = (char *)serial;
	r.fingerprint = (char *)fpr;
	r.not_before = not_before;
	r.not_after = not_before + 86400 * 365;
	r.source = (char *)"import";
	r.cert_pem = (char *)"-----BEGIN CERTIFICATE-----";
	return r;
}

static void test_usage(void)
{
	const char *rsa_ok = "keyUsage:critical,digitalSignature,"
	                     "keyEncipherment|extendedKeyUsage:emailProtection|"
	                     "subjectAltName:email:a@partner.go.id";
	const char *rsa_no_ku = "subjectAltName:email:a@partner.go.id";
	const char *rsa_sign = "keyUsage:critical,digitalSignature|"
	                       "extendedKeyUsage:emailProtection";
	const char *rsa_server =
	        "keyUsage:keyEncipherment|extendedKeyUsage:serverAuth";
	const char *rsa_any =
	        "keyUsage:keyEncipherment|extendedKeyUsage:anyExtendedKeyUsage";
	const char *rsa_any_ns = "keyUsage:keyEncipherment|extendedKeyUsage:"
	                         "anyExtendedKeyUsage|nsCertType:server";
	const char *rsa_ns = "keyUsage:keyEncipherment|nsCertType:server";
	const char *ec_ka = "keyUsage:critical,digitalSignature,keyAgreement|"
	                    "extendedKeyUsage:emailProtection";
	const char *ec_ke = "keyUsage:critical,digitalSignature,"
	                    "keyEncipherment|extendedKeyUsage:emailProtection";
	const char *ec_ns = "keyUsage:keyAgreement|nsCertType:objsign";
	const char *ec_ns_ok = "keyUsage:keyAgreement|nsCertType:email";

	ok(enc(rsa_key, "rsa ok", 0x101, rsa_ok, NULL),
	   "RSA with keyEncipherment and emailProtection");
	ok(enc(rsa_key, "rsa no ku", 0x102, rsa_no_ku, NULL),
	   "RSA without keyUsage or EKU: nothing forbids it");
	ok(enc(rsa_key, "rsa sign", 0x103, rsa_sign, "needs keyEncipherment"),
	   "RSA with digitalSignature only: refused, naming keyEncipherment");
	ok(enc(rsa_key, "rsa server", 0x104, rsa_server,
	       "does not include emailProtection"),
	   "EKU serverAuth: refused, naming emailProtection");
	ok(enc(rsa_key, "rsa any", 0x105, rsa_any, NULL),
	   "EKU anyExtendedKeyUsage is accepted");
	ok(!purpose_ok,
	   "... which OpenSSL's SMIME_ENCRYPT purpose alone would refuse");
	ok(enc(rsa_key, "rsa any ns", 0x10C, rsa_any_ns,
	       "Netscape certificate type"),
	   "... but not with a Netscape type of server only");
	ok(enc(rsa_key, "rsa ns", 0x106, rsa_ns, "purpose check"),
	   "RSA with Netscape type server only: "
	   "OpenSSL's purpose check refuses");
	ok(enc(ec_key, "ec ka", 0x107, ec_ka, NULL),
	   "EC with keyAgreement (ECDH recipient)");
	ok(!purpose_ok,
	   "... which OpenSSL's SMIME_ENCRYPT purpose alone would refuse");
	ok(enc(ec_key, "ec ke", 0x108, ec_ke, "needs keyAgreement"),
	   "EC with keyEncipherment but no keyAgreement: refused");
	ok(enc(ec_key, "ec ns", 0x109, ec_ns, "Netscape certificate type"),
	   "EC with Netscape type objsign only: refused");
	ok(enc(ec_key, "ec ns ok", 0x10A, ec_ns_ok, NULL),
	   "EC with Netscape type email: accepted");
	ok(enc(ed_key, "ed25519", 0x10B, rsa_no_ku, "not RSA or EC"),
	   "an Ed25519 key: refused");
}

static void test_emails(void)
{
	const char *two =
	        "subjectAltName:email:Tu@Partner.go.id,email:b@partner.go.id,"
	        "email:tu@partner.go.id,DNS:www.partner.go.id";
	X509 *x = leaf(rsa_key, "two", 0x201, two);
	X509_NAME *n;
	char **v;

	/* and the first one again as emailAddress in the subject */
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "emailAddress", MBSTRING_ASC,
	                           (const unsigned char *)"TU@partner.go.id",
	                           -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "emailAddress", MBSTRING_ASC,
	                           (const unsigned char *)"dn@partner.go.id",
	                           -1, -1, 0);
	v = cert_emails(x);
	ok(v && v[0] && v[1] && v[2] && !v[3],
	   "cert_emails: three distinct addresses");
	if (v && v[0] && v[1] && v[2]) {
		is_str(v[0], "tu@partner.go.id", "... lower-case, SAN first");
		is_str(v[1], "b@partner.go.id", "... second SAN address");
		is_str(v[2], "dn@partner.go.id",
		       "... subject emailAddress, duplicates dropped");
	}
	cert_emails_free(v);
	X509_free(x);
	v = cert_emails(ca);
	ok(v && v[0] == NULL, "cert_emails: an empty array when there is none");
	cert_emails_free(v);
	cert_emails_free(NULL);
	ok(1, "cert_emails_free(NULL) is fine");
}

/* 1 when cert_read_file(path) gives n certificates, the first one first
 * (first NULL: not compared). */
static int read_gives(const char *path, int n, X509 *first)
{
	STACK_OF(X509) *sk = NULL;
	char err[512];
	int good =
	        cert_read_file(path, &sk, err, sizeof(err)) == 0 &&
	        sk_X509_num(sk) == n &&
	        (first == NULL || X509_cmp(sk_X509_value(sk, 0), first) == 0);

	if (!good)
		printf("#   %s: %s\n", path, sk ? "other certificates" : err);
	sk_X509_pop_free(sk, X509_free);
	return good;
}

static void test_chain_and_files(const char *ca_file)
{
	const char *good =
	        "keyUsage:keyEncipherment|extendedKeyUsage:emailProtection|"
	        "subjectAltName:email:mitra@partner.go.id";
	const char *inter_ext = "basicConstraints:critical,CA:true|keyUsage:"
	                        "critical,keyCertSign,cRLSign";
	const char *root_ext = "basicConstraints:critical,CA:true|keyUsage:"
	                       "critical,keyCertSign,cRLSign";
	EVP_PKEY *ikey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *inter = mkcert(ikey, "Partner Issuing CA", ca, ca_key, 0x301,
	                     -86400, 3650 * 86400L, inter_ext);
	X509 *x = mkcert(rsa_key, "mitra", inter, ikey, 0x302, -86400,
	                 30 * 86400L, good);
	X509 *self = mkcert(rsa_key, "self", NULL, NULL, 0x303, -86400,
	                    30 * 86400L, good);
	EVP_PKEY *okey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *other_root = mkcert(okey, "Other Root", NULL, NULL, 0x304, -86400,
	                          3650 * 86400L, root_ext);
	STACK_OF(X509) *untrusted = sk_X509_new_null(), *sk = NULL;
	char err[1024], path[300];
	PKCS7 *p7;
	FILE *f;
	BIO *bio;

	sk_X509_push(untrusted, inter);
	err[0] = '\0';
	ok(cert_verify_chain(x, untrusted, ca_file, now, err, sizeof(err)) == 0,
	   "cert_verify_chain: leaf + intermediate chain to ca_file (%s)", err);
	ok(cert_verify_chain(x, NULL, ca_file, now, err, sizeof(err)) == -1 &&
	           strstr(err, "unable to get local issuer certificate") &&
	           strstr(err, "depth 0") && strstr(err, "CN=mitra"),
	   "... without the intermediate: refused, with depth and subject (%s)",
	   err);
	ok(cert_verify_chain(x, untrusted, ca_file, now + 60 * 86400L, err,
	                     sizeof(err)) == -1 &&
	           strstr(err, "expired"),
	   "... at a time after the leaf's notAfter: expired (%s)", err);
	ok(cert_verify_chain(self, NULL, ca_file, now, err, sizeof(err)) ==
	                   -1 &&
	           strstr(err, "self-signed"),
	   "... a self-signed leaf does not chain (%s)", err);
	ok(cert_verify_chain(x, untrusted, NULL, now, err, sizeof(err)) == -1,
	   "... no ca_file: refused");
	snprintf(path, sizeof(path), "%s/other.pem", dir);
	fixture_pem_write(path, other_root, NULL);
	ok(cert_verify_chain(x, untrusted, path, now, err, sizeof(err)) == -1,
	   "... against a bundle of another root: refused");

	/* recipient_cert_check: the whole list */
	err[0] = '\0';
	ok(recipient_cert_check(NULL, x, untrusted, ca_file, now, err,
	                        sizeof(err)) == 0,
	   "recipient_cert_check accepts a good leaf (%s)", err);
	ok(recipient_cert_check(NULL, inter, NULL, ca_file, now, err,
	                        sizeof(err)) == -1 &&
	           strstr(err, "CA certificate"),
	   "... refuses a CA certificate (%s)", err);
	ok(recipient_cert_check(NULL, x, untrusted, NULL, now, err,
	                        sizeof(err)) == -1 &&
	           strstr(err, "ca_file"),
	   "... refuses without ca_file, naming it (%s)", err);
	ok(recipient_cert_check(NULL, x, untrusted, ca_file, now + 60 * 86400L,
	                        err, sizeof(err)) == -1 &&
	           strstr(err, "expired on"),
	   "... refuses at a time past its validity (%s)", err);
	{
		const char *noaddr = "keyUsage:keyEncipherment";
		X509 *y = leaf(rsa_key, "no address", 0x305, noaddr);
		ok(recipient_cert_check(NULL, y, NULL, ca_file, now, err,
		                        sizeof(err)) == -1 &&
		           strstr(err, "no e-mail address"),
		   "... refuses a certificate without an address (%s)", err);
		X509_free(y);
	}

	/* cert_read_file: DER PKCS#7, PEM PKCS#7, DER certificate */
	p7 = PKCS7_new();
	PKCS7_set_type(p7, NID_pkcs7_signed);
	PKCS7_content_new(p7, NID_pkcs7_data);
	PKCS7_add_certificate(p7, x);
	PKCS7_add_certificate(p7, inter);
	snprintf(path, sizeof(path), "%s/b.p7b", dir);
	bio = BIO_new_file(path, "wb");
	i2d_PKCS7_bio(bio, p7);
	BIO_free(bio);
	ok(read_gives(path, 2, x),
	   "cert_read_file: DER PKCS#7 bundle, both certificates in order");
	snprintf(path, sizeof(path), "%s/b.p7c.pem", dir);
	f = fopen(path, "w");
	fputs("a comment before the block\n", f);
	PEM_write_PKCS7(f, p7);
	PEM_write_X509(f, self);
	fclose(f);
	ok(read_gives(path, 3, NULL),
	   "cert_read_file: PEM PKCS7 block and a CERTIFICATE block in one "
	   "file");
	snprintf(path, sizeof(path), "%s/x.der", dir);
	bio = BIO_new_file(path, "wb");
	i2d_X509_bio(bio, x);
	BIO_free(bio);
	ok(read_gives(path, 1, x), "cert_read_file: a DER certificate");
	snprintf(path, sizeof(path), "%s/junk", dir);
	f = fopen(path, "w");
	fputs("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE "
	      "KEY-----\n",
	      f);
	fclose(f);
	ok(cert_read_file(path, &sk, err, sizeof(err)) == -1 && sk == NULL &&
	           strstr(err, "no certificate"),
	   "cert_read_file: a file without certificates (%s)", err);
	snprintf(path, sizeof(path), "%s/missing", dir);
	ok(cert_read_file(path, &sk, err, sizeof(err)) == -1 &&
	           strstr(err, "No such file"),
	   "cert_read_file: a missing file (%s)", err);

	/* recipient_from_cert */
	{
		struct db_recipient r;
		err[0] = '\0';
		ok(recipient_from_cert(x, "MITRA@partner.go.id", "harvest", &r,
		                       err, sizeof(err)) == 0 &&
		           strcmp(r.address, "mitra@partner.go.id") == 0 &&
		           strcmp(r.serial, "0302") == 0 &&
		           strlen(r.fingerprint) == 64 &&
		           strcmp(r.status, "active") == 0 &&
		           strcmp(r.source, "harvest") == 0 &&
		           strstr(r.cert_pem, "BEGIN CERTIFICATE") &&
		           strcmp(r.issuer,
		                  "CN=Partner Issuing CA,O=Test Partner") == 0,
		   "recipient_from_cert fills the row (%s)", err);
		db_recipient_clear(&r);
		ok(recipient_from_cert(x, "other@partner.go.id", "import", &r,
		                       err, sizeof(err)) == -1 &&
		           strstr(err, "does not carry"),
		   "... refuses an address the certificate does not carry");
		ok(recipient_from_cert(x, "mitra@partner.go.id", "mail", &r,
		                       err, sizeof(err)) == -1,
		   "... refuses an unknown source");
		db_recipient_clear(NULL);
	}
	PKCS7_free(p7);
	sk_X509_free(untrusted);
	X509_free(x);
	X509_free(self);
	X509_free(inter);
	X509_free(other_root);
	EVP_PKEY_free(ikey);
	EVP_PKEY_free(okey);
}

static void test_db(const char *ca_file)
{
	char path[300], err[1024];
	struct db *db;
	struct db_recipient r;
	struct collect c;
	int added = -1, count = -1;
	const char *I1 = "CN=CA One", *I2 = "CN=CA Two";

	snprintf(path, sizeof(path), "%s", fixture_db("db"));
	err[0] = '\0';
	ok(db_open(path, DB_CREATE, &db, err, sizeof(err)) == 0,
	   "database created (%s)", err);
	ok(db_version(db) == DB_SCHEMA_VERSION, "schema version %d",
	   DB_SCHEMA_VERSION);

	r = row("Mitra@Partner.go.id", "0a", "aa01", I1, now - 100);
	err[0] = '\0';
	ok(db_recipient_add(db, &r, "test", &added, err, sizeof(err)) == 0 &&
	           added == 1,
	   "db_recipient_add inserts (%s)", err);
	ok(db_recipient_add(db, &r, "test", &added, err, sizeof(err)) == 0 &&
	           added == 0,
	   "... the same (address, fingerprint) again: not added");
	r = row("mitra@partner.go.id", "0B", "AA02", I1, now);
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	r = row("tu@partner.go.id", "0B", "AA02", I1, now);
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	r = row("x@partner.go.id", "77", "AA03", I1, now);
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	r = row("y@partner.go.id", "77", "AA04", I2, now);
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	r = row("z@partner.go.id", "3", "AA05", I2, now);
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	r = row("bad@partner.go.id", "3", "AA06", I2, now);
	r.source = (char *)"guess";
	ok(db_recipient_add(db, &r, "test", &added, err, sizeof(err)) == -1 &&
	           strstr(err, "import or harvest"),
	   "... refuses an unknown source (%s)", err);

	memset(&c, 0, sizeof(c));
	ok(db_recipients(db, "MITRA@partner.go.id", 0, collect_row, &c, err,
	                 sizeof(err)) == 0,
	   "db_recipients of one address");
	is_str(c.list,
	       "mitra@partner.go.id/0B/active mitra@partner.go.id/0A/active",
	       "... lower-cased, newest not_before first, serials upper-case");

	/* revocation: CRL entries and db_revoke */
	ok(db_serial_revoke_add(db, I1, "0b", "keyCompromise", now, err,
	                        sizeof(err)) == 0 &&
	           db_serial_revoke_add(db, I1, "0B", "superseded", now, err,
	                                sizeof(err)) == 0,
	   "db_serial_revoke_add twice is fine");
	ok(db_serial_revoked(db, I1, "0B", err, sizeof(err)) == 1 &&
	           db_serial_revoked(db, I2, "0B", err, sizeof(err)) == 0 &&
	           db_serial_revoked(db, I1, "0A", err, sizeof(err)) == 0,
	   "db_serial_revoked: by issuer and serial");
	ok(db_revoke(db, I1, "0B", "crl", now, "test", &count, err,
	             sizeof(err)) == 0 &&
	           count == 2,
	   "db_revoke marks both rows of the recipient certificate (%d)",
	   count);
	memset(&c, 0, sizeof(c));
	db_recipients(db, NULL, 1, collect_row, &c, err, sizeof(err));
	is_str(c.list,
	       "mitra@partner.go.id/0A/active x@partner.go.id/77/active "
	       "y@partner.go.id/77/active z@partner.go.id/3/active",
	       "db_recipients active_only leaves out the revoked");

	/* removal and its ambiguities */
	ok(db_recipient_remove(db, "77", "test", &count, err, sizeof(err)) ==
	                   -1 &&
	           strstr(err, "fingerprint") && count == 0,
	   "remove by a serial two issuers share: refused (%s)", err);
	ok(db_recipient_remove(db, "3", "test", &count, err, sizeof(err)) ==
	                   -1 &&
	           strstr(err, "ambiguous"),
	   "remove '3', the id of one row and the serial of another: refused "
	   "(%s)",
	   err);
	ok(db_recipient_remove(db, "aa03", "test", &count, err, sizeof(err)) ==
	                   0 &&
	           count == 1,
	   "remove by fingerprint, any case (%d)", count);
	ok(db_recipient_remove(db, "0b", "test", &count, err, sizeof(err)) ==
	                   0 &&
	           count == 2,
	   "remove by serial removes every address of it (%d)", count);
	ok(db_recipient_remove(db, "MITRA@partner.go.id", "test", &count, err,
	                       sizeof(err)) == 0 &&
	           count == 1,
	   "remove by address (%d)", count);
	ok(db_recipient_remove(db, "nobody@partner.go.id", "test", &count, err,
	                       sizeof(err)) == 0 &&
	           count == 0,
	   "remove of nothing: 0 rows, no error");
	ok(db_recipient_remove(db, "x' OR 1=1 --", "test", &count, err,
	                       sizeof(err)) == 0 &&
	           count == 0,
	   "an SQL fragment as spec matches nothing");
	memset(&c, 0, sizeof(c));
	db_recipients(db, NULL, 0, collect_row, &c, err, sizeof(err));
	is_str(c.list, "y@partner.go.id/77/active z@partner.go.id/3/active",
	       "what is left");

	/* recipient_cert_check consults revoked_serials */
	{
		const char *good = "keyUsage:keyEncipherment|subjectAltName:"
		                   "email:r@partner.go.id";
		X509 *x = leaf(rsa_key, "to be revoked", 0x4242, good);
		char *issuer = cert_name_text(X509_get_issuer_name(x));
		err[0] = '\0';
		ok(recipient_cert_check(db, x, NULL, ca_file, now, err,
		                        sizeof(err)) == 0,
		   "recipient_cert_check with a database: accepted (%s)", err);
		db_serial_revoke_add(db, issuer, "4242", NULL, now, err,
		                     sizeof(err));
		ok(recipient_cert_check(db, x, NULL, ca_file, now, err,
		                        sizeof(err)) == -1 &&
		           strstr(err, "revoked"),
		   "... refused once its serial is in revoked_serials (%s)",
		   err);
		free(issuer);
		X509_free(x);
	}
	db_close(db);
}

int main(void)
{
	const char *ca_ext = "basicConstraints:critical,CA:true|keyUsage:"
	                     "critical,keyCertSign,cRLSign";
	char ca_file[300];
	now = time(NULL);
	dir = fixture_dir("recipient");
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (!rsa_key || !ec_key || !ed_key || !ca_key)
		return 1;
	ca = mkcert(ca_key, "Test Root", NULL, NULL, 1, -86400, 3650 * 86400L,
	            ca_ext);
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
	fixture_pem_write(ca_file, ca, NULL);

	test_usage();
	test_emails();
	test_chain_and_files(ca_file);
	test_db(ca_file);

	X509_free(ca);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ed_key);
	EVP_PKEY_free(ca_key);
	return fixture_end(tap_done());
}
