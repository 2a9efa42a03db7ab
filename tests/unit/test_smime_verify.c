/*
 * Unit tests: lib/smime_verify.c -- incoming S/MIME signatures to RFC 7281
 * verdicts.  Certificates are made here (fixture_cert_make); signatures by
 * `openssl cms -sign` / `openssl smime -sign` (separate processes, detached
 * and opaque, DER and streamed BER), and by the C API where a fixed
 * signing time is needed.  The verifier's `now` argument fixes time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "db.h"
#include "smime_verify.h"
#include "spool.h"
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
static void save(const char *name, X509 *x, EVP_PKEY *k)
{
	char p[64];

	snprintf(p, sizeof(p), "%s.crt", name);
	fixture_pem_write(fixture_path(p), x, NULL);
	snprintf(p, sizeof(p), "%s.key", name);
	fixture_key_write(fixture_path(p), k);
}

static unsigned char *slurp(const char *path, size_t *len)
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
static unsigned char *osign(const char *tool, const char *name,
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
static unsigned char *sign_at(X509 *x, EVP_PKEY *k, time_t t, int detached,
                              size_t *len)
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
static int vdet(const char *text, const unsigned char *sig, size_t len,
                struct smime_verdict *v)
{
	BIO *b = BIO_new_mem_buf(text, -1);
	int rc = smime_verify_detached(&opts, b, sig, len, v);

	BIO_free(b);
	return rc;
}

/* 1 when v is result r with want in its reason (said when not). */
static int is(const struct smime_verdict *v, enum smime_result r,
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
static void case_signer(const char *name, enum smime_result r, const char *want,
                        const char *what)
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

static void setup(void)
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

static void test_good(void)
{
	struct smime_verdict v;
	struct cert_info ci;
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);
	char *root = cert_name_text(X509_get_subject_name(ca));

	ok(vdet(content, sig, len, &v) == 0, "good: a verdict is reached");
	ok(is(&v, SMIME_PASS, "signature verified, chain to "),
	   "good: pass, signature verified");
	ok(strstr(v.reason, root) != NULL, "good: the reason names the root %s",
	   root);
	is_str(v.identifier, FROM, "good: identifier is the signer's address");
	is_str(v.serial, "1005", "good: serial in hex");
	ok(v.signer && cert_info_get(v.signer, &ci) == 0, "good: signer kept");
	is_str(v.issuer, ci.issuer, "good: issuer as cert_name_text gives it");
	ok(v.certs && sk_X509_num(v.certs) == 1,
	   "good: the signature's certificates are handed out");
	ok(v.signing_time >= now - 60 && v.signing_time <= time(NULL) + 60,
	   "good: signingTime read (%ld)", (long)v.signing_time);
	ok(!v.opaque, "good: detached");
	cert_info_clear(&ci);
	smime_verdict_clear(&v);
	ok(v.signer == NULL && v.identifier == NULL,
	   "verdict_clear frees and zeroes");
	smime_verdict_clear(NULL);

	opts.from = "MITRA@JabarProv.go.id";
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "verified"), "From compared case-insensitively");
	is_str(v.identifier, FROM, "... identifier lower-case");
	smime_verdict_clear(&v);
	opts.from = FROM;
	free(sig);
	free(root);

	case_signer("rsa", SMIME_PASS, "signature verified", "RSA signer");
	case_signer("noeku", SMIME_PASS, "signature verified",
	            "no EKU at all (RFC 5280: any use)");
}

/* Content through a read callback from a spool that spilled to disk. */
static ssize_t spool_rd(void *arg, void *buf, size_t len)
{
	return spool_read(arg, buf, len);
}

static ssize_t bad_rd(void *arg, void *buf, size_t len)
{
	return -1;
}

