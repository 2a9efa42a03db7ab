/*
 * cms_dec -- streaming decryption of CMS (Auth)EnvelopedData (cms_dec.h):
 * the OpenSSL CMS side (RecipientInfos, keys, the content cipher) and the
 * feeding; the walk over the DER is in cms_dec_der.c.
 */
#include "cms_dec_int.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>

int cd_fail(struct cms_dec *d, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->emsg, sizeof(d->emsg), fmt, ap);
	va_end(ap);
	d->state = CD_FAILED;
	ERR_clear_error();
	return seterr(err, errlen, "%s", d->emsg);
}

/* Like cd_fail, with OpenSSL's error queue appended. */
static int cd_fail_ssl(struct cms_dec *d, char *err, size_t errlen,
                       const char *what)
{
	seterr_ssl(d->emsg, sizeof(d->emsg), what);
	d->state = CD_FAILED;
	return seterr(err, errlen, "%s", d->emsg);
}

struct cms_dec *cms_dec_new(size_t spool_mem, const char *spool_dir, char *err,
                            size_t errlen)
{
	struct cms_dec *d = calloc(1, sizeof(*d));

	if (d == NULL || (d->in = malloc(CMS_DEC_IN_CHUNK)) == NULL ||
	    (d->spool_dir = xstrdup(spool_dir ? spool_dir : "/tmp")) == NULL) {
		cms_dec_free(d);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	d->incap = CMS_DEC_IN_CHUNK;
	d->spool_mem = spool_mem;
	d->state = CD_WALK;
	d->matched = -1;
	der_walk_init(&d->w);
	return d;
}

void cd_set_type(struct cms_dec *d)
{
	static const struct {
		int nid;
		enum cms_dec_type type;
	} types[] = {
		{ NID_pkcs7_enveloped, CMS_DEC_TYPE_ENVELOPED },
		{ NID_id_smime_ct_authEnvelopedData,
		  CMS_DEC_TYPE_AUTH_ENVELOPED },
		{ NID_pkcs7_signed, CMS_DEC_TYPE_SIGNED },
		{ NID_id_smime_ct_compressedData, CMS_DEC_TYPE_COMPRESSED },
		{ NID_pkcs7_data, CMS_DEC_TYPE_DATA },
	};
	size_t i;
	unsigned char tlv[2 + sizeof(d->oid)];
	const unsigned char *p = tlv;
	ASN1_OBJECT *o;
	int nid;

	tlv[0] = V_ASN1_OBJECT;
	tlv[1] = (unsigned char)d->oidlen;
	memcpy(tlv + 2, d->oid, d->oidlen);
	o = d2i_ASN1_OBJECT(NULL, &p, (long)(2 + d->oidlen));
	nid = o ? OBJ_obj2nid(o) : NID_undef;
	ASN1_OBJECT_free(o);
	ERR_clear_error();
	d->type = o ? CMS_DEC_TYPE_OTHER : CMS_DEC_TYPE_NOT_CMS;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].nid == nid)
			d->type = types[i].type;
}

/* The algorithm's short name (long: 1), "unknown" when OpenSSL has none. */
static const char *alg_name(const X509_ALGOR *alg, int ln)
{
	const ASN1_OBJECT *o = NULL;
	const char *n = NULL;
	int nid;

	if (alg != NULL)
		X509_ALGOR_get0(&o, NULL, NULL, alg);
	nid = o ? OBJ_obj2nid(o) : NID_undef;
	if (nid != NID_undef)
		n = ln ? OBJ_nid2ln(nid) : OBJ_nid2sn(nid);
	return n ? n : "unknown";
}

