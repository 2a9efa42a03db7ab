/* tsa -- RFC 3161 time-stamp client (see tsa.h). */
#include "tsa.h"
#include "certstore.h"
#include "http.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

/* id-aa-signatureTimeStampToken (RFC 3161 Appendix A) */
#define TSA_OID_TOKEN "1.2.840.113549.1.9.16.2.14"

/* POST body to url; on HTTP 200 the answer is in *out (free with
 * http_resp_free).  Returns 0 or -1 with err filled. */
static int tsa_post(const char *url, long timeout_ms, const unsigned char *body,
                    size_t blen, struct http_resp *out, char *err,
                    size_t errlen)
{
	struct http_req rq = { 0 };

	rq.url = url;
	rq.what = "TSA";
	rq.timeout_ms = timeout_ms;
	rq.max_response = TSA_MAX_RESPONSE;
	rq.body = body;
	rq.blen = blen;
	rq.content_type = "application/timestamp-query";
	rq.accept = "application/timestamp-reply";
	if (http_fetch(&rq, out, err, errlen) != 0)
		return -1;
	if (out->code != 200)
		return seterr(err, errlen, "TSA answered HTTP %ld", out->code);
	return 0;
}

/* A TimeStampReq over the SHA-256 digest with a random 64-bit nonce,
 * asking for the TSA's certificate.  NULL with err filled. */
static TS_REQ *tsa_req_make(const unsigned char *digest, size_t dlen, char *err,
                            size_t errlen)
{
	TS_REQ *req = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	BIGNUM *bn = BN_new();
	ASN1_INTEGER *nonce = NULL;
	int ok;

	ok = req && mi && alg && bn &&
	     X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) &&
	     TS_MSG_IMPRINT_set_algo(mi, alg) &&
	     TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)digest, (int)dlen) &&
	     TS_REQ_set_version(req, 1) && TS_REQ_set_msg_imprint(req, mi) &&
	     BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	     (nonce = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
	     TS_REQ_set_nonce(req, nonce) && TS_REQ_set_cert_req(req, 1);
	ASN1_INTEGER_free(nonce);
	BN_free(bn);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	if (!ok) {
		seterr_ssl(err, errlen, "cannot build the TimeStampReq");
		TS_REQ_free(req);
		return NULL;
	}
	return req;
}

/* The certificates of ca_file, or NULL with err filled. */
static X509_STORE *tsa_store_load(const char *ca_file, char *err, size_t errlen)
{
	X509_STORE *st;

	if (ca_file == NULL || *ca_file == '\0') {
		seterr(err, errlen, "no TSA trust bundle (timestamp_ca_file)");
		return NULL;
	}
	st = X509_STORE_new();
	if (st == NULL || X509_STORE_load_file(st, ca_file) != 1) {
		ERR_clear_error();
		seterr(err, errlen, "cannot read the TSA trust bundle %s",
		       ca_file);
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

/* The status of a TimeStampResp: 0 when granted, else -1 with the
 * status, the failure bits and the TSA's text in err. */
static int tsa_status_check(TS_RESP *resp, char *err, size_t errlen)
{
	static const char *const status[] = {
		"granted", "grantedWithMods",   "rejection",
		"waiting", "revocationWarning", "revocationNotification",
	};
	static const struct {
		int bit;
		const char *name;
	} fail[] = {
		{ 0, "badAlg" },
		{ 2, "badRequest" },
		{ 5, "badDataFormat" },
		{ 14, "timeNotAvailable" },
		{ 15, "unacceptedPolicy" },
		{ 16, "unacceptedExtension" },
		{ 17, "addInfoNotAvailable" },
		{ 25, "systemFailure" },
	};
	TS_STATUS_INFO *si = TS_RESP_get_status_info(resp);
	const ASN1_BIT_STRING *fi = TS_STATUS_INFO_get0_failure_info(si);
	const STACK_OF(ASN1_UTF8STRING) *text = TS_STATUS_INFO_get0_text(si);
	long st = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
	char why[256] = "";
	size_t i;

	if (st == 0 || st == 1)
		return 0;
	for (i = 0; fi && i < sizeof(fail) / sizeof(fail[0]); i++)
		if (ASN1_BIT_STRING_get_bit(fi, fail[i].bit))
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
			         " %s", fail[i].name);
	if (text && sk_ASN1_UTF8STRING_num(text) > 0) {
		const ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(text, 0);
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
		         " \"%.*s\"", ASN1_STRING_length(t),
		         (const char *)ASN1_STRING_get0_data(t));
	}
	if (st >= 0 && st < (long)(sizeof(status) / sizeof(status[0])))
		return seterr(err, errlen, "TSA refused the request: %s%s",
		              status[st], why);
	return seterr(err, errlen, "TSA refused the request: status %ld%s", st,
	              why);
}