static void test_callback(void)
{
	struct spool *s = spool_new(16, fixture_path(""));
	struct smime_verdict v;
	char err[256];
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);

	spool_write(s, content, strlen(content), err, sizeof(err));
	spool_rewind(s, err, sizeof(err));
	ok(spool_on_disk(s), "the content spool spilled to disk");
	smime_verify_detached_fn(&opts, spool_rd, s, sig, len, &v);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "content read through a callback from a spool: pass");
	smime_verdict_clear(&v);
	smime_verify_detached_fn(&opts, bad_rd, NULL, sig, len, &v);
	ok(is(&v, SMIME_TEMPERROR, "cannot read the content"),
	   "a failing read callback: temperror");
	smime_verdict_clear(&v);
	spool_free(s);
	free(sig);
}

static void test_fail(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);
	char *bad = strdup(content);

	bad[strlen(bad) - 5] ^= 1;
	vdet(bad, sig, len, &v);
	ok(is(&v, SMIME_FAIL, "body altered after signing"),
	   "tampered body: fail");
	is_str(v.serial, "1005", "tampered body: the signer is still named");
	smime_verdict_clear(&v);
	vcheck("", sig, len, SMIME_FAIL, "body altered after signing",
	       "empty content under a good signature: fail");

	opts.from = "andi@banjarkota.go.id";
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_FAIL,
	      "signer certificate is for " FROM
	      ", not the From address andi@banjarkota.go.id"),
	   "signer is not the From address: fail");
	is_str(v.identifier, FROM,
	       "... the identifier is the certificate's address");
	smime_verdict_clear(&v);
	opts.from = NULL;
	vcheck(content, sig, len, SMIME_NEUTRAL, "no single From address",
	       "no From address: neutral");
	opts.from = FROM;
	free(sig);
	free(bad);

	case_signer("unknown", SMIME_FAIL,
	            "issuer not trusted: CN=Other Root,O=Test Partner",
	            "unknown CA");
	case_signer("server", SMIME_FAIL,
	            "extended key usage lacks emailProtection",
	            "EKU serverAuth only");
	case_signer("encrypt", SMIME_FAIL, "key usage does not allow signing",
	            "keyUsage keyEncipherment only");
	case_signer("lain", SMIME_FAIL,
	            "is for lain@jabarprov.go.id, not the From address",
	            "another partner's certificate");

	sig = osign("cms", "good", "-nocerts", &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "signer certificate is not in the signature",
	       "signature without the signer certificate: fail");
	free(sig);
}

static void test_chain(void)
{
	struct smime_verdict v;
	X509 *old, *x;
	size_t len;
	unsigned char *sig;
	char flags[512];

	case_signer("viaint", SMIME_FAIL,
	            "issuer not trusted: CN=BSrE Test Issuing",
	            "intermediate missing from signature and bundle");
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("inter.pem"));
	sig = osign("cms", "viaint", flags, &len);
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "chain to CN=BSrE Test Root"),
	   "intermediate carried in the signature: pass, chain to the root");
	ok(sk_X509_num(v.certs) == 2, "... both certificates handed out");
	smime_verdict_clear(&v);
	opts.ca_file = fixture_path("missing.pem");
	vcheck(content, sig, len, SMIME_TEMPERROR, "trust bundle unreadable",
	       "ca_file missing: temperror");
	opts.ca_file = NULL;
	vcheck(content, sig, len, SMIME_TEMPERROR, "no trust bundle",
	       "no ca_file: temperror");
	opts.ca_file = ca_path;
	free(sig);
	/* an intermediate that expired while the leaf it issued is valid */
	old = fixture_cert_make(int_key, "BSrE Old Issuing", ca, ca_key, 3, now,
	                        -900 * DAY, -10 * DAY,
	                        "basicConstraints:critical,CA:TRUE");
	x = fixture_cert_make(key, "Mitra", old, int_key, 0x3001, now, -DAY,
	                      365 * DAY, leaf_exts(FROM, EKU_OK));
	save("viaold", x, key);
	fixture_pem_write(fixture_path("old.pem"), old, NULL);
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("old.pem"));
	sig = osign("cms", "viaold", flags, &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "issuer certificate CN=BSrE Old Issuing,O=Test Partner expired "
	       "20",
	       "expired intermediate: fail, naming it");
	free(sig);
	X509_free(old);
	X509_free(x);
}

