/* keystore -- private keys behind one backend table (see keystore.h). */
#include "keystore.h"
#include "certstore.h"
#include "config.h"
#include "p11.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

#define SECRET_MAX 1024

struct keystore {
	struct p11_ctx *p11; /* tokens, logins and sessions of PKCS#11 keys */
};

/* ---- PKCS#12 and PEM files ---------------------------------------------- */

static OSSL_PROVIDER *prov_default, *prov_legacy;

/* Runs before OpenSSL's own exit cleanup (atexit is last-in, first-out
 * and OpenSSL registered first), so nothing is left half-freed at exit. */
static void unload_providers(void)
{
	OSSL_PROVIDER_unload(prov_legacy);
	OSSL_PROVIDER_unload(prov_default);
	prov_legacy = prov_default = NULL;
}

static void load_providers(void)
{
	prov_default = OSSL_PROVIDER_load(NULL, "default");
	if (prov_default)
		prov_legacy = OSSL_PROVIDER_try_load(NULL, "legacy", 1);
	ERR_clear_error();
	atexit(unload_providers);
}

/* Older PKCS#12 files (RC2-40, 3DES) need the legacy provider.  It stays
 * loaded for the life of the process and is unloaded at exit. */
static void load_legacy_provider(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_providers);
}

int keystore_read_pkcs12(const char *path, const char *passfile, EVP_PKEY **key,
                         X509 **cert, STACK_OF(X509) **extra, char *err,
                         size_t errlen)
{
	char pass[SECRET_MAX];
	BIO *bio;
	PKCS12 *p12;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	STACK_OF(X509) *ca = NULL;
	int plen, rc = -1;

	load_legacy_provider();
	if (passfile == NULL)
		return seterr(err, errlen, "%s: no passphrase file given",
		              path);
	plen = secret_read_file(passfile, pass, sizeof(pass), err, errlen);
	if (plen < 0)
		return -1;
	bio = BIO_new_file(path, "rb");
	if (bio == NULL) {
		OPENSSL_cleanse(pass, sizeof(pass));
		ERR_clear_error();
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	}
	p12 = d2i_PKCS12_bio(bio, NULL);
	BIO_free(bio);
	if (p12 == NULL) {
		OPENSSL_cleanse(pass, sizeof(pass));
		ERR_clear_error();
		return seterr(err, errlen, "%s: not a PKCS#12 file", path);
	}
	if (!PKCS12_verify_mac(p12, pass, plen)) {
		seterr(err, errlen,
		       "%s: wrong passphrase (MAC check failed with the "
		       "passphrase in %s)",
		       path, passfile);
		ERR_clear_error();
		goto out;
	}
	if (!PKCS12_parse(p12, pass, &k, &c, &ca)) {
		seterr_ssl(err, errlen, "cannot decrypt PKCS#12 file");
		goto out;
	}
	/* a renewal key waits in a PKCS#12 of its own, without certificate */
	if (k == NULL || (c == NULL && cert != NULL)) {
		seterr(err, errlen, "%s: PKCS#12 holds no %s", path,
		       k == NULL ? "private key" : "certificate");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	PKCS12_free(p12);
	if (rc == 0 && key) {
		*key = k;
		k = NULL;
	}
	if (rc == 0 && cert) {
		*cert = c;
		c = NULL;
	}
	if (rc == 0 && extra) {
		*extra = ca ? ca : sk_X509_new_null();
		ca = NULL;
	}
	EVP_PKEY_free(k);
	X509_free(c);
	sk_X509_pop_free(ca, X509_free);
	return rc;
}

static int pem_pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	int len;

	if (pass == NULL)
		return 0;
	len = (int)strlen(pass);
	if (len > size)
		len = size;
	memcpy(buf, pass, (size_t)len);
	return len;
}

