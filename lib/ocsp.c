/* ocsp -- one OCSP request and its response judged (see ocsp.h). */
#include "ocsp.h"
#include "certstore.h"
#include "http.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

const char *ocsp_status_name(enum ocsp_cert_status s)
{
	return s == OCSP_VERDICT_GOOD      ? "good"
	       : s == OCSP_VERDICT_REVOKED ? "revoked"
	                                   : "unknown";
}

int ocsp_status_parse(const char *s, enum ocsp_cert_status *out)
{
	static const enum ocsp_cert_status all[] = { OCSP_VERDICT_GOOD,
		                                     OCSP_VERDICT_REVOKED,
		                                     OCSP_VERDICT_UNKNOWN };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(s, ocsp_status_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	return -1;
}

const char *ocsp_reason_name(int reason)
{
	return reason < 0 ? NULL : OCSP_crl_reason_str(reason);
}

char *ocsp_cert_url(X509 *x)
{
	STACK_OF(OPENSSL_STRING) *urls = x ? X509_get1_ocsp(x) : NULL;
	char *url = NULL;

	for (int i = 0; url == NULL && i < sk_OPENSSL_STRING_num(urls); i++) {
		const char *u = sk_OPENSSL_STRING_value(urls, i);
		if (strncasecmp(u, "http://", 7) == 0 ||
		    strncasecmp(u, "https://", 8) == 0)
			url = xstrdup(u);
	}
	X509_email_free(urls);
	return url;
}

X509 *ocsp_find_issuer(X509 *x, STACK_OF(X509) *untrusted, X509_STORE *store)
{
	X509_STORE_CTX *ctx;
	X509 *issuer = NULL;

	if (x == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(untrusted); i++) {
		X509 *c = sk_X509_value(untrusted, i);
		if (c != x && X509_check_issued(c, x) == X509_V_OK &&
		    X509_up_ref(c))
			return c;
	}
	if (store == NULL || (ctx = X509_STORE_CTX_new()) == NULL)
		return NULL;
	if (X509_STORE_CTX_init(ctx, store, x, NULL) == 1 &&
	    X509_STORE_CTX_get1_issuer(&issuer, ctx, x) != 1)
		issuer = NULL;
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return issuer;
}

int ocsp_request_make(X509 *cert, X509 *issuer, int nonce, struct ocsp_req *out,
                      char *err, size_t errlen)
{
	OCSP_CERTID *id;
	unsigned char *der = NULL;
	int n;

	memset(out, 0, sizeof(*out));
	if (cert == NULL || issuer == NULL)
		return seterr(err, errlen,
		              "OCSP: a certificate and its issuer are needed");
	id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
	out->req = OCSP_REQUEST_new();
	if (id == NULL || out->req == NULL ||
	    OCSP_request_add0_id(out->req, id) == NULL) {
		OCSP_CERTID_free(id);
		ocsp_request_clear(out);
		seterr_ssl(err, errlen, "OCSP request");
		return -1;
	}
	out->id = id; /* req's now */
	if ((nonce && !OCSP_request_add1_nonce(out->req, NULL, -1)) ||
	    (n = i2d_OCSP_REQUEST(out->req, &der)) <= 0) {
		ocsp_request_clear(out);
		seterr_ssl(err, errlen, "OCSP request");
		return -1;
	}
	out->der = der;
	out->len = (size_t)n;
	return 0;
}

void ocsp_request_clear(struct ocsp_req *r)
{
	if (r == NULL)
		return;
	OCSP_REQUEST_free(r->req);
	OPENSSL_free(r->der);
	memset(r, 0, sizeof(*r));
}

/* The signature of bs: by issuer or a responder it delegated to, chained
 * to store.  0, or -1 with err. */
static int check_signature(OCSP_BASICRESP *bs, X509 *issuer, X509_STORE *store,
                           char *err, size_t errlen)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	int rc;

	if (certs == NULL || !sk_X509_push(certs, issuer)) {
		sk_X509_free(certs);
		return seterr(err, errlen, "out of memory");
	}
	rc = OCSP_basic_verify(bs, certs, store, 0);
	sk_X509_free(certs);
	if (rc <= 0) {
		seterr_ssl(err, errlen,
		           "OCSP response signature does not verify");
		return -1;
	}
	return 0;
}