/* The TS reasons a token check fails for, in words. */
static const struct {
	int reason;
	const char *words;
} tsa_reasons[] = {
	{ TS_R_NONCE_MISMATCH,
	  "nonce mismatch: the token does not answer this request" },
	{ TS_R_NONCE_NOT_RETURNED, "TSA token carries no nonce" },
	{ TS_R_MESSAGE_IMPRINT_MISMATCH,
	  "TSA token stamps another digest (message imprint mismatch)" },
	{ TS_R_SIGNATURE_FAILURE, "TSA token signature does not verify" },
	{ TS_R_ESS_SIGNING_CERTIFICATE_ERROR,
	  "TSA token does not name its signing certificate correctly" },
	{ TS_R_UNSUPPORTED_VERSION, "TSA token has an unsupported version" },
};

/* A failed TS_RESP_verify_* in words, from the OpenSSL error queue (the
 * first TS error decides; a chain failure says why, as X509 puts it). */
static int tsa_verify_error(char *err, size_t errlen)
{
	const char *data = NULL, *why, *detail = "";
	char text[256] = "";
	unsigned long e, ts = 0, any = 0;
	int flags = 0;
	size_t i;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (any == 0)
			any = e;
		if (ts == 0 && ERR_GET_LIB(e) == ERR_LIB_TS) {
			ts = e;
			if ((flags & ERR_TXT_STRING) && data != NULL)
				snprintf(text, sizeof(text), "%s", data);
		}
	}
	detail = text;
	if (strncmp(detail, "Verify error:", 13) == 0)
		detail += 13;
	if (ts != 0 && ERR_GET_REASON(ts) == TS_R_CERTIFICATE_VERIFY_ERROR)
		return seterr(err, errlen, "TSA certificate not trusted: %s",
		              *detail ? detail
		                      : "no chain to the trust bundle");
	for (i = 0; ts != 0 && i < sizeof(tsa_reasons) / sizeof(tsa_reasons[0]);
	     i++)
		if (ERR_GET_REASON(ts) == tsa_reasons[i].reason)
			return seterr(err, errlen, "%s", tsa_reasons[i].words);
	why = any ? ERR_reason_error_string(ts ? ts : any) : NULL;
	return seterr(err, errlen, "TSA token does not verify: %s",
	              why ? why : "unknown reason");
}

/* A TSTInfo's imprint is SHA-256 and its genTime readable (into *gen,
 * may be NULL).  Returns 0 or -1 with err filled. */
static int tsa_tst_check(TS_TST_INFO *tst, time_t *gen, char *err,
                         size_t errlen)
{
	const X509_ALGOR *alg =
	        TS_MSG_IMPRINT_get_algo(TS_TST_INFO_get_msg_imprint(tst));
	const ASN1_GENERALIZEDTIME *t = TS_TST_INFO_get_time(tst);
	const ASN1_OBJECT *obj = NULL;
	struct tm tm;

	if (alg != NULL)
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
	if (obj == NULL || OBJ_obj2nid(obj) != NID_sha256)
		return seterr(err, errlen, "TSA token imprint is not SHA-256");
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		ERR_clear_error();
		return seterr(err, errlen, "TSA token has no readable genTime");
	}
	if (gen != NULL)
		*gen = timegm(&tm);
	return 0;
}

/*
 * The timeStampToken of a DER TimeStampResp, as the TSA encoded it (so
 * the stored token is the signed bytes, not OpenSSL's re-encoding):
 * SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo }.  Returns
 * 0 with *tok and *toklen pointing into der, -1 when an element uses an
 * indefinite length or does not fit.
 */
