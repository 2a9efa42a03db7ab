/* Unit tests: PKCS#11 URIs, and keys on a real SoftHSM2 token made here --
 * concurrent signatures through the session pool, a wrong PIN reported
 * once, the token store vanishing and coming back; CMS messages made by
 * `openssl cms -encrypt` (RSA v1.5, OAEP SHA-1 and SHA-256, ECDH)
 * decrypted with token keys through OpenSSL's CMS API, and keys made for
 * signing only refused for decryption. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "fixture.h"
#include "p11.h"
#include "tap.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static void uri_tests(void)
{
	struct p11_uri u;
	char err[512];
	char *s;

	ok(p11_uri_parse("pkcs11:token=banjar;object=andi;type=private", &u,
	                 err, sizeof(err)) == 0,
	   "plain URI parses");
	is_str(u.token, "banjar", "token");
	is_str(u.object, "andi", "object");
	ok(u.type == P11_PRIVATE && u.id == NULL && u.slot_id == -1,
	   "type private, no id, no slot");
	p11_uri_clear(&u);

	ok(p11_uri_parse("pkcs11:token=Kota%20Banjar;id=%01%a0%FF;serial=12"
	                 "?pin-source=file:/etc/pin&module-path=/m.so",
	                 &u, err, sizeof(err)) == 0,
	   "escapes and query attributes parse");
	is_str(u.token, "Kota Banjar", "%%20 decoded");
	ok(u.idlen == 3 && u.id[0] == 0x01 && u.id[1] == 0xa0 &&
	           u.id[2] == 0xff,
	   "id decoded to 3 bytes");
	is_str(u.serial, "12", "serial");
	is_str(u.pin_source, "/etc/pin", "pin-source file: scheme stripped");
	is_str(u.module_path, "/m.so", "module-path");
	p11_uri_clear(&u);

	ok(p11_uri_parse("pkcs11:token=a?pin-source=file:///etc/p", &u, err,
	                 sizeof(err)) == 0 &&
	           strcmp(u.pin_source, "/etc/p") == 0,
	   "pin-source file:///path");
	p11_uri_clear(&u);

	ok(p11_uri_parse("pkcs11:token=a;object=b?pin-value=1234", &u, err,
	                 sizeof(err)) != 0 &&
	           strstr(err, "pin-value is refused") && !strstr(err, "1234"),
	   "pin-value refused without echoing the PIN (%s)", err);
	ok(p11_uri_parse("file:/x", &u, err, sizeof(err)) != 0,
	   "non-pkcs11 scheme refused");
	ok(p11_uri_parse("pkcs11:token=a;id=%zz", &u, err, sizeof(err)) != 0,
	   "bad %%-escape refused");
	ok(p11_uri_parse("pkcs11:token=a;id=%0", &u, err, sizeof(err)) != 0,
	   "truncated %%-escape refused");
	ok(p11_uri_parse("pkcs11:token=a;colour=red", &u, err, sizeof(err)) !=
	                   0 &&
	           strstr(err, "colour"),
	   "unknown attribute named (%s)", err);
	ok(p11_uri_parse("pkcs11:token=a;type=secret-key", &u, err,
	                 sizeof(err)) != 0,
	   "type other than private/public/cert refused");
	ok(p11_uri_parse("pkcs11:token=a;x-vendor=1;library-version=2", &u, err,
	                 sizeof(err)) == 0,
	   "vendor and library attributes accepted");
	p11_uri_clear(&u);
	ok(p11_uri_parse("pkcs11:token=a?pin-source=relative", &u, err,
	                 sizeof(err)) != 0,
	   "relative pin-source refused");

	s = p11_uri_make("Kota Banjar", (const unsigned char *)"\x01\xff", 2,
	                 "a;b");
	is_str(s,
	       "pkcs11:token=Kota%20Banjar;id=%01%FF;object=a%3Bb;"
	       "type=private",
	       "made URI escapes what needs it");
	ok(s && p11_uri_parse(s, &u, err, sizeof(err)) == 0 &&
	           strcmp(u.object, "a;b") == 0 && u.idlen == 2,
	   "made URI parses back");
	p11_uri_clear(&u);
	free(s);
}

/* ---- with SoftHSM2 ------------------------------------------------------ */

static char dir[256];
static int reports, reports_pin, reports_down, reports_back;

