/*
 * tsa -- an RFC 3161 time-stamp client: ask a TSA over HTTP(S) for a
 * token over a SHA-256 digest, check the token against the TSA's trust
 * bundle, and carry it in a CMS SignerInfo as the unsigned attribute
 * id-aa-signatureTimeStampToken (RFC 3161 Appendix A).
 */
#ifndef SMIME_TSA_H
#define SMIME_TSA_H

#include <stddef.h>
#include <time.h>

#include <openssl/cms.h>

/* The size of a digest a token is asked over (SHA-256). */
#define TSA_DIGEST_LEN 32

/* The largest TimeStampResp read from a TSA; more is refused. */
#define TSA_MAX_RESPONSE (256 * 1024)

/*
 * Ask the TSA at url (http:// or https:// only, also after redirects) for
 * a time-stamp token over digest (dlen must be TSA_DIGEST_LEN: the SHA-256
 * of what is stamped).  The request carries a random nonce and asks for
 * the TSA's certificate; the whole exchange takes at most timeout_ms.  The
 * answer must be granted, and its token must verify now against the
 * certificates of ca_file: the signer chains to them with the timeStamping
 * extended key usage, the imprint is digest and the nonce is ours.
 * On success *token_der (OPENSSL_malloc'd; OPENSSL_free it) holds the
 * TimeStampToken (a ContentInfo) as the TSA sent it, *token_len its length
 * and *gen_time (may be NULL) its genTime.  Safe to call from several
 * threads.  Returns 0, or -1 with err filled (free of control characters,
 * whatever the TSA sent) and *token_der NULL.
 */
int tsa_request(const char *url, long timeout_ms, const unsigned char *digest,
                size_t dlen, const char *ca_file, unsigned char **token_der,
                size_t *token_len, time_t *gen_time, char *err, size_t errlen);

/*
 * Check a stored TimeStampToken (DER) later: it is signed by a TSA that
 * chains to ca_file at its own genTime (so a token stays checkable after
 * the TSA certificate expires), with the timeStamping extended key usage,
 * and its imprint is the SHA-256 digest (dlen TSA_DIGEST_LEN).  Fills
 * *gen_time (may be NULL).  Returns 0, or -1 with err filled.
 */
int tsa_token_verify(const unsigned char *token_der, size_t token_len,
                     const unsigned char *digest, size_t dlen,
                     const char *ca_file, time_t *gen_time, char *err,
                     size_t errlen);

/*
 * The subject (RFC 2253) of the certificate that signed the TimeStampToken
 * token_der, the TSA, into name; "" when the token carries none.  Only a
 * name: check the token with tsa_token_verify.  Returns 0, or -1 with err
 * filled (not a token).
 */
int tsa_token_signer(const unsigned char *token_der, size_t token_len,
                     char *name, size_t namelen, char *err, size_t errlen);

/*
 * The SHA-256 of the signature value of si, what a signature time-stamp
 * covers (RFC 3161 Appendix A), into out.  Returns 0, or -1 with err
 * filled.
 */
int tsa_signature_digest(CMS_SignerInfo *si, unsigned char out[TSA_DIGEST_LEN],
                         char *err, size_t errlen);

/*
 * Add token (a TimeStampToken in DER, checked to be one) to si as the
 * unsigned attribute id-aa-signatureTimeStampToken
 * (1.2.840.113549.1.9.16.2.14).  Returns 0, or -1 with err filled.
 */
int tsa_attach(CMS_SignerInfo *si, const unsigned char *token, size_t len,
               char *err, size_t errlen);

/*
 * The first id-aa-signatureTimeStampToken of si: *token points into si
 * (valid while si lives, not to be freed), *len its length.  Returns 1
 * when there is one, 0 when there is none, -1 with err filled when the
 * attribute is malformed.
 */
int tsa_token_get(CMS_SignerInfo *si, const unsigned char **token, size_t *len,
                  char *err, size_t errlen);

#endif