static int tsa_token_slice(const unsigned char *der, size_t len,
                           const unsigned char **tok, size_t *toklen)
{
	const unsigned char *p = der, *end, *q;
	long l;
	int tag, cls, r;

	if (len > LONG_MAX)
		return -1;
	r = ASN1_get_object(&p, &l, &tag, &cls, (long)len);
	if ((r & 0x80) || r != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE)
		return -1;
	end = p + l;
	r = ASN1_get_object(&p, &l, &tag, &cls, end - p); /* status */
	if ((r & 0x80) || r != V_ASN1_CONSTRUCTED)
		return -1;
	p += l;
	q = p;
	r = ASN1_get_object(&p, &l, &tag, &cls, end - p); /* the token */
	if ((r & 0x80) || r != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE ||
	    p + l != end)
		return -1;
	*tok = q;
	*toklen = (size_t)(end - q);
	return 0;
}

/* Copy the token of resp (the TSA's bytes der/len) into *out.  Returns 0
 * or -1 with err filled. */
static int tsa_token_copy(TS_RESP *resp, const unsigned char *der, size_t len,
                          unsigned char **out, size_t *outlen, char *err,
                          size_t errlen)
{
	const unsigned char *tok;
	size_t toklen;
	int n;

	if (tsa_token_slice(der, len, &tok, &toklen) == 0) {
		*out = OPENSSL_memdup(tok, toklen);
		*outlen = toklen;
	} else {
		*out = NULL;
		n = i2d_PKCS7(TS_RESP_get_token(resp), out);
		*outlen = n > 0 ? (size_t)n : 0;
	}
	if (*out == NULL)
		return seterr(err, errlen, "TSA token: out of memory");
	return 0;
}

/* The parsed, granted answer to req in body, verified against store
 * (taken over).  Returns it, or NULL with err filled. */
static TS_RESP *tsa_resp_check(TS_REQ *req, const struct http_resp *body,
                               X509_STORE *store, char *err, size_t errlen)
{
	const unsigned char *p = body->data;
	TS_VERIFY_CTX *ctx;
	TS_RESP *resp;

	resp = d2i_TS_RESP(NULL, &p, (long)body->len);
	if (resp == NULL || p != body->data + body->len) {
		ERR_clear_error();
		seterr(err, errlen,
		       "TSA response is not a TimeStampResp (%zu bytes, "
		       "Content-Type %.60s)",
		       body->len, body->ctype);
		goto fail;
	}
	if (tsa_status_check(resp, err, errlen) != 0)
		goto fail;
	if (TS_RESP_get_token(resp) == NULL) {
		seterr(err, errlen,
		       "TSA granted the request but sent no token");
		goto fail;
	}
	/* version, imprint and nonce from the request, then the signature */
	ctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL);
	if (ctx == NULL) {
		seterr_ssl(err, errlen, "cannot check the TSA token");
		goto fail;
	}
	TS_VERIFY_CTX_add_flags(ctx, TS_VFY_SIGNATURE);
	TS_VERIFY_CTX_set_store(ctx, store);
	store = NULL;
	ERR_clear_error();
	if (TS_RESP_verify_response(ctx, resp) != 1) {
		tsa_verify_error(err, errlen);
		TS_VERIFY_CTX_free(ctx);
		goto fail;
	}
	TS_VERIFY_CTX_free(ctx);
	return resp;
fail:
	X509_STORE_free(store);
	TS_RESP_free(resp);
	return NULL;
}

/* What a TSA sent (its status text, a Content-Type, a redirect's scheme)
 * can end up in err, and err in a log line: no control characters. */