static void reporter(int is_error, const char *text)
{
	reports++;
	if (strstr(text, "PIN") && strstr(text, "rejected"))
		reports_pin++;
	if (strstr(text, "unavailable"))
		reports_down++;
	if (strstr(text, "is back"))
		reports_back++;
	printf("# report: %s\n", text);
}

#define CLR(e) ((e)[0] = '\0', (e))

/* A SHA-256 signature of data with key: made into sig (*siglen in: room,
 * out: length), or checked when check is set.  1 on success. */
static int sig_op(EVP_PKEY *key, int check, unsigned char *sig, size_t *siglen,
                  const unsigned char *data, size_t len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int rc = m != NULL;

	if (rc && check)
		rc = EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, key) ==
		             1 &&
		     EVP_DigestVerify(m, sig, *siglen, data, len) == 1;
	else if (rc)
		rc = EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, key) ==
		             1 &&
		     EVP_DigestSign(m, sig, siglen, data, len) == 1;
	EVP_MD_CTX_free(m);
	ERR_clear_error();
	return rc;
}

static int verify(EVP_PKEY *pub, const unsigned char *sig, size_t siglen,
                  const unsigned char *data, size_t len)
{
	return sig_op(pub, 1, (unsigned char *)sig, &siglen, data, len);
}

static int sign(EVP_PKEY *key, const unsigned char *data, size_t len,
                unsigned char *sig, size_t *siglen)
{
	return sig_op(key, 0, sig, siglen, data, len);
}

struct worker {
	EVP_PKEY *key, *pub;
	int n, good;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned char data[64], sig[512];

	for (int i = 0; i < w->n; i++) {
		size_t siglen = sizeof(sig);
		RAND_bytes(data, sizeof(data));
		if (sign(w->key, data, sizeof(data), sig, &siglen) &&
		    verify(w->pub, sig, siglen, data, sizeof(data)))
			w->good++;
	}
	return NULL;
}

static struct p11_ctx *ctx_with_pin(const char *pinfile, int sessions)
{
	char *labels[] = { "unit" };
	char *files[] = { (char *)pinfile };
	struct p11_settings set = { .module = MODULE,
		                    .pin_tokens = labels,
		                    .pin_files = files,
		                    .npins = 1,
		                    .sessions = sessions,
		                    .retry = 1 };

	return p11_ctx_new(&set);
}

static void write_file(const char *path, const char *text, int mode)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, (mode_t)mode);
}

/* The content of the CMS EnvelopedData in DER file path, decrypted with
 * key (for cert) as OpenSSL's CMS code does with any key, into out (NUL
 * terminated).  1 when it decrypted. */
static int cms_open(EVP_PKEY *key, X509 *cert, const char *path, char *out,
                    size_t outlen)
{
	BIO *in = BIO_new_file(path, "rb"), *mem = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms = in ? d2i_CMS_bio(in, NULL) : NULL;
	char *data;
	long n;
	int rc = 0;

	out[0] = '\0';
	if (cms && mem &&
	    CMS_decrypt_set1_pkey_and_peer(cms, key, cert, NULL) == 1 &&
	    CMS_decrypt(cms, NULL, NULL, NULL, mem, CMS_BINARY) == 1) {
		n = BIO_get_mem_data(mem, &data);
		snprintf(out, outlen, "%.*s", (int)n, data);
		rc = 1;
	}
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(mem);
	return rc;
}

/* A self-signed certificate for the token key key (signed on the token),
 * written to dir/name.crt.pem; the plain text encrypted to it by openssl
 * cms with the options opts into dir/name.der.  Returns the certificate. */
static X509 *encrypt_to(EVP_PKEY *key, const char *name, const char *ku,
                        const char *opts)
{
	char path[400];
	X509 *x = fixture_cert_make(key, name, NULL, NULL, 7, time(NULL), -60,
	                            86400, ku);

	snprintf(path, sizeof(path), "%s/%s.crt.pem", dir, name);
	fixture_pem_write(path, x, NULL);
	fixture_sh("openssl cms -encrypt -binary -in %s/plain -outform DER "
	           "-out %s/%s.der -aes-256-cbc -recip %s %s",
	           dir, dir, name, path, opts);
	return x;
}

/* Decryption on the token: keys made with decrypt set, then those made
 * for signing only (sign_rsa, sign_ec). */