static int read_pem_key(const char *path, const char *passfile, EVP_PKEY **out,
                        char *err, size_t errlen)
{
	char pass[SECRET_MAX];
	BIO *bio;
	EVP_PKEY *k;

	if (path_check_private(path, err, errlen) != 0)
		return -1;
	pass[0] = '\0';
	if (passfile &&
	    secret_read_file(passfile, pass, sizeof(pass), err, errlen) < 0)
		return -1;
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		ERR_clear_error();
		OPENSSL_cleanse(pass, sizeof(pass));
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	}
	k = PEM_read_bio_PrivateKey(bio, NULL, pem_pass_cb,
	                            passfile ? pass : NULL);
	BIO_free(bio);
	OPENSSL_cleanse(pass, sizeof(pass));
	if (k == NULL) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "%s: cannot read private key (not PEM, or "
		              "encrypted and %s)",
		              path,
		              passfile ? "the passphrase is wrong"
		                       : "no passphrase file given");
	}
	*out = k;
	return 0;
}

/* ---- the backend table -------------------------------------------------- */

static int load_pkcs12(struct keystore *ks, const struct key_ref *ref,
                       X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                       char *err, size_t errlen)
{
	if (path_check_private(ref->location, err, errlen) != 0)
		return -1;
	return keystore_read_pkcs12(ref->location, ref->secret_file, out, NULL,
	                            NULL, err, errlen);
}

static int load_pem(struct keystore *ks, const struct key_ref *ref, X509 *cert,
                    EVP_PKEY **out, struct p11_key **hsm, char *err,
                    size_t errlen)
{
	return read_pem_key(ref->location, ref->secret_file, out, err, errlen);
}

/* The token proves the key is the certificate's (p11_ctx_key). */
static int load_pkcs11(struct keystore *ks, const struct key_ref *ref,
                       X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                       char *err, size_t errlen)
{
	if (ks == NULL || ks->p11 == NULL)
		return seterr(err, errlen,
		              "%s: PKCS#11 keys need a key store with the "
		              "token settings",
		              ref->location);
	return p11_ctx_key(ks->p11, ref->location, cert, out, hsm, err, errlen);
}

/* The token key for decryption: the same wrapper, whose RSA decryption and
 * ECDH run on the token; refused when the object may not decrypt. */
static int load_pkcs11_decrypt(struct keystore *ks, const struct key_ref *ref,
                               X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                               char *err, size_t errlen)
{
	if (ks == NULL || ks->p11 == NULL)
		return load_pkcs11(ks, ref, cert, out, hsm, err, errlen);
	return p11_ctx_key_decrypt(ks->p11, ref->location, cert, out, hsm, err,
	                           errlen);
}

/*
 * One row per backend.  load fills *out (and *hsm for a token key) with
 * the returns of keystore_load_key; file backends leave the comparison
 * with the certificate to keystore_load_key.  load_decrypt does the same
 * for keystore_load_decrypt_key: a key whose private operation decrypts a
 * CMS RecipientInfo's content-encryption key -- OpenSSL's own for the file
 * backends (the same EVP_PKEY), C_Decrypt (RSA) / C_DeriveKey (ECDH) on
 * the token for PKCS#11 (p11_evp.c, p11_dec.c).
 */
struct keystore_backend {
	enum key_backend id;
	const char *name; /* in the database and on the command line */
	int files;        /* location and secret_file are file paths */
	int (*load)(struct keystore *ks, const struct key_ref *ref, X509 *cert,
	            EVP_PKEY **out, struct p11_key **hsm, char *err,
	            size_t errlen);
	int (*load_decrypt)(struct keystore *ks, const struct key_ref *ref,
	                    X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
	                    char *err, size_t errlen);
};

