/*
 * Unit tests: lib/cms.c -- the detached SignedData made from a streamed
 * digest, checked by an independent verifier (`openssl cms -verify`, a
 * separate process reading the DER from a file), the signed attributes,
 * the error paths, and the streaming EnvelopedData / AuthEnvelopedData
 * decrypted by `openssl cms -decrypt`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms.h"
#include "fixture.h"
#include "tap.h"

static X509 *leaf, *ca;
static EVP_PKEY *leaf_key;
static time_t now;

static const char content[] = "Content-Type: text/plain; charset=us-ascii\r\n"
                              "\r\n"
                              "Surat edaran nomor 1.\r\n";

struct buf {
	unsigned char *data;
	size_t len;
	int fail; /* the writer refuses */
};

static int collect(void *arg, const unsigned char *p, size_t len)
{
	struct buf *b = arg;
	unsigned char *n;

	if (b->fail)
		return -1;
	n = realloc(b->data, b->len + len);
	if (n == NULL)
		return -1;
	memcpy(n + b->len, p, len);
	b->data = n;
	b->len += len;
	return 0;
}

static int write_bytes(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = f && fwrite(p, 1, len, f) == len ? 0 : -1;

	if (f && fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Sign text (its digest with md) with cert/key and chain; the DER goes to
 * FIXTURE dir/name.  Returns cms_sign_digest's result. */
static int sign_to(const char *name, const char *text, const EVP_MD *md,
                   X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, char *err,
                   size_t errlen)
{
	unsigned char dgst[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int dlen = 0;
	size_t derlen = 0;
	int rc;

	EVP_Digest(text, strlen(text), dgst, &dlen, md, NULL);
	rc = cms_sign_digest(cert, chain, key, md, dgst, dlen,
	                     FIXTURE_SIGNING_TIME, &der, &derlen, err, errlen);
	if (rc == 0 && write_bytes(fixture_path(name), der, derlen) != 0)
		rc = -1;
	if (rc != 0 && (der != NULL || derlen != 0))
		rc = -2; /* a failure must leave no output */
	OPENSSL_free(der);
	return rc;
}

/* `openssl cms -verify` of the detached signature in sig against the
 * content in file cont, trusting ca_file only: 0 when it verifies. */
static int openssl_verify(const char *sig, const char *cont,
                          const char *ca_file)
{
	return fixture_sh("openssl cms -verify -binary -inform DER -in %s "
	                  "-content %s -CAfile %s -out /dev/null 2>%s",
	                  fixture_path(sig), fixture_path(cont), ca_file,
	                  fixture_path("verify.err"));
}

/* The signingTime attribute of the DER SignedData in file name. */
static time_t signing_time_of(const char *name)
{
	BIO *in = BIO_new_file(fixture_path(name), "rb");
	CMS_ContentInfo *cms = in ? d2i_CMS_bio(in, NULL) : NULL;
	STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
	time_t t = 0;

	if (sis && sk_CMS_SignerInfo_num(sis) == 1) {
		CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);
		int i = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime,
		                                   -1);
		X509_ATTRIBUTE *a = i >= 0 ? CMS_signed_get_attr(si, i) : NULL;
		ASN1_TYPE *v = a ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
		struct tm tm;
		if (v &&
		    (v->type == V_ASN1_UTCTIME ||
		     v->type == V_ASN1_GENERALIZEDTIME) &&
		    ASN1_TIME_to_tm((ASN1_TIME *)v->value.asn1_string, &tm))
			t = timegm(&tm);
	}
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return t;
}

static void test_digests(void)
{
	EVP_MD *md;

	md = cms_digest_fetch("SHA256");
	ok(md && EVP_MD_get_type(md) == NID_sha256,
	   "cms_digest_fetch: sha256, any case");
	is_str(cms_micalg(md), "sha-256", "micalg sha-256");
	EVP_MD_free(md);
	md = cms_digest_fetch("sha384");
	is_str(md ? cms_micalg(md) : NULL, "sha-384", "micalg sha-384");
	EVP_MD_free(md);
	md = cms_digest_fetch("sha512");
	is_str(md ? cms_micalg(md) : NULL, "sha-512", "micalg sha-512");
	EVP_MD_free(md);
	ok(cms_digest_fetch("md5") == NULL && cms_digest_fetch("sha1") == NULL,
	   "md5 and sha1 are not digests we sign with");
}

static void test_sign(void)
{
	char err[512] = "", ca_file[300];
	EVP_MD *md = cms_digest_fetch("sha256"), *md384;
	time_t t;

	snprintf(ca_file, sizeof(ca_file), "%s/ca.crt.pem", FIXTURE_DATA);
	fixture_write(fixture_path("content"), content, 0600);
	ok(sign_to("sig.der", content, md, leaf, leaf_key, NULL, err,
	           sizeof(err)) == 0,
	   "cms_sign_digest signs (%s)", err);
	ok(openssl_verify("sig.der", "content", ca_file) == 0,
	   "openssl cms -verify accepts the detached signature");
	t = signing_time_of("sig.der");
	ok(t == FIXTURE_SIGNING_TIME, "signingTime is the one asked for (%lld)",
	   (long long)t);
	ok(fixture_sh("openssl cms -cmsout -print -inform DER -in %s >%s",
	              fixture_path("sig.der"), fixture_path("sig.txt")) == 0 &&
	           fixture_sh("grep -q 'aes-256-gcm' %s && grep -q "
	                      "'aes-256-cbc' %s && grep -q 'aes-128-cbc' %s",
	                      fixture_path("sig.txt"), fixture_path("sig.txt"),
	                      fixture_path("sig.txt")) == 0,
	   "SMIMECapabilities: AES-256-GCM, AES-256-CBC, AES-128-CBC");
	ok(fixture_sh("! grep -Eq 'des-ede3|rc2|des-cbc' %s",
	              fixture_path("sig.txt")) == 0,
	   "... and none of OpenSSL's default 3DES, RC2, DES");
	ok(fixture_sh("grep -q 'eContent: <ABSENT>' %s",
	              fixture_path("sig.txt")) == 0,
	   "the content is not embedded (detached)");

	/* the verifier must catch a change of one byte */
	fixture_write(fixture_path("changed"),
	              "Content-Type: text/plain; "
	              "charset=us-ascii\r\n\r\n"
	              "Surat edaran nomor 2.\r\n",
	              0600);
	ok(openssl_verify("sig.der", "changed", ca_file) != 0,
	   "... and refuses it over content changed by one byte");

	/* the default signing time is now */
	{
		unsigned char dgst[32], *der = NULL;
		size_t derlen = 0;
		time_t before = time(NULL);
		EVP_Digest(content, strlen(content), dgst, NULL, md, NULL);
		ok(cms_sign_digest(leaf, NULL, leaf_key, md, dgst, sizeof(dgst),
		                   0, &der, &derlen, err, sizeof(err)) == 0 &&
		           write_bytes(fixture_path("now.der"), der, derlen) ==
		                   0,
		   "signing_time 0 signs too");
		t = signing_time_of("now.der");
		ok(t >= before - 1 && t <= time(NULL) + 1,
		   "... with signingTime now (%lld)", (long long)t);
		OPENSSL_free(der);
	}

	/* SHA-384 */
	md384 = cms_digest_fetch("sha384");
	ok(sign_to("sig384.der", content, md384, leaf, leaf_key, NULL, err,
	           sizeof(err)) == 0 &&
	           openssl_verify("sig384.der", "content", ca_file) == 0,
	   "a SHA-384 signature verifies (%s)", err);
	EVP_MD_free(md384);

	/* error paths: nothing is written */
	{
		EVP_PKEY *other = fixture_data_key("server.key.pem");
		err[0] = '\0';
		ok(sign_to("bad.der", content, md, leaf, other, NULL, err,
		           sizeof(err)) == -1 &&
		           strstr(err, "cannot add signer"),
		   "a key that is not the certificate's: -1, no output (%s)",
		   err);
		EVP_PKEY_free(other);
	}
	EVP_MD_free(md);
}

/* A chain root -> intermediate -> leaf made here: the signature carries
 * the intermediate, and verifies against the root alone. */
static void test_chain(void)
{
	const char *ca_ext = "basicConstraints:critical,CA:true|keyUsage:"
	                     "critical,keyCertSign,cRLSign";
	const char *leaf_ext =
	        "keyUsage:critical,digitalSignature|extendedKeyUsage:"
	        "emailProtection|subjectAltName:email:sekda@banjarkota.go.id";
	EVP_PKEY *rk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ik = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *lk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *root = fixture_cert_make(rk, "Chain Root", NULL, NULL, 1, now,
	                               -3600, 86400, ca_ext);
	X509 *inter = fixture_cert_make(ik, "Chain Issuing CA", root, rk, 2,
	                                now, -3600, 86400, ca_ext);
	X509 *l = fixture_cert_make(lk, "sekda", inter, ik, 3, now, -3600,
	                            86400, leaf_ext);
	STACK_OF(X509) *chain = sk_X509_new_null();
	EVP_MD *md = cms_digest_fetch("sha256");
	char err[512] = "";
	const char *root_file = fixture_path("root.pem");

	root_file = strdup(root_file);
	fixture_pem_write(root_file, root, NULL);
	sk_X509_push(chain, inter);
	ok(sign_to("chain.der", content, md, l, lk, chain, err, sizeof(err)) ==
	                   0 &&
	           openssl_verify("chain.der", "content", root_file) == 0,
	   "an ECDSA signature with the intermediate in the certificate set "
	   "verifies against the root alone (%s)",
	   err);
	ok(sign_to("nochain.der", content, md, l, lk, NULL, err, sizeof(err)) ==
	                   0 &&
	           openssl_verify("nochain.der", "content", root_file) != 0,
	   "... and without the chain it does not");
	EVP_MD_free(md);
	sk_X509_free(chain);
	X509_free(root);
	X509_free(inter);
	X509_free(l);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	EVP_PKEY_free(lk);
	free((char *)root_file);
}

/* Encrypt size bytes of a binary pattern to recips with cipher (and OAEP), in
 * chunks of chunk bytes; the BER goes to file name and the plain text to
 * name.plain.  Returns 0 or -1 with err. */
static int encrypt_to(const char *name, STACK_OF(X509) *recips,
                      const char *cipher, int oaep, size_t size, size_t chunk,
                      char *err, size_t errlen)
{
	struct buf out = { 0 };
	unsigned char *plain = malloc(size + 1);
	struct cms_enc *e;
	char pname[64];
	int rc = -1;

	for (size_t i = 0; i < size; i++)
		plain[i] = (unsigned char)(i * 7 + (i >> 9)); /* bare LF, NUL */
	e = cms_encrypt_new(recips, cipher, oaep, collect, &out, err, errlen);
	if (e != NULL) {
		rc = 0;
		for (size_t off = 0; rc == 0 && off < size; off += chunk)
			rc = cms_encrypt_write(e, plain + off,
			                       size - off < chunk ? size - off
			                                          : chunk);
		if (rc == 0)
			rc = cms_encrypt_finish(e, err, errlen);
	}
	cms_encrypt_free(e);
	snprintf(pname, sizeof(pname), "%s.plain", name);
	if (rc == 0 && (write_bytes(fixture_path(name), out.data, out.len) ||
	                write_bytes(fixture_path(pname), plain, size)))
		rc = -1;
	free(out.data);
	free(plain);
	return rc;
}

/* `openssl cms -decrypt` of file name with cert/key files: 0 when it
 * decrypts to exactly name.plain. */
static int openssl_decrypt(const char *name, const char *cert, const char *key)
{
	char plain[64], got[64];

	snprintf(plain, sizeof(plain), "%s.plain", name);
	snprintf(got, sizeof(got), "%s.got", name);
	return fixture_sh("openssl cms -decrypt -binary -inform DER -in %s "
	                  "-recip %s -inkey %s -out %s && cmp -s %s %s",
	                  fixture_path(name), cert, key, fixture_path(got),
	                  fixture_path(plain), fixture_path(got));
}

/* 1 when `openssl cms -cmsout -print` of file name shows what. */
static int structure_has(const char *name, const char *what)
{
	return fixture_sh("openssl cms -cmsout -print -inform DER -in %s | "
	                  "grep -q '%s'",
	                  fixture_path(name), what) == 0;
}

/* More contents and ciphers for the RSA recipient: each must decrypt and
 * show its algorithm. */
static const struct enc_case {
	const char *name, *cipher;
	int oaep;
	size_t size, chunk;
	const char *shows, *what;
} encs[] = {
	{ "small.der", "aes-128-cbc", 0, 1, 1, "aes-128-cbc",
	  "one byte with AES-128-CBC" },
	{ "empty.der", "aes-256-cbc", 0, 0, 1, "aes-256-cbc", "empty content" },
	{ "oaep.der", "aes-256-cbc", 1, 5000, 5000, "rsaesOaep",
	  "RSA-OAEP key transport decrypts" },
	{ "gcm.der", "aes-256-gcm", 0, 70000, 65536,
	  "id-smime-ct-authEnvelopedData",
	  "AES-256-GCM makes AuthEnvelopedData that decrypts" },
};

static void test_encrypt(void)
{
	const char *ec_ext = "keyUsage:critical,digitalSignature,keyAgreement|"
	                     "subjectAltName:email:ecmitra@jabarprov.go.id";
	STACK_OF(X509) *recips = sk_X509_new_null();
	char err[512] = "", cert[300], key[300];
	EVP_PKEY *ek = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ec = fixture_cert_make(ek, "ecmitra", NULL, NULL, 7, now, -3600,
	                             86400, ec_ext);

	snprintf(cert, sizeof(cert), "%s/leaf.crt.pem", FIXTURE_DATA);
	snprintf(key, sizeof(key), "%s/leaf.key.pem", FIXTURE_DATA);
	sk_X509_push(recips, leaf);
	ok(encrypt_to("cbc.der", recips, "aes-256-cbc", 0, 200000, 7000, err,
	              sizeof(err)) == 0,
	   "200 kB encrypted to an RSA recipient with AES-256-CBC (%s)", err);
	ok(openssl_decrypt("cbc.der", cert, key) == 0,
	   "openssl cms -decrypt gives the content back byte for byte");
	ok(structure_has("cbc.der", "aes-256-cbc") &&
	           structure_has("cbc.der", "rsaEncryption"),
	   "... EnvelopedData, AES-256-CBC, RSA PKCS#1 v1.5 key transport");
	for (size_t i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
		const struct enc_case *c = &encs[i];
		err[0] = '\0';
		ok(encrypt_to(c->name, recips, c->cipher, c->oaep, c->size,
		              c->chunk, err, sizeof(err)) == 0 &&
		           openssl_decrypt(c->name, cert, key) == 0 &&
		           structure_has(c->name, c->shows),
		   "%s (%s)", c->what, err);
	}
	ok(cms_cipher_is_aead("aes-256-gcm") &&
	           cms_cipher_is_aead("aes-128-gcm") &&
	           !cms_cipher_is_aead("aes-256-cbc") &&
	           !cms_cipher_is_aead(NULL),
	   "cms_cipher_is_aead: the GCM ciphers only");

	/* an EC recipient (ECDH) beside the RSA one: both can read it */
	fixture_key_write(fixture_path("ec.key"), ek);
	fixture_pem_write(fixture_path("ec.crt"), ec, NULL);
	sk_X509_push(recips, ec);
	ok(encrypt_to("two.der", recips, "aes-256-cbc", 0, 3000, 1000, err,
	              sizeof(err)) == 0,
	   "encrypted to an RSA and an EC recipient (%s)", err);
	{
		char ecc[300], eck[300];
		snprintf(ecc, sizeof(ecc), "%s", fixture_path("ec.crt"));
		snprintf(eck, sizeof(eck), "%s", fixture_path("ec.key"));
		ok(openssl_decrypt("two.der", ecc, eck) == 0 &&
		           openssl_decrypt("two.der", cert, key) == 0,
		   "... each recipient decrypts it with its own key");
	}
	ok(structure_has("two.der", "dhSinglePass-stdDH-sha256kdf-scheme"),
	   "... the EC one through ECDH with the SHA-256 KDF");

	/* error paths */
	{
		STACK_OF(X509) *none = sk_X509_new_null(),
		               *ed = sk_X509_new_null();
		EVP_PKEY *edk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		X509 *edc = fixture_cert_make(edk, "ed recipient", NULL, NULL,
		                              8, now, -3600, 86400, NULL);
		struct buf out = { .fail = 1 };
		struct cms_enc *e;

		ok(cms_encrypt_new(none, "aes-256-cbc", 0, collect, &out, err,
		                   sizeof(err)) == NULL &&
		           strstr(err, "no recipient certificates"),
		   "no recipients: refused (%s)", err);
		ok(cms_encrypt_new(NULL, "aes-256-cbc", 0, collect, &out, err,
		                   sizeof(err)) == NULL,
		   "NULL recipients: refused");
		ok(cms_encrypt_new(recips, "no-such-cipher", 0, collect, &out,
		                   err, sizeof(err)) == NULL &&
		           strstr(err, "cipher not available"),
		   "an unknown cipher: refused (%s)", err);
		sk_X509_push(ed, edc);
		ok(cms_encrypt_new(ed, "aes-256-cbc", 0, collect, &out, err,
		                   sizeof(err)) == NULL &&
		           strstr(err, "cannot add recipient") &&
		           strstr(err, "ed recipient"),
		   "an Ed25519 recipient: refused, named (%s)", err);
		e = cms_encrypt_new(recips, "aes-256-cbc", 0, collect, &out,
		                    err, sizeof(err));
		ok(e &&
		           cms_encrypt_write(e, (const unsigned char *)"x",
		                             1) == 0 &&
		           cms_encrypt_finish(e, err, sizeof(err)) == -1 &&
		           strstr(err, "cannot write the encrypted body"),
		   "a writer that fails: finish says so (%s)", err);
		cms_encrypt_free(e);
		cms_encrypt_free(NULL);
		ok(1, "cms_encrypt_free(NULL) is fine");
		sk_X509_free(none);
		sk_X509_free(ed);
		X509_free(edc);
		EVP_PKEY_free(edk);
	}
	sk_X509_free(recips);
	X509_free(ec);
	EVP_PKEY_free(ek);
}

/* A TSA that cannot be reached (a loopback port nobody listens on; the
 * good and bad TSAs are test_tsa's, and the signing path with one is
 * tests/milter/timestamp.sh): sign without a token, or fail when one is
 * required. */
static void test_timestamp_unreachable(void)
{
	struct cms_timestamp ts = { .url = "http://127.0.0.1:9/tsa",
		                    .ca_file = FIXTURE_DATA "/ca.crt.pem",
		                    .timeout_ms = 2000 };
	unsigned char dgst[32] = { 1 }, *der = NULL;
	size_t len = 0;
	char err[512] = "";
	const EVP_MD *md = EVP_sha256();
	int rc = cms_sign_digest_ts(leaf, NULL, leaf_key, md, dgst,
	                            sizeof(dgst), FIXTURE_SIGNING_TIME, &ts,
	                            &der, &len, err, sizeof(err));

	ok(rc == 0 && der && len > 0 && ts.note[0] && ts.gen_time == 0,
	   "TSA unreachable, not required: signed without a token (%s)",
	   ts.note);
	if (der)
		write_bytes(fixture_path("nots.der"), der, len);
	ok(fixture_sh("openssl cms -cmsout -print -inform DER -in %s | grep "
	              "-q timeStampToken",
	              fixture_path("nots.der")) != 0,
	   "... and the signature carries no time-stamp attribute");
	OPENSSL_free(der);
	der = NULL;
	ts.required = 1;
	rc = cms_sign_digest_ts(leaf, NULL, leaf_key, md, dgst, sizeof(dgst),
	                        FIXTURE_SIGNING_TIME, &ts, &der, &len, err,
	                        sizeof(err));
	ok(rc != 0 && der == NULL && strncmp(err, "time-stamp: ", 12) == 0,
	   "TSA unreachable, required: the signing fails (%s)", err);
	OPENSSL_free(der);
}

int main(void)
{
	now = time(NULL);
	fixture_dir("cms");
	leaf = fixture_data_cert("leaf.crt.pem");
	ca = fixture_data_cert("ca.crt.pem");
	leaf_key = fixture_data_key("leaf.key.pem");

	test_digests();
	test_sign();
	test_chain();
	test_encrypt();
	test_timestamp_unreachable();

	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(leaf_key);
	return fixture_end(tap_done());
}