static void test_revoked(void)
{
	struct db *db = NULL;
	char err[256], *iss = cert_name_text(X509_get_subject_name(ca));
	char flags[512];
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);

	ok(db_open(fixture_path("smime.db"), DB_CREATE, &db, err,
	           sizeof(err)) == 0,
	   "temp database");
	opts.db = db;
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "not in revoked_serials: pass");
	ok(db_serial_revoke_add(db, iss, "1005", "keyCompromise", now - DAY,
	                        err, sizeof(err)) == 0,
	   "revoked_serials row for serial 1005");
	vcheck(content, sig, len, SMIME_FAIL,
	       "certificate revoked (serial 1005 of ", "revoked signer: fail");
	free(sig);

	/* an intermediate listed by the root's CRL */
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("inter.pem"));
	sig = osign("cms", "viaint", flags, &len);
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "intermediate not revoked: pass");
	db_serial_revoke_add(db, iss, "02", NULL, now - DAY, err, sizeof(err));
	vcheck(content, sig, len, SMIME_FAIL,
	       "issuer certificate CN=BSrE Test Issuing",
	       "revoked intermediate: fail");

	/* the table gone: the lookup fails, which is temporary */
	fixture_sh("sqlite3 '%s' 'DROP TABLE revoked_serials'",
	           fixture_path("smime.db"));
	vcheck(content, sig, len, SMIME_TEMPERROR,
	       "revocation list unavailable", "database error: temperror");
	opts.db = NULL;
	db_close(db);
	free(sig);
	free(iss);
}

static void test_expired(void)
{
	struct smime_verdict v;
	X509 *x = fixture_cert_make(key, "Mitra Lama", ca, ca_key, 0x1020, now,
	                            -400 * DAY, -30 * DAY,
	                            leaf_exts(FROM, EKU_OK));
	time_t na = asn1_time_to_time(X509_get0_notAfter(x));
	char want[64], day[16];
	size_t len;
	unsigned char *sig = sign_at(x, key, now - 100 * DAY, 1, &len);

	strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&na));
	snprintf(want, sizeof(want), "certificate expired %s", day);
	vdet(content, sig, len, &v);
	ok(sig && is(&v, SMIME_FAIL, want),
	   "expired signer (signed while valid): fail, %s", want);
	ok(v.signing_time == now - 100 * DAY, "... signingTime as signed");
	smime_verdict_clear(&v);
	opts.now = now - 90 * DAY;
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "the same message judged at a time it was valid: pass");
	opts.now = now;
	free(sig);
	sig = sign_at(x, key, now - 10 * DAY, 1, &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "outside the certificate's validity",
	       "signed after the certificate expired: fail");
	free(sig);
	X509_free(x);
	x = fixture_cert_make(key, "Mitra Baru", ca, ca_key, 0x1021, now,
	                      10 * DAY, 400 * DAY, leaf_exts(FROM, EKU_OK));
	sig = sign_at(x, key, now + 20 * DAY, 1, &len);
	vcheck(content, sig, len, SMIME_FAIL, "not valid before",
	       "certificate not yet valid: fail");
	free(sig);
	X509_free(x);
}

