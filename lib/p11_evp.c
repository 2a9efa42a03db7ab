/* p11_evp -- EVP_PKEYs whose private operations happen on a token: RSA
 * signatures and decryption (PKCS#1 v1.5, OAEP), ECDSA and ECDH.  OpenSSL
 * code that takes an EVP_PKEY (CMS_sign, CMS_decrypt_set1_pkey_and_peer,
 * CMS_RecipientInfo_decrypt, the kari path) uses them as file keys. */

/* The RSA_METHOD / EC_KEY_METHOD hooks are the supported way in OpenSSL 3.0
 * to have a key whose private operation happens elsewhere (pkcs11-provider
 * is not in Debian 12).  They are marked deprecated; we use them knowingly. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "p11_int.h"

#include <pthread.h>
#include <stdio.h>

#include <string.h>

#include <openssl/ec.h>
#include <openssl/engine.h>
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

/* CK_RSA_PKCS_OAEP_PARAMS for md and mgf1 (NULL: SHA-1, as RFC 3560's
 * defaults), or -1 for a digest PKCS#11 has no name for. */
static int oaep_params(const EVP_MD *md, const EVP_MD *mgf1,
                       const unsigned char *label, size_t llen,
                       CK_RSA_PKCS_OAEP_PARAMS *p)
{
	static const struct {
		int nid;
		CK_MECHANISM_TYPE hash;
		CK_RSA_PKCS_MGF_TYPE mgf;
	} map[] = {
		{ NID_sha1, CKM_SHA_1, CKG_MGF1_SHA1 },
		{ NID_sha224, CKM_SHA224, CKG_MGF1_SHA224 },
		{ NID_sha256, CKM_SHA256, CKG_MGF1_SHA256 },
		{ NID_sha384, CKM_SHA384, CKG_MGF1_SHA384 },
		{ NID_sha512, CKM_SHA512, CKG_MGF1_SHA512 },
	};
	int h = md ? EVP_MD_get_type(md) : NID_sha1;
	int g = mgf1 ? EVP_MD_get_type(mgf1) : h;
	int found = 0;

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].nid == h) {
			p->hashAlg = map[i].hash;
			found |= 1;
		}
		if (map[i].nid == g) {
			p->mgf = map[i].mgf;
			found |= 2;
		}
	}
	p->source = CKZ_DATA_SPECIFIED;
	p->pSourceData = (void *)label;
	p->ulSourceDataLen = (CK_ULONG)llen;
	return found == 3 ? 0 : -1;
}

/*
 * RSA-OAEP on the token: C_Decrypt with CKM_RSA_PKCS_OAEP and the hash,
 * MGF1 hash and label asked for.  A token that refuses those parameters
 * (SoftHSM2 2.6 takes SHA-1 only) gets CKM_RSA_X_509 -- the raw RSA
 * operation, still on the token -- and OpenSSL checks the OAEP padding.
 * Returns the length, or -1 with p11_last_err.
 */
static int oaep_decrypt(struct p11_key *k, const EVP_MD *md, const EVP_MD *mgf1,
                        const unsigned char *label, size_t llen,
                        const unsigned char *in, size_t inlen,
                        unsigned char *out, size_t room, int rsasize)
{
	CK_RSA_PKCS_OAEP_PARAMS p;
	CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &p, sizeof(p) };
	CK_MECHANISM raw = { CKM_RSA_X_509, NULL, 0 };
	unsigned char em[1024];
	size_t outlen = room, emlen = sizeof(em);
	int n;

	p11_last_rv = CKR_OK;
	if (oaep_params(md, mgf1, label, llen, &p) != 0)
		p11_last_rv = CKR_MECHANISM_PARAM_INVALID;
	else if (p11_key_decrypt(k, &m, in, inlen, out, &outlen) == 0)
		return (int)outlen;
	if (p11_last_rv != CKR_MECHANISM_INVALID &&
	    p11_last_rv != CKR_MECHANISM_PARAM_INVALID &&
	    p11_last_rv != CKR_ARGUMENTS_BAD)
		return -1;
	if (rsasize <= 0 || (size_t)rsasize > sizeof(em) ||
	    p11_key_decrypt(k, &raw, in, inlen, em, &emlen) != 0)
		return -1;
	/* a raw result shorter than the modulus lost its leading zeros */
	if (emlen < (size_t)rsasize) {
		memmove(em + (size_t)rsasize - emlen, em, emlen);
		memset(em, 0, (size_t)rsasize - emlen);
	}
	n = RSA_padding_check_PKCS1_OAEP_mgf1(out, (int)room, em, rsasize,
	                                      rsasize, label, (int)llen,
	                                      md ? md : EVP_sha1(),
	                                      mgf1 ? mgf1
	                                           : (md ? md : EVP_sha1()));
	OPENSSL_cleanse(em, sizeof(em));
	if (n < 0) {
		ERR_clear_error();
		snprintf(p11_last_err, sizeof(p11_last_err),
		         "PKCS#11 decryption with %s: OAEP padding check "
		         "failed",
		         k->uri);
	}
	return n;
}

/* RSA_private_decrypt on the token: PKCS#1 v1.5 and OAEP with SHA-1 (the
 * padding OpenSSL's RSA API knows); other OAEP digests come through
 * pm_decrypt below. */
