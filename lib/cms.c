/* cms -- detached SignedData from a streamed digest (see cms.h). */
#include "cms.h"
#include "tsa.h"
#include "util.h"

#include <pthread.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

EVP_MD *cms_digest_fetch(const char *name)
{
	if (!str_ieq(name, "sha256") && !str_ieq(name, "sha384") &&
	    !str_ieq(name, "sha512"))
		return NULL;
	return EVP_MD_fetch(NULL, name, NULL);
}

const char *cms_micalg(const EVP_MD *md)
{
	switch (EVP_MD_get_type(md)) {
	case NID_sha384:
		return "sha-384";
	case NID_sha512:
		return "sha-512";
	default:
		return "sha-256";
	}
}

static int add_smimecap(CMS_SignerInfo *si)
{
	STACK_OF(X509_ALGOR) *caps = sk_X509_ALGOR_new_null();
	int ok;

	ok = caps != NULL &&
	     CMS_add_simple_smimecap(&caps, NID_aes_256_gcm, -1) &&
	     CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
	     CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1) &&
	     CMS_add_smimecap(si, caps);
	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return ok;
}

/* Time-stamp the signature of si with ts (see cms_sign_digest_ts). */
static int stamp_signer(CMS_SignerInfo *si, struct cms_timestamp *ts, char *err,
                        size_t errlen)
{
	unsigned char d[TSA_DIGEST_LEN], *tok = NULL;
	size_t len = 0;
	char e[400];
	int rc;

	ts->note[0] = '\0';
	ts->gen_time = 0;
	rc = tsa_signature_digest(si, d, e, sizeof(e));
	if (rc == 0)
		rc = tsa_request(ts->url, ts->timeout_ms, d, sizeof(d),
		                 ts->ca_file, &tok, &len, &ts->gen_time, e,
		                 sizeof(e));
	if (rc == 0)
		rc = tsa_attach(si, tok, len, e, sizeof(e));
	OPENSSL_free(tok);
	if (rc == 0)
		return 0;
	ts->gen_time = 0;
	if (ts->required)
		return seterr(err, errlen, "time-stamp: %s", e);
	snprintf(ts->note, sizeof(ts->note), "%s", e);
	return 0;
}

int cms_sign_digest(X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key,
                    const EVP_MD *md, const unsigned char *dgst, size_t dgstlen,
                    time_t signing_time, unsigned char **der, size_t *derlen,
                    char *err, size_t errlen)
{
	return cms_sign_digest_ts(cert, chain, key, md, dgst, dgstlen,
	                          signing_time, NULL, der, derlen, err, errlen);
}

int cms_sign_digest_ts(X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key,
                       const EVP_MD *md, const unsigned char *dgst,
                       size_t dgstlen, time_t signing_time,
                       struct cms_timestamp *ts, unsigned char **der,
                       size_t *derlen, char *err, size_t errlen)
{
	const unsigned int flags =
	        CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	ASN1_TIME *when = NULL;
	int len, rc = -1;
	unsigned char *p;

	*der = NULL;
	*derlen = 0;
	cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	if (cms == NULL) {
		seterr_ssl(err, errlen, "CMS_sign");
		return -1;
	}
	si = CMS_add1_signer(cms, cert, key, md, flags);
	if (si == NULL) {
		seterr_ssl(err, errlen, "cannot add signer");
		goto out;
	}
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(chain, i))) {
			seterr_ssl(err, errlen, "cannot add chain certificate");
			goto out;
		}
	if (!add_smimecap(si)) {
		seterr_ssl(err, errlen, "cannot add SMIMECapabilities");
		goto out;
	}
	when = ASN1_TIME_adj(NULL, signing_time ? signing_time : time(NULL), 0,
	                     0);
	if (when == NULL ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, when->type,
	                                 when, -1) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType,
	                                 V_ASN1_OBJECT,
	                                 OBJ_nid2obj(NID_pkcs7_data), -1) ||
	    !CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest,
	                                 V_ASN1_OCTET_STRING, dgst,
	                                 (int)dgstlen)) {
		seterr_ssl(err, errlen, "cannot add signed attributes");
		goto out;
	}
	if (!CMS_SignerInfo_sign(si)) {
		seterr_ssl(err, errlen, "signing failed");
		goto out;
	}
	if (ts && ts->url && stamp_signer(si, ts, err, errlen) != 0)
		goto out;
	len = i2d_CMS_ContentInfo(cms, NULL);
	if (len <= 0 || (*der = OPENSSL_malloc((size_t)len)) == NULL) {
		seterr_ssl(err, errlen, "cannot encode SignedData");
		goto out;
	}
	p = *der;
	i2d_CMS_ContentInfo(cms, &p);
	*derlen = (size_t)len;
	rc = 0;
out:
	ASN1_TIME_free(when);
	CMS_ContentInfo_free(cms);
	return rc;
}

/* ---- encryption ------------------------------------------------------ */

