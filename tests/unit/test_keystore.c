/* Unit tests: lib/keystore.c -- every backend through keystore_load_key
 * (PKCS#12, PEM, PKCS#11 on a SoftHSM2 token made here): the certificate's
 * key, another certificate's key, wrong passphrase or PIN, missing files
 * and objects, files others can read; and through keystore_load_decrypt_key
 * a CMS made by `openssl cms -encrypt` opened with each backend's key, a
 * token key made for signing only refused. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "certstore.h"
#include "config.h"
#include "fixture.h"
#include "keystore.h"
#include "p11.h"
#include "tap.h"
#include "util.h"

#define DATA   "tests/data/unit"
#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char dir[256];

#define CLR(e) ((e)[0] = '\0', (e))
static X509 *leaf, *server;

/* system() of a formatted command; its exit status. */
static int run(const char *fmt, ...) PRINTFLIKE(1, 2);
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* dir/name (static buffer, one per slot). */
static const char *in_dir(int slot, const char *name)
{
	static char paths[8][512];

	snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", dir, name);
	return paths[slot];
}

static X509 *read_cert(const char *path)
{
	STACK_OF(X509) *sk;
	X509 *x;
	char err[512];

	if (cert_read_file(path, &sk, err, sizeof(err)) != 0)
		return NULL;
	x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

/* keystore_load_key of a file key: rc, with *key kept for the caller. */
static int load(struct keystore *ks, enum key_backend b, const char *loc,
                const char *secret, X509 *cert, EVP_PKEY **key, char *err,
                size_t errlen)
{
	struct key_ref ref = { b, loc, secret };
	struct p11_key *hsm = (struct p11_key *)&ref; /* must become NULL */
	int rc;

	err[0] = '\0';
	rc = keystore_load_key(ks, &ref, cert, key, &hsm, err, errlen);
	if (hsm != NULL) {
		printf("# hsm left set for a %s key\n", key_backend_name(b));
		return 99;
	}
	return rc;
}

static void names_tests(void)
{
	is_str(key_backend_name(KEY_PKCS12), "pkcs12", "name of KEY_PKCS12");
	is_str(key_backend_name(KEY_PEM), "pem", "name of KEY_PEM");
	is_str(key_backend_name(KEY_PKCS11), "pkcs11", "name of KEY_PKCS11");
	is_str(key_backend_name(KEY_NONE), "none", "name of KEY_NONE");
	ok(key_backend_parse("pkcs12") == KEY_PKCS12 &&
	           key_backend_parse("PEM") == KEY_PEM &&
	           key_backend_parse("Pkcs11") == KEY_PKCS11,
	   "names parse back, case-insensitively");
	ok(key_backend_parse("pgp") == KEY_NONE &&
	           key_backend_parse(NULL) == KEY_NONE,
	   "unknown name and NULL are KEY_NONE");
}

/* File keys through keystore_load_key: names are files in dir. */
static const struct file_case {
	enum key_backend backend;
	const char *key, *secret; /* secret may be NULL */
	X509 **cert;              /* NULL: no certificate to compare with */
	int rc;
	const char *says; /* in err when rc is -1 */
	const char *what;
} file_cases[] = {
	{ KEY_PEM, "leaf.key.pem", NULL, &leaf, 0, NULL,
	  "PEM: the certificate's key" },
	{ KEY_PEM, "leaf.key.pem", NULL, NULL, 0, NULL,
	  "PEM: loads without a certificate to compare with" },
	{ KEY_PEM, "server.key.pem", NULL, &leaf, -1,
	  "server.key.pem does not match certificate",
	  "PEM: another certificate's key refused" },
	{ KEY_PEM, "nothere.pem", NULL, &leaf, -1, "nothere.pem",
	  "PEM: a missing key file is named" },
	{ KEY_PEM, "leaf.crt.pem", NULL, &leaf, -1, "cannot read private key",
	  "PEM: a file without a key" },
	{ KEY_PKCS12, "leaf.p12", "leaf.pass", &leaf, 0, NULL,
	  "PKCS#12: the certificate's key" },
	{ KEY_PKCS12, "leaf.p12", "wrong.pass", &leaf, -1, "wrong passphrase",
	  "PKCS#12: wrong passphrase" },
	{ KEY_PKCS12, "leaf.p12", NULL, &leaf, -1, "no passphrase file",
	  "PKCS#12: no passphrase file" },
	{ KEY_PKCS12, "leaf.p12", "nothere", &leaf, -1, "nothere",
	  "PKCS#12: a missing passphrase file is named" },
	{ KEY_PKCS12, "nothere.p12", "leaf.pass", &leaf, -1, "nothere.p12",
	  "PKCS#12: a missing file is named" },
	{ KEY_PKCS12, "leaf.p12", "leaf.pass", &server, -1,
	  "leaf.p12 does not match certificate",
	  "PKCS#12: key of another certificate refused" },
	{ KEY_NONE, "leaf.key.pem", NULL, &leaf, -1, "unknown key backend",
	  "an unknown backend is refused" },
};

static void file_tests(struct keystore *ks)
{
	char err[1024];
	struct key_ref ref = { KEY_PEM, in_dir(0, "leaf.key.pem"), NULL };
	EVP_PKEY *key = NULL;

	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]);
	     i++) {
		const struct file_case *c = &file_cases[i];
		X509 *cert = c->cert ? *c->cert : NULL;
		int rc = load(ks, c->backend, in_dir(0, c->key),
		              c->secret ? in_dir(1, c->secret) : NULL, cert,
		              &key, err, sizeof(err));

		if (c->rc == 0)
			ok(rc == 0 && key &&
			           (cert == NULL ||
			            cert_matches_key(cert, key)),
			   "%s (%s)", c->what, err);
		else
			ok(rc == c->rc && key == NULL && strstr(err, c->says),
			   "%s (%s)", c->what, err);
		EVP_PKEY_free(key);
		key = NULL;
	}

	/* files others may read */
	ok(keystore_exposed(&ref, err, sizeof(err)) == 0,
	   "a 0600 key file is not exposed");
	chmod(ref.location, 0644);
	ok(keystore_exposed(&ref, err, sizeof(err)) == 1 &&
	           strstr(err, "leaf.key.pem"),
	   "a 0644 key file is exposed (%s)", err);
	ok(load(ks, KEY_PEM, ref.location, NULL, leaf, &key, err,
	        sizeof(err)) == -1,
	   "... and not loaded (%s)", err);
	chmod(ref.location, 0600);
	chmod(in_dir(1, "leaf.pass"), 0644);
	ref = (struct key_ref){ KEY_PKCS12, in_dir(0, "leaf.p12"),
		                in_dir(1, "leaf.pass") };
	ok(keystore_exposed(&ref, err, sizeof(err)) == 1 &&
	           strstr(err, "leaf.pass"),
	   "a 0644 passphrase file is exposed (%s)", err);
	chmod(in_dir(1, "leaf.pass"), 0600);
	ref = (struct key_ref){ KEY_PKCS11, in_dir(0, "leaf.key.pem"), NULL };
	chmod(ref.location, 0644);
	ok(keystore_exposed(&ref, err, sizeof(err)) == 0,
	   "a PKCS#11 location is a URI, never a file to check");
	chmod(ref.location, 0600);
}