static void dec_tests(struct p11_ctx *c, EVP_PKEY *sign_rsa, EVP_PKEY *sign_ec)
{
	static const char *plain = "Subject: balasan\r\n\r\nisi surat\r\n";
	EVP_PKEY *pub = NULL, *epub = NULL, *key = NULL, *ekey = NULL, *k2;
	char *uri = NULL, *euri = NULL, err[1024], out[256], path[400];
	X509 *x, *ex, *sx;
	struct p11_key *pk;

	snprintf(path, sizeof(path), "%s/plain", dir);
	fixture_write(path, plain, 0600);
	ok(p11_keygen(c, "pkcs11:token=unit", "rsa-dec", "rsa2048", 1, &pub,
	              &uri, CLR(err), sizeof(err)) == 0 &&
	           p11_keygen(c, "pkcs11:token=unit", "ec-dec", "ec-p256", 1,
	                      &epub, &euri, CLR(err), sizeof(err)) == 0,
	   "RSA and EC keys that decrypt generated (%s)", err);
	if (pub == NULL || epub == NULL)
		return;
	/* certificates signed on the token, then found by their key */
	p11_ctx_key_pub(c, uri, pub, &k2, err, sizeof(err));
	x = encrypt_to(k2, "rsa-v15", "keyUsage:keyEncipherment", "");
	EVP_PKEY_free(k2);
	ok(p11_ctx_key_decrypt(c, uri, x, &key, &pk, CLR(err), sizeof(err)) ==
	                   0 &&
	           pk != NULL,
	   "RSA key loaded for decryption (%s)", err);
	snprintf(path, sizeof(path), "%s/rsa-v15.der", dir);
	ok(key && cms_open(key, x, path, out, sizeof(out)) &&
	           strcmp(out, plain) == 0,
	   "RSA PKCS#1 v1.5 (CKM_RSA_PKCS) CMS decrypts on the token");
	X509_free(x);
	x = encrypt_to(key, "rsa-oaep1", "keyUsage:keyEncipherment",
	               "-keyopt rsa_padding_mode:oaep");
	snprintf(path, sizeof(path), "%s/rsa-oaep1.der", dir);
	ok(cms_open(key, x, path, out, sizeof(out)) && strcmp(out, plain) == 0,
	   "RSA-OAEP SHA-1 (CKM_RSA_PKCS_OAEP) CMS decrypts on the token (%s)",
	   p11_last_error());
	X509_free(x);
	x = encrypt_to(key, "rsa-oaep256", "keyUsage:keyEncipherment",
	               "-keyopt rsa_padding_mode:oaep -keyopt "
	               "rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256");
	snprintf(path, sizeof(path), "%s/rsa-oaep256.der", dir);
	ok(cms_open(key, x, path, out, sizeof(out)) && strcmp(out, plain) == 0,
	   "RSA-OAEP SHA-256 CMS decrypts on the token (%s)", p11_last_error());
	X509_free(x);
	p11_ctx_key_pub(c, euri, epub, &k2, err, sizeof(err));
	ex = encrypt_to(k2, "ecdh", "keyUsage:keyAgreement", "");
	EVP_PKEY_free(k2);
	ok(p11_ctx_key_decrypt(c, euri, ex, &ekey, NULL, CLR(err),
	                       sizeof(err)) == 0,
	   "EC key loaded for decryption (%s)", err);
	snprintf(path, sizeof(path), "%s/ecdh.der", dir);
	ok(ekey && cms_open(ekey, ex, path, out, sizeof(out)) &&
	           strcmp(out, plain) == 0,
	   "ECDH (kari, CKM_ECDH1_DERIVE) CMS decrypts on the token (%s)",
	   p11_last_error());
	snprintf(path, sizeof(path), "%s/rsa-v15.der", dir);
	ok(ekey && !cms_open(ekey, ex, path, out, sizeof(out)),
	   "a message for the RSA key does not open with the EC key");
	X509_free(ex);

	/* keys made for signing only: refused, clearly, and nothing crashes */
	sx = fixture_cert_make(sign_rsa, "sign-rsa", NULL, NULL, 8, time(NULL),
	                       -60, 86400, NULL);
	ok(p11_ctx_key_decrypt(c, "pkcs11:token=unit;object=rsa", sx, &k2, &pk,
	                       CLR(err), sizeof(err)) == -1 &&
	           k2 == NULL && pk == NULL && strstr(err, "may not decrypt") &&
	           strstr(err, "CKA_DECRYPT is false"),
	   "a signing-only RSA key is refused for decryption (%s)", err);
	snprintf(path, sizeof(path), "%s/rsa-v15.der", dir);
	ok(!cms_open(sign_rsa, sx, path, out, sizeof(out)) &&
	           strstr(p11_last_error(), "may not decrypt"),
	   "its signing wrapper does not decrypt either (%s)",
	   p11_last_error());
	X509_free(sx);
	sx = fixture_cert_make(sign_ec, "sign-ec", NULL, NULL, 9, time(NULL),
	                       -60, 86400, NULL);
	ok(p11_ctx_key_decrypt(c, "pkcs11:token=unit;object=ec", sx, &k2, NULL,
	                       CLR(err), sizeof(err)) == -1 &&
	           strstr(err, "CKA_DERIVE is false"),
	   "a signing-only EC key is refused for ECDH (%s)", err);
	X509_free(sx);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ekey);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(epub);
	free(uri);
	free(euri);
}

