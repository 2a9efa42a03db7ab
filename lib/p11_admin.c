/* p11_admin -- what only smimectl does on tokens: the certificate of a key,
 * key generation, listing.  A file of its own so that the daemon, which
 * links lib/libsmime.a, does not carry it (see p11.h, "for smimectl"). */

#include "p11_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

/* A prepared token for uri with one session taken from it (module read
 * lock and t->mu held on success: release with ctl_end). */
static int ctl_begin(struct p11_ctx *c, const struct p11_uri *u,
                     struct p11_token **tp, CK_SESSION_HANDLE *s, char *err,
                     size_t errlen)
{
	struct p11_token *t = p11_token_for(c, u, err, errlen);

	if (t == NULL)
		return -1;
	pthread_rwlock_rdlock(&t->mod->rw);
	pthread_mutex_lock(&t->mu);
	if (p11_token_prepare(t, err, errlen) != 0 ||
	    p11_session_get(t, s, err, errlen) != 0) {
		pthread_mutex_unlock(&t->mu);
		pthread_rwlock_unlock(&t->mod->rw);
		return -1;
	}
	*tp = t;
	return 0;
}

static void ctl_end(struct p11_token *t, CK_SESSION_HANDLE s)
{
	p11_session_put(t, s, t->gen);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&t->mod->rw);
}

int p11_ctx_key_cert(struct p11_ctx *c, const char *uri, X509 **cert, char *err,
                     size_t errlen)
{
	struct p11_uri u;
	struct p11_token *t;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n;
	unsigned char *id = NULL, *der = NULL;
	const unsigned char *p;
	CK_ULONG idlen = 0, dlen = 0;
	CK_RV rv;
	char why[512];
	int rc = -1;

	*cert = NULL;
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	if (!u.id && !u.object) {
		p11_uri_clear(&u);
		return seterr(err, errlen,
		              "%s names no key (give id= or "
		              "object=)",
		              uri);
	}
	if (ctl_begin(c, &u, &t, &s, err, errlen) != 0) {
		p11_uri_clear(&u);
		return -1;
	}
	rv = p11_find_objects(t->mod->f, s, CKO_PRIVATE_KEY, u.id, u.idlen,
	                      u.object, h, 2, &n);
	if (rv != CKR_OK || n != 1) {
		seterr(err, errlen, "%s: %s", uri,
		       rv != CKR_OK ? p11_ckr_name(rv)
		       : n == 0     ? "no such private key on the token"
		                    : "more than one private key matches");
		goto out;
	}
	if (p11_get_attr(t->mod->f, s, h[0], CKA_ID, &id, &idlen) != 0 ||
	    idlen == 0) {
		seterr(err, errlen,
		       "%s: the key has no CKA_ID to find its "
		       "certificate by (give --cert)",
		       uri);
		goto out;
	}
	rv = p11_find_objects(t->mod->f, s, CKO_CERTIFICATE, id, idlen, NULL, h,
	                      2, &n);
	if (rv != CKR_OK || n == 0) {
		seterr(err, errlen,
		       "%s: no certificate object with the key's "
		       "CKA_ID on token \"%s\" (give --cert)",
		       uri, p11_tname(t));
		goto out;
	}
	if (p11_get_attr(t->mod->f, s, h[0], CKA_VALUE, &der, &dlen) != 0) {
		seterr(err, errlen, "%s: certificate object has no value", uri);
		goto out;
	}
	p = der;
	*cert = d2i_X509(NULL, &p, (long)dlen);
	if (*cert == NULL) {
		ERR_clear_error();
		seterr(err, errlen, "%s: certificate object does not parse",
		       uri);
		goto out;
	}
	rc = 0;
out:
	ctl_end(t, s);
	free(id);
	free(der);
	p11_uri_clear(&u);
	return rc;
}

