/* p11_key -- keys on a token: find, check against a certificate, sign
 * (see p11.h, p11_int.h). */

#include "p11_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

static int key_sign_raw(struct p11_key *k, CK_SESSION_HANDLE s,
                        CK_MECHANISM_TYPE mech, const unsigned char *in,
                        size_t inlen, unsigned char *out, size_t *outlen,
                        CK_RV *rvp);

/* r||s of an ECDSA signature as DER ECDSA-Sig-Value, or NULL. */
ECDSA_SIG *p11_ecdsa_from_raw(const unsigned char *raw, size_t len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r, *s;

	if (sig == NULL || len == 0 || len % 2)
		goto fail;
	r = BN_bin2bn(raw, (int)(len / 2), NULL);
	s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	if (r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		goto fail;
	}
	return sig;
fail:
	ECDSA_SIG_free(sig);
	return NULL;
}

/* Does the object h on the token hold the private half of k->pub?  RSA:
 * the modulus is compared; EC: a test signature is verified. */
static int key_check_pub(struct p11_key *k, CK_SESSION_HANDLE s,
                         CK_OBJECT_HANDLE h, char *why, size_t whylen)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	unsigned char *mod = NULL;
	CK_ULONG mlen = 0;
	BIGNUM *n = NULL, *want = NULL;
	int ok = 0;

	if (k->type == CKK_RSA) {
		if (!EVP_PKEY_is_a(k->pub, "RSA")) {
			snprintf(why, whylen,
			         "is an RSA key, the certificate's "
			         "is not");
			return 0;
		}
		if (p11_get_attr(f, s, h, CKA_MODULUS, &mod, &mlen) == 0 &&
		    (n = BN_bin2bn(mod, (int)mlen, NULL)) != NULL &&
		    EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_N, &want))
			ok = BN_cmp(n, want) == 0;
		else
			ok = -1;
		free(mod);
		BN_free(n);
		BN_free(want);
	} else if (k->type == CKK_EC) {
		unsigned char dg[32], raw[160], *der = NULL;
		size_t rawlen = sizeof(raw);
		EVP_PKEY_CTX *pc = NULL;
		ECDSA_SIG *sig;
		CK_RV rv;
		int dlen;

		if (!EVP_PKEY_is_a(k->pub, "EC")) {
			snprintf(why, whylen,
			         "is an EC key, the certificate's "
			         "is not");
			return 0;
		}
		k->h = h;
		if (RAND_bytes(dg, sizeof(dg)) != 1 ||
		    key_sign_raw(k, s, CKM_ECDSA, dg, sizeof(dg), raw, &rawlen,
		                 &rv) != 0) {
			snprintf(why, whylen, "test signature failed");
			return 0;
		}
		sig = p11_ecdsa_from_raw(raw, rawlen);
		dlen = sig ? i2d_ECDSA_SIG(sig, &der) : -1;
		pc = EVP_PKEY_CTX_new(k->pub, NULL);
		ok = dlen > 0 && pc && EVP_PKEY_verify_init(pc) == 1 &&
		     EVP_PKEY_verify(pc, der, (size_t)dlen, dg, sizeof(dg)) ==
		             1;
		EVP_PKEY_CTX_free(pc);
		ECDSA_SIG_free(sig);
		OPENSSL_free(der);
		ERR_clear_error();
	} else {
		snprintf(why, whylen, "key type %lu is neither RSA nor EC",
		         (unsigned long)k->type);
		return 0;
	}
	if (ok == 0)
		snprintf(why, whylen, "is not the key of the certificate");
	else if (ok < 0)
		snprintf(why, whylen, "public part cannot be read");
	return ok == 1;
}

/*
 * Find k's object for the token's current generation.  Caller holds the
 * module read lock and t->mu, token prepared.  Returns 0; 1 when the key
 * is not (or no longer) there, or does not match (k->why says which);
 * -1 on a token error (err).
 */