static void test_malformed(void)
{
	static const unsigned char garbage[] =
	        "\x30\x82\x7f\xff\x06\x09garbage";
	size_t len;
	unsigned char *sig;

	vcheck(content, garbage, sizeof(garbage), SMIME_PERMERROR,
	       "does not parse", "garbage DER: permerror");
	vcheck(content, garbage, 0, SMIME_PERMERROR, "empty",
	       "empty signature part: permerror");
	vcheck(content, NULL, 0, SMIME_PERMERROR, "empty",
	       "no signature part: permerror");
	fixture_sh("openssl cms -encrypt -binary -in '%s' -outform DER "
	           "-out '%s' '%s'",
	           fixture_path("content"), fixture_path("env.der"),
	           fixture_path("rsa.crt"));
	sig = slurp(fixture_path("env.der"), &len);
	vcheck(content, sig, len, SMIME_PERMERROR, "not a signature",
	       "enveloped-data given as a signature: permerror");
	free(sig);
	sig = osign("cms", "good", "", &len);
	vcheck(content, sig, len / 2, SMIME_PERMERROR, "does not parse",
	       "truncated signature: permerror");
	free(sig);
}

/* Other encoders' shapes of the same signature. */
static void test_encoders(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *sig = osign("cms", "good", "-stream", &len);

	ok(sig && len > 2 && sig[1] == 0x80,
	   "streamed signature is indefinite-length BER");
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "BER signature (streaming encoders, "
	       "x-pkcs7-signature senders): pass");
	free(sig);
	sig = osign("smime", "good", "", &len);
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "PKCS#7 signature of openssl smime: pass");
	free(sig);
	sig = osign("cms", "good", "-noattr", &len);
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "verified"), "no signed attributes: pass");
	ok(v.signing_time == 0, "... and no signingTime");
	smime_verdict_clear(&v);
	vcheck("tampered\r\n", sig, len, SMIME_FAIL, "body altered",
	       "no signed attributes, tampered body: fail");
	free(sig);
}

/* gpgsm (GnuPG's own CMS code, libksba) signs with the RSA signer in a
 * throw-away GNUPGHOME; its detached signature must verify here too. */
static void vopq(const unsigned char *der, size_t len, struct smime_verdict *v,
                 char **out);

static void test_gpgsm(void)
{
	struct smime_verdict v;
	char gh[512], *got;
	size_t len;
	unsigned char *sig = NULL;
	int rc;

	snprintf(gh, sizeof(gh), "%s", fixture_path("gnupg"));
	rc = fixture_sh("mkdir -m 0700 '%s' && cd '%s' && printf "
	                "'disable-crl-checks\ndisable-policy-checks\n"
	                "disable-ocsp\ndisable-dirmngr\n' >gpgsm.conf && "
	                "printf 'allow-loopback-pinentry\ns2k-count 65536\n' "
	                ">gpg-agent.conf && openssl pkcs12 -export -legacy "
	                "-in ../rsa.crt -inkey ../rsa.key -passout pass:test "
	                "-out rsa.p12 && echo \"$(openssl x509 -in ../ca.pem "
	                "-noout -fingerprint -sha1 | sed 's/^[^=]*=//') S "
	                "relax\" >trustlist.txt",
	                gh, gh);
	rc = rc ? rc
	        : fixture_sh("cd '%s' && G='--homedir . --batch --no-tty "
	                     "--pinentry-mode loopback --passphrase-fd 0' && "
	                     "gpgsm $G --import ../ca.pem </dev/null 2>>log && "
	                     "echo test | gpgsm $G --import rsa.p12 2>>log && "
	                     "echo test | gpgsm $G --detach-sign --output "
	                     "sig.der ../content 2>>log && echo test | gpgsm "
	                     "$G --sign --output opq.der ../content 2>>log || "
	                     "{ sed 's/^/# /' log; exit 1; }",
	                     gh);
	fixture_sh("gpgconf --homedir '%s' --kill all", gh);
	if (rc == 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/sig.der", gh);
		sig = slurp(path, &len);
	}
	ok(sig != NULL, "gpgsm --detach-sign made a signature");
	vcheck(content, sig, len, SMIME_PASS, "signature verified",
	       "gpgsm's signature: pass");
	vcheck("Content-Type: text/plain\r\n\r\naltered\r\n", sig, len,
	       SMIME_FAIL, "body altered", "gpgsm's signature, altered: fail");
	free(sig);
	sig = NULL;
	if (rc == 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/opq.der", gh);
		sig = slurp(path, &len);
	}
	vopq(sig ? sig : (const unsigned char *)"", sig ? len : 0, &v, &got);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "gpgsm's opaque signed-data (BER): pass");
	is_str(got, content, "... its content handed out");
	smime_verdict_clear(&v);
	free(got);
	free(sig);
}