/* The public key of object h (RSA modulus/exponent or EC point). */
static EVP_PKEY *public_of(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                           CK_OBJECT_HANDLE h, int ec)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *a = NULL, *e = NULL;
	CK_ULONG alen = 0, elen = 0;
	BIGNUM *n = NULL, *ex = NULL;
	ASN1_OCTET_STRING *os = NULL;

	if (b == NULL)
		return NULL;
	if (!ec) {
		if (p11_get_attr(f, s, h, CKA_MODULUS, &a, &alen) != 0 ||
		    p11_get_attr(f, s, h, CKA_PUBLIC_EXPONENT, &e, &elen) != 0)
			goto out;
		n = BN_bin2bn(a, (int)alen, NULL);
		ex = BN_bin2bn(e, (int)elen, NULL);
		if (!n || !ex || !OSSL_PARAM_BLD_push_BN(b, "n", n) ||
		    !OSSL_PARAM_BLD_push_BN(b, "e", ex))
			goto out;
	} else {
		const unsigned char *p;
		if (p11_get_attr(f, s, h, CKA_EC_POINT, &a, &alen) != 0)
			goto out;
		p = a; /* DER OCTET STRING around the point, usually */
		os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)alen);
		if (!OSSL_PARAM_BLD_push_utf8_string(b, "group", "prime256v1",
		                                     0) ||
		    !OSSL_PARAM_BLD_push_octet_string(
		            b, "pub", os ? ASN1_STRING_get0_data(os) : a,
		            os ? (size_t)ASN1_STRING_length(os) : alen))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(b);
	pc = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL);
	if (params == NULL || pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
out:
	ERR_clear_error();
	ASN1_OCTET_STRING_free(os);
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(n);
	BN_free(ex);
	free(a);
	free(e);
	return pk;
}

int p11_keygen(struct p11_ctx *c, const char *uri, const char *label,
               const char *type, int decrypt, EVP_PKEY **pub, char **newuri,
               char *err, size_t errlen)
{
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
		                              0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const unsigned char exp65537[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = strcmp(type, "rsa3072") == 0 ? 3072 : 2048;
	int ec = strcmp(type, "ec-p256") == 0;
	CK_MECHANISM mech = { ec ? CKM_EC_KEY_PAIR_GEN
		                 : CKM_RSA_PKCS_KEY_PAIR_GEN,
		              NULL, 0 };
	unsigned char id[16];
	CK_ATTRIBUTE pubt[8], privt[12];
	CK_ULONG np = 0, nq = 0;
	CK_OBJECT_HANDLE hpub, hpriv;
	struct p11_uri u;
	struct p11_token *t;
	CK_SESSION_HANDLE s, rws;
	CK_RV rv;
	char why[512];
	int rc = -1;

	*pub = NULL;
	*newuri = NULL;
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	if (RAND_bytes(id, sizeof(id)) != 1) {
		p11_uri_clear(&u);
		return seterr(err, errlen, "no randomness for CKA_ID");
	}
	if (ctl_begin(c, &u, &t, &s, err, errlen) != 0) {
		p11_uri_clear(&u);
		return -1;
	}
	/* creating objects needs a read-write session (the login is shared) */
	rv = t->mod->f->C_OpenSession(t->slot,
	                              CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
	                              NULL, &rws);
	if (rv != CKR_OK) {
		seterr(err, errlen, "token \"%s\": read-write session: %s",
		       p11_tname(t), p11_ckr_name(rv));
		ctl_end(t, s);
		p11_uri_clear(&u);
		return -1;
	}
	p11_session_put(t, s, t->gen);
	s = rws;
#define A(arr, n, t, v, l) arr[n++] = (CK_ATTRIBUTE){ t, (void *)(v), l }
	A(pubt, np, CKA_TOKEN, &yes, sizeof(yes));
	A(pubt, np, CKA_VERIFY, &yes, sizeof(yes));
	A(pubt, np, CKA_ID, id, sizeof(id));
	A(pubt, np, CKA_LABEL, label, strlen(label));
	if (ec) {
		A(pubt, np, CKA_EC_PARAMS, p256, sizeof(p256));
	} else {
		A(pubt, np, CKA_MODULUS_BITS, &bits, sizeof(bits));
		A(pubt, np, CKA_PUBLIC_EXPONENT, exp65537, sizeof(exp65537));
	}
	A(privt, nq, CKA_TOKEN, &yes, sizeof(yes));
	A(privt, nq, CKA_PRIVATE, &yes, sizeof(yes));
	A(privt, nq, CKA_SENSITIVE, &yes, sizeof(yes));
	A(privt, nq, CKA_EXTRACTABLE, &no, sizeof(no));
	A(privt, nq, CKA_SIGN, &yes, sizeof(yes));
	/* decryption, when asked: C_Decrypt for RSA, C_DeriveKey (ECDH) for
	 * EC; never unwrapping into a key object others could use */
	A(privt, nq, CKA_DECRYPT, decrypt && !ec ? &yes : &no, sizeof(no));
	A(privt, nq, CKA_UNWRAP, &no, sizeof(no));
	A(privt, nq, CKA_DERIVE, decrypt && ec ? &yes : &no, sizeof(no));
	A(privt, nq, CKA_ID, id, sizeof(id));
	A(privt, nq, CKA_LABEL, label, strlen(label));
#undef A
	{
		CK_OBJECT_HANDLE h;
		CK_ULONG n = 0;
		if (p11_find_objects(t->mod->f, s, CKO_PRIVATE_KEY, NULL, 0,
		                     label, &h, 1, &n) == CKR_OK &&
		    n > 0) {
			seterr(err, errlen,
			       "token \"%s\" already holds a private "
			       "key labelled \"%s\" (choose another object= in "
			       "the URI)",
			       p11_tname(t), label);
			goto out;
		}
	}
	rv = t->mod->f->C_GenerateKeyPair(s, &mech, pubt, np, privt, nq, &hpub,
	                                  &hpriv);
	if (rv != CKR_OK) {
		seterr(err, errlen, "key generation on token \"%s\" failed: %s",
		       p11_tname(t), p11_ckr_name(rv));
		goto out;
	}
	*pub = public_of(t->mod->f, s, hpub, ec);
	if (*pub == NULL) {
		seterr(err, errlen,
		       "cannot read the new public key from token "
		       "\"%s\"",
		       p11_tname(t));
		t->mod->f->C_DestroyObject(s, hpriv);
		t->mod->f->C_DestroyObject(s, hpub);
		goto out;
	}
	*newuri = p11_uri_make(t->label ? t->label : "", id, sizeof(id), label);
	rc = *newuri ? 0 : seterr(err, errlen, "out of memory");
out:
	t->mod->f->C_CloseSession(rws);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&t->mod->rw);
	p11_uri_clear(&u);
	return rc;
}