/* Sign with key, verify with cert: the key works. */
static int signs_for(EVP_PKEY *key, X509 *cert)
{
	static const unsigned char data[] = "keystore";
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
	int rc = s && v &&
	         EVP_DigestSignInit(s, NULL, EVP_sha256(), NULL, key) == 1 &&
	         EVP_DigestSign(s, sig, &siglen, data, sizeof(data)) == 1 &&
	         EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL,
	                              X509_get0_pubkey(cert)) == 1 &&
	         EVP_DigestVerify(v, sig, siglen, data, sizeof(data)) == 1;

	EVP_MD_CTX_free(s);
	EVP_MD_CTX_free(v);
	ERR_clear_error();
	return rc;
}

/* 1 when dir/leaf.der (encrypted to leaf by openssl cms) opens with key
 * through OpenSSL's CMS API, with the plain text back. */
static int opens(EVP_PKEY *key)
{
	BIO *in = BIO_new_file(in_dir(7, "leaf.der"), "rb");
	BIO *out = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms = in ? d2i_CMS_bio(in, NULL) : NULL;
	char *data;
	long n;
	int rc = 0;

	if (cms && out && key &&
	    CMS_decrypt_set1_pkey_and_peer(cms, key, leaf, NULL) == 1 &&
	    CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY) == 1) {
		n = BIO_get_mem_data(out, &data);
		rc = n == 9 && memcmp(data, "vertrouwd", 9) == 0;
	}
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(out);
	return rc;
}