static const struct keystore_backend backends[] = {
	{ KEY_PKCS12, "pkcs12", 1, load_pkcs12, load_pkcs12 },
	{ KEY_PEM, "pem", 1, load_pem, load_pem },
	{ KEY_PKCS11, "pkcs11", 0, load_pkcs11, load_pkcs11_decrypt },
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

static const struct keystore_backend *backend_of(enum key_backend b)
{
	for (size_t i = 0; i < NBACKENDS; i++)
		if (backends[i].id == b)
			return &backends[i];
	return NULL;
}

const char *key_backend_name(enum key_backend b)
{
	const struct keystore_backend *kb = backend_of(b);

	return kb ? kb->name : "none";
}

enum key_backend key_backend_parse(const char *s)
{
	for (size_t i = 0; s && i < NBACKENDS; i++)
		if (str_ieq(s, backends[i].name))
			return backends[i].id;
	return KEY_NONE;
}

/* ---- the interface ------------------------------------------------------ */

struct keystore *keystore_new(const struct p11_settings *p11)
{
	static const struct p11_settings none;
	struct keystore *ks = calloc(1, sizeof(*ks));

	if (ks == NULL)
		return NULL;
	ks->p11 = p11_ctx_new(p11 ? p11 : &none);
	if (ks->p11 == NULL) {
		free(ks);
		return NULL;
	}
	return ks;
}

struct p11_ctx *keystore_p11(struct keystore *ks)
{
	return ks ? ks->p11 : NULL;
}

struct keystore *keystore_new_config(const struct config *cfg, int sessions,
                                     int retry)
{
	struct p11_settings set = {
		.module = cfg->pkcs11_module,
		.pin_tokens = cfg->pkcs11_token,
		.pin_files = cfg->pkcs11_pin_file,
		.npins = cfg->npkcs11_tokens,
		.sessions = sessions,
		.retry = retry,
	};

	return keystore_new(&set);
}

void keystore_free(struct keystore *ks)
{
	if (ks == NULL)
		return;
	p11_ctx_free(ks->p11);
	free(ks);
}

int keystore_exposed(const struct key_ref *ref, char *err, size_t errlen)
{
	const struct keystore_backend *kb = backend_of(ref->backend);

	if (kb && !kb->files)
		return 0;
	return path_exposed(ref->location, err, errlen) ||
	       path_exposed(ref->secret_file, err, errlen);
}

/* "key K does not match certificate SERIAL" */
static int mismatch(const char *location, X509 *cert, char *err, size_t errlen)
{
	struct cert_info ci;
	int have = cert_info_get(cert, &ci) == 0;

	seterr(err, errlen, "key %s does not match certificate %s", location,
	       have ? ci.serial : "(unreadable)");
	if (have)
		cert_info_clear(&ci);
	return -1;
}

/* keystore_load_key and keystore_load_decrypt_key: op is kb->load or
 * kb->load_decrypt. */
static int load_with(struct keystore *ks, const struct key_ref *ref, X509 *cert,
                     EVP_PKEY **out, struct p11_key **hsm, int decrypt,
                     char *err, size_t errlen)
{
	const struct keystore_backend *kb = backend_of(ref->backend);
	int rc;

	*out = NULL;
	if (hsm)
		*hsm = NULL;
	if (kb == NULL)
		return seterr(err, errlen, "unknown key backend");
	rc = (decrypt ? kb->load_decrypt : kb->load)(ks, ref, cert, out, hsm,
	                                             err, errlen);
	if (rc == 0 && kb->files && cert && !cert_matches_key(cert, *out)) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return mismatch(ref->location, cert, err, errlen);
	}
	return rc;
}

int keystore_load_key(struct keystore *ks, const struct key_ref *ref,
                      X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                      char *err, size_t errlen)
{
	return load_with(ks, ref, cert, out, hsm, 0, err, errlen);
}

int keystore_load_decrypt_key(struct keystore *ks, const struct key_ref *ref,
                              X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                              char *err, size_t errlen)
{
	if (cert == NULL) {
		*out = NULL;
		if (hsm)
			*hsm = NULL;
		return seterr(err, errlen,
		              "%s: a decryption key needs its certificate",
		              ref->location);
	}
	return load_with(ks, ref, cert, out, hsm, 1, err, errlen);
}