static void hsm_tests(void)
{
	char conf[300], pin[300], badpin[300], err[1024], *uri = NULL;
	struct p11_ctx *c;
	EVP_PKEY *pub = NULL, *key = NULL, *ekey = NULL, *epub = NULL, *other;
	char *euri = NULL;
	unsigned char sig[512], data[32] = "data";
	size_t siglen;
	struct worker w[8];
	pthread_t th[8];
	int good = 0;

	if (access(MODULE, R_OK) != 0) {
		ok(0, "SoftHSM2 module %s is installed (make deps)", MODULE);
		return;
	}
	snprintf(dir, sizeof(dir), "/tmp/test_p11.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		ok(0, "temp dir");
		return;
	}
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	{
		char text[600];
		snprintf(text, sizeof(text),
		         "directories.tokendir = %s/tokens\n"
		         "objectstore.backend = file\nlog.level = ERROR\n",
		         dir);
		write_file(conf, text, 0600);
	}
	setenv("SOFTHSM2_CONF", conf, 1);
	ok(fixture_sh("mkdir %s/tokens && softhsm2-util --init-token --free "
	              "--label unit --pin 4321 --so-pin 8765 >/dev/null",
	              dir) == 0,
	   "SoftHSM2 token created in %s", dir);
	snprintf(pin, sizeof(pin), "%s/pin", dir);
	snprintf(badpin, sizeof(badpin), "%s/badpin", dir);
	write_file(pin, "4321\n", 0600);
	write_file(badpin, "0000", 0600);
	p11_reporter = reporter;

	/* key generation through our own API, then signatures */
	c = ctx_with_pin(pin, 4);
	ok(p11_keygen(c, "pkcs11:token=unit", "rsa", "rsa2048", 0, &pub, &uri,
	              CLR(err), sizeof(err)) == 0,
	   "RSA key generated on the token (%s)", err);
	ok(p11_keygen(c, "pkcs11:token=unit", "rsa", "rsa2048", 0, &epub, &euri,
	              err, sizeof(err)) != 0 &&
	           strstr(err, "already holds"),
	   "a second key with the same label is refused (%s)", err);
	ok(p11_keygen(c, "pkcs11:token=unit", "ec", "ec-p256", 0, &epub, &euri,
	              CLR(err), sizeof(err)) == 0,
	   "EC P-256 key generated (%s)", err);
	ok(uri && p11_ctx_key_pub(c, uri, pub, &key, CLR(err), sizeof(err)) ==
	                   0,
	   "RSA key usable (%s)", err);
	ok(euri && p11_ctx_key_pub(c, euri, epub, &ekey, CLR(err),
	                           sizeof(err)) == 0,
	   "EC key usable (%s)", err);
	siglen = sizeof(sig);
	ok(key && sign(key, data, sizeof(data), sig, &siglen) &&
	           verify(pub, sig, siglen, data, sizeof(data)),
	   "RSA signature made on the token verifies");
	siglen = sizeof(sig);
	ok(ekey && sign(ekey, data, sizeof(data), sig, &siglen) &&
	           verify(epub, sig, siglen, data, sizeof(data)),
	   "ECDSA signature made on the token verifies");
	dec_tests(c, key, ekey);
	ok(p11_ctx_key_pub(c, uri, epub, &other, err, sizeof(err)) == -1 &&
	           other == NULL && strstr(err, "RSA key"),
	   "RSA key against an EC public key refused (%s)", err);

	/* eight threads, four sessions: the pool hands them round */
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ key, pub, 25, 0 };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		good += w[i].good;
	}
	ok(good == 200,
	   "8 threads x 25 signatures over 4 sessions: %d/200 "
	   "verify",
	   good);

	/* the store vanishes: one report, fast failures, then recovery */
	reports_down = reports_back = 0;
	ok(fixture_sh("mv %s/tokens %s/tokens.away", dir, dir) == 0,
	   "token store moved away");
	siglen = sizeof(sig);
	ok(!sign(key, data, sizeof(data), sig, &siglen),
	   "signing fails while the token is away (%s)", p11_last_error());
	for (int i = 0; i < 20; i++) {
		siglen = sizeof(sig);
		sign(key, data, sizeof(data), sig, &siglen);
	}
	ok(reports_down == 1, "one 'unavailable' report for 21 failures (%d)",
	   reports_down);
	ok(fixture_sh("mv %s/tokens.away %s/tokens", dir, dir) == 0,
	   "token store back");
	sleep(2); /* retry = 1 s */
	siglen = sizeof(sig);
	ok(sign(key, data, sizeof(data), sig, &siglen) &&
	           verify(pub, sig, siglen, data, sizeof(data)),
	   "signing resumes by itself (%s)", p11_last_error());
	ok(reports_back == 1, "one 'is back' report (%d)", reports_back);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ekey);
	p11_ctx_free(c);

	/* a wrong PIN: said once, never tried again in this context */
	c = ctx_with_pin(badpin, 2);
	reports_pin = 0;
	ok(p11_ctx_key_pub(c, uri, pub, &key, err, sizeof(err)) == 1 &&
	           !strstr(err, "0000"),
	   "wrong PIN: key not usable (%s)", err);
	{
		int ready = 0;
		for (int i = 0; i < 10; i++) {
			siglen = sizeof(sig);
			ready += sign(key, data, sizeof(data), sig, &siglen);
		}
		sleep(2);
		siglen = sizeof(sig);
		ready += sign(key, data, sizeof(data), sig, &siglen);
		ok(ready == 0, "no signature with a wrong PIN");
	}
	ok(reports_pin == 1, "the PIN is reported rejected exactly once (%d)",
	   reports_pin);
	EVP_PKEY_free(key);
	p11_ctx_free(c);

	/* a PIN file others may read is refused */
	chmod(pin, 0644);
	c = ctx_with_pin(pin, 2);
	ok(p11_ctx_key_pub(c, uri, pub, &key, err, sizeof(err)) == -1,
	   "world-readable PIN file refused (%s)", err);
	p11_ctx_free(c);
	chmod(pin, 0600);

	/* a key that is not there */
	c = ctx_with_pin(pin, 2);
	ok(p11_ctx_key_pub(c, "pkcs11:token=unit;object=nobody", pub, &key, err,
	                   sizeof(err)) == 1 &&
	           strstr(err, "not found"),
	   "missing key object: %s", err);
	EVP_PKEY_free(key);
	p11_ctx_free(c);

	EVP_PKEY_free(pub);
	EVP_PKEY_free(epub);
	free(uri);
	free(euri);
	fixture_sh("rm -rf %s", dir);
}