static int recip_add(struct cms_dec *d, enum cms_dec_ri kind, int ri_index,
                     CMS_RecipientInfo *ri, CMS_RecipientEncryptedKey *rek,
                     const char *keyalg)
{
	struct cd_recip *n = realloc(d->recips, (d->nrecips + 1) * sizeof(*n));
	ASN1_OCTET_STRING *ski = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;

	if (n == NULL)
		return -1;
	d->recips = n;
	n += d->nrecips++;
	memset(n, 0, sizeof(*n));
	if (kind == CMS_DEC_RI_KTRI)
		CMS_RecipientInfo_ktri_get0_signer_id(ri, &ski, &issuer,
		                                      &serial);
	else if (kind == CMS_DEC_RI_KARI)
		CMS_RecipientEncryptedKey_get0_id(rek, &ski, NULL, NULL,
		                                  &issuer, &serial);
	n->pub.kind = kind;
	n->pub.ri_index = ri_index;
	n->pub.issuer = issuer;
	n->pub.serial = serial;
	n->pub.ski = ski;
	n->pub.keyalg = keyalg;
	n->ri = ri;
	n->rek = rek;
	return 0;
}

static int recips_list(struct cms_dec *d)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(d->cms);
	int i, j;

	for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		X509_ALGOR *alg = NULL;
		STACK_OF(CMS_RecipientEncryptedKey) *reks;

		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &alg);
			if (recip_add(d, CMS_DEC_RI_KTRI, i, ri, NULL,
			              alg_name(alg, 1)) < 0)
				return -1;
			break;
		case CMS_RECIPINFO_AGREE:
			CMS_RecipientInfo_kari_get0_alg(ri, &alg, NULL);
			reks = CMS_RecipientInfo_kari_get0_reks(ri);
			for (j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks);
			     j++)
				if (recip_add(d, CMS_DEC_RI_KARI, i, ri,
				              sk_CMS_RecipientEncryptedKey_value(
				                      reks, j),
				              alg_name(alg, 1)) < 0)
					return -1;
			break;
		default:
			if (recip_add(d, CMS_DEC_RI_OTHER, i, ri, NULL,
			              "unknown") < 0)
				return -1;
			break;
		}
	}
	return 0;
}

/* The name of the content-encryption algorithm: cap[2] holds the content
 * type's TLV and then the AlgorithmIdentifier's. */