static void tsa_err_clean(char *err, size_t errlen)
{
	unsigned char *p;

	for (p = (unsigned char *)err; err != NULL && errlen > 0 && *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
}

int tsa_request(const char *url, long timeout_ms, const unsigned char *digest,
                size_t dlen, const char *ca_file, unsigned char **token_der,
                size_t *token_len, time_t *gen_time, char *err, size_t errlen)
{
	struct http_resp body = { 0 };
	unsigned char *reqder = NULL;
	X509_STORE *store = NULL;
	TS_RESP *resp = NULL;
	TS_REQ *req = NULL;
	int n, posted, rc = -1;

	if (token_der == NULL || token_len == NULL)
		return seterr(err, errlen,
		              "tsa_request: no place for the token");
	*token_der = NULL;
	*token_len = 0;
	if (url == NULL || *url == '\0')
		return seterr(err, errlen, "no TSA URL (timestamp_url)");
	if (digest == NULL || dlen != TSA_DIGEST_LEN)
		return seterr(err, errlen,
		              "a time-stamp needs a SHA-256 digest "
		              "(32 bytes)");
	if (timeout_ms <= 0)
		return seterr(err, errlen, "TSA timeout must be positive");
	store = tsa_store_load(ca_file, err, errlen);
	if (store == NULL)
		return -1;
	req = tsa_req_make(digest, dlen, err, errlen);
	if (req == NULL)
		goto done;
	n = i2d_TS_REQ(req, &reqder);
	if (n <= 0 || reqder == NULL) {
		seterr_ssl(err, errlen, "cannot encode the TimeStampReq");
		goto done;
	}
	posted = tsa_post(url, timeout_ms, reqder, (size_t)n, &body, err,
	                  errlen);
	OPENSSL_free(reqder);
	if (posted != 0)
		goto done;
	resp = tsa_resp_check(req, &body, store, err, errlen);
	store = NULL; /* taken over */
	if (resp != NULL &&
	    tsa_tst_check(TS_RESP_get_tst_info(resp), gen_time, err, errlen) ==
	            0 &&
	    tsa_token_copy(resp, body.data, body.len, token_der, token_len, err,
	                   errlen) == 0)
		rc = 0;
done:
	X509_STORE_free(store);
	TS_RESP_free(resp);
	TS_REQ_free(req);
	http_resp_free(&body);
	if (rc != 0)
		tsa_err_clean(err, errlen);
	return rc;
}

/* d2i of a whole TimeStampToken: a ContentInfo holding a TSTInfo.  NULL
 * with err filled; *tst (may be NULL) gets its TSTInfo. */
static PKCS7 *tsa_token_parse(const unsigned char *der, size_t len,
                              TS_TST_INFO **tst, char *err, size_t errlen)
{
	const unsigned char *p = der;
	TS_TST_INFO *info = NULL;
	PKCS7 *tok = NULL;

	if (der != NULL && len > 0 && len <= LONG_MAX)
		tok = d2i_PKCS7(NULL, &p, (long)len);
	if (tok != NULL && p == der + len)
		info = PKCS7_to_TS_TST_INFO(tok);
	if (info == NULL) {
		ERR_clear_error();
		PKCS7_free(tok);
		seterr(err, errlen, "not a TimeStampToken");
		return NULL;
	}
	if (tst != NULL)
		*tst = info;
	else
		TS_TST_INFO_free(info);
	return tok;
}

int tsa_token_verify(const unsigned char *token_der, size_t token_len,
                     const unsigned char *digest, size_t dlen,
                     const char *ca_file, time_t *gen_time, char *err,
                     size_t errlen)
{
	TS_TST_INFO *tst = NULL;
	TS_VERIFY_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	unsigned char *imprint;
	PKCS7 *tok;
	time_t gen = 0;
	int rc = -1;

	if (digest == NULL || dlen != TSA_DIGEST_LEN)
		return seterr(err, errlen,
		              "a time-stamp needs a SHA-256 digest "
		              "(32 bytes)");
	tok = tsa_token_parse(token_der, token_len, &tst, err, errlen);
	if (tok == NULL)
		return -1;
	if (tsa_tst_check(tst, &gen, err, errlen) != 0)
		goto done;
	store = tsa_store_load(ca_file, err, errlen);
	ctx = TS_VERIFY_CTX_new();
	imprint = OPENSSL_memdup(digest, dlen);
	if (store == NULL || ctx == NULL || imprint == NULL) {
		OPENSSL_free(imprint);
		if (store != NULL)
			seterr(err, errlen, "TSA token check: out of memory");
		goto done;
	}
	/* the chain as it stood when the token was made */
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), gen);
	TS_VERIFY_CTX_set_flags(ctx, TS_VFY_SIGNATURE | TS_VFY_VERSION |
	                                     TS_VFY_IMPRINT);
	TS_VERIFY_CTX_set_imprint(ctx, imprint, (long)dlen);
	TS_VERIFY_CTX_set_store(ctx, store);
	store = NULL;
	ERR_clear_error();
	if (TS_RESP_verify_token(ctx, tok) != 1) {
		tsa_verify_error(err, errlen);
		goto done;
	}
	if (gen_time != NULL)
		*gen_time = gen;
	rc = 0;