static int key_resolve(struct p11_key *k, char *err, size_t errlen)
{
	struct p11_token *t = k->tok;
	CK_FUNCTION_LIST *f = t->mod->f;
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_SESSION_HANDLE s;
	unsigned char *val;
	CK_ULONG len;
	CK_RV rv;
	char why[256];
	int rc = 1;

	if (k->gen == t->gen && k->state == KEY_FOUND)
		return 0;
	if (p11_session_get(t, &s, err, errlen) != 0)
		return -1;
	rv = p11_find_objects(f, s, CKO_PRIVATE_KEY, k->id, k->idlen, k->object,
	                      h, 2, &n);
	if (rv != CKR_OK) {
		snprintf(why, sizeof(why), "C_FindObjects: %s",
		         p11_ckr_name(rv));
		if (p11_ckr_is_device(rv)) {
			p11_session_put(t, s, t->gen);
			p11_token_down(t, why);
			return seterr(err, errlen, "token \"%s\": %s",
			              p11_tname(t), why);
		}
		snprintf(k->why, sizeof(k->why), "%s", why);
		goto out;
	}
	if (n == 0) {
		/* the key, or the whole token?  SoftHSM2, for one, keeps the
		 * slot but fails C_GetTokenInfo when its store went away */
		CK_TOKEN_INFO ti;
		rv = f->C_GetTokenInfo(t->slot, &ti);
		if (rv != CKR_OK || !p11_token_matches(t, &ti)) {
			snprintf(why, sizeof(why), "C_GetTokenInfo: %s",
			         rv != CKR_OK ? p11_ckr_name(rv)
			                      : "another token in the slot");
			p11_session_put(t, s, t->gen);
			p11_token_down(t, why);
			return seterr(err, errlen, "token \"%s\": %s",
			              p11_tname(t), why);
		}
		snprintf(k->why, sizeof(k->why),
		         "PKCS#11 key %s not found on token \"%s\"", k->uri,
		         p11_tname(t));
		goto out;
	}
	if (n > 1) {
		snprintf(k->why, sizeof(k->why),
		         "PKCS#11 URI %s names more than one private key on "
		         "token \"%s\" (add id= or object=)",
		         k->uri, p11_tname(t));
		goto out;
	}
	if (p11_get_attr(f, s, h[0], CKA_KEY_TYPE, &val, &len) != 0 ||
	    len != sizeof(CK_KEY_TYPE)) {
		free(val);
		snprintf(k->why, sizeof(k->why), "PKCS#11 key %s: no key type",
		         k->uri);
		goto out;
	}
	memcpy(&k->type, val, sizeof(k->type));
	free(val);
	if (k->id == NULL &&
	    p11_get_attr(f, s, h[0], CKA_ID, &val, &len) == 0) {
		k->id = val;
		k->idlen = len;
	}
	if (!key_check_pub(k, s, h[0], why, sizeof(why))) {
		snprintf(k->why, sizeof(k->why), "PKCS#11 key %s %s", k->uri,
		         why);
		k->mismatch = 1;
		goto out;
	}
	k->mismatch = 0;
	/* what the object may do besides signing: RSA decrypts, EC derives */
	k->may_decrypt = -1;
	if (p11_get_attr(f, s, h[0],
	                 k->type == CKK_EC ? CKA_DERIVE : CKA_DECRYPT, &val,
	                 &len) == 0) {
		k->may_decrypt = len == sizeof(CK_BBOOL) && *val == CK_TRUE;
		free(val);
	}
	k->h = h[0];
	k->gen = t->gen;
	if (k->state == KEY_MISSING)
		p11_report(0, "PKCS#11 key %s found again on token \"%s\"",
		           k->uri, p11_tname(t));
	k->state = KEY_FOUND;
	rc = 0;
out:
	p11_session_put(t, s, t->gen);
	if (rc == 1) {
		if (k->state != KEY_MISSING)
			p11_report(1, "%s", k->why);
		k->state = KEY_MISSING;
		k->last_try = time(NULL);
		seterr(err, errlen, "%s", k->why);
	}
	return rc;
}