/* ---- what the daemon links ---------------------------------------------- */

/* 1 when nm lists sym as defined in bin (TOP/bin, or bin from the current
 * directory), 0 when not, -1 when nm cannot read bin. */
static int links(const char *bin, const char *sym)
{
	const char *top = getenv("TOP");
	char cmd[1024], line[512];
	FILE *p;
	int found = 0;

	snprintf(cmd, sizeof(cmd), "nm --defined-only %s/%s 2>/dev/null",
	         top ? top : ".", bin);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *name = strrchr(line, ' ');
		line[strcspn(line, "\n")] = '\0';
		if (name && strcmp(name + 1, sym) == 0)
			found = 1;
	}
	return pclose(p) == 0 ? found : -1;
}

/* p11_admin.c holds what only smimectl does; lib/libsmime.a is a static
 * archive, so the daemon must not pull that object in. */
static void link_tests(void)
{
	ok(links("admin/smimectl", "p11_keygen") == 1 &&
	           links("admin/smimectl", "p11_list") == 1,
	   "smimectl links p11_keygen and p11_list (nm sees them)");
	ok(links("milter/smime-milter", "p11_ctx_key") == 1,
	   "smime-milter links the token code (p11_ctx_key)");
	ok(links("milter/smime-milter", "p11_keygen") == 0 &&
	           links("milter/smime-milter", "p11_list") == 0 &&
	           links("milter/smime-milter", "p11_ctx_key_cert") == 0,
	   "smime-milter does not link the admin part (p11_admin.c)");
}

int main(void)
{
	uri_tests();
	link_tests();
	hsm_tests();
	return tap_done();
}