static void print_id(FILE *f, const unsigned char *id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", id[i]);
	if (n == 0)
		fputs("-", f);
}

static void list_objects(struct p11_token *t, CK_SESSION_HANDLE s, FILE *out)
{
	static const struct {
		CK_OBJECT_CLASS cls;
		const char *name;
	} classes[] = { { CKO_PRIVATE_KEY, "private key" },
		        { CKO_PUBLIC_KEY, "public key " },
		        { CKO_CERTIFICATE, "certificate" } };
	CK_FUNCTION_LIST *f = t->mod->f;

	for (size_t ci = 0; ci < sizeof(classes) / sizeof(classes[0]); ci++) {
		CK_OBJECT_HANDLE h[256];
		CK_ULONG n = 0;

		if (p11_find_objects(f, s, classes[ci].cls, NULL, 0, NULL, h,
		                     256, &n) != CKR_OK)
			continue;
		for (CK_ULONG i = 0; i < n; i++) {
			unsigned char *id = NULL, *lab = NULL, *v = NULL;
			CK_ULONG idlen = 0, llen = 0, vlen = 0;
			char *label;

			p11_get_attr(f, s, h[i], CKA_ID, &id, &idlen);
			p11_get_attr(f, s, h[i], CKA_LABEL, &lab, &llen);
			label = lab ? strndup((char *)lab, llen) : NULL;
			fprintf(out, "  %s  id=", classes[ci].name);
			print_id(out, id, idlen);
			fprintf(out, "  label=\"%s\"", label ? label : "");
			if (classes[ci].cls == CKO_PRIVATE_KEY) {
				CK_KEY_TYPE kt = 0;
				char *uri;
				if (p11_get_attr(f, s, h[i], CKA_KEY_TYPE, &v,
				                 &vlen) == 0 &&
				    vlen == sizeof(kt))
					memcpy(&kt, v, sizeof(kt));
				free(v);
				v = NULL;
				if (kt == CKK_RSA &&
				    p11_get_attr(f, s, h[i], CKA_MODULUS, &v,
				                 &vlen) == 0)
					fprintf(out, "  rsa%lu",
					        (unsigned long)vlen * 8);
				else
					fprintf(out, "  %s",
					        kt == CKK_EC ? "ec" : "other");
				uri = p11_uri_make(t->label ? t->label : "", id,
				                   idlen, label);
				fprintf(out, "\n      %s", uri ? uri : "");
				free(uri);
			} else if (classes[ci].cls == CKO_CERTIFICATE &&
			           p11_get_attr(f, s, h[i], CKA_VALUE, &v,
			                        &vlen) == 0) {
				const unsigned char *p = v;
				X509 *x = d2i_X509(NULL, &p, (long)vlen);
				if (x) {
					char *sub = X509_NAME_oneline(
					        X509_get_subject_name(x), NULL,
					        0);
					fprintf(out, "\n      subject %s", sub);
					OPENSSL_free(sub);
					X509_free(x);
				}
				ERR_clear_error();
			}
			fputc('\n', out);
			free(v);
			free(id);
			free(lab);
			free(label);
		}
	}
}