/* One C_SignInit + C_Sign on session s. */
static int key_sign_raw(struct p11_key *k, CK_SESSION_HANDLE s,
                        CK_MECHANISM_TYPE mech, const unsigned char *in,
                        size_t inlen, unsigned char *out, size_t *outlen,
                        CK_RV *rvp)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	CK_MECHANISM m = { mech, NULL, 0 };
	CK_ULONG olen = *outlen;
	CK_RV rv;

	rv = f->C_SignInit(s, &m, k->h);
	if (rv == CKR_OK)
		rv = f->C_Sign(s, (CK_BYTE *)in, (CK_ULONG)inlen, out, &olen);
	*rvp = rv;
	if (rv != CKR_OK)
		return -1;
	*outlen = olen;
	return 0;
}

int p11_key_ready(struct p11_key *k, char *err, size_t errlen)
{
	struct p11_token *t = k->tok;
	struct p11_module *m = t->mod;
	time_t now = time(NULL);
	unsigned gen;
	int rc;

	pthread_mutex_lock(&t->mu);
	if (t->state == TOK_LOGIN_FAILED) {
		seterr(err, errlen, "%s", t->why);
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	if (t->state == TOK_DOWN) {
		if (now - t->last_try < t->ctx->retry) {
			seterr(err, errlen,
			       "PKCS#11 token \"%s\" down since %ld s (%s); "
			       "next "
			       "attempt within %d s",
			       p11_tname(t), (long)(now - t->down_since),
			       t->why, t->ctx->retry);
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		t->last_try = now;
		pthread_mutex_unlock(&t->mu);
		/* this caller reconnects; the others fail fast meanwhile */
		pthread_mutex_lock(&m->mu);
		gen = m->gen;
		pthread_mutex_unlock(&m->mu);
		p11_module_reinit(m, gen);
		pthread_mutex_lock(&t->mu);
	} else if (k->state == KEY_MISSING) {
		if (now - k->last_try < t->ctx->retry) {
			seterr(err, errlen, "%s", k->why);
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		k->last_try = now;
	} else if (t->state == TOK_OK && k->state == KEY_FOUND &&
	           t->gen == m->gen && k->gen == t->gen) {
		pthread_mutex_unlock(&t->mu);
		return 1;
	}
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_rdlock(&m->rw);
	pthread_mutex_lock(&t->mu);
	rc = p11_token_prepare(t, err, errlen);
	if (rc == 0)
		rc = key_resolve(k, err, errlen);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&m->rw);
	return rc == 0;
}

/* One C_SignInit + C_Sign (p11_key_op callback). */
static CK_RV sign_op(struct p11_key *k, CK_SESSION_HANDLE s, struct p11_io *io)
{
	CK_RV rv;

	key_sign_raw(k, s, io->m->mechanism, io->in, io->inlen, io->out,
	             io->outlen, &rv);
	return rv;
}

int p11_key_op(struct p11_key *k, const char *what, const char *call,
               p11_op_fn fn, struct p11_io *io)
{
	struct p11_token *t = k->tok;
	struct p11_module *m = t->mod;
	CK_SESSION_HANDLE s;
	CK_RV rv = CKR_OK;
	unsigned gen;
	char why[256];

	p11_last_err[0] = '\0';
	p11_last_rv = CKR_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!p11_key_ready(k, p11_last_err, sizeof(p11_last_err)))
			return -1;
		pthread_rwlock_rdlock(&m->rw);
		pthread_mutex_lock(&t->mu);
		if (p11_token_prepare(t, p11_last_err, sizeof(p11_last_err)) !=
		            0 ||
		    key_resolve(k, p11_last_err, sizeof(p11_last_err)) != 0 ||
		    p11_session_get(t, &s, p11_last_err,
		                    sizeof(p11_last_err)) != 0) {
			pthread_mutex_unlock(&t->mu);
			pthread_rwlock_unlock(&m->rw);
			return -1;
		}
		gen = t->gen;
		pthread_mutex_unlock(&t->mu);

		rv = fn(k, s, io);

		pthread_mutex_lock(&t->mu);
		if (rv == CKR_OK) {
			p11_session_put(t, s, gen);
		} else if (rv == CKR_KEY_HANDLE_INVALID ||
		           rv == CKR_OBJECT_HANDLE_INVALID) {
			p11_session_put(t, s, gen);
			k->gen = 0; /* look for it again */
		} else if (p11_ckr_is_device(rv)) {
			if (gen == t->gen && t->nopen > 0)
				t->nopen--; /* not back into the pool */
			snprintf(why, sizeof(why), "%s: %s", call,
			         p11_ckr_name(rv));
			if (gen == t->gen)
				p11_token_down(t, why);
			pthread_cond_signal(&t->cv);
		} else {
			p11_session_put(t, s, gen);
		}
		pthread_mutex_unlock(&t->mu);
		pthread_rwlock_unlock(&m->rw);
		if (rv == CKR_OK)
			return 0;
		p11_last_rv = rv;
		snprintf(p11_last_err, sizeof(p11_last_err),
		         "PKCS#11 %s with %s on token \"%s\": %s", what, k->uri,
		         p11_tname(t), p11_ckr_name(rv));
		if (k->gen != 0)
			break; /* only a stale handle is worth a second try */
	}
	return -1;
}