static void cipher_name(struct cms_dec *d)
{
	const unsigned char *p = d->cap[2];
	long len = (long)d->caplen[2];
	ASN1_OBJECT *o = d2i_ASN1_OBJECT(NULL, &p, len);
	X509_ALGOR *alg = NULL;

	if (o != NULL)
		alg = d2i_X509_ALGOR(NULL, &p, len - (p - d->cap[2]));
	/* the long name in capitals: AES-256-CBC, AES-256-GCM, DES-EDE3-CBC
	 * (the short name of GCM is "id-aes256-GCM") */
	snprintf(d->cipher, sizeof(d->cipher), "%s", alg_name(alg, 1));
	for (char *c = d->cipher; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	ASN1_OBJECT_free(o);
	X509_ALGOR_free(alg);
	ERR_clear_error();
}

int cd_header_done(struct cms_dec *d, char *err, size_t errlen)
{
	int auth = d->type == CMS_DEC_TYPE_AUTH_ENVELOPED;
	int eci = (int)d->caplen[2], env, expl, ci, total;
	unsigned char *der, *q;
	const unsigned char *p;

	/* A ContentInfo of the same header with the content left out
	 * (detached), and for AuthEnvelopedData a placeholder tag (the real
	 * one follows the content; it is set before the cipher finishes). */
	env = (int)d->caplen[1] + ASN1_object_size(1, eci, V_ASN1_SEQUENCE) +
	      (auth ? 2 + (int)sizeof(d->mac) : 0);
	expl = ASN1_object_size(1, env, V_ASN1_SEQUENCE);
	ci = 2 + (int)d->oidlen + ASN1_object_size(1, expl, 0);
	total = ASN1_object_size(1, ci, V_ASN1_SEQUENCE);
	if ((der = malloc((size_t)total)) == NULL)
		return cd_fail(d, err, errlen, "out of memory");
	q = der;
	ASN1_put_object(&q, 1, ci, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	*q++ = V_ASN1_OBJECT;
	*q++ = (unsigned char)d->oidlen;
	memcpy(q, d->oid, d->oidlen);
	q += d->oidlen;
	ASN1_put_object(&q, 1, expl, 0, V_ASN1_CONTEXT_SPECIFIC);
	ASN1_put_object(&q, 1, env, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(q, d->cap[1], d->caplen[1]);
	q += d->caplen[1];
	ASN1_put_object(&q, 1, eci, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(q, d->cap[2], d->caplen[2]);
	q += d->caplen[2];
	if (auth) {
		*q++ = V_ASN1_OCTET_STRING;
		*q++ = (unsigned char)sizeof(d->mac);
		memset(q, 0, sizeof(d->mac));
		q += sizeof(d->mac);
	}
	p = der;
	ERR_clear_error();
	d->cms = d2i_CMS_ContentInfo(NULL, &p, total);
	if (d->cms != NULL && p != der + total) {
		CMS_ContentInfo_free(d->cms);
		d->cms = NULL;
	}
	free(der);
	if (d->cms == NULL)
		return cd_fail_ssl(d, err, errlen,
		                   "malformed CMS: OpenSSL cannot read the "
		                   "RecipientInfos");
	cipher_name(d);
	if (recips_list(d) < 0)
		return cd_fail(d, err, errlen, "out of memory");
	for (env = 1; env <= 2; env++) {
		free(d->cap[env]);
		d->cap[env] = NULL;
		d->caplen[env] = d->capsize[env] = 0;
	}
	return 0;
}

/* Move the plaintext the cipher wrote into the memory BIO to the spool. */
static int drain(struct cms_dec *d, char *err, size_t errlen)
{
	unsigned char buf[16384];
	int n, rc = 0;
	char e[128];

	while ((n = BIO_read(d->mem, buf, sizeof(buf))) > 0)
		if (spool_write(d->spool, buf, (size_t)n, e, sizeof(e)) < 0) {
			rc = cd_fail(d, err, errlen, "plaintext spool: %s", e);
			break;
		}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int cd_cipher_write(struct cms_dec *d, const unsigned char *p, size_t n,
                    char *err, size_t errlen)
{
	while (n > 0) {
		int k = n > 16384 ? 16384 : (int)n;
		if (BIO_write(d->chain, p, k) != k)
			return cd_fail_ssl(d, err, errlen,
			                   "decrypting the CMS content failed");
		if (drain(d, err, errlen) < 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int cms_dec_feed(struct cms_dec *d, const void *buf, size_t len, char *err,
                 size_t errlen)
{
	const unsigned char *src = buf;
	int r;

	if (d == NULL)
		return seterr(err, errlen, "no decoder");
	switch (d->state) {
	case CD_FAILED:
		return seterr(err, errlen, "%s", d->emsg);
	case CD_OTHER:
		return CMS_DEC_NOT_ENCRYPTED;
	case CD_NEED_KEY:
		return seterr(err, errlen,
		              "the RecipientInfos are read: choose a key "
		              "(cms_dec_try_key) before feeding more");
	case CD_FINISHED:
		return seterr(err, errlen, "the decoder has finished");
	default:
		break;
	}
	for (;;) {
		size_t take;

		r = cd_walk(d, 0, err, errlen);
		if (r < 0 || r == CMS_DEC_NOT_ENCRYPTED)
			return r;
		if (r == CMS_DEC_RECIPIENTS) {
			/* keep the rest of this piece for after the key */
			size_t have = d->inlen - d->inoff;
			if (have + len > d->incap) {
				unsigned char *n = malloc(have + len);
				if (n == NULL)
					return cd_fail(d, err, errlen,
					               "out of memory");
				memcpy(n, d->in + d->inoff, have);
				free(d->in);
				d->in = n;
				d->incap = have + len;
			} else {
				memmove(d->in, d->in + d->inoff, have);
			}
			if (len > 0)
				memcpy(d->in + have, src, len);
			d->inoff = 0;
			d->inlen = have + len;
			return r;
		}
		/* what is left in the buffer is less than a header */
		memmove(d->in, d->in + d->inoff, d->inlen - d->inoff);
		d->inlen -= d->inoff;
		d->inoff = 0;
		if (d->incap > CMS_DEC_IN_CHUNK &&
		    d->inlen <= CMS_DEC_IN_CHUNK) {
			/* the piece kept at the RecipientInfos is done */
			unsigned char *n = realloc(d->in, CMS_DEC_IN_CHUNK);
			if (n != NULL) {
				d->in = n;
				d->incap = CMS_DEC_IN_CHUNK;
			}
		}
		if (len == 0)
			return CMS_DEC_MORE;
		take = d->incap > d->inlen ? d->incap - d->inlen : 0;
		if (take > CMS_DEC_IN_CHUNK)
			take = CMS_DEC_IN_CHUNK;
		buf_fill(d->in, &d->inlen, d->inlen + take, &src, &len);
	}
}

enum cms_dec_type cms_dec_type(const struct cms_dec *d)
{
	return d ? d->type : CMS_DEC_TYPE_UNKNOWN;
}

const char *cms_dec_type_name(enum cms_dec_type t)
{
	static const char *const names[] = {
		[CMS_DEC_TYPE_UNKNOWN] = "unknown",
		[CMS_DEC_TYPE_NOT_CMS] = "not-cms",
		[CMS_DEC_TYPE_ENVELOPED] = "enveloped-data",
		[CMS_DEC_TYPE_AUTH_ENVELOPED] = "authEnveloped-data",
		[CMS_DEC_TYPE_SIGNED] = "signed-data",
		[CMS_DEC_TYPE_COMPRESSED] = "compressed-data",
		[CMS_DEC_TYPE_DATA] = "data",
		[CMS_DEC_TYPE_OTHER] = "other",
	};

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t]
	                                                      : "unknown";
}

const char *cms_dec_cipher(const struct cms_dec *d)
{
	return d && d->cms && d->cipher[0] ? d->cipher : NULL;
}

int cms_dec_recipient_count(const struct cms_dec *d)
{
	return d && d->cms ? d->nrecips : 0;
}

const struct cms_dec_recip *cms_dec_recipient_get(const struct cms_dec *d,
                                                  int i)
{
	if (d == NULL || d->cms == NULL || i < 0 || i >= d->nrecips)
		return NULL;
	return &d->recips[i].pub;
}

int cms_dec_names(const struct cms_dec *d, X509 *cert)
{
	int i;

	if (d == NULL || d->cms == NULL || cert == NULL)
		return -1;
	for (i = 0; i < d->nrecips; i++) {
		const struct cd_recip *r = &d->recips[i];
		int c = 1;
		if (r->pub.kind == CMS_DEC_RI_KTRI)
			c = CMS_RecipientInfo_ktri_cert_cmp(r->ri, cert);
		else if (r->pub.kind == CMS_DEC_RI_KARI)
			c = CMS_RecipientEncryptedKey_cert_cmp(r->rek, cert);
		if (c == 0)
			return i;
	}
	ERR_clear_error();
	return -1;
}

int cms_dec_try_key(struct cms_dec *d, X509 *cert, EVP_PKEY *key, char *err,
                    size_t errlen)
{
	EVP_CIPHER *ciph;
	int i;

	if (d == NULL || cert == NULL || key == NULL)
		return seterr(err, errlen, "no decoder, certificate or key");
	if (d->state != CD_NEED_KEY)
		return seterr(err, errlen,
		              d->state == CD_CONTENT
		                      ? "a key is already chosen"
		                      : "the RecipientInfos are not read yet");
	if ((i = cms_dec_names(d, cert)) < 0) {
		seterr(err, errlen, "the certificate is not a recipient");
		return 0;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 0) {
		ERR_clear_error();
		return seterr(err, errlen,
		              "the key does not belong to the certificate");
	}
	ERR_set_mark();
	ciph = EVP_CIPHER_fetch(NULL, d->cipher, NULL);
	ERR_pop_to_mark();
	if (ciph == NULL)
		return seterr(err, errlen,
		              "content encryption algorithm %s is not "
		              "supported",
		              d->cipher);
	EVP_CIPHER_free(ciph);
	ERR_clear_error();
	if (CMS_decrypt_set1_pkey_and_peer(d->cms, key, cert, NULL) <= 0) {
		seterr_ssl(err, errlen, "cannot unwrap the content key");
		return -1;
	}
	if ((d->spool = spool_new(d->spool_mem, d->spool_dir)) == NULL ||
	    (d->mem = BIO_new(BIO_s_mem())) == NULL)
		return cd_fail(d, err, errlen, "out of memory");
	/* on success the chain owns d->mem (freed with it) */
	if ((d->chain = CMS_dataInit(d->cms, d->mem)) == NULL)
		return cd_fail_ssl(d, err, errlen,
		                   "cannot set up the content cipher");
	d->matched = i;
	X509_up_ref(cert);
	d->mcert = cert;
	d->state = CD_CONTENT;
	return 1;
}

int cms_dec_matched(const struct cms_dec *d)
{
	return d ? d->matched : -1;
}

X509 *cms_dec_matched_cert(const struct cms_dec *d)
{
	return d ? d->mcert : NULL;
}

int cms_dec_finish(struct cms_dec *d, char *err, size_t errlen)
{
	EVP_CIPHER_CTX *ctx = NULL;
	int r, auth;
	char e[128];

	if (d == NULL)
		return seterr(err, errlen, "no decoder");
	if (d->state == CD_WALK || d->state == CD_CONTENT) {
		r = cd_walk(d, 1, err, errlen);
		if (r < 0)
			return -1;
	}
	switch (d->state) {
	case CD_ENDED:
		break;
	case CD_FAILED:
		return seterr(err, errlen, "%s", d->emsg);
	case CD_OTHER:
		return seterr(err, errlen,
		              "the CMS content is %s, not encrypted",
		              cms_dec_type_name(d->type));
	case CD_NEED_KEY:
		return cd_fail(d, err, errlen, "no key was chosen");
	case CD_FINISHED:
		return 0;
	default:
		return cd_fail(d, err, errlen, "truncated CMS");
	}
	if (d->chain == NULL) /* ended without content: cannot happen */
		return cd_fail(d, err, errlen, "no key was chosen");
	auth = d->type == CMS_DEC_TYPE_AUTH_ENVELOPED;
	ERR_clear_error();
	if (auth) {
		BIO_get_cipher_ctx(d->chain, &ctx);
		if (ctx == NULL ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
		                        (int)d->maclen, d->mac) <= 0)
			return cd_fail_ssl(d, err, errlen,
			                   "cannot set the AuthEnvelopedData "
			                   "tag");
	}
	if (BIO_flush(d->chain) <= 0 || BIO_get_cipher_status(d->chain) <= 0) {
		ERR_clear_error();
		return cd_fail(d, err, errlen,
		               auth ? "the content does not match its "
		                      "authentication tag (altered, or the "
		                      "wrong key)"
		                    : "the content does not decrypt (the wrong "
		                      "key, or damaged)");
	}
	if (drain(d, err, errlen) < 0)
		return -1;
	if (spool_rewind(d->spool, e, sizeof(e)) < 0)
		return cd_fail(d, err, errlen, "plaintext spool: %s", e);
	d->state = CD_FINISHED;
	return 0;
}

ssize_t cms_dec_read(struct cms_dec *d, void *buf, size_t len)
{
	if (d == NULL || d->state != CD_FINISHED)
		return -1;
	return spool_read(d->spool, buf, len);
}

size_t cms_dec_plain_size(const struct cms_dec *d)
{
	return d && d->state == CD_FINISHED ? spool_size(d->spool) : 0;
}

void cms_dec_free(struct cms_dec *d)
{
	int i;

	if (d == NULL)
		return;
	if (d->chain != NULL)
		BIO_free_all(d->chain); /* d->mem with it */
	else
		BIO_free(d->mem);
	spool_free(d->spool);
	CMS_ContentInfo_free(d->cms);
	X509_free(d->mcert);
	free(d->recips);
	for (i = 0; i < 3; i++)
		free(d->cap[i]);
	free(d->in);
	free(d->spool_dir);
	OPENSSL_cleanse(d->mac, sizeof(d->mac));
	free(d);
}