/* Opaque: v and the content written out (in *out, malloc'd). */
static void vopq(const unsigned char *der, size_t len, struct smime_verdict *v,
                 char **out)
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

static void test_opaque(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *der = osign("cms", "good", "-nodetach", &len), *p;
	char *got;

	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "opaque signed-data: pass");
	ok(v.opaque, "... marked opaque");
	is_str(got, content, "... its content is handed out");
	smime_verdict_clear(&v);
	free(got);
	p = memmem(der, len, "ditandatangani", 14);
	ok(p != NULL, "content found inside the DER");
	if (p)
		p[0] = 'D';
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_FAIL, "body altered after signing"),
	   "opaque, content altered: fail");
	ok(strstr(got, "Ditandatangani") != NULL,
	   "... the (altered) content is still handed out");
	smime_verdict_clear(&v);
	free(got);
	free(der);

	der = osign("cms", "good", "-nodetach -stream", &len);
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PASS, "verified"), "opaque, streamed BER: pass");
	is_str(got, content, "... content out");
	smime_verdict_clear(&v);
	free(got);
	free(der);

	der = osign("cms", "good", "", &len);
	vopq(der, len, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "without content"),
	   "a detached signature given as opaque: permerror");
	smime_verdict_clear(&v);
	free(got);
	free(der);
	vopq((const unsigned char *)"", 0, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "empty"), "empty opaque: permerror");
	smime_verdict_clear(&v);
	free(got);
	vopq((const unsigned char *)"MIAGCSqGSIb3DQEHAqCAMIACAQEx", 28, &v,
	     &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "base64 text instead of DER: permerror");
	smime_verdict_clear(&v);
	free(got);
}

/* A 24 MB opaque signed-data (streamed BER and DER) read from a file and
 * written to a file: the verifier's peak memory stays far below it. */
static void test_opaque_big(void)
{
	const char *forms[] = { "-stream", "" };
	struct rusage ru;
	long before;

	getrusage(RUSAGE_SELF, &ru);
	before = ru.ru_maxrss;
	fixture_sh("yes 'Lampiran laporan tahunan, halaman berikutnya.' | "
	           "head -c 24000000 >'%s'",
	           fixture_path("big"));
	for (int i = 0; i < 2; i++) {
		struct smime_verdict v;
		char out[512];
		BIO *in, *o;
		FILE *f;
		long long got = -1;
		snprintf(out, sizeof(out), "%s", fixture_path("big.out"));
		fixture_sh("openssl cms -sign -binary -nodetach %s -in '%s' "
		           "-signer '%s' -inkey '%s' -outform DER -out '%s'",
		           forms[i], fixture_path("big"),
		           fixture_path("good.crt"), fixture_path("good.key"),
		           fixture_path("big.der"));
		in = BIO_new_file(fixture_path("big.der"), "rb");
		o = BIO_new_file(out, "wb");
		smime_verify_opaque(&opts, in, o, &v);
		BIO_free(in);
		BIO_free(o);
		if ((f = fopen(out, "rb")) != NULL &&
		    fseek(f, 0, SEEK_END) == 0)
			got = ftell(f);
		if (f)
			fclose(f);
		ok(is(&v, SMIME_PASS, "verified") && got == 24000000,
		   "24 MB opaque signed-data%s: pass, %lld bytes out",
		   i ? " (DER)" : " (BER)", got);
		smime_verdict_clear(&v);
	}
	getrusage(RUSAGE_SELF, &ru);
	ok(ru.ru_maxrss - before < 8 * 1024,
	   "peak memory grew by %ld KiB, not by the content's size",
	   ru.ru_maxrss - before);
}

