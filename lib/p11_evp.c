/* p11_evp -- EVP_PKEYs whose private operations happen on a token. */

/* The RSA_METHOD / EC_KEY_METHOD hooks are the supported way in OpenSSL 3.0
 * to have a key whose private operation happens elsewhere (pkcs11-provider
 * is not in Debian 12).  They are marked deprecated; we use them knowingly. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "p11_int.h"

#include <pthread.h>
#include <stdio.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

static RSA_METHOD *rsa_meth;
static EC_KEY_METHOD *ec_meth;
static int rsa_idx = -1, ec_idx = -1;

static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
                        RSA *rsa, int padding)
{
	struct p11_key *k = RSA_get_ex_data(rsa, rsa_idx);
	CK_MECHANISM_TYPE mech;
	size_t outlen = (size_t)RSA_size(rsa);

	if (k == NULL)
		return -1;
	if (padding == RSA_PKCS1_PADDING)
		mech = CKM_RSA_PKCS;
	else if (padding == RSA_NO_PADDING)
		mech = CKM_RSA_X_509;
	else {
		snprintf(p11_last_err, sizeof(p11_last_err),
		         "RSA padding %d is not supported on PKCS#11 keys",
		         padding);
		return -1;
	}
	if (p11_key_sign(k, mech, from, (size_t)flen, to, &outlen) != 0)
		return -1;
	return (int)outlen;
}

/* Inbound (the next issue) decrypts here: C_Decrypt with CKM_RSA_PKCS or
 * CKM_RSA_PKCS_OAEP through p11_key.c, as rsa_priv_enc signs; ECDH key
 * agreement goes to an EC_KEY_METHOD compute_key hook (C_DeriveKey).  The
 * key store's backend table (keystore.c) gains the matching operation. */
static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
                        RSA *rsa, int padding)
{
	snprintf(p11_last_err, sizeof(p11_last_err),
	         "decryption with PKCS#11 keys is not supported");
	return -1;
}

static ECDSA_SIG *ec_sign_sig(const unsigned char *dgst, int dlen,
                              const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	struct p11_key *k = EC_KEY_get_ex_data(ec, ec_idx);
	unsigned char raw[160];
	size_t rawlen = sizeof(raw);

	if (k == NULL ||
	    p11_key_sign(k, CKM_ECDSA, dgst, (size_t)dlen, raw, &rawlen) != 0)
		return NULL;
	return p11_ecdsa_from_raw(raw, rawlen);
}

static int ec_sign(int type, const unsigned char *dgst, int dlen,
                   unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv,
                   const BIGNUM *r, EC_KEY *ec)
{
	ECDSA_SIG *s = ec_sign_sig(dgst, dlen, kinv, r, ec);
	unsigned char *p = sig;
	int len;

	if (s == NULL)
		return 0;
	len = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (len <= 0)
		return 0;
	*siglen = (unsigned int)len;
	return 1;
}

static void methods_init(void)
{
	int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

	rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	if (rsa_meth) {
		RSA_meth_set1_name(rsa_meth, "smime-milter PKCS#11");
		RSA_meth_set_priv_enc(rsa_meth, rsa_priv_enc);
		RSA_meth_set_priv_dec(rsa_meth, rsa_priv_dec);
	}
	ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (ec_meth) {
		EC_KEY_METHOD_get_sign((EC_KEY_METHOD *)EC_KEY_OpenSSL(), NULL,
		                       &sign_setup, NULL);
		EC_KEY_METHOD_set_sign(ec_meth, ec_sign, sign_setup,
		                       ec_sign_sig);
	}
	rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* An EVP_PKEY with pub's public part whose private operations go to k. */
EVP_PKEY *p11_evp_wrap(struct p11_key *k, EVP_PKEY *pub)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	EVP_PKEY *out = EVP_PKEY_new();
	int done = 0;

	pthread_once(&once, methods_init);
	if (out == NULL || rsa_meth == NULL || ec_meth == NULL) {
		/* nothing to wrap into */
	} else if (EVP_PKEY_is_a(pub, "RSA")) {
		/* RSAPublicKey_dup(NULL) is NULL */
		RSA *d = RSAPublicKey_dup(EVP_PKEY_get0_RSA(pub));
		done = d && RSA_set_method(d, rsa_meth) &&
		       RSA_set_ex_data(d, rsa_idx, k) &&
		       EVP_PKEY_assign_RSA(out, d);
		if (!done)
			RSA_free(d);
	} else if (EVP_PKEY_is_a(pub, "EC")) {
		const EC_KEY *e = EVP_PKEY_get0_EC_KEY(pub);
		EC_KEY *d = e ? EC_KEY_dup(e) : NULL;
		done = d && EC_KEY_set_method(d, ec_meth) &&
		       EC_KEY_set_ex_data(d, ec_idx, k) &&
		       EVP_PKEY_assign_EC_KEY(out, d);
		if (!done)
			EC_KEY_free(d);
	}
	if (done)
		return out;
	ERR_clear_error();
	EVP_PKEY_free(out);
	return NULL;
}