/* Sign on the token with up to one retry (a stale object handle after a
 * reconnect by another context).  Fills p11_last_err on failure. */
int p11_key_sign(struct p11_key *k, CK_MECHANISM_TYPE mech,
                 const unsigned char *in, size_t inlen, unsigned char *out,
                 size_t *outlen)
{
	CK_MECHANISM m = { mech, NULL, 0 };
	struct p11_io io = { &m, in, inlen, out, outlen };

	return p11_key_op(k, "signature", "C_Sign", sign_op, &io);
}

/* ---- contexts: keys by URI ---------------------------------------------- */

static struct p11_key *key_new(struct p11_ctx *c, const char *uri,
                               struct p11_uri *u, EVP_PKEY *pub, char *err,
                               size_t errlen)
{
	struct p11_token *t;
	struct p11_key *k;

	if (u->type != P11_ANY && u->type != P11_PRIVATE)
		return seterr(err, errlen, "%s: type must be private", uri),
		       NULL;
	if (u->id == NULL && u->object == NULL)
		return seterr(err, errlen,
		              "%s names no key (give id= or "
		              "object=)",
		              uri),
		       NULL;
	t = p11_token_for(c, u, err, errlen);
	if (t == NULL)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (k == NULL || (k->uri = strdup(uri)) == NULL) {
		free(k);
		return seterr(err, errlen, "out of memory"), NULL;
	}
	k->tok = t;
	k->may_decrypt = -1;
	k->id = u->id;
	k->idlen = u->idlen;
	k->object = u->object;
	u->id = NULL;
	u->object = NULL;
	k->pub = pub;
	EVP_PKEY_up_ref(pub);
	k->next = c->keys;
	c->keys = k;
	return k;
}

static int ctx_key(struct p11_ctx *c, const char *uri, EVP_PKEY *pub,
                   EVP_PKEY **out, struct p11_key **keyp, char *err,
                   size_t errlen)
{
	struct p11_uri u;
	struct p11_key *k;
	char why[512];

	*out = NULL;
	if (keyp)
		*keyp = NULL;
	if (pub == NULL)
		return seterr(err, errlen, "no public key to check %s against",
		              uri);
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	k = key_new(c, uri, &u, pub, err, errlen);
	p11_uri_clear(&u);
	if (k == NULL)
		return -1;
	*out = p11_evp_wrap(k, pub);
	if (*out == NULL)
		return seterr(err, errlen, "%s: neither an RSA nor an EC key",
		              uri);
	if (keyp)
		*keyp = k;
	if (p11_key_ready(k, err, errlen))
		return 0;
	/* a key of another certificate is a mistake, not an outage */
	if (k->state == KEY_MISSING && k->mismatch) {
		EVP_PKEY_free(*out);
		*out = NULL;
		if (keyp)
			*keyp = NULL;
		return -1;
	}
	return 1;
}

int p11_ctx_key(struct p11_ctx *c, const char *uri, X509 *cert, EVP_PKEY **out,
                struct p11_key **keyp, char *err, size_t errlen)
{
	return ctx_key(c, uri, cert ? X509_get0_pubkey(cert) : NULL, out, keyp,
	               err, errlen);
}

int p11_ctx_key_pub(struct p11_ctx *c, const char *uri, EVP_PKEY *pub,
                    EVP_PKEY **out, char *err, size_t errlen)
{
	return ctx_key(c, uri, pub, out, NULL, err, errlen);
}