done:
	TS_VERIFY_CTX_free(ctx);
	X509_STORE_free(store);
	TS_TST_INFO_free(tst);
	PKCS7_free(tok);
	return rc;
}

int tsa_token_signer(const unsigned char *token_der, size_t token_len,
                     char *name, size_t namelen, char *err, size_t errlen)
{
	const unsigned char *p = token_der;
	PKCS7 *tok = d2i_PKCS7(NULL, &p, (long)token_len);
	STACK_OF(X509) *signers;
	char *n;

	name[0] = '\0';
	if (tok == NULL || !PKCS7_type_is_signed(tok)) {
		PKCS7_free(tok);
		return seterr(err, errlen, "not a TimeStampToken");
	}
	ERR_set_mark();
	signers = PKCS7_get0_signers(tok, NULL, 0);
	ERR_pop_to_mark();
	if (signers && sk_X509_num(signers) > 0 &&
	    (n = cert_name_text(X509_get_subject_name(
	             sk_X509_value(signers, 0)))) != NULL) {
		snprintf(name, namelen, "%s", n);
		free(n);
	}
	sk_X509_free(signers);
	PKCS7_free(tok);
	return 0;
}

int tsa_signature_digest(CMS_SignerInfo *si, unsigned char out[TSA_DIGEST_LEN],
                         char *err, size_t errlen)
{
	ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;

	if (sig == NULL || ASN1_STRING_length(sig) <= 0)
		return seterr(err, errlen, "the SignerInfo has no signature");
	if (!EVP_Digest(ASN1_STRING_get0_data(sig),
	                (size_t)ASN1_STRING_length(sig), out, NULL,
	                EVP_sha256(), NULL)) {
		seterr_ssl(err, errlen, "cannot hash the signature");
		return -1;
	}
	return 0;
}

int tsa_attach(CMS_SignerInfo *si, const unsigned char *token, size_t len,
               char *err, size_t errlen)
{
	ASN1_OBJECT *obj;
	PKCS7 *tok;
	int ok;

	if (si == NULL)
		return seterr(err, errlen, "no SignerInfo to time-stamp");
	if (len > INT_MAX)
		return seterr(err, errlen, "not a TimeStampToken");
	tok = tsa_token_parse(token, len, NULL, err, errlen);
	if (tok == NULL)
		return -1;
	PKCS7_free(tok);
	obj = OBJ_txt2obj(TSA_OID_TOKEN, 1);
	/* a SEQUENCE attribute value is kept as its whole encoding */
	ok = obj && CMS_unsigned_add1_attr_by_OBJ(si, obj, V_ASN1_SEQUENCE,
	                                          token, (int)len);
	ASN1_OBJECT_free(obj);
	if (!ok) {
		seterr_ssl(err, errlen, "cannot add the time-stamp attribute");
		return -1;
	}
	return 0;
}

int tsa_token_get(CMS_SignerInfo *si, const unsigned char **token, size_t *len,
                  char *err, size_t errlen)
{
	X509_ATTRIBUTE *attr;
	ASN1_OBJECT *obj;
	ASN1_TYPE *t;
	int idx;

	if (si == NULL)
		return 0;
	obj = OBJ_txt2obj(TSA_OID_TOKEN, 1);
	if (obj == NULL) {
		seterr_ssl(err, errlen, "cannot look for a time-stamp");
		return -1;
	}
	idx = CMS_unsigned_get_attr_by_OBJ(si, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return 0;
	attr = CMS_unsigned_get_attr(si, idx);
	t = attr ? X509_ATTRIBUTE_get0_type(attr, 0) : NULL;
	if (t == NULL || t->type != V_ASN1_SEQUENCE ||
	    X509_ATTRIBUTE_count(attr) != 1)
		return seterr(err, errlen, "malformed time-stamp attribute");
	*token = ASN1_STRING_get0_data(t->value.sequence);
	*len = (size_t)ASN1_STRING_length(t->value.sequence);
	return 1;
}
