/*
 * ocsp -- one OCSP question (RFC 6960) and its answer judged: the request
 * for a certificate (with a nonce), the POST to the responder through
 * lib/http.c, and the response checked (signed by the issuer or a
 * responder it delegated to, verified against the trust bundle; the nonce;
 * the certificate's status; thisUpdate/nextUpdate) into a verdict.  No
 * state and no logging: the cache and the "log once" are ocsp_cache.c's,
 * the log lines the milter's.
 */
#ifndef SMIME_OCSP_H
#define SMIME_OCSP_H

#include <stddef.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

/* Clock skew allowed on thisUpdate / nextUpdate, in seconds. */
#define OCSP_SKEW 300

/* The largest response read from a responder. */
#define OCSP_MAX_RESPONSE (256 * 1024)

enum ocsp_cert_status {
	OCSP_VERDICT_GOOD = 0,
	OCSP_VERDICT_REVOKED,
	OCSP_VERDICT_UNKNOWN
};

/* What the responder said about one certificate. */
struct ocsp_verdict {
	enum ocsp_cert_status status;
	time_t revoked_at;  /* revocationTime; 0 unless revoked */
	int reason;         /* CRL reason code, -1 when none was given */
	time_t this_update; /* of the answer */
	time_t next_update; /* 0: the responder gave none */
};

/* A request made by ocsp_request_make; clear with ocsp_request_clear. */
struct ocsp_req {
	OCSP_REQUEST *req;
	OCSP_CERTID *id; /* the certificate asked about (owned by req) */
	unsigned char *der;
	size_t len;
};

/* "good", "revoked" or "unknown" (the words of the ocsp_responses
 * table). */
const char *ocsp_status_name(enum ocsp_cert_status s);

/* The status named s ("good", ...) into *out: 0, or -1 for other text. */
int ocsp_status_parse(const char *s, enum ocsp_cert_status *out);

/* The name of a CRL reason code ("keyCompromise", ...), NULL for -1. */
const char *ocsp_reason_name(int reason);

/* The first http:// or https:// OCSP URL of x's Authority Information
 * Access, malloc'd; NULL when there is none (or x is NULL). */
char *ocsp_cert_url(X509 *x);

/*
 * The issuer of x: the first certificate of untrusted (may be NULL) that
 * issued it, else one in store (may be NULL).  A new reference (X509_free
 * it), or NULL when neither has it.
 */
X509 *ocsp_find_issuer(X509 *x, STACK_OF(X509) *untrusted, X509_STORE *store);

/*
 * The request for cert, issued by issuer (SHA-1 CertID, as responders
 * expect), with a nonce when nonce is set, and its DER.  Returns 0, or -1
 * with err filled (out is then empty).
 */
int ocsp_request_make(X509 *cert, X509 *issuer, int nonce, struct ocsp_req *out,
                      char *err, size_t errlen);

/* Free what r holds and zero it; NULL is fine. */
void ocsp_request_clear(struct ocsp_req *r);

/*
 * Judge the DER response der/len to r: a successful response, signed by
 * issuer or by a responder certificate issued by it for OCSP signing,
 * verified against store (the trust bundle) at the current time; the
 * nonce echoed when the responder sends one (one that differs is
 * refused; none at all is allowed, RFC 8954); an answer about r's
 * certificate; thisUpdate not in the future and nextUpdate not past
 * (OCSP_SKEW either way).  Returns 0 with *v filled, or -1 with err in
 * words (v is then zeroed).
 */
int ocsp_response_check(const struct ocsp_req *r, const unsigned char *der,
                        size_t len, X509 *issuer, X509_STORE *store,
                        struct ocsp_verdict *v, char *err, size_t errlen);

/*
 * The whole question: the request for cert (issued by issuer), POSTed to
 * url as application/ocsp-request within timeout_ms, the response judged
 * by ocsp_response_check.  Safe to call from several threads.  Returns 0
 * with *v filled, or -1 with err saying what failed (unreachable, a
 * timeout, an HTTP error, a bad signature, a malformed answer).
 */
int ocsp_query(X509 *cert, X509 *issuer, X509_STORE *store, const char *url,
               long timeout_ms, struct ocsp_verdict *v, char *err,
               size_t errlen);

#endif