static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
                        RSA *rsa, int padding)
{
	struct p11_key *k = RSA_get_ex_data(rsa, rsa_idx);
	CK_MECHANISM m = { CKM_RSA_PKCS, NULL, 0 };
	size_t outlen = (size_t)RSA_size(rsa);

	if (k == NULL)
		return -1;
	if (padding == RSA_PKCS1_OAEP_PADDING)
		return oaep_decrypt(k, NULL, NULL, NULL, 0, from, (size_t)flen,
		                    to, outlen, RSA_size(rsa));
	if (padding == RSA_NO_PADDING)
		m.mechanism = CKM_RSA_X_509;
	else if (padding != RSA_PKCS1_PADDING) {
		snprintf(p11_last_err, sizeof(p11_last_err),
		         "RSA padding %d is not supported on PKCS#11 keys",
		         padding);
		return -1;
	}
	if (p11_key_decrypt(k, &m, from, (size_t)flen, to, &outlen) != 0)
		return -1;
	return (int)outlen;
}

/* The EVP_PKEY_METHOD of our RSA keys (through a private ENGINE set on
 * each wrapper only): OpenSSL's own, except that OAEP decryption goes to
 * the token with the context's digests and label instead of a raw RSA
 * operation.  Everything else is OpenSSL's RSA code, as before. */
static EVP_PKEY_METHOD *rsa_pmeth;
static ENGINE *engine;
static int (*std_decrypt)(EVP_PKEY_CTX *, unsigned char *, size_t *,
                          const unsigned char *, size_t);

static int pm_ctrl(EVP_PKEY_CTX *ctx, int op, int cmd, void *p)
{
	return EVP_PKEY_CTX_ctrl(ctx, EVP_PKEY_RSA, op, cmd, 0, p);
}

static int pm_decrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                      const unsigned char *in, size_t inlen)
{
	const RSA *rsa = EVP_PKEY_get0_RSA(EVP_PKEY_CTX_get0_pkey(ctx));
	struct p11_key *k = rsa ? RSA_get_ex_data(rsa, rsa_idx) : NULL;
	const EVP_MD *md = NULL, *mgf1 = NULL;
	unsigned char *label = NULL;
	int pad = 0, llen, n;

	if (k == NULL ||
	    pm_ctrl(ctx, -1, EVP_PKEY_CTRL_GET_RSA_PADDING, &pad) <= 0 ||
	    pad != RSA_PKCS1_OAEP_PADDING)
		return std_decrypt(ctx, out, outlen, in, inlen);
	if (pm_ctrl(ctx, EVP_PKEY_OP_TYPE_CRYPT, EVP_PKEY_CTRL_GET_RSA_OAEP_MD,
	            &md) <= 0 ||
	    pm_ctrl(ctx, EVP_PKEY_OP_TYPE_CRYPT, EVP_PKEY_CTRL_GET_RSA_MGF1_MD,
	            &mgf1) <= 0)
		return -1;
	llen = pm_ctrl(ctx, EVP_PKEY_OP_TYPE_CRYPT,
	               EVP_PKEY_CTRL_GET_RSA_OAEP_LABEL, &label);
	n = oaep_decrypt(k, md, mgf1, label, llen > 0 ? (size_t)llen : 0, in,
	                 inlen, out, *outlen, RSA_size(rsa));
	if (n < 0)
		return -1;
	*outlen = (size_t)n;
	return 1;
}

static int engine_pmeths(ENGINE *e, EVP_PKEY_METHOD **pmeth, const int **nids,
                         int nid)
{
	static const int ours[] = { EVP_PKEY_RSA };

	if (pmeth == NULL) {
		*nids = ours;
		return 1;
	}
	*pmeth = nid == EVP_PKEY_RSA ? rsa_pmeth : NULL;
	return *pmeth != NULL;
}

static void pmeth_init(void)
{
	const EVP_PKEY_METHOD *std = EVP_PKEY_meth_find(EVP_PKEY_RSA);
	int (*dinit)(EVP_PKEY_CTX *) = NULL;
	int flags = 0;

	if (std == NULL)
		return;
	EVP_PKEY_meth_get0_info(NULL, &flags, std);
	rsa_pmeth = EVP_PKEY_meth_new(EVP_PKEY_RSA, flags);
	engine = ENGINE_new();
	if (rsa_pmeth == NULL || engine == NULL ||
	    !ENGINE_set_id(engine, "smime-milter-pkcs11") ||
	    !ENGINE_set_name(engine, "smime-milter PKCS#11 keys") ||
	    !ENGINE_set_pkey_meths(engine, engine_pmeths)) {
		ENGINE_free(engine);
		EVP_PKEY_meth_free(rsa_pmeth);
		engine = NULL;
		rsa_pmeth = NULL;
		return;
	}
	EVP_PKEY_meth_copy(rsa_pmeth, std);
	EVP_PKEY_meth_get_decrypt(std, &dinit, &std_decrypt);
	EVP_PKEY_meth_set_decrypt(rsa_pmeth, dinit, pm_decrypt);
}

/* ECDH on the token: the shared x coordinate of our key and pub. */
static int ec_compute_key(unsigned char **psec, size_t *pseclen,
                          const EC_POINT *pub, const EC_KEY *ec)
{
	struct p11_key *k = EC_KEY_get_ex_data(ec, ec_idx);
	const EC_GROUP *g = EC_KEY_get0_group(ec);
	unsigned char pt[200], *sec;
	size_t plen, slen;

	if (k == NULL || g == NULL)
		return 0;
	plen = EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pt,
	                          sizeof(pt), NULL);
	slen = (size_t)(EC_GROUP_get_degree(g) + 7) / 8;
	sec = plen ? OPENSSL_malloc(slen) : NULL;
	if (sec == NULL)
		return 0;
	if (p11_key_derive(k, pt, plen, sec, &slen) != 0) {
		OPENSSL_free(sec);
		return 0;
	}
	*psec = sec;
	*pseclen = slen;
	return 1;
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
		EC_KEY_METHOD_set_compute_key(ec_meth, ec_compute_key);
	}
	pmeth_init();
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
		/* without it, OAEP still works as a raw RSA operation */
		if (done && engine)
			EVP_PKEY_set1_engine(out, engine);
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
