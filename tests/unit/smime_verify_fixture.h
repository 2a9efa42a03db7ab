/*
 * smime_verify_fixture.h -- what the lib/smime_verify*.c unit tests share
 * (header-only, static inline): a test PKI made at start (a trusted root,
 * an unknown root, an intermediate, and signers with the extensions each
 * case needs), signatures by `openssl cms/smime -sign` and by the C API
 * with a fixed signingTime, and the verify-and-check helpers.  The
 * verifier's `now` argument fixes time.
 */
#ifndef SMIME_VERIFY_FIXTURE_H
#define SMIME_VERIFY_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "smime_verify.h"
#include "fixture.h"
#include "tap.h"

#define DAY  86400L
#define FROM "mitra@jabarprov.go.id"

static const char content[] = "Content-Type: text/plain; charset=us-ascii\r\n"
                              "\r\n"
                              "Balasan surat nomor 7, ditandatangani.\r\n";

static EVP_PKEY *ca_key, *other_key, *int_key, *key, *rsa_key;
static X509 *ca, *other, *inter;
static time_t now;
static struct smime_verify_opts opts;
static char ca_path[512]; /* fixture_path's buffers are reused */

static const char *leaf_exts(const char *addr, const char *extra)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
	         "basicConstraints:CA:FALSE|subjectAltName:email:%s%s%s", addr,
	         extra ? "|" : "", extra ? extra : "");
	return buf;
}

#define EKU_OK \
	"keyUsage:critical,digitalSignature|extendedKeyUsage:emailProtection"

/* Write x and k as NAME.crt / NAME.key in the fixture directory. */
static inline void save(const char *name, X509 *x, EVP_PKEY *k)
{
	char p[64];

	snprintf(p, sizeof(p), "%s.crt", name);
	fixture_pem_write(fixture_path(p), x, NULL);
	snprintf(p, sizeof(p), "%s.key", name);
	fixture_key_write(fixture_path(p), k);
}

static inline unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long n;

	*len = 0;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc(n > 0 ? (size_t)n : 1);
	if (p && fread(p, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	fclose(f);
	return p;
}

/* `openssl cms -sign` (or smime when tool says so) of the content file
 * by NAME.crt/.key with extra flags; returns the DER (malloc'd). */
static inline unsigned char *osign(const char *tool, const char *name,
                                   const char *flags, size_t *len)
{
	const char *out = fixture_path("sig.der");

	*len = 0;
	if (fixture_sh("openssl %s -sign -binary -in '%s' -signer '%s/%s.crt' "
	               "-inkey '%s/%s.key' -outform DER -out '%s' %s",
	               tool, fixture_path("content"), fixture_path(""), name,
	               fixture_path(""), name, out, flags) != 0)
		return NULL;
	return slurp(out, len);
}

/* A signature made in-process with signingTime t (detached or opaque). */
static inline unsigned char *sign_at(X509 *x, EVP_PKEY *k, time_t t,
                                     int detached, size_t *len)
{
	int flags = CMS_BINARY | CMS_PARTIAL | (detached ? CMS_DETACHED : 0);
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	CMS_SignerInfo *si =
	        cms ? CMS_add1_signer(cms, x, k, EVP_sha256(), CMS_BINARY)
	            : NULL;
	ASN1_TIME *at = ASN1_TIME_set(NULL, t);
	BIO *in = BIO_new_mem_buf(content, -1), *out = BIO_new(BIO_s_mem());
	unsigned char *p = NULL;
	char *data;

	*len = 0;
	if (si && at &&
	    CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, at->type, at,
	                                -1) &&
	    CMS_final(cms, in, NULL, flags) && i2d_CMS_bio(out, cms)) {
		*len = (size_t)BIO_get_mem_data(out, &data);
		p = malloc(*len);
		memcpy(p, data, *len);
	}
	ASN1_TIME_free(at);
	BIO_free(in);
	BIO_free(out);
	CMS_ContentInfo_free(cms);
	return p;
}

/* Verify sig over text (detached) into v. */
static inline int vdet(const char *text, const unsigned char *sig, size_t len,
                       struct smime_verdict *v)
{
	BIO *b = BIO_new_mem_buf(text, -1);
	int rc = smime_verify_detached(&opts, b, sig, len, v);

	BIO_free(b);
	return rc;
}

/* 1 when v is result r with want in its reason (said when not). */
static inline int is(const struct smime_verdict *v, enum smime_result r,
                     const char *want)
{
	int good = v->result == r && strstr(v->reason, want) != NULL;

	if (!good)
		printf("#   got %s (%s), want %s with '%s'\n",
		       smime_result_name(v->result), v->reason,
		       smime_result_name(r), want);
	return good;
}