/* The status of r's certificate in bs into v.  0, or -1 with err. */
static int find_status(const struct ocsp_req *r, OCSP_BASICRESP *bs,
                       struct ocsp_verdict *v, char *err, size_t errlen)
{
	ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
	int status = -1, reason = -1;

	if (OCSP_resp_find_status(bs, r->id, &status, &reason, &rev, &thisupd,
	                          &nextupd) != 1)
		return seterr(err, errlen,
		              "OCSP response does not answer for the "
		              "certificate asked about");
	if (!OCSP_check_validity(thisupd, nextupd, OCSP_SKEW, -1)) {
		seterr_ssl(err, errlen, "OCSP response is out of date");
		return -1;
	}
	v->status = status == V_OCSP_CERTSTATUS_GOOD ? OCSP_VERDICT_GOOD
	            : status == V_OCSP_CERTSTATUS_REVOKED
	                    ? OCSP_VERDICT_REVOKED
	                    : OCSP_VERDICT_UNKNOWN;
	v->reason = v->status == OCSP_VERDICT_REVOKED ? reason : -1;
	v->revoked_at =
	        v->status == OCSP_VERDICT_REVOKED ? asn1_time_to_time(rev) : 0;
	v->this_update = asn1_time_to_time(thisupd);
	v->next_update = nextupd ? asn1_time_to_time(nextupd) : 0;
	return 0;
}

int ocsp_response_check(const struct ocsp_req *r, const unsigned char *der,
                        size_t len, X509 *issuer, X509_STORE *store,
                        struct ocsp_verdict *v, char *err, size_t errlen)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs = NULL;
	int st, rc = -1;

	memset(v, 0, sizeof(*v));
	v->reason = -1;
	if (r == NULL || r->req == NULL || der == NULL || issuer == NULL ||
	    store == NULL)
		return seterr(err, errlen,
		              "OCSP: a request, a response, the issuer and a "
		              "trust bundle are needed");
	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	if (resp == NULL || p != der + len) {
		OCSP_RESPONSE_free(resp);
		ERR_clear_error();
		return seterr(err, errlen, "OCSP response is malformed");
	}
	st = OCSP_response_status(resp);
	if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		seterr(err, errlen, "OCSP responder refused: %s",
		       OCSP_response_status_str(st));
		goto out;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		seterr(err, errlen, "OCSP response is not a basic response");
		goto out;
	}
	if (check_signature(bs, issuer, store, err, errlen) != 0)
		goto out;
	st = OCSP_check_nonce(r->req, bs);
	if (st == 0) {
		seterr(err, errlen,
		       "OCSP response nonce differs from the request's (a "
		       "replayed answer?)");
		goto out;
	}
	rc = find_status(r, bs, v, err, errlen);
out:
	if (rc != 0) {
		memset(v, 0, sizeof(*v));
		v->reason = -1;
	}
	ERR_clear_error();
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return rc;
}

int ocsp_query(X509 *cert, X509 *issuer, X509_STORE *store, const char *url,
               long timeout_ms, struct ocsp_verdict *v, char *err,
               size_t errlen)
{
	struct http_req rq = { 0 };
	struct http_resp hr = { 0 };
	struct ocsp_req r;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	v->reason = -1;
	if (url == NULL)
		return seterr(err, errlen, "OCSP: no responder URL");
	if (ocsp_request_make(cert, issuer, 1, &r, err, errlen) != 0)
		return -1;
	rq.url = url;
	rq.what = "OCSP responder";
	rq.timeout_ms = timeout_ms > 0 ? timeout_ms : 3000;
	rq.max_response = OCSP_MAX_RESPONSE;
	rq.body = r.der;
	rq.blen = r.len;
	rq.content_type = "application/ocsp-request";
	rq.accept = "application/ocsp-response";
	if (http_fetch(&rq, &hr, err, errlen) != 0)
		goto out;
	if (hr.code != 200) {
		seterr(err, errlen, "OCSP responder answered HTTP %ld",
		       hr.code);
		goto out;
	}
	rc = ocsp_response_check(&r, hr.data, hr.len, issuer, store, v, err,
	                         errlen);
out:
	http_resp_free(&hr);
	ocsp_request_clear(&r);
	return rc;
}