int p11_list(struct p11_ctx *c, const char *module, void *fp, char *err,
             size_t errlen)
{
	FILE *out = fp;
	struct p11_module *m;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_RV rv;

	if (module == NULL)
		return seterr(err, errlen,
		              "no PKCS#11 module: set "
		              "pkcs11_module in the configuration");
	m = p11_module_get(module, err, errlen);
	if (m == NULL)
		return -1;
	if (!m->ok) {
		seterr(err, errlen, "C_Initialize of %s: %s", module,
		       p11_ckr_name(m->init_rv));
		p11_module_put(m);
		return -1;
	}
	rv = m->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		p11_module_put(m);
		return seterr(err, errlen, "C_GetSlotList: %s",
		              p11_ckr_name(rv));
	}
	fprintf(out, "module %s: %lu slot%s with a token\n", module,
	        (unsigned long)n, n == 1 ? "" : "s");
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		struct p11_uri u;
		struct p11_token *t;
		CK_SESSION_HANDLE s;
		char label[40], manu[40], model[20], serial[20], e[512];

		if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		p11_padded(label, ti.label, sizeof(ti.label));
		p11_padded(manu, ti.manufacturerID, sizeof(ti.manufacturerID));
		p11_padded(model, ti.model, sizeof(ti.model));
		p11_padded(serial, ti.serialNumber, sizeof(ti.serialNumber));
		fprintf(out, "slot %lu: token \"%s\" (%s, %s, serial %s)%s\n",
		        (unsigned long)slots[i], label, manu, model, serial,
		        (ti.flags & CKF_TOKEN_INITIALIZED)
		                ? ""
		                : " not initialized");
		if (!(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		memset(&u, 0, sizeof(u));
		u.slot_id = (long)slots[i];
		u.token = label;
		u.module_path = (char *)module;
		if (p11_pin_file_for(c, label) == NULL &&
		    (ti.flags & CKF_LOGIN_REQUIRED)) {
			fprintf(out,
			        "  (no pin_file for this token in "
			        "pkcs11_tokens: private keys not listed)\n");
			/* public objects only, in a session of our own */
			if (m->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION,
			                        NULL, NULL, &s) == CKR_OK) {
				struct p11_token tmp;
				memset(&tmp, 0, sizeof(tmp));
				tmp.mod = m;
				tmp.label = label;
				list_objects(&tmp, s, out);
				m->f->C_CloseSession(s);
			}
			continue;
		}
		if (ctl_begin(c, &u, &t, &s, e, sizeof(e)) != 0) {
			fprintf(out, "  cannot log in: %s\n", e);
			continue;
		}
		list_objects(t, s, out);
		ctl_end(t, s);
	}
	p11_module_put(m);
	return 0;
}