/* Verify sig over text, check the result is r with want in the reason
 * (the check is named by the rest), and clear the verdict. */
#define vcheck(text, sig, len, r, want, ...)       \
	do {                                       \
		struct smime_verdict v_;           \
		vdet(text, sig, len, &v_);         \
		ok(is(&v_, r, want), __VA_ARGS__); \
		smime_verdict_clear(&v_);          \
	} while (0)

/* Sign the content with NAME (openssl cms, detached) and verify it. */
static inline void case_signer(const char *name, enum smime_result r,
                               const char *want, const char *what)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *sig = osign("cms", name, "", &len);

	vdet(content, sig, len, &v);
	ok(sig && is(&v, r, want), "%s: %s", what, smime_result_name(r));
	smime_verdict_clear(&v);
	free(sig);
}

/* The signers of the tests, valid from yesterday for a year: by 0 the
 * trusted root, 1 an unknown root, 2 the intermediate. */
static const struct leaf {
	const char *name, *cn, *addr, *extra;
	long serial;
	int by, rsa;
} leaves[] = {
	{ "good", "Mitra", FROM, EKU_OK, 0x1005, 0, 0 },
	{ "rsa", "Mitra RSA", FROM, EKU_OK, 0x1006, 0, 1 },
	{ "unknown", "Mitra", FROM, EKU_OK, 0x77, 1, 0 },
	{ "viaint", "Mitra", FROM, EKU_OK, 0x2001, 2, 0 },
	{ "noeku", "Mitra", FROM, NULL, 0x1010, 0, 0 },
	{ "server", "Mitra", FROM, "extendedKeyUsage:serverAuth", 0x1011, 0,
	  0 },
	{ "encrypt", "Mitra", FROM, "keyUsage:keyEncipherment", 0x1012, 0, 0 },
	{ "lain", "Lain", "lain@jabarprov.go.id", EKU_OK, 0x1013, 0, 0 },
};

static inline void setup(void)
{
	fixture_dir("smime_verify");
	now = time(NULL);
	ca_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	int_key = EVP_EC_gen("P-256");
	key = EVP_EC_gen("P-256");
	rsa_key = EVP_RSA_gen(2048);
	ca = fixture_cert_make(ca_key, "BSrE Test Root", NULL, NULL, 1, now,
	                       -1000 * DAY, 3650 * DAY,
	                       "basicConstraints:critical,CA:TRUE|"
	                       "keyUsage:critical,keyCertSign,cRLSign");
	other = fixture_cert_make(other_key, "Other Root", NULL, NULL, 1, now,
	                          -1000 * DAY, 3650 * DAY,
	                          "basicConstraints:critical,CA:TRUE");
	inter = fixture_cert_make(int_key, "BSrE Test Issuing", ca, ca_key, 2,
	                          now, -900 * DAY, 3000 * DAY,
	                          "basicConstraints:critical,CA:TRUE");
	fixture_pem_write(fixture_path("ca.pem"), ca, NULL);
	fixture_pem_write(fixture_path("inter.pem"), inter, NULL);
	fixture_write(fixture_path("content"), content, 0600);
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		const struct leaf *l = &leaves[i];
		EVP_PKEY *k = l->rsa ? rsa_key : key;
		X509 *x = fixture_cert_make(k, l->cn,
		                            l->by == 1   ? other
		                            : l->by == 2 ? inter
		                                         : ca,
		                            l->by == 1   ? other_key
		                            : l->by == 2 ? int_key
		                                         : ca_key,
		                            l->serial, now, -DAY, 365 * DAY,
		                            leaf_exts(l->addr, l->extra));
		save(l->name, x, k);
		X509_free(x);
	}
	snprintf(ca_path, sizeof(ca_path), "%s", fixture_path("ca.pem"));
	opts.ca_file = ca_path;
	opts.from = FROM;
	opts.now = now;
}

/* Opaque: v and the content written out (in *out, malloc'd). */
static inline void vopq(const unsigned char *der, size_t len,
                        struct smime_verdict *v, char **out)
{
	BIO *in = BIO_new_mem_buf(der, (int)len), *o = BIO_new(BIO_s_mem());
	char *data;
	long n;

	smime_verify_opaque(&opts, in, o, v);
	n = BIO_get_mem_data(o, &data);
	*out = strndup(n > 0 ? data : "", n > 0 ? (size_t)n : 0);
	BIO_free(in);
	BIO_free(o);
}

/* Free what setup made. */
static inline void teardown(void)
{
	X509_free(ca);
	X509_free(other);
	X509_free(inter);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(int_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(rsa_key);
}

#endif
