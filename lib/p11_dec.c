/* p11_dec -- decryption with keys on a token: C_Decrypt for RSA (PKCS#1
 * v1.5, OAEP), C_DeriveKey for ECDH (see p11_int.h).  The private key
 * never leaves the token; an ECDH secret is derived into a session object
 * that is extractable only as that secret, read and destroyed at once. */

#include "p11_int.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

int p11_key_may_decrypt(struct p11_key *k)
{
	int ec;

	/* known once the object was found */
	if (k->may_decrypt < 0 &&
	    !p11_key_ready(k, p11_last_err, sizeof(p11_last_err)))
		return 0;
	ec = k->type == CKK_EC;
	if (k->may_decrypt == 1)
		return 1;
	snprintf(p11_last_err, sizeof(p11_last_err),
	         "PKCS#11 key %s on token \"%s\" may not %s (%s is %s; a key "
	         "made by smimectl keygen --usage sign,decrypt may)",
	         k->uri, p11_tname(k->tok), ec ? "derive (ECDH)" : "decrypt",
	         ec ? "CKA_DERIVE" : "CKA_DECRYPT",
	         k->may_decrypt == 0 ? "false" : "unreadable");
	return 0;
}

/* One C_DecryptInit + C_Decrypt (p11_key_op callback). */
static CK_RV dec_op(struct p11_key *k, CK_SESSION_HANDLE s, struct p11_io *io)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	CK_ULONG olen = *io->outlen;
	CK_RV rv;

	rv = f->C_DecryptInit(s, io->m, k->h);
	if (rv == CKR_OK)
		rv = f->C_Decrypt(s, (CK_BYTE *)io->in, (CK_ULONG)io->inlen,
		                  io->out, &olen);
	if (rv == CKR_OK)
		*io->outlen = olen;
	return rv;
}

int p11_key_decrypt(struct p11_key *k, CK_MECHANISM *m, const unsigned char *in,
                    size_t inlen, unsigned char *out, size_t *outlen)
{
	struct p11_io io = { m, in, inlen, out, outlen };

	p11_last_err[0] = '\0';
	if (!p11_key_may_decrypt(k))
		return -1;
	return p11_key_op(k, "decryption", "C_Decrypt", dec_op, &io);
}

/* C_DeriveKey into a session secret of *outlen octets, C_GetAttributeValue
 * of its CKA_VALUE, C_DestroyObject (p11_key_op callback). */
static CK_RV derive_op(struct p11_key *k, CK_SESSION_HANDLE s,
                       struct p11_io *io)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG vlen = (CK_ULONG)*io->outlen;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_VALUE_LEN, &vlen, sizeof(vlen) },
	};
	CK_ATTRIBUTE val = { CKA_VALUE, io->out, vlen };
	CK_OBJECT_HANDLE h;
	CK_RV rv;

	rv = f->C_DeriveKey(s, io->m, k->h, t, sizeof(t) / sizeof(t[0]), &h);
	if (rv != CKR_OK)
		return rv;
	rv = f->C_GetAttributeValue(s, h, &val, 1);
	f->C_DestroyObject(s, h);
	if (rv == CKR_OK && val.ulValueLen != vlen)
		rv = CKR_KEY_SIZE_RANGE;
	if (rv != CKR_OK)
		OPENSSL_cleanse(io->out, vlen);
	return rv;
}

int p11_key_derive(struct p11_key *k, const unsigned char *point, size_t plen,
                   unsigned char *out, size_t *outlen)
{
	/* the peer's point as is: no KDF, no shared data (CMS does its own) */
	CK_ECDH1_DERIVE_PARAMS p = { CKD_NULL, 0, NULL, (CK_ULONG)plen,
		                     (CK_BYTE *)point };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	struct p11_io io = { &m, NULL, 0, out, outlen };

	p11_last_err[0] = '\0';
	if (!p11_key_may_decrypt(k))
		return -1;
	return p11_key_op(k, "key derivation", "C_DeriveKey", derive_op, &io);
}

int p11_ctx_key_decrypt(struct p11_ctx *c, const char *uri, X509 *cert,
                        EVP_PKEY **out, struct p11_key **keyp, char *err,
                        size_t errlen)
{
	struct p11_key *k = NULL;
	int rc = p11_ctx_key(c, uri, cert, out, &k, err, errlen);

	if (rc == 0 && !p11_key_may_decrypt(k)) {
		seterr(err, errlen, "%s", p11_last_err);
		EVP_PKEY_free(*out);
		*out = NULL;
		k = NULL;
		rc = -1;
	}
	if (keyp)
		*keyp = k;
	return rc;
}