/* keystore_load_decrypt_key of file keys: the same key, and it opens. */
static void file_decrypt_tests(struct keystore *ks)
{
	struct key_ref pem = { KEY_PEM, in_dir(0, "leaf.key.pem"), NULL };
	struct key_ref p12 = { KEY_PKCS12, in_dir(2, "leaf.p12"),
		               in_dir(3, "leaf.pass") };
	struct p11_key *hsm = (struct p11_key *)&pem;
	EVP_PKEY *key = NULL;
	char err[1024];

	ok(run("printf vertrouwd >%s/plain && openssl cms -encrypt -binary "
	       "-aes-256-cbc -in %s/plain -outform DER -out %s/leaf.der "
	       "-recip %s/leaf.crt.pem",
	       dir, dir, dir, dir) == 0,
	   "a CMS encrypted to leaf by openssl cms");
	ok(keystore_load_decrypt_key(ks, &pem, leaf, &key, &hsm, CLR(err),
	                             sizeof(err)) == 0 &&
	           hsm == NULL && opens(key),
	   "PEM: the decryption key opens the CMS (%s)", err);
	EVP_PKEY_free(key);
	ok(keystore_load_decrypt_key(ks, &p12, leaf, &key, NULL, CLR(err),
	                             sizeof(err)) == 0 &&
	           opens(key),
	   "PKCS#12: the decryption key opens the CMS (%s)", err);
	EVP_PKEY_free(key);
	ok(keystore_load_decrypt_key(ks, &pem, server, &key, NULL, CLR(err),
	                             sizeof(err)) == -1 &&
	           key == NULL && strstr(err, "does not match"),
	   "PEM: another certificate's key is refused (%s)", err);
	ok(keystore_load_decrypt_key(ks, &pem, NULL, &key, NULL, CLR(err),
	                             sizeof(err)) == -1 &&
	           key == NULL && strstr(err, "needs its certificate"),
	   "no certificate: refused (%s)", err);
	ok(!opens(NULL), "no key: the CMS does not open");
}

/* keystore_load_decrypt_key of token keys: the imported leaf key (SoftHSM
 * imports with CKA_DECRYPT) opens the CMS on the token; a key generated
 * for signing only is refused. */
static void pkcs11_decrypt_tests(struct keystore *ks)
{
	struct key_ref ref = { KEY_PKCS11, "pkcs11:token=ks;object=leaf",
		               NULL };
	struct p11_key *hsm = NULL;
	EVP_PKEY *key = NULL, *pub = NULL, *skey = NULL;
	char err[1024], *uri = NULL;
	X509 *x;

	ok(keystore_load_decrypt_key(ks, &ref, leaf, &key, &hsm, CLR(err),
	                             sizeof(err)) == 0 &&
	           hsm && opens(key),
	   "PKCS#11: the token key opens the CMS (C_Decrypt) (%s)", err);
	EVP_PKEY_free(key);
	ok(p11_keygen(keystore_p11(ks), "pkcs11:token=ks", "signer", "rsa2048",
	              0, &pub, &uri, CLR(err), sizeof(err)) == 0 &&
	           p11_ctx_key_pub(keystore_p11(ks), uri, pub, &skey, err,
	                           sizeof(err)) == 0,
	   "PKCS#11: a signing-only key generated (%s)", err);
	if (skey == NULL)
		return;
	x = fixture_cert_make(skey, "signer", NULL, NULL, 3, time(NULL), -60,
	                      3600, "keyUsage:digitalSignature");
	ref.location = uri;
	ok(keystore_load_key(ks, &ref, x, &key, NULL, CLR(err), sizeof(err)) ==
	           0,
	   "PKCS#11: it loads to sign (%s)", err);
	EVP_PKEY_free(key);
	ok(keystore_load_decrypt_key(ks, &ref, x, &key, &hsm, CLR(err),
	                             sizeof(err)) == -1 &&
	           key == NULL && hsm == NULL &&
	           strstr(err, "CKA_DECRYPT is false"),
	   "PKCS#11: ... and is refused to decrypt (%s)", err);
	X509_free(x);
	EVP_PKEY_free(skey);
	EVP_PKEY_free(pub);
	free(uri);
}