struct cms_enc {
	CMS_ContentInfo *cms;
	BIO *out; /* sink BIO calling the caller's writer */
	BIO *in;  /* the filter chain the content is written into */
	mime_write_fn fn;
	void *arg;
	int failed; /* the caller's writer failed */
	/* content is gathered into large writes: every write into the CMS
	 * chain becomes its own BER OCTET STRING segment and cipher call */
	size_t len;
	unsigned char buf[65536];
};

static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static int sink_write(BIO *b, const char *buf, int len)
{
	struct cms_enc *e = BIO_get_data(b);

	if (len <= 0)
		return 0;
	if (e->fn(e->arg, (const unsigned char *)buf, (size_t)len) != 0) {
		e->failed = 1;
		return -1;
	}
	return len;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sink_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void sink_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "smime-milter sink");

	if (m && BIO_meth_set_write(m, sink_write) &&
	    BIO_meth_set_ctrl(m, sink_ctrl) &&
	    BIO_meth_set_create(m, sink_create))
		sink_method = m;
	else
		BIO_meth_free(m);
}

int cms_cipher_is_aead(const char *cipher)
{
	return cipher && strstr(cipher, "-gcm") != NULL;
}

/* Key transport or agreement parameters of one recipient. */
static int recipient_params(CMS_RecipientInfo *ri, int oaep)
{
	EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

	if (pctx == NULL)
		return 0;
	if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS) {
		if (!oaep)
			return 1;
		return EVP_PKEY_CTX_set_rsa_padding(pctx,
		                                    RSA_PKCS1_OAEP_PADDING) >
		               0 &&
		       EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) > 0 &&
		       EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0;
	}
	if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE)
		return EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, EVP_sha256()) > 0;
	return 0;
}

struct cms_enc *cms_encrypt_new(STACK_OF(X509) *recips, const char *cipher,
                                int oaep, mime_write_fn out, void *outarg,
                                char *err, size_t errlen)
{
	struct cms_enc *e;
	EVP_CIPHER *c;

	pthread_once(&sink_once, sink_init);
	if (sink_method == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (recips == NULL || sk_X509_num(recips) == 0) {
		seterr(err, errlen, "no recipient certificates");
		return NULL;
	}
	c = EVP_CIPHER_fetch(NULL, cipher, NULL);
	if (c == NULL) {
		seterr_ssl(err, errlen, "cipher not available");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		EVP_CIPHER_free(c);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	e->fn = out;
	e->arg = outarg;
	e->cms = CMS_encrypt(NULL, NULL, c,
	                     CMS_BINARY | CMS_PARTIAL | CMS_STREAM);
	EVP_CIPHER_free(c);
	if (e->cms == NULL) {
		seterr_ssl(err, errlen, "cannot start the encryption");
		goto fail;
	}
	for (int i = 0; i < sk_X509_num(recips); i++) {
		X509 *x = sk_X509_value(recips, i);
		CMS_RecipientInfo *ri =
		        CMS_add1_recipient_cert(e->cms, x, CMS_KEY_PARAM);
		if (ri == NULL || !recipient_params(ri, oaep)) {
			char *subj = X509_NAME_oneline(X509_get_subject_name(x),
			                               NULL, 0);
			char what[300];
			snprintf(what, sizeof(what), "cannot add recipient %s",
			         subj ? subj : "?");
			OPENSSL_free(subj);
			seterr_ssl(err, errlen, what);
			goto fail;
		}
	}
	e->out = BIO_new(sink_method);
	if (e->out == NULL) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	BIO_set_data(e->out, e);
	e->in = BIO_new_CMS(e->out, e->cms);
	if (e->in == NULL) {
		seterr_ssl(err, errlen, "cannot start the encryption");
		goto fail;
	}
	return e;
fail:
	cms_encrypt_free(e);
	return NULL;
}

static int enc_flush(struct cms_enc *e)
{
	int n = (int)e->len;

	e->len = 0;
	return n == 0 || (!e->failed && BIO_write(e->in, e->buf, n) == n) ? 0
	                                                                  : -1;
}

int cms_encrypt_write(void *arg, const unsigned char *buf, size_t len)
{
	struct cms_enc *e = arg;

	while (len > 0) {
		buf_fill(e->buf, &e->len, sizeof(e->buf), &buf, &len);
		if (e->len == sizeof(e->buf) && enc_flush(e) != 0)
			return -1;
	}
	return 0;
}

int cms_encrypt_finish(struct cms_enc *e, char *err, size_t errlen)
{
	if (enc_flush(e) != 0 || BIO_flush(e->in) != 1 || e->failed) {
		if (e->failed)
			return seterr(err, errlen,
			              "cannot write the encrypted body");
		seterr_ssl(err, errlen, "encryption failed");
		return -1;
	}
	return 0;
}

void cms_encrypt_free(struct cms_enc *e)
{
	if (e == NULL)
		return;
	/* free the filters BIO_new_CMS pushed, up to our own sink */
	while (e->in && e->in != e->out) {
		BIO *next = BIO_pop(e->in);
		BIO_free(e->in);
		e->in = next;
	}
	BIO_free(e->out);
	CMS_ContentInfo_free(e->cms);
	free(e);
}