/* Hostile BER around the content: absurd lengths, deep nesting, cuts. */
static void test_opaque_hostile(void)
{
	static const unsigned char ect[] = { 0x06, 0x09, 0x2a, 0x86, 0x48,
		                             0x86, 0xf7, 0x0d, 0x01, 0x07,
		                             0x01, 0xa0, 0x80 };
	struct smime_verdict v;
	size_t len, pre;
	unsigned char *der = osign("cms", "good", "-nodetach -stream", &len);
	unsigned char *at = der ? memmem(der, len, ect, sizeof(ect)) : NULL;
	unsigned char *bad = malloc(len + 4096);
	char *got;

	ok(at != NULL, "streamed opaque: eContent found");
	if (at == NULL || bad == NULL) {
		free(der);
		free(bad);
		return;
	}
	pre = (size_t)(at - der) + sizeof(ect);
	memcpy(bad, der, pre);
	memcpy(bad + pre,
	       "\x04\x84\x7f\xff\xff\xff"
	       "abc",
	       9);
	vopq(bad, pre + 9, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "an OCTET STRING of 2 GB in a small message: permerror");
	smime_verdict_clear(&v);
	free(got);
	memcpy(bad + pre, "\x04\x85\x01\x00\x00\x00\x00", 7);
	vopq(bad, pre + 7, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "a 5-octet length: permerror");
	smime_verdict_clear(&v);
	free(got);
	for (int i = 0; i < 1000; i++)
		memcpy(bad + pre + 2 * (size_t)i, "\x24\x80", 2);
	memcpy(bad + pre + 2000,
	       "\x04\x01"
	       "A",
	       3);
	memset(bad + pre + 2003, 0, 2000);
	vopq(bad, pre + 4003, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse"),
	   "constructed OCTET STRINGs nested 1000 deep: permerror");
	smime_verdict_clear(&v);
	free(got);
	/* DER signed-data that ends after its content: no signer infos */
	static const unsigned char nosi[] =
	        "\x30\x3d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0"
	        "\x30\x30\x2e\x02\x01\x01\x31\x0f\x30\x0d\x06\x09\x60\x86"
	        "\x48\x01\x65\x03\x04\x02\x01\x05\x00\x30\x18\x06\x09\x2a"
	        "\x86\x48\x86\xf7\x0d\x01\x07\x01\xa0\x0b\x04\x09Isi surat";
	vopq(nosi, sizeof(nosi) - 1, &v, &got);
	ok(is(&v, SMIME_PERMERROR, "does not parse") &&
	           strcmp(got, "Isi surat") == 0,
	   "signed-data without signer infos: permerror (content was out)");
	smime_verdict_clear(&v);
	free(got);
	for (size_t cut = pre - 20; cut < len; cut += (len - pre) / 7 + 1) {
		vopq(der, cut, &v, &got);
		if (v.result != SMIME_PERMERROR)
			break;
		smime_verdict_clear(&v);
		free(got);
		got = NULL;
	}
	ok(v.result == SMIME_NONE && got == NULL,
	   "cut anywhere after the content type: permerror each time");
	smime_verdict_clear(&v);
	free(got);
	free(bad);
	free(der);
}

int main(void)
{
	setup();
	ok(strcmp(smime_result_name(SMIME_TEMPERROR), "temperror") == 0 &&
	           strcmp(smime_result_name(SMIME_NONE), "none") == 0 &&
	           strcmp(smime_result_name((enum smime_result)99), "none") ==
	                   0,
	   "result names are RFC 7281's");
	test_good();
	test_callback();
	test_fail();
	test_chain();
	test_revoked();
	test_expired();
	test_malformed();
	test_encoders();
	test_gpgsm();
	test_opaque();
	test_opaque_hostile();
	test_opaque_big();
	X509_free(ca);
	X509_free(other);
	X509_free(inter);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(int_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(rsa_key);
	return fixture_end(tap_done());
}