static void pkcs11_tests(void)
{
	char *labels[] = { "ks" };
	char *files[] = { (char *)in_dir(2, "pin") };
	struct p11_settings set = { .module = MODULE,
		                    .pin_tokens = labels,
		                    .pin_files = files,
		                    .npins = 1,
		                    .sessions = 2,
		                    .retry = 1 };
	struct key_ref ref = { KEY_PKCS11, "pkcs11:token=ks;object=leaf",
		               NULL };
	struct config cfg;
	struct keystore *ks;
	struct p11_key *hsm = NULL;
	EVP_PKEY *key = NULL;
	char err[1024];

	if (access(MODULE, R_OK) != 0) {
		ok(0, "SoftHSM2 module %s is installed (make deps)", MODULE);
		return;
	}
	run("printf 'directories.tokendir = %s/tokens\\nobjectstore.backend = "
	    "file\\nlog.level = ERROR\\n' >%s/softhsm2.conf",
	    dir, dir);
	setenv("SOFTHSM2_CONF", in_dir(3, "softhsm2.conf"), 1);
	ok(run("mkdir %s/tokens && softhsm2-util --init-token --free --label "
	       "ks --pin 1234 --so-pin 5678 >/dev/null && "
	       "openssl pkey -in %s/leaf.key.pem -out %s/leaf.p8 && "
	       "softhsm2-util --import %s/leaf.p8 --token ks --label leaf "
	       "--id 01 --pin 1234 >/dev/null",
	       dir, dir, dir, dir) == 0,
	   "SoftHSM2 token with the leaf key");
	run("printf 1234 >%s/pin && printf 0000 >%s/badpin && "
	    "chmod 600 %s/pin %s/badpin",
	    dir, dir, dir, dir);

	ks = keystore_new(&set);
	ok(ks &&
	           keystore_load_key(ks, &ref, leaf, &key, &hsm, err,
	                             sizeof(err)) == 0 &&
	           key && hsm,
	   "PKCS#11: the certificate's key, and its token key (%s)", err);
	ok(key && hsm && signs_for(key, leaf) &&
	           p11_key_ready(hsm, err, sizeof(err)),
	   "PKCS#11: the key signs on the token");
	EVP_PKEY_free(key);
	ok(keystore_load_key(ks, &ref, server, &key, &hsm, err, sizeof(err)) ==
	                   -1 &&
	           key == NULL && hsm == NULL &&
	           strstr(err, "not the key of the certificate"),
	   "PKCS#11: key of another certificate refused (%s)", err);
	ok(keystore_load_key(ks, &ref, NULL, &key, NULL, err, sizeof(err)) ==
	                   -1 &&
	           key == NULL,
	   "PKCS#11: no certificate, nothing to check the key with (%s)", err);
	ref.location = "pkcs11:token=ks;object=nobody";
	ok(keystore_load_key(ks, &ref, leaf, &key, &hsm, err, sizeof(err)) ==
	                   1 &&
	           key && hsm && strstr(err, "not found"),
	   "PKCS#11: a missing object may come back: 1 (%s)", err);
	EVP_PKEY_free(key);
	pkcs11_decrypt_tests(ks);
	keystore_free(ks);

	/* the settings from a configuration: here a wrong PIN file */
	memset(&cfg, 0, sizeof(cfg));
	files[0] = (char *)in_dir(2, "badpin");
	cfg.pkcs11_module = (char *)MODULE;
	cfg.pkcs11_token = labels;
	cfg.pkcs11_pin_file = files;
	cfg.npkcs11_tokens = 1;
	ks = keystore_new_config(&cfg, 1, 1);
	ref.location = "pkcs11:token=ks;object=leaf";
	ok(ks &&
	           keystore_load_key(ks, &ref, leaf, &key, &hsm, err,
	                             sizeof(err)) == 1 &&
	           key && hsm && strstr(err, "PIN was refused") &&
	           !strstr(err, "0000"),
	   "PKCS#11: wrong PIN, the key cannot sign (%s)", err);
	ok(key && !signs_for(key, leaf), "... and no signature is made");
	EVP_PKEY_free(key);
	keystore_free(ks);

	/* a missing PIN file, no module, no key store */
	files[0] = (char *)in_dir(2, "nopin");
	ks = keystore_new(&set);
	ok(ks &&
	           keystore_load_key(ks, &ref, leaf, &key, NULL, err,
	                             sizeof(err)) == -1 &&
	           key == NULL && strstr(err, "nopin"),
	   "PKCS#11: a missing PIN file is named (%s)", err);
	keystore_free(ks);
	ks = keystore_new(NULL);
	ok(ks &&
	           keystore_load_key(ks, &ref, leaf, &key, NULL, err,
	                             sizeof(err)) == -1 &&
	           strstr(err, "no PKCS#11 module"),
	   "PKCS#11: no module configured (%s)", err);
	keystore_free(ks);
	ok(keystore_load_key(NULL, &ref, leaf, &key, NULL, err, sizeof(err)) ==
	                   -1 &&
	           strstr(err, "key store"),
	   "PKCS#11: no key store (%s)", err);
	keystore_free(NULL);
}

int main(void)
{
	struct keystore *ks;

	snprintf(dir, sizeof(dir), "/tmp/test_keystore.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	if (run("cp " DATA "/leaf.key.pem " DATA "/server.key.pem " DATA
	        "/leaf.p12 " DATA "/leaf.pass " DATA "/leaf.crt.pem %s/ && "
	        "printf 'wrong\\n' >%s/wrong.pass && chmod 600 %s/*",
	        dir, dir, dir) != 0)
		return 1;
	leaf = read_cert(DATA "/leaf.crt.pem");
	server = read_cert(DATA "/server.crt.pem");
	ok(leaf && server, "certificates read");
	names_tests();
	ks = keystore_new(NULL);
	file_tests(ks);
	file_decrypt_tests(ks);
	keystore_free(ks);
	pkcs11_tests();
	X509_free(leaf);
	X509_free(server);
	run("rm -rf %s", dir);
	return tap_done();
}
